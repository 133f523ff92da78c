//! Refinement: the reference's quality loop ("Branches and Loops", "Loops for Refinement").
//!
//! ```text
//! cargo run --example refinement -- --query "What is ownership?"
//! cargo run --example refinement -- --query "What is ownership?" --target 0.95
//! ```
//!
//! `generate` accepts the start event *or* a `RefineEvent` (an enum of both, derived with
//! `#[derive(EventUnion)]`) and drafts or improves an answer; `check_quality` either loops back
//! with a `RefineEvent` or ends the run with a `StopEvent` (another union). The loop is nothing
//! but an edge from `check_quality` back to `generate` in the graph.
//!
//! Semantics of the loop: `iteration` counts refinements. The first draft is iteration 0, and
//! each `RefineEvent` produces the next iteration. `check_quality` stops when
//! `quality_score > target` or `iteration >= 3`, so `generate` (and `check_quality`) run at
//! most 4 times: the first draft plus at most 3 refinements.
//!
//! The "quality" is deterministic, read from the text: a draft scores 0.5, and each
//! improvement a refinement adds (an example +0.2, a source +0.15, a summary +0.05) raises it,
//! with diminishing returns: 0.5, 0.7, 0.85, 0.9. With the reference's threshold of 0.8 the
//! loop exits early after two refinements; with `--target 0.95` it is stopped by the cap.
//!
//! The workflow is defined in the `eventflow-demo` crate (`eventflow_demo::refinement`, in
//! `crates/eventflow-demo/src/refinement.rs`), so that `eventflow serve --demo` serves it by name
//! too; this binary runs it once on the command line's query and target.

use eventflow::prelude::*;
use eventflow_demo::refinement::{self, DEFAULT_TARGET, Refined};
use eventflow_examples::arg;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let query = arg(&args, "query").unwrap_or_else(|| "What is ownership?".to_owned());
    let target = match arg(&args, "target") {
        Some(target) => target.parse()?,
        None => DEFAULT_TARGET,
    };
    let workflow = refinement::workflow_with_target(target).verbose(true);
    let output = workflow.run(json!({ "query": query })).await?;
    let refined: Refined = output.result()?;
    println!();
    println!(
        "stopped at iteration {} ({:?}), quality {:.2} (target > {target})",
        refined.iteration, refined.reason, refined.quality_score
    );
    println!("generate ran {} times", output.path().step_runs("generate"));
    println!("answer: {}", refined.answer);
    Ok(())
}
