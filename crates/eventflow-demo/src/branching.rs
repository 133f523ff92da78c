//! The `branching` example's workflow: the reference's conditional branching ("Branches and
//! Loops").
//!
//! Start it with `{"query": "What is Rust?"}`; the result is an [`Answer`]. `classify` labels
//! the query as factual or creative, `route` turns the label into one of two events, and
//! exactly one of `handle_factual` and `handle_creative` runs. The branch is visible in
//! `route`'s return type, an enum of events derived with `#[derive(EventUnion)]`: the
//! workflow's graph has an edge to both handlers, and a run takes only one of them.

use eventflow::prelude::*;

/// The two kinds of query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryType {
    /// A question to answer from facts: it contains "explain", "what is", "who" or "when".
    Factual,
    /// Anything else: a request for generated text.
    Creative,
}

/// A query with its classification.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct QueryTypeEvent {
    /// The query, from the start event.
    pub query: String,
    /// Its kind.
    pub query_type: QueryType,
}

/// A query to answer from facts.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct FactualEvent {
    /// The query.
    pub query: String,
}

/// A query to answer with generated text.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct CreativeEvent {
    /// The query.
    pub query: String,
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
pub struct Answer {
    /// The branch that answered.
    pub branch: QueryType,
    /// Its answer.
    pub response: String,
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

#[workflow(name = "branching")]
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

/// The workflow, named `branching`. Start it with `{"query": "..."}`; the result is an
/// [`Answer`].
pub fn workflow() -> Workflow {
    BranchingWorkflow
        .into_workflow()
        .expect("the branching workflow is valid")
}

#[cfg(test)]
mod tests {
    use eventflow::RunOutput;

    use super::*;

    /// Runs the workflow once; the output carries the result and the path the run took.
    async fn run(query: &str) -> RunOutput {
        workflow().run(json!({ "query": query })).await.unwrap()
    }

    #[tokio::test]
    async fn factual_queries_take_the_factual_branch() {
        for query in [
            "What is Rust?",
            "Explain tokio",
            "Who was Turing?",
            "When was C invented?",
        ] {
            let output = run(query).await;
            let answer: Answer = output.result().unwrap();
            assert_eq!(answer.branch, QueryType::Factual, "{query}");
            assert_eq!(output.path().step_runs("handle_factual"), 1, "{query}");
            assert_eq!(output.path().step_runs("handle_creative"), 0, "{query}");
        }
    }

    #[tokio::test]
    async fn other_queries_take_the_creative_branch() {
        let output = run("A poem about the sea").await;
        let answer: Answer = output.result().unwrap();
        assert_eq!(answer.branch, QueryType::Creative);
        assert!(answer.response.contains("A poem about the sea"));
        assert_eq!(output.path().step_runs("handle_creative"), 1);
        assert_eq!(output.path().step_runs("handle_factual"), 0);
    }

    #[tokio::test]
    async fn the_factual_branch_looks_facts_up() {
        let output = run("Explain Rust").await;
        let answer: Answer = output.result().unwrap();
        assert!(answer.response.contains("memory safety"), "{answer:?}");
    }

    #[tokio::test]
    async fn every_step_on_the_path_runs_once() {
        let output = run("What is Rust?").await;
        for step in ["classify", "route", "handle_factual"] {
            assert_eq!(output.path().step_runs(step), 1, "{step}");
        }
    }

    #[tokio::test]
    async fn the_result_is_plain_json() {
        let output = run("What is Rust?").await;
        let answer: serde_json::Value = output.result().unwrap();
        assert_eq!(answer["branch"], "factual");
        assert!(answer["response"].as_str().unwrap().contains("Rust"));
    }
}
