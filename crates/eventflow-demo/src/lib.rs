//! The demo workflows of eventflow: seven small workflows, one per pattern of the LlamaIndex
//! Workflows reference, that run offline (no model, no network). `eventflow serve --demo`
//! serves them, and the repository's examples run them one by one; they are also a starting
//! point to copy from.
//!
//! Each module defines one workflow (its events, its steps and a constructor). Every workflow
//! is named after the example that runs it (the `durable` example's is named `expenses`),
//! starts from a JSON object of keyword arguments, and is listed by [`demo_workflows`]:
//!
//! - `quickstart`: `{"query": "What is quantum computing?"}`; the result is a string.
//! - `branching`: `{"query": "What is Rust?"}`; the result is `{"branch", "response"}`.
//! - `refinement`: `{"query": "What is ownership?"}`; the result is
//!   `{"answer", "iteration", "quality_score", "reason"}`.
//! - `parallel_search`: `{"query": "async runtime for rust"}`; the result is
//!   `{"query", "by_source", "merged"}`.
//! - `streaming`: `{"prompt": "Why are workflows event-driven?"}`; the result is a string, and
//!   the run streams `ProgressEvent`s and `TokenEvent`s while it works.
//! - `hitl`: `{"query": "A customer asks for a refund of a damaged order"}`; the result is
//!   `{"status", "content", "response"}`. A reply that commits money asks for approval first.
//! - `expenses`: `{"amount": 420}`; the result is a string. An amount above 100 asks for
//!   approval first.
//!
//! A workflow that asks publishes an `InputRequiredEvent` on its event stream and waits for a
//! `HumanResponseEvent` (`{"response": "yes"}`) sent into the run.
//!
//! ```
//! use eventflow::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let workflow = eventflow_demo::quickstart::workflow();
//! let answer: String = workflow
//!     .run(json!({"query": "What is quantum computing?"}))
//!     .await?
//!     .result()?;
//! assert!(answer.contains("qubits"));
//!
//! let names: Vec<String> = eventflow_demo::demo_workflows()
//!     .iter()
//!     .map(|workflow| workflow.name().to_owned())
//!     .collect();
//! assert_eq!(names[0], "quickstart");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

use eventflow::Workflow;

pub mod branching;
pub mod expenses;
pub mod hitl;
pub mod parallel_search;
pub mod quickstart;
pub mod refinement;
pub mod streaming;

/// Every workflow of this crate, each built with its defaults, in the order listed above.
pub fn demo_workflows() -> Vec<Workflow> {
    vec![
        quickstart::workflow(),
        branching::workflow(),
        refinement::workflow(),
        parallel_search::workflow(),
        streaming::workflow(),
        hitl::workflow(),
        expenses::workflow(),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use eventflow::EventJson;
    use eventflow::durable::Engine;
    use eventflow::store::{MemoryStore, RunStatus};
    use futures::StreamExt;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn every_demo_workflow_is_named_after_its_example() {
        let names: Vec<String> = demo_workflows()
            .iter()
            .map(|workflow| workflow.name().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "quickstart",
                "branching",
                "refinement",
                "parallel_search",
                "streaming",
                "hitl",
                "expenses"
            ]
        );
    }

    #[test]
    fn every_demo_workflow_starts_from_keyword_arguments() {
        for workflow in demo_workflows() {
            assert_eq!(
                workflow.start_event().name(),
                "StartEvent",
                "{}",
                workflow.name()
            );
        }
    }

    /// Serves every demo workflow on a durable engine, as a server would, and drives one run
    /// of each with JSON alone: the start event's keyword arguments, and a `HumanResponseEvent`
    /// as `{"type", "value"}` for the runs that ask.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_demo_workflow_runs_durably_from_json_alone() {
        let mut builder =
            Engine::builder(MemoryStore::new()).poll_interval(Duration::from_millis(20));
        for workflow in demo_workflows() {
            builder = builder.workflow(workflow);
        }
        let engine = builder.start().await.unwrap();

        let runs = [
            (
                "quickstart",
                json!({"query": "What is quantum computing?"}),
                None,
            ),
            ("branching", json!({"query": "What is Rust?"}), None),
            ("refinement", json!({"query": "What is ownership?"}), None),
            (
                "parallel_search",
                json!({"query": "async runtime for rust"}),
                None,
            ),
            (
                "streaming",
                json!({"prompt": "Why are workflows event-driven?"}),
                None,
            ),
            ("hitl", json!({"query": hitl::DEFAULT_QUERY}), Some("yes")),
            ("expenses", json!({"amount": 420}), Some("yes")),
        ];
        let mut results = BTreeMap::new();
        let mut published = BTreeMap::new();
        for (name, start, answer) in runs {
            let run_id = engine.start(name, start).await.unwrap();
            if let Some(answer) = answer {
                let mut events = engine.events(&run_id, 0);
                loop {
                    let event = events.next().await.expect("a question").unwrap().event;
                    if event.name == "InputRequiredEvent" {
                        break;
                    }
                }
                let response = EventJson {
                    name: "HumanResponseEvent".to_owned(),
                    value: json!({ "response": answer }),
                };
                engine
                    .send_json(&run_id, "answer", response, None)
                    .await
                    .unwrap();
            }
            let record = engine
                .wait(&run_id, Some(Duration::from_secs(20)))
                .await
                .unwrap();
            assert_eq!(record.status, RunStatus::Completed, "{name}: {record:?}");
            let result = record.result.unwrap()["value"]["result"].clone();
            results.insert(name, result);
            let names: Vec<String> = engine
                .events(&run_id, 0)
                .map(|event| event.unwrap().event.name)
                .collect()
                .await;
            published.insert(name, names);
        }
        engine.shutdown().await;

        assert!(results["quickstart"].as_str().unwrap().contains("qubits"));
        assert_eq!(results["branching"]["branch"], "factual");
        assert_eq!(results["refinement"]["reason"], "quality_reached");
        assert_eq!(
            results["parallel_search"]["by_source"]
                .as_object()
                .unwrap()
                .len(),
            3
        );
        assert!(
            results["streaming"]
                .as_str()
                .unwrap()
                .starts_with("You asked:")
        );
        assert_eq!(results["hitl"]["status"], "approved");
        assert_eq!(results["hitl"]["response"], "yes");
        assert_eq!(results["expenses"], Value::from("420 EUR reimbursed"));

        let streamed = &published["streaming"];
        assert!(
            streamed.iter().any(|name| name == "ProgressEvent"),
            "{streamed:?}"
        );
        assert!(
            streamed.iter().any(|name| name == "TokenEvent"),
            "{streamed:?}"
        );
        assert!(
            published["hitl"]
                .iter()
                .any(|name| name == "InputRequiredEvent")
        );
    }
}
