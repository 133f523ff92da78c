//! RAG: the reference's "Basic RAG Workflow" — `retrieve`, then `synthesize` — over this
//! project's own documentation (`docs/` and `README.md`), with the retrieved sources cited.
//!
//! `retrieve` takes the question from the `StartEvent` and returns a `RetrieveEvent` with the
//! best passages (the reference's `index.as_retriever(similarity_top_k=5)`); `synthesize` builds
//! a prompt from the passages and the question and returns the model's answer
//! (`self.llm.acomplete(prompt)`) in a `StopEvent`, with each source cited by file, line range and
//! byte offsets. The model is optional on the workflow (`Option<Arc<dyn Llm>>`).
//!
//! With a model server (any OpenAI-compatible API; the variables are read by
//! `OpenAiClient::from_env`):
//!
//! ```text
//! # OpenAI
//! OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... \
//!   EVENTFLOW_LLM_MODEL=gpt-4o-mini EVENTFLOW_EMBEDDING_MODEL=text-embedding-3-small \
//!   cargo run --example rag -- "How does the reducer work?"
//! # Ollama (ollama pull llama3.2 && ollama pull nomic-embed-text)
//! OPENAI_BASE_URL=http://localhost:11434/v1 \
//!   EVENTFLOW_LLM_MODEL=llama3.2 EVENTFLOW_EMBEDDING_MODEL=nomic-embed-text \
//!   cargo run --example rag -- "How does the reducer work?"
//! # vLLM (serves one chat model; without an embedding model retrieval is BM25 only)
//! OPENAI_BASE_URL=http://localhost:8000/v1 EVENTFLOW_LLM_MODEL=<served model> \
//!   cargo run --example rag -- "How does the reducer work?"
//! ```
//!
//! Retrieval is then hybrid — BM25 keywords and the server's embeddings in a
//! `VectorStoreIndex`, fused by reciprocal rank — when `EVENTFLOW_EMBEDDING_MODEL` is set, and
//! BM25 alone otherwise; the answer is the chat model's.
//!
//! Offline (no `OPENAI_BASE_URL`, or `--offline`): BM25 retrieval, and instead of an answer the
//! best-matching passages, under a label that says no model wrote them:
//!
//! ```text
//! cargo run --example rag -- "How does the reducer work?"
//! cargo run --example rag -- --question "What does a snapshot contain?" --top-k 3 --offline
//! ```
//!
//! `--verbose` prints the engine's step trace.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use eventflow::prelude::*;
use eventflow_examples::{arg, client_from_env, load_project_docs, workspace_root};
use eventflow_llm::{
    Bm25Retriever, Document, HybridRetriever, Llm, LlmError, Node, NodeParser, NodeWithScore,
    OpenAiClient, Retriever, VectorStoreIndex,
};

const DEFAULT_QUESTION: &str = "How does the reducer work?";
/// How many passages are retrieved (the reference's `similarity_top_k=5`).
const DEFAULT_TOP_K: usize = 5;
/// Passages are at most this many characters...
const CHUNK_SIZE: usize = 700;
/// ...and consecutive passages of a file share up to this many.
const CHUNK_OVERLAP: usize = 100;
/// The first line of an answer written without a model.
const EXTRACTIVE_LABEL: &str =
    "No model server configured (set OPENAI_BASE_URL); the best-matching passages:";
/// Words that frame a question without saying what it is about ("How does X work?", "What
/// does X contain?"). Left in, they make BM25 favour any passage with the rare word "work" over
/// the passages about X, so the keyword retriever leaves them out of the query.
const QUESTION_WORDS: &[&str] = &[
    "contain", "contains", "describe", "explain", "happen", "happens", "mean", "means", "tell",
    "work", "worked", "working", "works",
];
/// Node metadata: the 1-based lines a passage spans in its file.
const META_START_LINE: &str = "start_line";
const META_END_LINE: &str = "end_line";

/// The question and the passages retrieved for it, best first.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct RetrieveEvent {
    query: String,
    nodes: Vec<NodeWithScore>,
}

/// A retrieved passage as cited in the answer: `[number]` in the text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Citation {
    number: usize,
    /// The file, relative to the workspace root (`docs/ARCHITECTURE.md`, `README.md`).
    source: String,
    /// Byte offsets of the passage in the file: `&file[start..end] == text`.
    start: usize,
    end: usize,
    /// The 1-based lines the passage spans.
    lines: (usize, usize),
    /// The retriever's score (BM25, or the fused rank score of hybrid retrieval).
    score: f32,
    text: String,
}

