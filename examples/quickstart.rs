//! Quickstart: the reference's basic two-step workflow — retrieve, then synthesize.
//!
//! ```text
//! cargo run --example quickstart -- --query "What is quantum computing?"
//! ```
//!
//! The "retriever" is a keyword match over a few passages and the "synthesizer" stitches the
//! best passages together; the LLM layer (eventflow-llm) replaces both with real models.

use eventflow::prelude::*;
use eventflow_examples::arg;

/// The passages retrieved for a query.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct RetrieveEvent {
    query: String,
    nodes: Vec<String>,
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

#[workflow]
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

async fn run(query: &str, verbose: bool) -> anyhow::Result<String> {
    let corpus = CORPUS.iter().map(|s| (*s).to_owned()).collect();
    let workflow = Rag { corpus }.into_workflow()?.verbose(verbose);
    let output = workflow.run(json!({ "query": query })).await?;
    Ok(output.result()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let query = arg(&args, "query").unwrap_or_else(|| "What is quantum computing?".to_owned());
    println!("{}", run(&query, true).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn answers_from_the_matching_passages() {
        let answer = super::run("What is quantum computing?", false)
            .await
            .unwrap();
        assert!(answer.contains("qubits"), "{answer}");
        assert!(!answer.contains("garbage collector"), "{answer}");
    }

    #[tokio::test]
    async fn says_when_nothing_matches() {
        let answer = super::run("zebra migration", false).await.unwrap();
        assert!(answer.starts_with("Nothing in the corpus"), "{answer}");
    }
}
