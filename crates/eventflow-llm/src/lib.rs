//! # eventflow-llm
//!
//! The model and retrieval layer the reference's workflows call: an [`Llm`] trait (complete,
//! chat, streaming), an [`Embedding`] trait, an OpenAI-compatible client for both (OpenAI,
//! Ollama, vLLM, llama.cpp server), documents split into nodes, an in-memory
//! [`VectorStoreIndex`], a BM25 keyword retriever and a hybrid of the two, deterministic mocks for
//! tests, and a rate-limited wrapper. The engine (`eventflow`) does not depend on any of it.

#![warn(missing_docs)]

mod error;
mod llm;

// The model side.
mod mock_llm;
mod openai;
mod rate_limit;

// The retrieval side.
mod bm25;
mod document;
mod hybrid;
mod index;
mod mock_embedding;
mod retriever;

pub use bm25::*;
pub use document::*;
pub use error::*;
pub use hybrid::*;
pub use index::*;
pub use llm::*;
pub use mock_embedding::*;
pub use mock_llm::*;
pub use openai::*;
pub use rate_limit::*;
pub use retriever::*;