impl Citation {
    /// `[1] docs/ARCHITECTURE.md, lines 66-75 (bytes 4021..4712)`
    fn header(&self) -> String {
        format!(
            "[{}] {}, lines {}-{} (bytes {}..{})",
            self.number, self.source, self.lines.0, self.lines.1, self.start, self.end
        )
    }
}

/// Who wrote the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum AnsweredBy {
    /// A model on the configured server, under the name the server reported.
    Model { model: String },
    /// Nobody: no model is configured, so the answer is the passages themselves.
    Extractive,
    /// Nobody: nothing matched the question, so the model was not asked.
    NothingRetrieved,
}

/// The run's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RagAnswer {
    question: String,
    answer: String,
    answered_by: AnsweredBy,
    sources: Vec<Citation>,
}

/// The reference's `RAGWorkflow`: a retriever, and the model when one is configured.
struct RagWorkflow {
    retriever: Arc<dyn Retriever>,
    llm: Option<Arc<dyn Llm>>,
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

/// BM25 over the question's topic words: the question without [`QUESTION_WORDS`].
struct KeywordRetriever(Bm25Retriever);

impl KeywordRetriever {
    fn new(nodes: Vec<Node>, top_k: usize) -> Self {
        KeywordRetriever(Bm25Retriever::from_nodes(nodes, top_k))
    }

