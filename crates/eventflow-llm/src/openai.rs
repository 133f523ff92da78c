//! [`OpenAiClient`]: chat completions (plain and streamed over server-sent events) and embeddings
//! against any server that speaks the OpenAI HTTP API — OpenAI itself, Ollama, vLLM, the
//! llama.cpp server.
//!
//! The client sends `POST {base_url}/chat/completions` and `POST {base_url}/embeddings`, where
//! the base URL includes the API version (`https://api.openai.com/v1`,
//! `http://localhost:11434/v1`). Each request has a timeout; requests answered with 429 or a 5xx
//! status, and requests that could not reach the server, are retried with exponential backoff and
//! jitter, honouring the server's `Retry-After`. Errors carry the server's own message.

use std::fmt;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::{ChatMessage, Completion, Embedding, Llm, LlmError, RequestOptions, TextStream};

/// The longest piece of a non-JSON error body kept in an error message, in bytes.
const MAX_ERROR_BODY: usize = 500;

/// A client for OpenAI-compatible servers: implements [`Llm`] (chat completions, streaming) and
/// [`Embedding`] (embeddings).
///
/// Build one with [`OpenAiClient::builder`], or from the environment with
/// [`OpenAiClient::from_env`]. Cloning is cheap and clones share the connection pool.
///
/// The chat model and the embedding model are both optional at construction: a missing model is
/// reported as [`LlmError::Config`] by the call that needs it, so a client used only for
/// embeddings needs no chat model and the other way round. [`RequestOptions::model`] overrides the
/// chat model for one request.
///
/// # Timeouts and retries
///
/// Every attempt has a timeout ([`OpenAiClientBuilder::timeout`], 60 s by default) covering the
/// request and the reading of the whole answer; for a streamed answer it covers the wait for the
/// response and then each wait for the next chunk, so a long answer that keeps coming is never cut
/// off. A timed-out request fails with [`LlmError::Timeout`] and is not retried (the server may
/// still be working on it).
///
/// A request answered with 429 or a 5xx status, or one that could not be sent (connection
/// refused, reset), is retried up to [`OpenAiClientBuilder::max_retries`] times (3 by default).
/// The wait before a retry is the server's `Retry-After` (seconds or an HTTP date) or
/// `retry-after-ms` when it sends one, capped at [`OpenAiClientBuilder::max_retry_after`];
/// otherwise an exponential backoff with jitter. Other 4xx answers are never retried. Once a
/// stream has started it is not retried: an error in the middle of it is an item of the stream.
///
/// # Example
///
/// ```no_run
/// use eventflow_llm::{ChatMessage, Embedding, Llm, OpenAiClient, RequestOptions};
/// use futures::StreamExt;
///
/// # async fn demo() -> Result<(), eventflow_llm::LlmError> {
/// // Ollama on this machine; for OpenAI leave out base_url and set api_key.
/// let client = OpenAiClient::builder()
///     .base_url("http://localhost:11434/v1")
///     .model("llama3.2")
///     .embedding_model("nomic-embed-text")
///     .build()?;
///
/// let answer = client.complete("Name one primary colour.").await?;
/// println!("{} says: {}", answer.model, answer.text);
///
/// let messages = [ChatMessage::system("Answer in one line."), ChatMessage::user("Why is the sky blue?")];
/// let options = RequestOptions { temperature: Some(0.2), ..RequestOptions::default() };
/// let mut deltas = client.stream_chat(&messages, &options).await?;
/// while let Some(delta) = deltas.next().await {
///     print!("{}", delta?);
/// }
///
/// let vectors = client.embed(&["first text".to_owned(), "second text".to_owned()]).await?;
/// assert_eq!(vectors.len(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    model: Option<String>,
    embedding_model: Option<String>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    timeout: Duration,
    retry: RetryPolicy,
    embedding_batch_size: usize,
}

impl OpenAiClient {
    /// The base URL used when none is given: OpenAI's.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com/v1";
    /// The variable holding the base URL, API version included (`http://localhost:11434/v1`).
    pub const BASE_URL_VAR: &'static str = "OPENAI_BASE_URL";
    /// The variable holding the API key (optional: local servers need none).
    pub const API_KEY_VAR: &'static str = "OPENAI_API_KEY";
    /// The variable holding the chat model.
    pub const MODEL_VAR: &'static str = "EVENTFLOW_LLM_MODEL";
    /// The variable holding the embedding model.
    pub const EMBEDDING_MODEL_VAR: &'static str = "EVENTFLOW_EMBEDDING_MODEL";

