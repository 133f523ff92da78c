//! The `parallel_search` example's workflow: fan out to three sources, collect, synthesize
//! ("Concurrent Execution", "Parallel Steps").
//!
//! Start it with `{"query": "async runtime for rust"}`; the result is a [`SearchSummary`].
//! `dispatch` queries the web, a database and a vector store at once (`tokio::join!`, the
//! reference's `asyncio.gather`) and returns one [`SearchResultEvent`] per source: returning a
//! `Vec` of events fans out, each event being routed on its own. `aggregate` receives them one
//! by one; `ctx.collect_events(ev, 3)` buffers them and returns `None` until the third arrives,
//! and only then does the step emit an [`AggregatedEvent`]. `synthesize` merges the results.
//!
//! The sources are small local corpora behind `sleep`s of 100, 200 and 300 ms standing in for
//! network latency; since they run concurrently, a search takes about as long as the slowest
//! source (300 ms), not the sum (600 ms).

use std::collections::BTreeMap;
use std::time::Duration;

use eventflow::prelude::*;

/// The results of one source.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct SearchResultEvent {
    /// The source: `web`, `database` or `vector_store`.
    pub source: String,
    /// What it found.
    pub results: Vec<String>,
}

/// The results of every source, by source.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct AggregatedEvent {
    /// The query, from the start event.
    pub query: String,
    /// The results, by source.
    pub all_results: BTreeMap<String, Vec<String>>,
}

/// The run's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchSummary {
    /// The query, from the start event.
    pub query: String,
    /// The results, by source.
    pub by_source: BTreeMap<String, Vec<String>>,
    /// Every result once, sources in name order.
    pub merged: Vec<String>,
}

/// How long the web search takes.
pub const WEB_LATENCY: Duration = Duration::from_millis(200);
/// How long the database search takes.
pub const DATABASE_LATENCY: Duration = Duration::from_millis(100);
/// How long the vector store search takes: the slowest source.
pub const VECTOR_STORE_LATENCY: Duration = Duration::from_millis(300);

const WEB_PAGES: &[&str] = &[
    "Tokio is an async runtime for Rust, built around an event loop.",
    "Rust 1.0 was released in May 2015.",
    "Python's asyncio.gather awaits several coroutines concurrently.",
];

const DATABASE_ROWS: &[&str] = &[
    "crate=tokio category=async runtime downloads=300M",
    "crate=serde category=serialization downloads=400M",
    "crate=rayon category=data parallelism downloads=100M",
];

const VECTOR_PASSAGES: &[&str] = &[
    "An async runtime polls futures and wakes them when their I/O is ready.",
    "Ownership lets Rust check data races at compile time.",
    "Embeddings map passages to vectors so similar texts lie close together.",
];

/// The passages of `corpus` that contain a word of the query (longer than 3 letters).
fn keyword_search(corpus: &[&str], query: &str) -> Vec<String> {
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| word.len() > 3)
        .map(str::to_lowercase)
        .collect();
    corpus
        .iter()
        .filter(|passage| {
            let passage = passage.to_lowercase();
            words.iter().any(|word| passage.contains(word.as_str()))
        })
        .map(|passage| (*passage).to_owned())
        .collect()
}

struct ParallelSearchWorkflow;

impl ParallelSearchWorkflow {
    async fn search_web(&self, query: &str) -> SearchResultEvent {
        tokio::time::sleep(WEB_LATENCY).await;
        SearchResultEvent {
            source: "web".to_owned(),
            results: keyword_search(WEB_PAGES, query),
        }
    }

    async fn search_database(&self, query: &str) -> SearchResultEvent {
        tokio::time::sleep(DATABASE_LATENCY).await;
        SearchResultEvent {
            source: "database".to_owned(),
            results: keyword_search(DATABASE_ROWS, query),
        }
    }

