//! # eventflow-llm
//!
//! The model and retrieval layer the reference's workflows call: an [`Llm`] trait (complete,
//! chat, streaming), an [`Embedding`] trait, an OpenAI-compatible client for both (OpenAI,
//! Ollama, vLLM, llama.cpp server), documents split into nodes, an in-memory
//! [`VectorStoreIndex`], a BM25 keyword retriever and a hybrid of the two, deterministic mocks for
//! tests, and a rate-limited wrapper. The engine (`eventflow`) does not depend on any of it.
//!
//! Retrieve, then answer — here with the deterministic mocks, which run offline; swap in
//! [`OpenAiClient`] for a real model:
//!
//! ```
//! use std::sync::Arc;
//!
//! use eventflow_llm::{Document, Llm, MockEmbedding, MockLlm, NodeParser, VectorStoreIndex};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), eventflow_llm::LlmError> {
//! let documents = [
//!     Document::new("reducer", "The reducer turns ticks into commands."),
//!     Document::new("store", "The store keeps journals, snapshots and inboxes."),
//! ];
//! let parser = NodeParser::new(200, 0)?;
//! let index =
//!     VectorStoreIndex::from_documents(&documents, &parser, Arc::new(MockEmbedding::new(64)))
//!         .await?;
//! let best = index.search("what keeps journals?", 1).await?;
//! assert_eq!(best[0].node.id, "store#0");
//!
//! let llm = MockLlm::new().respond_to("journals", "The store.");
//! let prompt = format!("Context: {}\nWho keeps journals?", best[0].node.text);
//! let answer = llm.complete(&prompt).await?.text;
//! // The mock marks what it writes, so a test can tell a canned answer from a model's.
//! assert_eq!(MockLlm::strip_marker(&answer), "The store.");
//! # Ok(())
//! # }
//! ```

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