    /// A builder with the defaults: OpenAI's base URL, no key, no models, 60 s timeout,
    /// 3 retries.
    pub fn builder() -> OpenAiClientBuilder {
        OpenAiClientBuilder::default()
    }

    /// A client configured from the environment: `OPENAI_BASE_URL` (default
    /// [`DEFAULT_BASE_URL`](Self::DEFAULT_BASE_URL)), `OPENAI_API_KEY`, `EVENTFLOW_LLM_MODEL`
    /// and `EVENTFLOW_EMBEDDING_MODEL`; all optional, empty values count as unset.
    ///
    /// # Errors
    ///
    /// [`LlmError::Config`] when the base URL is not an `http` or `https` URL or the HTTP client
    /// cannot be built.
    pub fn from_env() -> Result<Self, LlmError> {
        OpenAiClientBuilder::from_env().build()
    }

    /// Like [`from_env`](Self::from_env), reading the variables through `lookup` instead of the
    /// process environment (for tests, or for configuration kept elsewhere).
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LlmError> {
        OpenAiClientBuilder::from_vars(lookup).build()
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The chat model, if one is configured.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The embedding model, if one is configured.
    pub fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    /// Whether an API key is configured.
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url)
    }

    fn timeout_error(&self, url: &str) -> LlmError {
        LlmError::Timeout {
            url: url.to_owned(),
            timeout: self.timeout,
        }
    }

    fn transport_error(&self, url: &str, source: reqwest::Error) -> LlmError {
        if source.is_timeout() {
            self.timeout_error(url)
        } else {
            LlmError::Transport {
                url: url.to_owned(),
                source,
            }
        }
    }

    fn chat_request<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        options: &'a RequestOptions,
        stream: bool,
    ) -> Result<ChatRequest<'a>, LlmError> {
        let model = options.model.as_deref().or(self.model.as_deref()).ok_or_else(|| {
            LlmError::Config(format!(
                "no chat model: set {}, call OpenAiClientBuilder::model or pass RequestOptions::model",
                Self::MODEL_VAR
            ))
        })?;
        Ok(ChatRequest {
            model,
            messages,
            temperature: options.temperature.or(self.temperature),
            max_tokens: options.max_tokens.or(self.max_tokens),
            stream,
        })
    }

    /// Sends `body` to `url`, retrying as configured. Returns the successful response and the
    /// deadline of the attempt that produced it.
    async fn post<B: Serialize + Sync>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<(reqwest::Response, Instant), LlmError> {
        let mut attempt = 0;
        loop {
            let deadline = Instant::now() + self.timeout;
            let mut request = self.http.post(url).json(body);
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            let (error, retry_after) = match tokio::time::timeout_at(deadline, request.send()).await
            {
                Err(_elapsed) => return Err(self.timeout_error(url)),
                Ok(Err(source)) => {
                    let retryable =
                        !source.is_timeout() && (source.is_connect() || source.is_request());
                    let error = self.transport_error(url, source);
                    if !retryable || attempt >= self.retry.max_retries {
                        return Err(error);
                    }
                    (error, None)
                }
                Ok(Ok(response)) if response.status().is_success() => {
                    return Ok((response, deadline));
                }
                Ok(Ok(response)) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers(), SystemTime::now());
                    let body = match tokio::time::timeout_at(deadline, response.text()).await {
                        Ok(Ok(body)) => body,
                        _ => String::new(),
                    };
                    let error = LlmError::Status {
                        url: url.to_owned(),
                        status: status.as_u16(),
                        message: error_message(&body, status),
                    };
                    let retryable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retryable || attempt >= self.retry.max_retries {
                        return Err(error);
                    }
                    (error, retry_after)
                }
            };
            let delay = match retry_after {
                Some(wait) => wait.min(self.retry.max_retry_after),
                None => self.retry.backoff(attempt),
            };
            attempt += 1;
            tracing::warn!(
                url,
                attempt,
                max_retries = self.retry.max_retries,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                %error,
                "retrying model request"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Reads a whole successful response before `deadline`.
    async fn read_body(
        &self,
        url: &str,
        response: reqwest::Response,
        deadline: Instant,
    ) -> Result<Vec<u8>, LlmError> {
        match tokio::time::timeout_at(deadline, response.bytes()).await {
            Err(_elapsed) => Err(self.timeout_error(url)),
            Ok(Err(source)) => Err(self.transport_error(url, source)),
            Ok(Ok(bytes)) => Ok(bytes.to_vec()),
        }
    }

    async fn chat_impl(
        &self,
        messages: &[ChatMessage],
        options: &RequestOptions,
    ) -> Result<Completion, LlmError> {
        let request = self.chat_request(messages, options, false)?;
        let url = self.url("chat/completions");
        let (response, deadline) = self.post(&url, &request).await?;
        let body = self.read_body(&url, response, deadline).await?;
        parse_completion(&url, &body, request.model)
    }

    async fn stream_chat_impl(
        &self,
        messages: &[ChatMessage],
        options: &RequestOptions,
    ) -> Result<TextStream, LlmError> {
        let request = self.chat_request(messages, options, true)?;
        let url = self.url("chat/completions");
        let (response, deadline) = self.post(&url, &request).await?;
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if is_json {
            // A server that ignores `"stream": true` answers with one whole completion.
            let body = self.read_body(&url, response, deadline).await?;
            let completion = parse_completion(&url, &body, request.model)?;
            return Ok(futures::stream::iter([Ok(completion.text)]).boxed());
        }
        let state = SseState {
            events: Box::pin(response.bytes_stream().eventsource()),
            url,
            idle_timeout: self.timeout,
            finished: false,
            saw_finish_reason: false,
        };
        Ok(futures::stream::unfold(state, next_delta).boxed())
    }

    async fn embed_impl(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let model = self.embedding_model.as_deref().ok_or_else(|| {
            LlmError::Config(format!(
                "no embedding model: set {} or call OpenAiClientBuilder::embedding_model",
                Self::EMBEDDING_MODEL_VAR
            ))
        })?;
        let url = self.url("embeddings");
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.embedding_batch_size) {
            let request = EmbeddingRequest {
                model,
                input: batch,
            };
            let (response, deadline) = self.post(&url, &request).await?;
            let body = self.read_body(&url, response, deadline).await?;
            let parsed: EmbeddingResponse =
                serde_json::from_slice(&body).map_err(|error| invalid_json(&url, &error, &body))?;
            vectors.extend(in_input_order(&url, parsed.data, batch.len())?);
        }
        Ok(vectors)
    }
}