    /// `question` without its framing words (all of it if that would leave nothing).
    fn keywords(question: &str) -> String {
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

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
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
struct Setup {
    workflow: RagWorkflow,
    documents: usize,
    passages: usize,
    /// How passages are retrieved, for the user.
    retrieval: String,
}

/// Indexes `docs/` and `README.md` under `root`. With a client (which must have a chat model),
/// its model answers, and its embedding model, if it has one, joins BM25 in hybrid retrieval.
async fn setup(root: &Path, client: Option<&OpenAiClient>, top_k: usize) -> anyhow::Result<Setup> {
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

/// Runs the workflow on `question` (the reference's `await workflow.run(query=...)`).
async fn ask(workflow: RagWorkflow, question: &str, verbose: bool) -> anyhow::Result<RagAnswer> {
    let workflow = workflow
        .into_workflow()?
        .timeout(Duration::from_secs(300))
        .verbose(verbose);
    let output = workflow.run(json!({ "query": question })).await?;
    Ok(output.result()?)
}

/// Flags that take a value.
const VALUE_FLAGS: &[&str] = &["--question", "--top-k"];

/// The command-line arguments that are neither flags nor flag values.
fn free_args(args: &[String]) -> Vec<String> {
    let mut free = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if VALUE_FLAGS.contains(&arg.as_str()) {
            rest.next();
        } else if !arg.starts_with("--") {
            free.push(arg.clone());
        }
    }
    free
}

/// The question: `--question`, else the first free argument, else the default.
fn question_from(args: &[String]) -> String {
    arg(args, "question")
        .or_else(|| free_args(args).into_iter().next())
        .unwrap_or_else(|| DEFAULT_QUESTION.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let question = question_from(&args);
    let top_k = match arg(&args, "top-k") {
        Some(k) => k.parse().context("--top-k takes a number")?,
        None => DEFAULT_TOP_K,
    };
    let flag = |name: &str| args.iter().any(|a| a == name);
    let client = client_from_env(flag("--offline"))?;

    let root = workspace_root();
    let setup = setup(&root, client.as_ref(), top_k).await?;
    match &client {
        Some(client) => println!(
            "Model server: {} (chat model {})",
            client.base_url(),
            client.model().unwrap_or_default()
        ),
        None => println!("Model server: none (offline)"),
    }
    println!(
        "Indexed {} documents ({} passages) from docs/ and README.md; retrieval: {}",
        setup.documents, setup.passages, setup.retrieval
    );
    println!("\nQuestion: {question}\n");

    let answer = ask(setup.workflow, &question, flag("--verbose")).await?;
    match &answer.answered_by {
        AnsweredBy::Model { model } => {
            println!("Answer (written by {model}):\n\n{}", answer.answer)
        }
        AnsweredBy::Extractive | AnsweredBy::NothingRetrieved => println!("{}", answer.answer),
    }
    println!("\nSources:");
    if answer.sources.is_empty() {
        println!("  (none)");
    }
    for citation in &answer.sources {
        println!("  {}, score {:.3}", citation.header(), citation.score);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::extract::State;
    use axum::routing::post;
    use axum::{Json, Router};
    use eventflow_llm::MockEmbedding;
    use serde_json::Value;

    use super::*;

    /// Checks that each citation points at its text in its file.
    fn assert_cited_exactly(answer: &RagAnswer) {
        let root = workspace_root();
        for c in &answer.sources {
            let file = std::fs::read_to_string(root.join(&c.source)).unwrap();
            assert_eq!(file[c.start..c.end], c.text, "{}", c.header());
            assert_eq!(line_of(&file, c.start), c.lines.0);
        }
    }

    #[tokio::test]
    async fn offline_the_answer_is_labelled_extractive_and_cites_the_docs() {
        let setup = setup(&workspace_root(), None, DEFAULT_TOP_K).await.unwrap();
        assert!(setup.retrieval.starts_with("BM25"), "{}", setup.retrieval);
        let answer = ask(setup.workflow, "How does eventflow's reducer work?", false)
            .await
            .unwrap();

        assert_eq!(answer.answered_by, AnsweredBy::Extractive);
        assert!(
            answer.answer.starts_with(EXTRACTIVE_LABEL),
            "{}",
            answer.answer
        );
        assert!(!answer.sources.is_empty());
        assert!(answer.sources.len() <= DEFAULT_TOP_K);
        for c in &answer.sources {
            assert!(
                c.source.starts_with("docs/") || c.source == "README.md",
                "{}",
                c.source
            );
            // Every passage is in the answer, under its citation.
            assert!(answer.answer.contains(&c.header()), "{}", c.header());
        }
        assert!(
            answer.sources[0].text.to_lowercase().contains("reducer"),
            "the best passage is not about the reducer:\n{}",
            answer.answer
        );
        assert_cited_exactly(&answer);
    }

    #[tokio::test]
    async fn offline_a_question_matching_nothing_says_so() {
        let setup = setup(&workspace_root(), None, 3).await.unwrap();
        let answer = ask(setup.workflow, "zyzzyva quokka", false).await.unwrap();
        assert_eq!(answer.answered_by, AnsweredBy::Extractive);
        assert!(answer.sources.is_empty());
        assert!(answer.answer.starts_with(EXTRACTIVE_LABEL));
        assert!(
            answer.answer.contains("no passage matches"),
            "{}",
            answer.answer
        );
    }

    #[test]
    fn the_question_comes_from_the_flag_or_the_first_free_argument() {
        let args = |list: &[&str]| -> Vec<String> {
            std::iter::once("rag")
                .chain(list.iter().copied())
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(question_from(&args(&[])), DEFAULT_QUESTION);
        assert_eq!(
            question_from(&args(&["What is a step?"])),
            "What is a step?"
        );
        assert_eq!(
            question_from(&args(&["--top-k", "3", "--offline", "What is a step?"])),
            "What is a step?"
        );
        assert_eq!(
            question_from(&args(&["free", "--question", "flagged"])),
            "flagged"
        );
    }

    #[test]
    fn keyword_retrieval_leaves_out_the_words_that_frame_a_question() {
        assert_eq!(
            KeywordRetriever::keywords("How does the reducer work?"),
            "How does the reducer"
        );
        assert_eq!(
            KeywordRetriever::keywords("Explain what a snapshot contains."),
            "what a snapshot"
        );
        assert_eq!(KeywordRetriever::keywords("Work"), "Work");
    }

    /// What the fake server received.
    #[derive(Default)]
    struct Received {
        chats: Mutex<Vec<Value>>,
        embeddings: Mutex<Vec<Value>>,
    }

    const SERVER_ANSWER: &str = "The reducer is a pure function of the run state and a tick [1].";
    const SERVER_MODEL: &str = "fake-model-0001";

    /// `/v1/embeddings`: deterministic vectors (the hashing `MockEmbedding`) for each input.
    async fn embeddings(
        State(received): State<Arc<Received>>,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        received.embeddings.lock().unwrap().push(body.clone());
        let embedder = MockEmbedding::new(64);
        let data: Vec<Value> = body["input"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(index, text)| {
                json!({
                    "object": "embedding",
                    "index": index,
                    "embedding": embedder.vector(text.as_str().unwrap()),
                })
            })
            .collect();
        Json(json!({ "object": "list", "model": body["model"], "data": data }))
    }

    /// `/v1/chat/completions`: records the request, answers `SERVER_ANSWER`.
    async fn chat(State(received): State<Arc<Received>>, Json(body): Json<Value>) -> Json<Value> {
        received.chats.lock().unwrap().push(body);
        Json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": SERVER_MODEL,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": SERVER_ANSWER },
                "finish_reason": "stop",
            }],
        }))
    }

