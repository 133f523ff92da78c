//! Quickstart: the reference's basic two-step workflow — retrieve, then synthesize.
//!
//! ```text
//! cargo run --example quickstart -- --query "What is quantum computing?"
//! ```
//!
//! The "retriever" is a keyword match over a few passages and the "synthesizer" stitches the
//! best passages together; the LLM layer (eventflow-llm) replaces both with real models.
//!
//! The workflow is defined in the `eventflow-demo` crate (`eventflow_demo::quickstart`, in
//! `crates/eventflow-demo/src/quickstart.rs`), so that `eventflow serve --demo` serves it by name
//! too; this binary runs it once on the command line's query.

use eventflow::prelude::*;
use eventflow_demo::quickstart;
use eventflow_examples::arg;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let query = arg(&args, "query").unwrap_or_else(|| "What is quantum computing?".to_owned());
    let workflow = quickstart::workflow().verbose(true);
    let output = workflow.run(json!({ "query": query })).await?;
    let answer: String = output.result()?;
    println!("{answer}");
    Ok(())
}
