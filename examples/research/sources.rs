//! The three places the workflow searches, built over the project's files.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use eventflow_examples::{load_folder, load_project_docs};
use eventflow_llm::{
    Bm25Retriever, Document, Embedding, Llm, MockEmbedding, Node, NodeParser, OpenAiClient,
    Retriever, VectorStoreIndex,
};

use crate::workflow::{QUALITY_THRESHOLD, ResearchWorkflow};

/// How many passages each source contributes.
const PASSAGES_PER_SOURCE: usize = 2;
const CHUNK_SIZE: usize = 700;
const CHUNK_OVERLAP: usize = 100;
/// Node metadata: whether the node begins inside a fenced code block of its document.
pub(crate) const META_STARTS_IN_CODE: &str = "starts_in_code";

/// A place to search.
pub(crate) struct Source {
    pub(crate) name: &'static str,
    pub(crate) description: String,
    pub(crate) retriever: Arc<dyn Retriever>,
}

/// The documents' nodes, each marked with whether it begins inside a fenced code block.
fn split(parser: &NodeParser, documents: &[Document]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for document in documents {
        for mut node in parser.parse(document) {
            let start = node.offsets().map_or(0, |range| range.start);
            let fences = document.text[..start]
                .lines()
                .filter(|line| line.trim_start().starts_with("```"))
                .count();
            node.metadata
                .insert(META_STARTS_IN_CODE.into(), (fences % 2 == 1).into());
            nodes.push(node);
        }
    }
    nodes
}

/// Builds the workflow over the files under `root`. With a client (which must have a chat
/// model), its model classifies and writes; its embedding model, if it has one, embeds the
/// vector index.
pub(crate) async fn setup(
    root: &Path,
    client: Option<&OpenAiClient>,
) -> anyhow::Result<ResearchWorkflow> {
    let parser = NodeParser::new(CHUNK_SIZE, CHUNK_OVERLAP)?;
    let web_folder = "examples/data/web";
    let web = split(&parser, &load_folder(root, web_folder)?);
    let project = split(&parser, &load_project_docs(root)?);

    let (embedding, embedded_by): (Arc<dyn Embedding>, String) =
        match client.and_then(|c| c.embedding_model().map(|m| (c, m.to_owned()))) {
            Some((client, model)) => (Arc::new(client.clone()), format!("{model} embeddings")),
            None => (
                Arc::new(MockEmbedding::default()),
                "an offline hashing embedding, not a model".to_owned(),
            ),
        };
    let index = VectorStoreIndex::from_nodes(project.clone(), embedding)
        .await
        .context("embedding the project's documents failed")?;

    let sources = vec![
        Source {
            name: "web",
            description: format!("web stand-in: keyword search over the pages in {web_folder}"),
            retriever: Arc::new(Bm25Retriever::from_nodes(web, PASSAGES_PER_SOURCE)),
        },
        Source {
            name: "vector",
            description: format!("vector index over docs/ and README.md, {embedded_by}"),
            retriever: Arc::new(index.as_retriever(PASSAGES_PER_SOURCE)),
        },
        Source {
            name: "bm25",
            description: "BM25 over docs/ and README.md".to_owned(),
            retriever: Arc::new(Bm25Retriever::from_nodes(project, PASSAGES_PER_SOURCE)),
        },
    ];
    Ok(ResearchWorkflow {
        sources,
        llm: client.map(|c| Arc::new(c.clone()) as Arc<dyn Llm>),
        threshold: QUALITY_THRESHOLD,
    })
}
