//! Branching: the reference's conditional branching ("Branches and Loops").
//!
//! ```text
//! cargo run --example branching -- --query "What is Rust?"
//! cargo run --example branching -- --query "A poem about the sea"
//! ```
//!
//! `classify` labels the query as factual or creative, `route` turns the label into one of two
//! events, and exactly one of `handle_factual` and `handle_creative` runs. The branch is visible
//! in `route`'s return type, an enum of events derived with `#[derive(EventUnion)]`: the
//! workflow's graph has an edge to both handlers, and a run takes only one of them.
//!
//! The workflow is defined in the `eventflow-demo` crate (`eventflow_demo::branching`, in
//! `crates/eventflow-demo/src/branching.rs`), so that `eventflow serve --demo` serves it by name
//! too; this binary runs it once on the command line's query.

use eventflow::prelude::*;
use eventflow_demo::branching::{self, Answer};
use eventflow_examples::arg;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let query = arg(&args, "query").unwrap_or_else(|| "What is Rust?".to_owned());
    let workflow = branching::workflow().verbose(true);
    let output = workflow.run(json!({ "query": query })).await?;
    let answer: Answer = output.result()?;
    println!();
    println!("query:  {query}");
    println!("branch: {:?}", answer.branch);
    println!("answer: {}", answer.response);
    Ok(())
}
