//! Quickstart: the reference's basic two-step workflow — retrieve, then synthesize.
//!
//! ```text
//! cargo run --example quickstart -- --query "What is quantum computing?"
//! ```
//!
//! The "retriever" is a keyword match over a few passages and the "synthesizer" stitches the
//! best passages together; the LLM layer (eventflow-llm) replaces both with real models.
//!
//! The workflow is defined in the library, in `examples/workflows/quickstart.rs`
//! (`eventflow_examples::workflows::quickstart`), so that a server can serve it by name too;
//! this binary runs it once on the command line's query.

use eventflow::prelude::*;
use eventflow_examples::arg;
use eventflow_examples::workflows::quickstart;

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
