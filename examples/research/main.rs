//! Research: the reference's "Hands-On Exercise" — a multi-step research workflow that
//! classifies the topic, gathers from three sources in parallel, evaluates each source's
//! quality, asks a human to approve the weak ones, and synthesizes a report with citations.
//!
//! - `classify_topic` (`StartEvent` -> `TopicEvent { topic, category }`): the model picks the
//!   category when one is configured, keyword rules otherwise.
//! - `gather_sources` (`TopicEvent` -> `Vec<SourceEvent>`): three searches run concurrently and
//!   each becomes a `SourceEvent { source, content, quality }` (returning a `Vec` fans out):
//!   `web`, a stand-in for a web search (keyword search over the pages in `examples/data/web/`,
//!   so the example needs no network), `vector` (a `VectorStoreIndex` over `docs/` and
//!   `README.md`) and `bm25` (BM25 over the same files). Quality is deterministic: the share of
//!   the topic's terms that the source's passages contain.
//! - `evaluate_quality` (`SourceEvent` + `Context` -> `EvaluatedEvent`): a source under the
//!   threshold (0.6) is shown to a human with `ctx.wait_for_event::<HumanResponseEvent>()`, its
//!   question published as an `InputRequiredEvent` carrying the source's name, and the answer
//!   matched back by that name (`.matching("source", ..)`), so several questions can be open at
//!   once.
//! - `synthesize` (`EvaluatedEvent` -> `StopEvent`): `ctx.collect_events(ev, 3)` waits for all
//!   three sources, then writes the report from the accepted and approved sources, citing each
//!   passage by file and byte offsets; rejected sources are left out and listed as such.
//!
//! Offline (no `OPENAI_BASE_URL`, or `--offline`): keyword classification, a hashing embedding
//! for the vector index (`MockEmbedding`, labelled as not a model), and extractive findings (the
//! sentence of each cited passage that best matches the topic), labelled as such.
//!
//! ```text
//! cargo run --example research -- --approve all     # approve every low-quality source
//! cargo run --example research -- --approve none    # reject them
//! cargo run --example research                      # ask on stdin (yes/no per source)
//! cargo run --example research -- --topic "How does BM25 rank documents?" --approve all
//! ```
//!
//! With a model server (any OpenAI-compatible API), the chat model classifies the topic and
//! writes the report, and the embedding model, when set, embeds the vector index:
//!
//! ```text
//! # OpenAI
//! OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... \
//!   EVENTFLOW_LLM_MODEL=gpt-4o-mini EVENTFLOW_EMBEDDING_MODEL=text-embedding-3-small \
//!   cargo run --example research -- --approve all
//! # Ollama
//! OPENAI_BASE_URL=http://localhost:11434/v1 \
//!   EVENTFLOW_LLM_MODEL=llama3.2 EVENTFLOW_EMBEDDING_MODEL=nomic-embed-text \
//!   cargo run --example research -- --approve all
//! # vLLM (no embedding model: the vector index uses the offline hashing embedding)
//! OPENAI_BASE_URL=http://localhost:8000/v1 EVENTFLOW_LLM_MODEL=<served model> \
//!   cargo run --example research -- --approve all
//! ```
//!
//! `--verbose` prints the engine's step trace.
//!
//! The modules, one concept each: `events` (what the steps pass on), `workflow` (the steps),
//! `sources` (the three places to search, built over the project's files), `classify` and
//! `text` (the offline stand-ins for the model: keyword classification, term overlap,
//! sentences), `report` (the result and its text), `session` (one run on the command line and
//! its reviewer); `tests` runs the whole workflow.

mod classify;
mod events;
mod report;
mod session;
mod sources;
#[cfg(test)]
mod tests;
mod text;
mod workflow;

use eventflow_examples::{arg, client_from_env, workspace_root};

use crate::session::{Approvals, research};
use crate::sources::setup;

/// The topic researched when `--topic` is not given.
pub(crate) const DEFAULT_TOPIC: &str = "How the eventflow reducer resumes runs from snapshots";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let topic = arg(&args, "topic").unwrap_or_else(|| DEFAULT_TOPIC.to_owned());
    let mut approvals = Approvals::from_flag(arg(&args, "approve").as_deref())?;
    let client = client_from_env(flag("--offline"))?;

    let workflow = setup(&workspace_root(), client.as_ref()).await?;
    match &client {
        Some(client) => println!(
            "Model server: {} (chat model {})",
            client.base_url(),
            client.model().unwrap_or_default()
        ),
        None => {
            println!("Model server: none (offline): keyword classification, extractive findings")
        }
    }
    println!("Sources:");
    for source in &workflow.sources {
        println!("  {}: {}", source.name, source.description);
    }
    println!("Topic: {topic}");

    let session = research(workflow, &topic, &mut approvals, flag("--verbose")).await?;
    println!("\n{}", session.report.render());
    let asked: Vec<&str> = session
        .questions
        .iter()
        .map(|q| q.source.as_str())
        .collect();
    println!(
        "Questions asked: {}{}",
        asked.len(),
        if asked.is_empty() {
            String::new()
        } else {
            format!(" (about {})", asked.join(", "))
        }
    );
    Ok(())
}
