//! RAG: the reference's "Basic RAG Workflow" — `retrieve`, then `synthesize` — over this
//! project's own documentation (`docs/` and `README.md`), with the retrieved sources cited.
//!
//! `retrieve` takes the question from the `StartEvent` and returns a `RetrieveEvent` with the
//! best passages (the reference's `index.as_retriever(similarity_top_k=5)`); `synthesize` builds
//! a prompt from the passages and the question and returns the model's answer
//! (`self.llm.acomplete(prompt)`) in a `StopEvent`, with each source cited by file, line range and
//! byte offsets. The model is optional on the workflow (`Option<Arc<dyn Llm>>`).
//!
//! With a model server (any OpenAI-compatible API; the variables are read by
//! `OpenAiClient::from_env`):
//!
//! ```text
//! # OpenAI
//! OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... \
//!   EVENTFLOW_LLM_MODEL=gpt-4o-mini EVENTFLOW_EMBEDDING_MODEL=text-embedding-3-small \
//!   cargo run --example rag -- "How does the reducer work?"
//! # Ollama (ollama pull llama3.2 && ollama pull nomic-embed-text)
//! OPENAI_BASE_URL=http://localhost:11434/v1 \
//!   EVENTFLOW_LLM_MODEL=llama3.2 EVENTFLOW_EMBEDDING_MODEL=nomic-embed-text \
//!   cargo run --example rag -- "How does the reducer work?"
//! # vLLM (serves one chat model; without an embedding model retrieval is BM25 only)
//! OPENAI_BASE_URL=http://localhost:8000/v1 EVENTFLOW_LLM_MODEL=<served model> \
//!   cargo run --example rag -- "How does the reducer work?"
//! ```
//!
//! Retrieval is then hybrid — BM25 keywords and the server's embeddings in a
//! `VectorStoreIndex`, fused by reciprocal rank — when `EVENTFLOW_EMBEDDING_MODEL` is set, and
//! BM25 alone otherwise; the answer is the chat model's.
//!
//! Offline (no `OPENAI_BASE_URL`, or `--offline`): BM25 retrieval, and instead of an answer the
//! best-matching passages, under a label that says no model wrote them:
//!
//! ```text
//! cargo run --example rag -- "How does the reducer work?"
//! cargo run --example rag -- --question "What does a snapshot contain?" --top-k 3 --offline
//! ```
//!
//! `--verbose` prints the engine's step trace.
//!
//! The modules: `workflow` (the reference's `RAGWorkflow`: events, steps, the answer and its
//! citations), `index` (the passages and their retriever); `tests` runs the whole example,
//! offline and against a fake model server.

mod index;
#[cfg(test)]
mod tests;
mod workflow;

use anyhow::Context as _;
use eventflow_examples::{arg, client_from_env, workspace_root};

use crate::index::setup;
use crate::workflow::{AnsweredBy, ask};

/// The question asked when none is given.
pub(crate) const DEFAULT_QUESTION: &str = "How does the reducer work?";
/// How many passages are retrieved (the reference's `similarity_top_k=5`).
pub(crate) const DEFAULT_TOP_K: usize = 5;

/// Flags that take a value.
const VALUE_FLAGS: &[&str] = &["--question", "--top-k"];

/// The command-line arguments that are neither flags nor flag values.
fn free_args(args: &[String]) -> Vec<String> {
    let mut free = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if VALUE_FLAGS.contains(&arg.as_str()) {
            rest.next();
        } else if !arg.starts_with("--") {
            free.push(arg.clone());
        }
    }
    free
}

/// The question: `--question`, else the first free argument, else the default.
pub(crate) fn question_from(args: &[String]) -> String {
    arg(args, "question")
        .or_else(|| free_args(args).into_iter().next())
        .unwrap_or_else(|| DEFAULT_QUESTION.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let question = question_from(&args);
    let top_k = match arg(&args, "top-k") {
        Some(k) => k.parse().context("--top-k takes a number")?,
        None => DEFAULT_TOP_K,
    };
    let flag = |name: &str| args.iter().any(|a| a == name);
    let client = client_from_env(flag("--offline"))?;

    let root = workspace_root();
    let setup = setup(&root, client.as_ref(), top_k).await?;
    match &client {
        Some(client) => println!(
            "Model server: {} (chat model {})",
            client.base_url(),
            client.model().unwrap_or_default()
        ),
        None => println!("Model server: none (offline)"),
    }
    println!(
        "Indexed {} documents ({} passages) from docs/ and README.md; retrieval: {}",
        setup.documents, setup.passages, setup.retrieval
    );
    println!("\nQuestion: {question}\n");

    let answer = ask(setup.workflow, &question, flag("--verbose")).await?;
    match &answer.answered_by {
        AnsweredBy::Model { model } => {
            println!("Answer (written by {model}):\n\n{}", answer.answer)
        }
        AnsweredBy::Extractive | AnsweredBy::NothingRetrieved => println!("{}", answer.answer),
    }
    println!("\nSources:");
    if answer.sources.is_empty() {
        println!("  (none)");
    }
    for citation in &answer.sources {
        println!("  {}, score {:.3}", citation.header(), citation.score);
    }
    Ok(())
}
