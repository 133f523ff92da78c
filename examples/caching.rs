//! Caching: instance attributes shared by every step and every run ("Managing State",
//! "Instance Attributes").
//!
//! ```text
//! cargo run --example caching -- --query "What is a borrow checker?"
//! ```
//!
//! The reference's workflow keeps a config, an LLM client and a cache on `self`. Here the
//! workflow struct holds a `Config`, a `Mutex<HashMap>` cache and a counter of the expensive
//! computations (a stand-in for LLM calls). Steps reach them through `&self`: `lookup` answers
//! from the cache when it can, and otherwise hands the query to `compute`, which does the slow
//! work and fills the cache.
//!
//! The workflow is built once with `into_workflow()` and run many times: the instance lives as
//! long as the `Workflow`, so the cache outlives each run, while the context's state (see the
//! `state` example) lasts one run. `into_workflow()` moves the instance into the workflow;
//! what the caller still needs to read afterwards (the counter, for metrics) is shared with an
//! `Arc`.
//!
//! Two concurrent runs of one uncached query both miss and both compute; making them wait for
//! one computation would need a per-key lock, left out to keep the example small.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use eventflow::Workflow;
use eventflow::prelude::*;
use eventflow_examples::arg;

/// The workflow's configuration: the reference's `config: dict`.
#[derive(Clone, Debug)]
struct Config {
    /// The name of the (pretend) model answering.
    model: String,
    /// How long one expensive computation takes.
    latency: Duration,
}

/// A query the cache could not answer.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct CacheMissEvent {
    query: String,
}

/// What `lookup` returns: the cached answer, or the query to compute.
#[derive(EventUnion)]
enum Lookup {
    Hit(StopEvent),
    Miss(CacheMissEvent),
}

/// The run's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Answer {
    query: String,
    answer: String,
    from_cache: bool,
}

struct CachingWorkflow {
    config: Config,
    cache: Mutex<HashMap<String, String>>,
    computations: Arc<AtomicUsize>,
}

impl CachingWorkflow {
    /// The reference's `__init__`: configuration in, instance attributes set up.
    fn new(config: Config, computations: Arc<AtomicUsize>) -> Self {
        CachingWorkflow {
            config,
            cache: Mutex::new(HashMap::new()),
            computations,
        }
    }

    fn cached(&self, query: &str) -> Option<String> {
        // The lock is held for the lookup only, never across an `.await`.
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get(query).cloned()
    }
}

#[workflow]
impl CachingWorkflow {
    #[step]
    async fn lookup(&self, ev: StartEvent) -> Result<Lookup> {
        let query: String = ev.get("query")?;
        Ok(match self.cached(&query) {
            Some(answer) => StopEvent::new(Answer {
                query,
                answer,
                from_cache: true,
            })
            .into(),
            None => CacheMissEvent { query }.into(),
        })
    }

    #[step]
    async fn compute(&self, ev: CacheMissEvent) -> StopEvent {
        // The expensive part: an LLM call in the reference.
        self.computations.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.config.latency).await;
        let answer = format!(
            "[{}] a considered answer to \"{}\"",
            self.config.model, ev.query
        );

        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ev.query.clone(), answer.clone());
        StopEvent::new(Answer {
            query: ev.query,
            answer,
            from_cache: false,
        })
    }
}

/// Builds the workflow once; `computations` counts the expensive computations of all its runs.
fn build(config: Config, computations: Arc<AtomicUsize>) -> anyhow::Result<Workflow> {
    Ok(CachingWorkflow::new(config, computations).into_workflow()?)
}

/// Answers one query with an already built workflow.
async fn run(workflow: &Workflow, query: &str) -> anyhow::Result<Answer> {
    let output = workflow.run(json!({ "query": query })).await?;
    Ok(output.result()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let query = arg(&args, "query").unwrap_or_else(|| "What is a borrow checker?".to_owned());
    let config = Config {
        model: "pretend-llm".to_owned(),
        latency: Duration::from_millis(300),
    };
    let computations = Arc::new(AtomicUsize::new(0));
    let workflow = build(config, computations.clone())?.verbose(true);

    for attempt in 1..=2 {
        let started = Instant::now();
        let answer = run(&workflow, &query).await?;
        println!(
            "run {attempt}: {} in {:.1?}: {}\n",
            if answer.from_cache {
                "served from the cache"
            } else {
                "computed"
            },
            started.elapsed(),
            answer.answer
        );
    }
    println!(
        "expensive computations for 2 runs of the same query: {}",
        computations.load(Ordering::SeqCst)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            model: "test-llm".to_owned(),
            latency: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn the_same_query_is_computed_once() {
        let computations = Arc::new(AtomicUsize::new(0));
        let workflow = build(config(), computations.clone()).unwrap();

        let first = run(&workflow, "What is Rust?").await.unwrap();
        assert!(!first.from_cache);
        assert_eq!(computations.load(Ordering::SeqCst), 1);

        let second = run(&workflow, "What is Rust?").await.unwrap();
        assert!(second.from_cache);
        assert_eq!(second.answer, first.answer);
        assert_eq!(computations.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_hit_never_reaches_the_compute_step() {
        let workflow = build(config(), Arc::default()).unwrap();
        run(&workflow, "q").await.unwrap();
        let output = workflow.run(json!({ "query": "q" })).await.unwrap();
        assert_eq!(output.path().step_runs("lookup"), 1);
        assert_eq!(output.path().step_runs("compute"), 0);
    }

    #[tokio::test]
    async fn different_queries_are_computed_separately() {
        let computations = Arc::new(AtomicUsize::new(0));
        let workflow = build(config(), computations.clone()).unwrap();
        for query in ["a", "b", "a", "c", "b"] {
            run(&workflow, query).await.unwrap();
        }
        assert_eq!(computations.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_cache_belongs_to_the_instance() {
        // Two workflows built from two instances do not share a cache.
        let computations = Arc::new(AtomicUsize::new(0));
        let one = build(config(), computations.clone()).unwrap();
        let other = build(config(), computations.clone()).unwrap();
        assert!(!run(&one, "q").await.unwrap().from_cache);
        assert!(!run(&other, "q").await.unwrap().from_cache);
        assert_eq!(computations.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_config_reaches_the_steps() {
        let workflow = build(config(), Arc::default()).unwrap();
        let answer = run(&workflow, "q").await.unwrap();
        assert!(answer.answer.starts_with("[test-llm]"), "{answer:?}");
    }
}