impl fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("embedding_model", &self.embedding_model)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("embedding_batch_size", &self.embedding_batch_size)
            .finish()
    }
}

impl Llm for OpenAiClient {
    fn chat<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        options: &'a RequestOptions,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(self.chat_impl(messages, options))
    }

    fn stream_chat<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        options: &'a RequestOptions,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        Box::pin(self.stream_chat_impl(messages, options))
    }
}

impl Embedding for OpenAiClient {
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        Box::pin(self.embed_impl(texts))
    }
}

/// The configuration of an [`OpenAiClient`]; see [`OpenAiClient::builder`].
#[derive(Clone)]
pub struct OpenAiClientBuilder {
    base_url: String,
    api_key: Option<String>,
    model: Option<String>,
    embedding_model: Option<String>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    timeout: Duration,
    retry: RetryPolicy,
    embedding_batch_size: usize,
}

impl Default for OpenAiClientBuilder {
    fn default() -> Self {
        OpenAiClientBuilder {
            base_url: OpenAiClient::DEFAULT_BASE_URL.to_owned(),
            api_key: None,
            model: None,
            embedding_model: None,
            temperature: None,
            max_tokens: None,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            embedding_batch_size: 256,
        }
    }
}

impl fmt::Debug for OpenAiClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClientBuilder")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("embedding_model", &self.embedding_model)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("embedding_batch_size", &self.embedding_batch_size)
            .finish()
    }
}

