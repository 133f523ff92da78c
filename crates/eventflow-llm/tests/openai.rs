//! The OpenAI-compatible client against a fake server started by each test on 127.0.0.1: chat
//! completions, streaming, embeddings, retries, timeouts, errors and configuration.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use eventflow_llm::{
    ChatMessage, Embedding, Llm, LlmError, OpenAiClient, OpenAiClientBuilder, RequestOptions,
};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

/// One scripted answer of the fake server.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: ReplyBody,
    delay: Duration,
}

enum ReplyBody {
    Whole(String),
    /// Sent as separate body chunks, a millisecond apart.
    Chunks(Vec<Vec<u8>>),
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: ReplyBody::Whole(body.to_string()),
            delay: Duration::ZERO,
        }
    }

    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: ReplyBody::Whole(body.to_owned()),
            delay: Duration::ZERO,
        }
    }

    /// Server-sent events with the given `data:` payloads, cut into chunks of `chunk_size` bytes
    /// regardless of line and character boundaries.
    fn sse(data: &[String], chunk_size: usize) -> Reply {
        let text: String = data
            .iter()
            .map(|data| format!("data: {data}\n\n"))
            .collect();
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: ReplyBody::Chunks(
                text.as_bytes()
                    .chunks(chunk_size)
                    .map(<[u8]>::to_vec)
                    .collect(),
            ),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A request the fake server received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: Value,
    at: Instant,
}

#[derive(Default)]
struct Fake {
    received: Mutex<Vec<Received>>,
    replies: Mutex<VecDeque<Reply>>,
}

impl Fake {
    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn handle(
    State(fake): State<Arc<Fake>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get("authorization")
        .map(|value| value.to_str().unwrap_or("<not text>").to_owned());
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        authorization,
        body,
        at: Instant::now(),
    });
    let reply = fake.replies.lock().unwrap().pop_front();
    let reply = reply.unwrap_or_else(|| Reply::text(599, "the test scripted no more replies"));
    tokio::time::sleep(reply.delay).await;
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    let body = match reply.body {
        ReplyBody::Whole(text) => Body::from(text),
        ReplyBody::Chunks(chunks) => {
            Body::from_stream(futures::stream::iter(chunks).then(|chunk| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<_, Infallible>(chunk)
            }))
        }
    };
    response.body(body).unwrap()
}

/// Starts a fake OpenAI-compatible server answering with `replies` in order; returns its base
/// URL (with `/v1`) and its state.
async fn start(replies: Vec<Reply>) -> Result<(String, Arc<Fake>)> {
    let fake = Arc::new(Fake {
        received: Mutex::default(),
        replies: Mutex::new(replies.into()),
    });
    let app = Router::new().fallback(handle).with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{address}/v1"), fake))
}

fn builder(base_url: &str) -> OpenAiClientBuilder {
    OpenAiClient::builder()
        .base_url(base_url)
        .model("test-model")
        .embedding_model("test-embedder")
        .timeout(Duration::from_secs(5))
        .initial_backoff(Duration::from_millis(10))
}

fn completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model-0613",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    })
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    })
    .to_string()
}

#[tokio::test]
async fn chat_sends_model_messages_options_and_key() -> Result<()> {
    let (base_url, fake) = start(vec![
        Reply::json(200, completion("Paris.")),
        Reply::json(200, completion("Lyon.")),
    ])
    .await?;
    let client = builder(&base_url).api_key("sk-test").build()?;

    let messages = [
        ChatMessage::system("Answer briefly."),
        ChatMessage::user("Capital of France?"),
    ];
    let options = RequestOptions {
        temperature: Some(0.2),
        max_tokens: Some(50),
        ..RequestOptions::default()
    };
    let answer = client.chat(&messages, &options).await?;
    assert_eq!(answer.text, "Paris.");
    assert_eq!(
        answer.model, "test-model-0613",
        "the model the server reports"
    );

    let options = RequestOptions {
        model: Some("other-model".into()),
        ..RequestOptions::default()
    };
    assert_eq!(client.chat(&messages, &options).await?.text, "Lyon.");

    let received = fake.received();
    assert_eq!(received.len(), 2);
    let first = &received[0];
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(first.body["model"], "test-model");
    assert_eq!(
        first.body["messages"],
        json!([
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Capital of France?"}
        ])
    );
    let temperature = first.body["temperature"].as_f64().expect("a temperature");
    assert!((temperature - 0.2).abs() < 1e-6, "{temperature}");
    assert_eq!(first.body["max_tokens"], 50);
    assert!(first.body.get("stream").is_none(), "{}", first.body);
    assert_eq!(received[1].body["model"], "other-model");
    assert!(
        received[1].body.get("temperature").is_none()
            && received[1].body.get("max_tokens").is_none()
    );
    Ok(())
}

