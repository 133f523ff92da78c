//! The example's tests: its arguments, and whole runs offline and against a fake model server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use eventflow_examples::workspace_root;
use eventflow_llm::{MockEmbedding, OpenAiClient};
use serde_json::{Value, json};

use crate::index::{KeywordRetriever, line_of, setup};
use crate::workflow::{AnsweredBy, EXTRACTIVE_LABEL, RagAnswer, ask};
use crate::{DEFAULT_QUESTION, DEFAULT_TOP_K, question_from};

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
async fn embeddings(State(received): State<Arc<Received>>, Json(body): Json<Value>) -> Json<Value> {
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