impl OpenAiClientBuilder {
    /// A builder configured from the process environment; see [`OpenAiClient::from_env`].
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// A builder configured from the variables `lookup` returns; see
    /// [`OpenAiClient::from_env`] for the names. Empty values count as unset.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let mut builder = Self::default();
        if let Some(base_url) = var(OpenAiClient::BASE_URL_VAR) {
            builder.base_url = base_url;
        }
        builder.api_key = var(OpenAiClient::API_KEY_VAR);
        builder.model = var(OpenAiClient::MODEL_VAR);
        builder.embedding_model = var(OpenAiClient::EMBEDDING_MODEL_VAR);
        builder
    }

    /// The base URL including the API version, e.g. `https://api.openai.com/v1` (the default),
    /// `http://localhost:11434/v1` (Ollama) or `http://localhost:8000/v1` (vLLM).
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// The API key, sent as `Authorization: Bearer <key>`. Without one no `Authorization`
    /// header is sent, which is what local servers expect.
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into()).filter(|key| !key.is_empty());
        self
    }

    /// The chat model (e.g. `gpt-4o-mini`, `llama3.2`).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// The embedding model (e.g. `text-embedding-3-small`, `nomic-embed-text`).
    pub fn embedding_model(mut self, model: impl Into<String>) -> Self {
        self.embedding_model = Some(model.into());
        self
    }

    /// The sampling temperature of requests that do not set one.
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// The most tokens generated by requests that do not set a limit.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// The timeout of each attempt (default 60 s); for a streamed answer, of the wait for the
    /// response and of each wait for the next chunk.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a request answered with 429 or 5xx, or that could not be sent, is retried
    /// (default 3; 0 disables retries).
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.retry.max_retries = max_retries;
        self
    }

    /// The backoff before the first retry when the server sends no `Retry-After` (default
    /// 500 ms); it doubles with each retry up to [`max_backoff`](Self::max_backoff), and each
    /// wait is shortened by a random jitter of up to half.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.retry.initial_backoff = backoff;
        self
    }

    /// The longest backoff between retries (default 8 s).
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.retry.max_backoff = backoff;
        self
    }

    /// The longest wait honoured from a server's `Retry-After` (default 60 s); a longer one is
    /// cut to this.
    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.retry.max_retry_after = wait;
        self
    }

    /// How many texts one embeddings request carries at most (default 256); longer inputs are
    /// sent in several requests.
    ///
    /// # Panics
    ///
    /// If `size` is 0.
    pub fn embedding_batch_size(mut self, size: usize) -> Self {
        assert!(size > 0, "the embedding batch size must be at least 1");
        self.embedding_batch_size = size;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    ///
    /// [`LlmError::Config`] when the base URL is not an `http` or `https` URL or the HTTP client
    /// cannot be built.
    pub fn build(self) -> Result<OpenAiClient, LlmError> {
        let base_url = self.base_url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url)
            .map_err(|error| LlmError::Config(format!("invalid base URL {base_url:?}: {error}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::Config(format!(
                "invalid base URL {base_url:?}: not http or https"
            )));
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.timeout)
            .user_agent(concat!("eventflow-llm/", env!("CARGO_PKG_VERSION")));
        // A model server on this machine (Ollama, vLLM, llama.cpp) is never reached through a
        // proxy from HTTP_PROXY, whatever NO_PROXY says.
        let host = parsed.host_str().unwrap_or_default();
        let loopback = host == "localhost"
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            http = http.no_proxy();
        }
        let http = http
            .build()
            .map_err(|error| LlmError::Config(format!("cannot build the HTTP client: {error}")))?;
        Ok(OpenAiClient {
            http,
            base_url,
            api_key: self.api_key,
            model: self.model,
            embedding_model: self.embedding_model,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            timeout: self.timeout,
            retry: self.retry,
            embedding_batch_size: self.embedding_batch_size,
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt + 1`: exponential, capped, with jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .initial_backoff
            .saturating_mul(2_u32.saturating_pow(attempt));
        exponential
            .min(self.max_backoff)
            .mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChatChoice>,
}

#[derive(Deserialize)]
struct ChatChoice {
    message: ResponseMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ResponseMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [String],
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingData>,
}

#[derive(Deserialize)]
struct EmbeddingData {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

fn parse_completion(url: &str, body: &[u8], requested_model: &str) -> Result<Completion, LlmError> {
    let response: ChatResponse =
        serde_json::from_slice(body).map_err(|error| invalid_json(url, &error, body))?;
    let model = response.model.unwrap_or_else(|| requested_model.to_owned());
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| LlmError::InvalidResponse {
            url: url.to_owned(),
            message: "the answer has no choices".into(),
        })?;
    match (choice.message.content, choice.message.refusal) {
        (Some(text), _) => Ok(Completion { text, model }),
        (None, Some(refusal)) => Err(LlmError::InvalidResponse {
            url: url.to_owned(),
            message: format!("the model refused: {refusal}"),
        }),
        (None, None) => Err(LlmError::InvalidResponse {
            url: url.to_owned(),
            message: format!(
                "the answer has no text content (finish reason: {})",
                choice.finish_reason.as_deref().unwrap_or("none")
            ),
        }),
    }
}

fn invalid_json(url: &str, error: &serde_json::Error, body: &[u8]) -> LlmError {
    LlmError::InvalidResponse {
        url: url.to_owned(),
        message: format!(
            "{error}; body: {}",
            truncate(String::from_utf8_lossy(body).trim())
        ),
    }
}

/// Puts embeddings back in input order by their `index` (servers may answer out of order).
fn in_input_order(
    url: &str,
    data: Vec<EmbeddingData>,
    count: usize,
) -> Result<Vec<Vec<f32>>, LlmError> {
    let invalid = |message: String| LlmError::InvalidResponse {
        url: url.to_owned(),
        message,
    };
    if data.len() != count {
        return Err(invalid(format!(
            "asked for {count} embeddings, got {}",
            data.len()
        )));
    }
    let mut slots: Vec<Option<Vec<f32>>> = vec![None; count];
    for (position, item) in data.into_iter().enumerate() {
        let index = item.index.unwrap_or(position);
        match slots.get_mut(index) {
            Some(slot @ None) => *slot = Some(item.embedding),
            Some(Some(_)) => return Err(invalid(format!("embedding index {index} appears twice"))),
            None => {
                return Err(invalid(format!(
                    "embedding index {index} is out of range for {count} inputs"
                )));
            }
        }
    }
    // Every slot is filled: `count` distinct in-range indices.
    Ok(slots.into_iter().flatten().collect())
}

/// The server's message from an error body: `{"error": {"message": ...}}`, `{"error": "..."}`,
/// `{"message": ...}` or `{"detail": ...}`, else the body itself, truncated.
fn error_message(body: &str, status: StatusCode) -> String {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(body)
        && let Some(message) = json_error_message(&value)
    {
        return message;
    }
    let body = body.trim();
    if body.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        truncate(body)
    }
}

fn json_error_message(value: &serde_json::Value) -> Option<String> {
    let error = value.get("error");
    error
        .and_then(|error| error.get("message"))
        .or(error)
        .or_else(|| value.get("message"))
        .or_else(|| value.get("detail"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_ERROR_BODY {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// How long the server asks to wait: `retry-after-ms` (milliseconds, OpenAI's), else
/// `Retry-After` in seconds or as an HTTP date (any of the three formats HTTP allows).
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    if let Some(millis) = header("retry-after-ms").and_then(|value| value.parse::<f64>().ok())
        && millis.is_finite()
        && millis >= 0.0
    {
        return Some(Duration::from_secs_f64(millis / 1000.0));
    }
    let value = header(RETRY_AFTER.as_str())?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0)
            .then(|| Duration::from_secs_f64(seconds.min(1e9)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

type SseEvents =
    Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

struct SseState {
    events: SseEvents,
    url: String,
    idle_timeout: Duration,
    finished: bool,
    saw_finish_reason: bool,
}

/// The next text delta of a streamed chat completion.
async fn next_delta(mut state: SseState) -> Option<(Result<String, LlmError>, SseState)> {
    loop {
        if state.finished {
            return None;
        }
        let event = match tokio::time::timeout(state.idle_timeout, state.events.next()).await {
            Err(_elapsed) => {
                state.finished = true;
                let error = LlmError::Timeout {
                    url: state.url.clone(),
                    timeout: state.idle_timeout,
                };
                return Some((Err(error), state));
            }
            Ok(None) => {
                state.finished = true;
                if state.saw_finish_reason {
                    return None;
                }
                let error = LlmError::InvalidResponse {
                    url: state.url.clone(),
                    message: "the stream ended before [DONE]".into(),
                };
                return Some((Err(error), state));
            }
            Ok(Some(Err(error))) => {
                state.finished = true;
                let error = match error {
                    EventStreamError::Transport(source) if source.is_timeout() => {
                        LlmError::Timeout {
                            url: state.url.clone(),
                            timeout: state.idle_timeout,
                        }
                    }
                    EventStreamError::Transport(source) => LlmError::Transport {
                        url: state.url.clone(),
                        source,
                    },
                    EventStreamError::Utf8(error) => LlmError::InvalidResponse {
                        url: state.url.clone(),
                        message: format!("the stream is not UTF-8: {error}"),
                    },
                    EventStreamError::Parser(error) => LlmError::InvalidResponse {
                        url: state.url.clone(),
                        message: format!("the stream is not server-sent events: {error}"),
                    },
                };
                return Some((Err(error), state));
            }
            Ok(Some(Ok(event))) => event,
        };
        let data = event.data.trim();
        if data == "[DONE]" {
            state.finished = true;
            return None;
        }
        if data.is_empty() {
            continue;
        }
        let chunk: ChatChunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(error) => {
                state.finished = true;
                let error = invalid_json(&state.url, &error, data.as_bytes());
                return Some((Err(error), state));
            }
        };
        if let Some(error) = chunk.error {
            state.finished = true;
            let message = json_error_message(&serde_json::json!({ "error": error }))
                .unwrap_or_else(|| error.to_string());
            let error = LlmError::InvalidResponse {
                url: state.url.clone(),
                message: format!("the server reported an error in the stream: {message}"),
            };
            return Some((Err(error), state));
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            continue; // e.g. a usage-only chunk
        };
        if choice.finish_reason.is_some() {
            state.saw_finish_reason = true;
        }
        if let Some(text) = choice.delta.and_then(|delta| delta.content)
            && !text.is_empty()
        {
            return Some((Ok(text), state));
        }
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_dates_and_millis() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_770);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(2)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        // A date in the past means no wait.
        let later = now + Duration::from_secs(100);
        assert_eq!(retry_after(&headers, later), Some(Duration::ZERO));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_millis(250)));
        headers.remove("retry-after-ms");
        headers.insert(RETRY_AFTER, HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let policy = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let first = policy.backoff(0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let second = policy.backoff(1);
            assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
            let capped = policy.backoff(30);
            assert!(capped >= Duration::from_millis(150) && capped <= Duration::from_millis(300));
        }
    }

    #[test]
    fn error_messages_come_from_the_body() {
        let status = StatusCode::BAD_REQUEST;
        assert_eq!(
            error_message(r#"{"error":{"message":"bad model"}}"#, status),
            "bad model"
        );
        assert_eq!(
            error_message(r#"{"error":"model not found"}"#, status),
            "model not found"
        );
        assert_eq!(
            error_message(r#"{"object":"error","message":"too long"}"#, status),
            "too long"
        );
        assert_eq!(
            error_message(r#"{"detail":"Not Found"}"#, status),
            "Not Found"
        );
        assert_eq!(error_message("  plain text\n", status), "plain text");
        assert_eq!(error_message("", status), "Bad Request");
        let long = "é".repeat(400);
        let message = error_message(&long, status);
        assert!(message.len() <= MAX_ERROR_BODY + '…'.len_utf8());
        assert!(message.ends_with('…'));
    }

    #[test]
    fn embeddings_are_put_in_input_order() {
        let data = vec![
            EmbeddingData {
                index: Some(2),
                embedding: vec![2.0],
            },
            EmbeddingData {
                index: Some(0),
                embedding: vec![0.0],
            },
            EmbeddingData {
                index: Some(1),
                embedding: vec![1.0],
            },
        ];
        assert_eq!(
            in_input_order("u", data, 3).unwrap(),
            vec![vec![0.0], vec![1.0], vec![2.0]]
        );
        let twice = vec![
            EmbeddingData {
                index: Some(0),
                embedding: vec![0.0],
            },
            EmbeddingData {
                index: Some(0),
                embedding: vec![1.0],
            },
        ];
        assert!(in_input_order("u", twice, 2).is_err());
        let out_of_range = vec![EmbeddingData {
            index: Some(5),
            embedding: vec![0.0],
        }];
        assert!(in_input_order("u", out_of_range, 1).is_err());
        assert!(in_input_order("u", Vec::new(), 1).is_err());
    }

    #[test]
    fn builder_rejects_bad_base_urls_and_trims_slashes() {
        assert!(matches!(
            OpenAiClient::builder().base_url("localhost:11434").build(),
            Err(LlmError::Config(_))
        ));
        assert!(matches!(
            OpenAiClient::builder().base_url("ftp://host/v1").build(),
            Err(LlmError::Config(_))
        ));
        let client = OpenAiClient::builder()
            .base_url("http://127.0.0.1:1/v1/")
            .build()
            .unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:1/v1");
        let debug = format!(
            "{:?}",
            OpenAiClient::builder()
                .api_key("sk-secret")
                .build()
                .unwrap()
        );
        assert!(!debug.contains("sk-secret"), "{debug}");
    }
}