    async fn search_vector_store(&self, query: &str) -> SearchResultEvent {
        tokio::time::sleep(VECTOR_STORE_LATENCY).await;
        SearchResultEvent {
            source: "vector_store".to_owned(),
            results: keyword_search(VECTOR_PASSAGES, query),
        }
    }
}

#[workflow(name = "parallel_search")]
impl ParallelSearchWorkflow {
    #[step]
    async fn dispatch(&self, ctx: &Context, ev: StartEvent) -> Result<Vec<SearchResultEvent>> {
        let query: String = ev.get("query")?;
        ctx.set("query", &query)?;
        // The three searches run concurrently: this awaits the slowest, not the sum.
        let (web, database, vectors) = tokio::join!(
            self.search_web(&query),
            self.search_database(&query),
            self.search_vector_store(&query),
        );
        Ok(vec![web, database, vectors])
    }

    #[step]
    async fn aggregate(
        &self,
        ctx: &Context,
        ev: SearchResultEvent,
    ) -> Result<Option<AggregatedEvent>> {
        // `None` until all three results have arrived.
        let Some(events) = ctx.collect_events(ev, 3) else {
            return Ok(None);
        };
        let all_results = events
            .into_iter()
            .map(|event| (event.source, event.results))
            .collect();
        Ok(Some(AggregatedEvent {
            query: ctx.get("query")?,
            all_results,
        }))
    }

    #[step]
    async fn synthesize(&self, ev: AggregatedEvent) -> StopEvent {
        let mut merged: Vec<String> = Vec::new();
        for result in ev.all_results.values().flatten() {
            if !merged.contains(result) {
                merged.push(result.clone());
            }
        }
        StopEvent::new(SearchSummary {
            query: ev.query,
            by_source: ev.all_results,
            merged,
        })
    }
}

/// The workflow, named `parallel_search`. Start it with `{"query": "..."}`; the result is a
/// [`SearchSummary`].
pub fn workflow() -> Workflow {
    ParallelSearchWorkflow
        .into_workflow()
        .expect("the parallel_search workflow is valid")
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    async fn run(query: &str) -> SearchSummary {
        let output = workflow().run(json!({ "query": query })).await.unwrap();
        output.result().unwrap()
    }

    #[tokio::test]
    async fn every_source_appears_in_the_result() {
        let summary = run("async runtime").await;
        let sources: Vec<&str> = summary.by_source.keys().map(String::as_str).collect();
        assert_eq!(sources, ["database", "vector_store", "web"]);
        for (source, results) in &summary.by_source {
            assert!(!results.is_empty(), "{source} found nothing");
            assert!(results.iter().all(|r| summary.merged.contains(r)));
        }
        let mut distinct = summary.merged.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            summary.merged.len(),
            "merged has duplicates"
        );
    }

    #[tokio::test]
    async fn a_source_without_matches_still_reports() {
        let summary = run("embeddings").await;
        assert_eq!(summary.by_source.len(), 3);
        assert!(summary.by_source["web"].is_empty());
        assert!(summary.by_source["database"].is_empty());
        assert_eq!(summary.by_source["vector_store"].len(), 1);
    }

    #[tokio::test]
    async fn takes_about_the_slowest_source_not_the_sum() {
        let started = Instant::now();
        run("rust").await;
        let elapsed = started.elapsed();
        let slowest = VECTOR_STORE_LATENCY;
        let sum = WEB_LATENCY + DATABASE_LATENCY + VECTOR_STORE_LATENCY;
        assert!(elapsed >= slowest, "{elapsed:?}");
        // Generous: run sequentially, the sources alone would take 600 ms.
        assert!(
            elapsed < slowest + Duration::from_millis(200),
            "{elapsed:?}"
        );
        assert!(elapsed < sum);
    }

    #[tokio::test]
    async fn aggregate_runs_per_result_and_emits_once() {
        let output = workflow().run(json!({ "query": "rust" })).await.unwrap();
        assert_eq!(output.path().step_runs("aggregate"), 3);
        assert_eq!(output.path().step_runs("synthesize"), 1);
    }
}
