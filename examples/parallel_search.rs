//! Parallel search: fan out to three sources, collect, synthesize ("Concurrent Execution",
//! "Parallel Steps").
//!
//! ```text
//! cargo run --example parallel_search -- --query "async runtime for rust"
//! ```
//!
//! `dispatch` queries the web, a database and a vector store at once (`tokio::join!`, the
//! reference's `asyncio.gather`) and returns one `SearchResultEvent` per source: returning a
//! `Vec` of events fans out, each event being routed on its own. `aggregate` receives them one
//! by one; `ctx.collect_events(ev, 3)` buffers them and returns `None` until the third arrives,
//! and only then does the step emit an `AggregatedEvent`. `synthesize` merges the results.
//!
//! The sources are small local corpora behind `sleep`s of 100, 200 and 300 ms standing in for
//! network latency; since they run concurrently, a search takes about as long as the slowest
//! source (300 ms), not the sum (600 ms).
//!
//! The workflow is defined in the `eventflow-demo` crate (`eventflow_demo::parallel_search`, in
//! `crates/eventflow-demo/src/parallel_search.rs`), so that `eventflow serve --demo` serves it by
//! name too; this binary runs it once on the command line's query and times it.

use std::time::Instant;

use eventflow::prelude::*;
use eventflow_demo::parallel_search::{
    self, DATABASE_LATENCY, SearchSummary, VECTOR_STORE_LATENCY, WEB_LATENCY,
};
use eventflow_examples::arg;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let query = arg(&args, "query").unwrap_or_else(|| "async runtime for rust".to_owned());
    let started = Instant::now();
    let workflow = parallel_search::workflow().verbose(true);
    let output = workflow.run(json!({ "query": query })).await?;
    let summary: SearchSummary = output.result()?;
    let elapsed = started.elapsed();
    println!();
    println!("query: {}", summary.query);
    for (source, results) in &summary.by_source {
        println!("  {source}: {} result(s)", results.len());
        for result in results {
            println!("    - {result}");
        }
    }
    println!("{} distinct results", summary.merged.len());
    println!(
        "took {elapsed:.0?}; the sources take {:?}, {:?} and {:?} (sum {:?})",
        DATABASE_LATENCY,
        WEB_LATENCY,
        VECTOR_STORE_LATENCY,
        DATABASE_LATENCY + WEB_LATENCY + VECTOR_STORE_LATENCY
    );
    Ok(())
}
