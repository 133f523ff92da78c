//! The workflow: retrieve, then synthesize an answer that cites its passages.

use std::sync::Arc;
use std::time::Duration;

use eventflow::prelude::*;
use eventflow_llm::{Llm, NodeWithScore, Retriever};

use crate::index::{META_END_LINE, META_START_LINE};

/// The first line of an answer written without a model.
pub(crate) const EXTRACTIVE_LABEL: &str =
    "No model server configured (set OPENAI_BASE_URL); the best-matching passages:";

/// The question and the passages retrieved for it, best first.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RetrieveEvent {
    pub(crate) query: String,
    pub(crate) nodes: Vec<NodeWithScore>,
}

/// A retrieved passage as cited in the answer: `[number]` in the text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Citation {
    pub(crate) number: usize,
    /// The file, relative to the workspace root (`docs/ARCHITECTURE.md`, `README.md`).
    pub(crate) source: String,
    /// Byte offsets of the passage in the file: `&file[start..end] == text`.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The 1-based lines the passage spans.
    pub(crate) lines: (usize, usize),
    /// The retriever's score (BM25, or the fused rank score of hybrid retrieval).
    pub(crate) score: f32,
    pub(crate) text: String,
}

impl Citation {
    /// `[1] docs/ARCHITECTURE.md, lines 66-75 (bytes 4021..4712)`
    pub(crate) fn header(&self) -> String {
        format!(
            "[{}] {}, lines {}-{} (bytes {}..{})",
            self.number, self.source, self.lines.0, self.lines.1, self.start, self.end
        )
    }
}

/// Who wrote the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum AnsweredBy {
    /// A model on the configured server, under the name the server reported.
    Model { model: String },
    /// Nobody: no model is configured, so the answer is the passages themselves.
    Extractive,
    /// Nobody: nothing matched the question, so the model was not asked.
    NothingRetrieved,
}

/// The run's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RagAnswer {
    pub(crate) question: String,
    pub(crate) answer: String,
    pub(crate) answered_by: AnsweredBy,
    pub(crate) sources: Vec<Citation>,
}

/// The reference's `RAGWorkflow`: a retriever, and the model when one is configured.
pub(crate) struct RagWorkflow {
    pub(crate) retriever: Arc<dyn Retriever>,
    pub(crate) llm: Option<Arc<dyn Llm>>,
}

#[workflow]
impl RagWorkflow {
    #[step]
    async fn retrieve(&self, ev: StartEvent) -> Result<RetrieveEvent> {
        let query: String = ev.get("query")?;
        let nodes = self.retriever.retrieve(&query).await?;
        Ok(RetrieveEvent { query, nodes })
    }

    #[step]
    async fn synthesize(&self, ev: RetrieveEvent) -> Result<StopEvent> {
        let sources = citations(&ev.nodes)?;
        let (answer, answered_by) = match &self.llm {
            None => (extractive_answer(&sources), AnsweredBy::Extractive),
            Some(_) if sources.is_empty() => (
                "Nothing in the indexed documents matches the question, so the model was not \
                 asked."
                    .to_owned(),
                AnsweredBy::NothingRetrieved,
            ),
            Some(llm) => {
                let completion = llm.complete(&prompt(&ev.query, &sources)).await?;
                (
                    completion.text,
                    AnsweredBy::Model {
                        model: completion.model,
                    },
                )
            }
        };
        Ok(StopEvent::new(RagAnswer {
            question: ev.query,
            answer,
            answered_by,
            sources,
        }))
    }
}

/// The retrieved nodes as numbered citations.
fn citations(nodes: &[NodeWithScore]) -> Result<Vec<Citation>> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, scored)| {
            let node = &scored.node;
            let source = node.source().ok_or("a retrieved node has no source")?;
            let offsets = node.offsets().ok_or("a retrieved node has no offsets")?;
            let line = |key: &str| node.metadata.get(key).and_then(|v| v.as_u64());
            let lines = match (line(META_START_LINE), line(META_END_LINE)) {
                (Some(start), Some(end)) => (start as usize, end as usize),
                _ => return Err("a retrieved node has no line numbers".into()),
            };
            Ok(Citation {
                number: i + 1,
                source: source.to_owned(),
                start: offsets.start,
                end: offsets.end,
                lines,
                score: scored.score,
                text: node.text.clone(),
            })
        })
        .collect()
}

/// The prompt of the reference's `synthesize`: the passages as context, then the question.
fn prompt(question: &str, sources: &[Citation]) -> String {
    let context: Vec<String> = sources
        .iter()
        .map(|c| format!("{}\n{}", c.header(), c.text))
        .collect();
    format!(
        "Answer the question using only the context below, which is taken from the \
         documentation of eventflow, a workflow engine written in Rust. Cite the passages you \
         use by their numbers in square brackets, like [1]. If the context does not contain \
         the answer, say so.\n\n\
         Context:\n\n{}\n\n\
         Question: {question}\n\
         Answer:",
        context.join("\n\n")
    )
}

/// The answer when there is no model: the passages, labelled as such.
fn extractive_answer(sources: &[Citation]) -> String {
    let mut answer = EXTRACTIVE_LABEL.to_owned();
    if sources.is_empty() {
        answer.push_str("\n\n(no passage matches the question)");
    }
    for citation in sources {
        answer.push_str("\n\n");
        answer.push_str(&citation.header());
        for line in citation.text.lines() {
            answer.push_str("\n    ");
            answer.push_str(line);
        }
    }
    answer
}

/// Runs the workflow on `question` (the reference's `await workflow.run(query=...)`).
pub(crate) async fn ask(
    workflow: RagWorkflow,
    question: &str,
    verbose: bool,
) -> anyhow::Result<RagAnswer> {
    let workflow = workflow
        .into_workflow()?
        .timeout(Duration::from_secs(300))
        .verbose(verbose);
    let output = workflow.run(json!({ "query": question })).await?;
    Ok(output.result()?)
}
