//! The `quickstart` example's workflow: the reference's basic two-step workflow — retrieve,
//! then synthesize.
//!
//! Start it with `{"query": "What is quantum computing?"}`; the result is a string. The
//! "retriever" is a keyword match over a few passages and the "synthesizer" stitches the best
//! passages together; the LLM layer (eventflow-llm) replaces both with real models.

use eventflow::prelude::*;

/// The passages retrieved for a query.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct RetrieveEvent {
    /// The query, from the start event.
    pub query: String,
    /// The best passages for it, best first (at most two).
    pub nodes: Vec<String>,
}

const CORPUS: &[&str] = &[
    "Quantum computing uses qubits, which can be in superpositions of 0 and 1.",
    "Neural networks learn weights from data by gradient descent.",
    "Quantum computers may break RSA by running Shor's algorithm.",
    "Rust guarantees memory safety without a garbage collector.",
];

struct Rag {
    corpus: Vec<String>,
}

#[workflow(name = "quickstart")]
impl Rag {
    #[step]
    async fn retrieve(&self, ev: StartEvent) -> Result<RetrieveEvent> {
        let query: String = ev.get("query")?;
        let words: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 3)
            .map(str::to_lowercase)
            .collect();
        let mut scored: Vec<(usize, &String)> = self
            .corpus
            .iter()
            .map(|passage| {
                let text = passage.to_lowercase();
                (
                    words.iter().filter(|w| text.contains(w.as_str())).count(),
                    passage,
                )
            })
            .filter(|(score, _)| *score > 0)
            .collect();
        scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
        let nodes = scored.into_iter().take(2).map(|(_, p)| p.clone()).collect();
        Ok(RetrieveEvent { query, nodes })
    }

    #[step]
    async fn synthesize(&self, ev: RetrieveEvent) -> StopEvent {
        if ev.nodes.is_empty() {
            return StopEvent::new(format!("Nothing in the corpus answers \"{}\".", ev.query));
        }
        StopEvent::new(format!(
            "Q: {}\nA (from {} passages): {}",
            ev.query,
            ev.nodes.len(),
            ev.nodes.join(" ")
        ))
    }
}

/// The workflow, named `quickstart`, over a built-in corpus of four passages. Start it with
/// `{"query": "..."}`; the result is the answer, a string.
pub fn workflow() -> Workflow {
    let corpus = CORPUS.iter().map(|s| (*s).to_owned()).collect();
    Rag { corpus }
        .into_workflow()
        .expect("the quickstart workflow is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(query: &str) -> String {
        let output = workflow().run(json!({ "query": query })).await.unwrap();
        output.result().unwrap()
    }

    #[tokio::test]
    async fn answers_from_the_matching_passages() {
        let answer = run("What is quantum computing?").await;
        assert!(answer.contains("qubits"), "{answer}");
        assert!(!answer.contains("garbage collector"), "{answer}");
    }

    #[tokio::test]
    async fn says_when_nothing_matches() {
        let answer = run("zebra migration").await;
        assert!(answer.starts_with("Nothing in the corpus"), "{answer}");
    }

    #[tokio::test]
    async fn is_named_after_the_example() {
        assert_eq!(workflow().name(), "quickstart");
    }
}
