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

use eventflow::RunOutput;
use eventflow::prelude::*;
use eventflow_examples::arg;

/// The two kinds of query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum QueryType {
    Factual,
    Creative,
}

/// A query with its classification.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct QueryTypeEvent {
    query: String,
    query_type: QueryType,
}

/// A query to answer from facts.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct FactualEvent {
    query: String,
}

/// A query to answer with generated text.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct CreativeEvent {
    query: String,
}

/// What `route` returns: one event or the other. This is the reference's
/// `-> FactualEvent | CreativeEvent`.
#[derive(EventUnion)]
enum Routed {
    Factual(FactualEvent),
    Creative(CreativeEvent),
}

/// The run's result: which branch answered, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Answer {
    branch: QueryType,
    response: String,
}

/// Words that mark a query as factual, as in the reference (a plain substring match).
const FACTUAL_MARKERS: &[&str] = &["explain", "what is", "who", "when"];

/// A tiny fact table standing in for a RAG lookup.
const FACTS: &[(&str, &str)] = &[
    (
        "rust",
        "Rust is a systems language with memory safety without a garbage collector.",
    ),
    ("tokio", "Tokio is an asynchronous runtime for Rust."),
    (
        "turing",
        "Alan Turing formalised computation with the Turing machine in 1936.",
    ),
];

struct BranchingWorkflow;

#[workflow]
impl BranchingWorkflow {
    #[step]
    async fn classify(&self, ev: StartEvent) -> Result<QueryTypeEvent> {
        let query: String = ev.get("query")?;
        let lower = query.to_lowercase();
        let query_type = if FACTUAL_MARKERS.iter().any(|m| lower.contains(m)) {
            QueryType::Factual
        } else {
            QueryType::Creative
        };
        Ok(QueryTypeEvent { query, query_type })
    }

    #[step]
    async fn route(&self, ev: QueryTypeEvent) -> Routed {
        match ev.query_type {
            QueryType::Factual => FactualEvent { query: ev.query }.into(),
            QueryType::Creative => CreativeEvent { query: ev.query }.into(),
        }
    }

    #[step]
    async fn handle_factual(&self, ev: FactualEvent) -> StopEvent {
        let lower = ev.query.to_lowercase();
        let response = FACTS
            .iter()
            .find(|(topic, _)| lower.contains(topic))
            .map_or_else(
                || format!("I have no facts about \"{}\".", ev.query),
                |(_, fact)| (*fact).to_owned(),
            );
        StopEvent::new(Answer {
            branch: QueryType::Factual,
            response,
        })
    }

    #[step]
    async fn handle_creative(&self, ev: CreativeEvent) -> StopEvent {
        StopEvent::new(Answer {
            branch: QueryType::Creative,
            response: format!("Once upon a time, someone asked for \"{}\"...", ev.query),
        })
    }
}

/// Runs the workflow once; the output carries the result and the path the run took.
async fn run(query: &str, verbose: bool) -> anyhow::Result<RunOutput> {
    let workflow = BranchingWorkflow.into_workflow()?.verbose(verbose);
    Ok(workflow.run(json!({ "query": query })).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let query = arg(&args, "query").unwrap_or_else(|| "What is Rust?".to_owned());
    let output = run(&query, true).await?;
    let answer: Answer = output.result()?;
    println!();
    println!("query:  {query}");
    println!("branch: {:?}", answer.branch);
    println!("answer: {}", answer.response);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn factual_queries_take_the_factual_branch() {
        for query in [
            "What is Rust?",
            "Explain tokio",
            "Who was Turing?",
            "When was C invented?",
        ] {
            let output = run(query, false).await.unwrap();
            let answer: Answer = output.result().unwrap();
            assert_eq!(answer.branch, QueryType::Factual, "{query}");
            assert_eq!(output.path().step_runs("handle_factual"), 1, "{query}");
            assert_eq!(output.path().step_runs("handle_creative"), 0, "{query}");
        }
    }

    #[tokio::test]
    async fn other_queries_take_the_creative_branch() {
        let output = run("A poem about the sea", false).await.unwrap();
        let answer: Answer = output.result().unwrap();
        assert_eq!(answer.branch, QueryType::Creative);
        assert!(answer.response.contains("A poem about the sea"));
        assert_eq!(output.path().step_runs("handle_creative"), 1);
        assert_eq!(output.path().step_runs("handle_factual"), 0);
    }

    #[tokio::test]
    async fn the_factual_branch_looks_facts_up() {
        let output = run("Explain Rust", false).await.unwrap();
        let answer: Answer = output.result().unwrap();
        assert!(answer.response.contains("memory safety"), "{answer:?}");
    }

    #[tokio::test]
    async fn every_step_on_the_path_runs_once() {
        let output = run("What is Rust?", false).await.unwrap();
        for step in ["classify", "route", "handle_factual"] {
            assert_eq!(output.path().step_runs(step), 1, "{step}");
        }
    }
}