#[tokio::test]
async fn no_key_means_no_authorization_header() -> Result<()> {
    let (base_url, fake) = start(vec![Reply::json(200, completion("Hi."))]).await?;
    let client = builder(&format!("{base_url}/"))
        .temperature(0.5)
        .max_tokens(7)
        .build()?;
    assert!(!client.has_api_key());
    assert_eq!(client.complete("Say hi").await?.text, "Hi.");
    let received = fake.received();
    assert_eq!(
        received[0].path, "/v1/chat/completions",
        "a trailing slash on the base URL is dropped"
    );
    assert_eq!(received[0].authorization, None);
    assert_eq!(
        received[0].body["messages"],
        json!([{"role": "user", "content": "Say hi"}])
    );
    assert_eq!(
        received[0].body["temperature"], 0.5,
        "the client's default temperature"
    );
    assert_eq!(
        received[0].body["max_tokens"], 7,
        "the client's default limit"
    );
    Ok(())
}

#[tokio::test]
async fn streaming_yields_the_deltas_in_order() -> Result<()> {
    let events = vec![
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo, "}), None),
        chunk(json!({"content": null}), None),
        chunk(json!({"content": "wörld"}), None),
        chunk(json!({"content": " — ünïcode"}), None),
        chunk(json!({}), Some("stop")),
        "[DONE]".to_owned(),
    ];
    // Seven-byte chunks cut lines, JSON and multi-byte characters apart.
    let (base_url, fake) = start(vec![Reply::sse(&events, 7)]).await?;
    let client = builder(&base_url).api_key("sk-test").build()?;
    let messages = [ChatMessage::user("Greet the world")];
    let stream = client
        .stream_chat(&messages, &RequestOptions::default())
        .await?;
    let deltas: Vec<String> = stream.try_collect().await?;
    assert_eq!(deltas, vec!["Hel", "lo, ", "wörld", " — ünïcode"]);

    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body["stream"], true);
    assert_eq!(received[0].body["model"], "test-model");
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer sk-test"));
    Ok(())
}

#[tokio::test]
async fn streaming_is_retried_before_it_starts_and_reports_a_cut_stream() -> Result<()> {
    let complete = vec![chunk(json!({"content": "ok"}), None), "[DONE]".to_owned()];
    let cut = vec![chunk(json!({"content": "partial"}), None)];
    let (base_url, fake) = start(vec![
        Reply::json(503, json!({"error": {"message": "warming up"}})),
        Reply::sse(&complete, 64),
        Reply::sse(&cut, 64),
    ])
    .await?;
    let client = builder(&base_url).build()?;
    let deltas: Vec<String> = client.stream_complete("go").await?.try_collect().await?;
    assert_eq!(deltas, vec!["ok"]);
    assert_eq!(fake.received().len(), 2);

    let mut stream = client.stream_complete("go").await?;
    assert_eq!(stream.next().await.transpose()?.as_deref(), Some("partial"));
    let error = stream
        .next()
        .await
        .expect("an error item")
        .expect_err("a cut stream is an error");
    assert!(matches!(error, LlmError::InvalidResponse { .. }), "{error}");
    assert!(stream.next().await.is_none());
    Ok(())
}

#[tokio::test]
async fn embeddings_come_back_in_input_order() -> Result<()> {
    let (base_url, fake) = start(vec![
        Reply::json(
            200,
            json!({
                "object": "list",
                "model": "test-embedder",
                "data": [
                    {"object": "embedding", "index": 2, "embedding": [2.0, 2.5]},
                    {"object": "embedding", "index": 0, "embedding": [0.0, 0.5]},
                    {"object": "embedding", "index": 1, "embedding": [1.0, 1.5]}
                ]
            }),
        ),
        // A second client with batches of two: the batches' indices are their own.
        Reply::json(
            200,
            json!({"data": [{"index": 1, "embedding": [1.0]}, {"index": 0, "embedding": [0.0]}]}),
        ),
        Reply::json(200, json!({"data": [{"index": 0, "embedding": [2.0]}]})),
    ])
    .await?;
    let client = builder(&base_url).api_key("sk-test").build()?;
    let texts = vec!["zero".to_owned(), "one".to_owned(), "two".to_owned()];
    let vectors = client.embed(&texts).await?;
    assert_eq!(
        vectors,
        vec![vec![0.0, 0.5], vec![1.0, 1.5], vec![2.0, 2.5]]
    );

    let batched = builder(&base_url).embedding_batch_size(2).build()?;
    assert_eq!(
        batched.embed(&texts).await?,
        vec![vec![0.0], vec![1.0], vec![2.0]]
    );
    assert!(
        batched.embed(&[]).await?.is_empty(),
        "no request for no texts"
    );

    let received = fake.received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[0].path, "/v1/embeddings");
    assert_eq!(
        received[0].body,
        json!({"model": "test-embedder", "input": ["zero", "one", "two"]})
    );
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(received[1].body["input"], json!(["zero", "one"]));
    assert_eq!(received[2].body["input"], json!(["two"]));
    Ok(())
}

