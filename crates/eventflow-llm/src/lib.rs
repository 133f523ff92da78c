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

pub use bm25::Bm25Retriever;
pub use document::{
    Document, META_CHUNK_INDEX, META_DOCUMENT_ID, META_END_OFFSET, META_FILE_NAME, META_SOURCE,
    META_START_OFFSET, Node, NodeParser,
};
pub use error::LlmError;
pub use hybrid::{HybridRetriever, reciprocal_rank_fusion};
pub use index::{
    VECTOR_INDEX_FORMAT, VECTOR_INDEX_FORMAT_VERSION, VectorIndexConfig, VectorRetriever,
    VectorStoreIndex,
};
pub use llm::{ChatMessage, Completion, Embedding, Llm, RequestOptions, Role, TextStream};
pub use mock_embedding::MockEmbedding;
pub use mock_llm::{MockLlm, MockRequest};
pub use openai::{OpenAiClient, OpenAiClientBuilder};
pub use rate_limit::RateLimited;
pub use retriever::{NodeWithScore, Retriever};