    /// A fake OpenAI-compatible server on 127.0.0.1; returns its base URL (with `/v1`).
    async fn fake_server() -> (String, Arc<Received>) {
        let received = Arc::new(Received::default());
        let app = Router::new()
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/chat/completions", post(chat))
            .with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}/v1"), received)
    }

    fn client(base_url: &str, embedding_model: Option<&str>) -> OpenAiClient {
        let mut builder = OpenAiClient::builder()
            .base_url(base_url)
            .model("test-model")
            .timeout(Duration::from_secs(10))
            .max_retries(0);
        if let Some(model) = embedding_model {
            builder = builder.embedding_model(model);
        }
        builder.build().unwrap()
    }

    /// The user message of the one chat request the server received.
    fn the_prompt(received: &Received) -> String {
        let chats = received.chats.lock().unwrap();
        assert_eq!(chats.len(), 1, "{chats:?}");
        assert_eq!(chats[0]["model"], "test-model");
        let messages = chats[0]["messages"].as_array().unwrap();
        let last = messages.last().unwrap();
        assert_eq!(last["role"], "user");
        last["content"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn with_a_server_the_prompt_has_the_passages_and_the_answer_is_the_servers() {
        let (base_url, received) = fake_server().await;
        let client = client(&base_url, Some("test-embedder"));
        let setup = setup(&workspace_root(), Some(&client), DEFAULT_TOP_K)
            .await
            .unwrap();
        assert!(setup.retrieval.starts_with("hybrid"), "{}", setup.retrieval);
        let question = "How does eventflow's reducer work?";
        let answer = ask(setup.workflow, question, false).await.unwrap();

        assert_eq!(answer.answer, SERVER_ANSWER);
        assert_eq!(
            answer.answered_by,
            AnsweredBy::Model {
                model: SERVER_MODEL.to_owned()
            }
        );
        assert_eq!(answer.sources.len(), DEFAULT_TOP_K);
        assert_cited_exactly(&answer);

        let prompt = the_prompt(&received);
        assert!(
            prompt.contains(&format!("Question: {question}")),
            "{prompt}"
        );
        for c in &answer.sources {
            assert!(
                prompt.contains(&c.text),
                "passage {} missing from {prompt}",
                c.number
            );
            assert!(prompt.contains(&c.header()), "{prompt}");
        }

        // The passages and then the question were embedded with the configured model.
        let embeddings = received.embeddings.lock().unwrap();
        assert!(embeddings.iter().all(|e| e["model"] == "test-embedder"));
        assert_eq!(embeddings.last().unwrap()["input"], json!([question]));
        let embedded: usize = embeddings
            .iter()
            .map(|e| e["input"].as_array().unwrap().len())
            .sum();
        assert_eq!(embedded, setup.passages + 1);
    }

    #[tokio::test]
    async fn with_a_server_without_an_embedding_model_retrieval_is_bm25() {
        let (base_url, received) = fake_server().await;
        let client = client(&base_url, None);
        let setup = setup(&workspace_root(), Some(&client), 3).await.unwrap();
        assert!(
            setup.retrieval.contains("EVENTFLOW_EMBEDDING_MODEL"),
            "{}",
            setup.retrieval
        );
        let answer = ask(setup.workflow, "What does a snapshot contain?", false)
            .await
            .unwrap();
        assert_eq!(answer.answer, SERVER_ANSWER);
        assert!(received.embeddings.lock().unwrap().is_empty());
        let prompt = the_prompt(&received);
        assert!(!answer.sources.is_empty());
        for c in &answer.sources {
            assert!(prompt.contains(&c.text));
        }
    }
}