#[tokio::test]
async fn a_429_waits_for_retry_after_then_succeeds() -> Result<()> {
    let (base_url, fake) = start(vec![
        Reply::json(
            429,
            json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
        )
        .header("retry-after", "1"),
        Reply::json(200, completion("Done.")),
    ])
    .await?;
    // A long backoff shows the wait is the server's, not the client's own.
    let client = builder(&base_url)
        .initial_backoff(Duration::from_secs(30))
        .build()?;
    let started = Instant::now();
    assert_eq!(client.complete("hello").await?.text, "Done.");
    let elapsed = started.elapsed();

    let received = fake.received();
    assert_eq!(received.len(), 2, "one retry");
    let waited = received[1].at - received[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn retry_after_is_capped() -> Result<()> {
    let (base_url, fake) = start(vec![
        Reply::json(429, json!({"error": {"message": "slow down"}})).header("retry-after", "3600"),
        Reply::json(200, completion("Done.")),
    ])
    .await?;
    let client = builder(&base_url)
        .max_retry_after(Duration::from_millis(50))
        .build()?;
    let started = Instant::now();
    assert_eq!(client.complete("hello").await?.text, "Done.");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.received().len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_500_exhausts_the_retries_and_reports_the_server_message() -> Result<()> {
    let overloaded = || {
        Reply::json(
            500,
            json!({"error": {"message": "model overloaded", "type": "server_error"}}),
        )
    };
    let (base_url, fake) = start((0..4).map(|_| overloaded()).collect()).await?;
    let client = builder(&base_url).build()?; // the default: 3 retries
    let error = client
        .complete("hello")
        .await
        .expect_err("every attempt fails");
    match &error {
        LlmError::Status {
            status,
            message,
            url,
        } => {
            assert_eq!(*status, 500);
            assert!(message.contains("model overloaded"), "{message}");
            assert!(url.ends_with("/v1/chat/completions"), "{url}");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert!(error.to_string().contains("model overloaded"), "{error}");
    assert_eq!(fake.received().len(), 4, "one request and three retries");
    Ok(())
}

#[tokio::test]
async fn max_retries_is_configurable() -> Result<()> {
    let (base_url, fake) = start(
        (0..3)
            .map(|_| Reply::text(502, "<html>Bad Gateway</html>"))
            .collect(),
    )
    .await?;
    let client = builder(&base_url).max_retries(1).build()?;
    let error = client
        .complete("hello")
        .await
        .expect_err("every attempt fails");
    assert!(
        matches!(&error, LlmError::Status { status: 502, message, .. } if message == "<html>Bad Gateway</html>"),
        "a body that is not JSON is the message: {error:?}"
    );
    assert_eq!(fake.received().len(), 2);

    let (base_url, fake) = start(vec![Reply::json(500, json!({}))]).await?;
    let client = builder(&base_url).max_retries(0).build()?;
    assert!(client.complete("hello").await.is_err());
    assert_eq!(fake.received().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_400_is_not_retried() -> Result<()> {
    let (base_url, fake) = start(vec![
        Reply::json(400, json!({"error": {"message": "Unknown parameter: 'foo'", "type": "invalid_request_error"}})),
        Reply::json(200, completion("never sent")),
    ])
    .await?;
    let client = builder(&base_url).build()?;
    let error = client.complete("hello").await.expect_err("a 400 fails");
    assert!(
        matches!(&error, LlmError::Status { status: 400, message, .. } if message == "Unknown parameter: 'foo'"),
        "{error:?}"
    );
    assert_eq!(fake.received().len(), 1);

    // Ollama's style of error body.
    let (base_url, fake) = start(vec![Reply::json(
        404,
        json!({"error": "model 'llama9' not found"}),
    )])
    .await?;
    let error = builder(&base_url)
        .build()?
        .complete("hello")
        .await
        .expect_err("a 404 fails");
    assert!(
        error.to_string().contains("model 'llama9' not found"),
        "{error}"
    );
    assert_eq!(fake.received().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_slow_server_times_out() -> Result<()> {
    let (base_url, fake) = start(vec![
        Reply::json(200, completion("late")).delay(Duration::from_secs(10)),
    ])
    .await?;
    let client = builder(&base_url)
        .timeout(Duration::from_millis(200))
        .build()?;
    let started = Instant::now();
    let error = client.complete("hello").await.expect_err("too slow");
    assert!(
        matches!(error, LlmError::Timeout { timeout, .. } if timeout == Duration::from_millis(200)),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(fake.received().len(), 1, "a timeout is not retried");
    Ok(())
}

#[tokio::test]
async fn a_stalled_stream_times_out() -> Result<()> {
    // A server whose body sends one event, then nothing: no more chunks and no end.
    let app = Router::new().fallback(|| async {
        let first = futures::stream::once(async {
            Ok::<_, Infallible>(format!(
                "data: {}\n\n",
                chunk(json!({"content": "first"}), None)
            ))
        });
        let never = futures::stream::pending::<Result<String, Infallible>>();
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(first.chain(never)))
            .unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = builder(&format!("http://{address}/v1"))
        .timeout(Duration::from_millis(200))
        .build()?;
    let mut stream = client.stream_complete("hello").await?;
    assert_eq!(stream.next().await.transpose()?.as_deref(), Some("first"));
    let error = stream
        .next()
        .await
        .expect("an error item")
        .expect_err("a stalled stream fails");
    assert!(matches!(error, LlmError::Timeout { .. }), "{error:?}");
    assert!(stream.next().await.is_none());
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_is_retried_then_reported() -> Result<()> {
    // A port nothing listens on: bind one, then close it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    drop(listener);
    let client = builder(&format!("http://{address}/v1"))
        .max_retries(2)
        .build()?;
    let error = client.complete("hello").await.expect_err("nothing listens");
    assert!(matches!(error, LlmError::Transport { .. }), "{error:?}");
    Ok(())
}

#[tokio::test]
async fn a_missing_model_is_a_config_error_at_the_call() -> Result<()> {
    let (base_url, fake) = start(vec![]).await?;
    let client = OpenAiClient::builder().base_url(&base_url).build()?;
    let error = client.complete("hello").await.expect_err("no chat model");
    assert!(
        matches!(&error, LlmError::Config(message) if message.contains("EVENTFLOW_LLM_MODEL")),
        "{error:?}"
    );
    let error = client
        .stream_complete("hello")
        .await
        .err()
        .expect("no chat model");
    assert!(matches!(error, LlmError::Config(_)), "{error:?}");
    let error = client
        .embed_one("hello")
        .await
        .expect_err("no embedding model");
    assert!(
        matches!(&error, LlmError::Config(message) if message.contains("EVENTFLOW_EMBEDDING_MODEL")),
        "{error:?}"
    );
    assert!(
        fake.received().is_empty(),
        "nothing is sent without a model"
    );
    Ok(())
}

#[tokio::test]
async fn configuration_comes_from_the_variables() -> Result<()> {
    let (base_url, fake) = start(vec![
        Reply::json(200, completion("From env.")),
        Reply::json(200, json!({"data": [{"index": 0, "embedding": [1.0]}]})),
    ])
    .await?;
    let vars = HashMap::from([
        ("OPENAI_BASE_URL", base_url.clone()),
        ("OPENAI_API_KEY", "sk-env".to_owned()),
        ("EVENTFLOW_LLM_MODEL", "env-model".to_owned()),
        ("EVENTFLOW_EMBEDDING_MODEL", "env-embedder".to_owned()),
    ]);
    let client = OpenAiClient::from_vars(|name| vars.get(name).cloned())?;
    assert_eq!(client.base_url(), base_url);
    assert_eq!(client.model(), Some("env-model"));
    assert_eq!(client.embedding_model(), Some("env-embedder"));
    assert_eq!(client.complete("hello").await?.text, "From env.");
    assert_eq!(client.embed_one("hello").await?, vec![1.0]);
    let received = fake.received();
    assert_eq!(received[0].body["model"], "env-model");
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer sk-env"));
    assert_eq!(received[1].body["model"], "env-embedder");

    // Nothing set (or set empty): OpenAI's URL, no key, no models.
    let empty = HashMap::from([("OPENAI_API_KEY", String::new())]);
    let client = OpenAiClient::from_vars(|name| empty.get(name).cloned())?;
    assert_eq!(client.base_url(), OpenAiClient::DEFAULT_BASE_URL);
    assert!(!client.has_api_key());
    assert_eq!(client.model(), None);
    assert_eq!(client.embedding_model(), None);

    let bad = HashMap::from([("OPENAI_BASE_URL", "localhost:11434/v1".to_owned())]);
    assert!(matches!(
        OpenAiClient::from_vars(|name| bad.get(name).cloned()),
        Err(LlmError::Config(_))
    ));

    // The builder from the variables can still be adjusted.
    let client = OpenAiClientBuilder::from_vars(|name| vars.get(name).cloned())
        .model("override")
        .build()?;
    assert_eq!(client.model(), Some("override"));
    Ok(())
}
