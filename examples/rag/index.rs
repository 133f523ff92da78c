//! The index: this project's documents split into passages that know their lines, and the
//! retriever over them (BM25 keywords, or hybrid with a model server's embeddings).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use eventflow_examples::load_project_docs;
use eventflow_llm::{
    Bm25Retriever, Document, HybridRetriever, Llm, LlmError, Node, NodeParser, NodeWithScore,
    OpenAiClient, Retriever, VectorStoreIndex,
};

use crate::workflow::RagWorkflow;

/// Passages are at most this many characters...
const CHUNK_SIZE: usize = 700;
/// ...and consecutive passages of a file share up to this many.
const CHUNK_OVERLAP: usize = 100;
/// Words that frame a question without saying what it is about ("How does X work?", "What
/// does X contain?"). Left in, they make BM25 favour any passage with the rare word "work" over
/// the passages about X, so the keyword retriever leaves them out of the query.
const QUESTION_WORDS: &[&str] = &[
    "contain", "contains", "describe", "explain", "happen", "happens", "mean", "means", "tell",
    "work", "worked", "working", "works",
];
/// Node metadata: the 1-based lines a passage spans in its file.
pub(crate) const META_START_LINE: &str = "start_line";
pub(crate) const META_END_LINE: &str = "end_line";

/// BM25 over the question's topic words: the question without [`QUESTION_WORDS`].
pub(crate) struct KeywordRetriever(Bm25Retriever);

impl KeywordRetriever {
    fn new(nodes: Vec<Node>, top_k: usize) -> Self {
        KeywordRetriever(Bm25Retriever::from_nodes(nodes, top_k))
    }

    /// `question` without its framing words (all of it if that would leave nothing).
    pub(crate) fn keywords(question: &str) -> String {
        let kept: Vec<&str> = question
            .split_whitespace()
            .filter(|word| {
                let word = word.trim_matches(|c: char| !c.is_alphanumeric());
                !QUESTION_WORDS.contains(&word.to_lowercase().as_str())
            })
            .collect();
        if kept.is_empty() {
            question.to_owned()
        } else {
            kept.join(" ")
        }
    }
}

impl Retriever for KeywordRetriever {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
    ) -> futures::future::BoxFuture<'a, std::result::Result<Vec<NodeWithScore>, LlmError>> {
        Box::pin(async move { Ok(self.0.search(&Self::keywords(query), self.0.top_k())) })
    }
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// The documents split into passages, each knowing its file, offsets and lines.
fn split(documents: &[Document]) -> anyhow::Result<Vec<Node>> {
    let parser = NodeParser::new(CHUNK_SIZE, CHUNK_OVERLAP)?;
    let texts: HashMap<&str, &str> = documents
        .iter()
        .map(|d| (d.id.as_str(), d.text.as_str()))
        .collect();
    let mut nodes = parser.parse_documents(documents);
    for node in &mut nodes {
        let text = node
            .document_id()
            .and_then(|id| texts.get(id))
            .context("a node without its document")?;
        let range = node.offsets().context("a node without offsets")?;
        let (start, end) = (line_of(text, range.start), line_of(text, range.end));
        node.metadata.insert(META_START_LINE.into(), start.into());
        node.metadata.insert(META_END_LINE.into(), end.into());
    }
    Ok(nodes)
}

/// A workflow ready to answer, and what it was built from.
pub(crate) struct Setup {
    pub(crate) workflow: RagWorkflow,
    pub(crate) documents: usize,
    pub(crate) passages: usize,
    /// How passages are retrieved, for the user.
    pub(crate) retrieval: String,
}

/// Indexes `docs/` and `README.md` under `root`. With a client (which must have a chat model),
/// its model answers, and its embedding model, if it has one, joins BM25 in hybrid retrieval.
pub(crate) async fn setup(
    root: &Path,
    client: Option<&OpenAiClient>,
    top_k: usize,
) -> anyhow::Result<Setup> {
    let documents = load_project_docs(root)?;
    let nodes = split(&documents)?;
    let passages = nodes.len();
    // Each retriever of a hybrid proposes more candidates than the fused list keeps.
    let candidates = top_k * 2;
    let (retriever, retrieval): (Arc<dyn Retriever>, String) = match client
        .and_then(|c| c.embedding_model().map(|m| (c, m.to_owned())))
    {
        Some((client, embedding_model)) => {
            let index = VectorStoreIndex::from_nodes(nodes.clone(), Arc::new(client.clone()))
                .await
                .with_context(|| format!("embedding the passages with {embedding_model} failed"))?;
            let hybrid = HybridRetriever::new(top_k)
                .with(KeywordRetriever::new(nodes, candidates))
                .with(index.as_retriever(candidates));
            (
                Arc::new(hybrid),
                format!(
                    "hybrid (BM25 keywords + {embedding_model} embeddings, fused by \
                         reciprocal rank)"
                ),
            )
        }
        None => {
            let why = if client.is_some() {
                format!(
                    " (set {} for hybrid retrieval)",
                    OpenAiClient::EMBEDDING_MODEL_VAR
                )
            } else {
                String::new()
            };
            (
                Arc::new(KeywordRetriever::new(nodes, top_k)),
                format!("BM25 keywords{why}"),
            )
        }
    };
    let llm = client.map(|client| Arc::new(client.clone()) as Arc<dyn Llm>);
    Ok(Setup {
        workflow: RagWorkflow { retriever, llm },
        documents: documents.len(),
        passages,
        retrieval,
    })
}
