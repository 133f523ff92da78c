//! [`MockLlm`]: a deterministic stand-in for a model, for tests and for running examples with no
//! model server. It never pretends to be a model: every answer starts with
//! [`MockLlm::MARKER`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;

use crate::{ChatMessage, Completion, Llm, LlmError, RequestOptions, Role, TextStream};

/// A deterministic, clearly labelled stand-in for a model.
///
/// Every answer starts with [`MockLlm::MARKER`] (`[mock-llm]`) and reports the model
/// [`MockLlm::MODEL`]. The rest of the answer is the canned response of the first rule added with
/// [`respond_to`](Self::respond_to) whose substring occurs in the request, or else an echo of the
/// first words of the last user message. Streaming splits the same answer into word deltas.
///
/// Every request is recorded ([`requests`](Self::requests)); clones share the record, so a test
/// can keep a clone of the mock it hands to a workflow.
///
/// ```
/// use eventflow_llm::{Llm, MockLlm};
///
/// # async fn demo() -> Result<(), eventflow_llm::LlmError> {
/// let llm = MockLlm::new().respond_to("classify", "factual");
/// let answer = llm.complete("Please classify this question: what is a tide?").await?;
/// assert_eq!(answer.text, "[mock-llm] factual");
/// assert_eq!(MockLlm::strip_marker(&answer.text), "factual");
///
/// let answer = llm.complete("What is the boiling point of water at sea level?").await?;
/// assert_eq!(answer.text, r#"[mock-llm] echo: "What is the boiling point of water at sea level?""#);
/// assert_eq!(llm.request_count(), 2);
/// # Ok(())
/// # }
/// # futures::executor::block_on(demo()).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct MockLlm {
    rules: Vec<(String, String)>,
    echo_words: usize,
    delay: Duration,
    requests: Arc<Mutex<Vec<MockRequest>>>,
}

/// A request a [`MockLlm`] received.
#[derive(Clone, Debug, PartialEq)]
pub struct MockRequest {
    /// The messages of the chat.
    pub messages: Vec<ChatMessage>,
    /// The request's options.
    pub options: RequestOptions,
    /// Whether the answer was asked for as a stream.
    pub streamed: bool,
}

impl MockRequest {
    /// The content of the last user message, if any.
    pub fn last_user_message(&self) -> Option<&str> {
        last_user_message(&self.messages)
    }
}

impl Default for MockLlm {
    fn default() -> Self {
        Self::new()
    }
}

impl MockLlm {
    /// The prefix of every answer.
    pub const MARKER: &'static str = "[mock-llm]";
    /// The model name every answer reports.
    pub const MODEL: &'static str = "mock-llm";

    /// A mock with no canned responses that echoes the first 12 words of the last user message.
    pub fn new() -> Self {
        MockLlm {
            rules: Vec::new(),
            echo_words: 12,
            delay: Duration::ZERO,
            requests: Arc::default(),
        }
    }

    /// Answers `response` (after the marker) to requests whose messages contain `substring`
    /// (case-sensitive). Rules are tried in the order they were added; the first match wins.
    pub fn respond_to(mut self, substring: impl Into<String>, response: impl Into<String>) -> Self {
        self.rules.push((substring.into(), response.into()));
        self
    }

    /// How many words of the last user message the echo keeps (default 12).
    pub fn echo_words(mut self, words: usize) -> Self {
        self.echo_words = words;
        self
    }

    /// Waits this long (tokio time) before answering each request, like a slow model.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The answer to `messages`, marker included, without recording a request.
    pub fn answer(&self, messages: &[ChatMessage]) -> String {
        let canned = self.rules.iter().find(|(substring, _)| {
            messages
                .iter()
                .any(|message| message.content.contains(substring.as_str()))
        });
        if let Some((_, response)) = canned {
            return format!("{} {response}", Self::MARKER);
        }
        match last_user_message(messages) {
            None => format!("{} echo: (no user message)", Self::MARKER),
            Some(text) => {
                let words: Vec<&str> = text.split_whitespace().collect();
                let kept = words.len().min(self.echo_words);
                let ellipsis = if kept < words.len() { "…" } else { "" };
                format!(
                    "{} echo: \"{}{ellipsis}\"",
                    Self::MARKER,
                    words[..kept].join(" ")
                )
            }
        }
    }

    /// Removes the marker (and the space after it) from an answer, if it starts with one.
    pub fn strip_marker(text: &str) -> &str {
        text.strip_prefix(Self::MARKER)
            .map_or(text, str::trim_start)
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<MockRequest> {
        self.lock().clone()
    }

    /// The last request received.
    pub fn last_request(&self) -> Option<MockRequest> {
        self.lock().last().cloned()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        self.lock().len()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<MockRequest>> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn respond(
        &self,
        messages: &[ChatMessage],
        options: &RequestOptions,
        streamed: bool,
    ) -> String {
        self.lock().push(MockRequest {
            messages: messages.to_vec(),
            options: options.clone(),
            streamed,
        });
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.answer(messages)
    }
}

impl Llm for MockLlm {
    fn chat<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        options: &'a RequestOptions,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let text = self.respond(messages, options, false).await;
            Ok(Completion {
                text,
                model: Self::MODEL.to_owned(),
            })
        })
    }

    fn stream_chat<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        options: &'a RequestOptions,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        Box::pin(async move {
            let text = self.respond(messages, options, true).await;
            let deltas: Vec<Result<String, LlmError>> = word_deltas(&text)
                .into_iter()
                .map(|delta| Ok(delta.to_owned()))
                .collect();
            Ok(futures::stream::iter(deltas).boxed())
        })
    }
}

fn last_user_message(messages: &[ChatMessage]) -> Option<&str> {
    messages
        .iter()
        .rev()
        .find(|message| message.role == Role::User)
        .map(|message| message.content.as_str())
}

/// Splits `text` into deltas that each start with the whitespace before a word (the first one
/// with any leading whitespace); concatenated they give `text` back.
fn word_deltas(text: &str) -> Vec<&str> {
    let mut starts = Vec::new();
    let mut previous_is_space = true;
    for (index, character) in text.char_indices() {
        let is_space = character.is_whitespace();
        if previous_is_space && !is_space {
            starts.push(index);
        }
        previous_is_space = is_space;
    }
    let mut deltas = Vec::with_capacity(starts.len());
    let mut begin = 0;
    for &start in starts.iter().skip(1) {
        // The delta of the previous word ends where the whitespace before this one begins.
        let end = text[..start].trim_end().len();
        deltas.push(&text[begin..end]);
        begin = end;
    }
    if begin < text.len() {
        deltas.push(&text[begin..]);
    }
    deltas
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    #[test]
    fn word_deltas_rebuild_the_text() {
        for text in [
            "",
            "one",
            "[mock-llm] echo: \"a  b\nc\"",
            "  leading and trailing  ",
            "é ü ß",
        ] {
            let deltas = word_deltas(text);
            assert_eq!(deltas.concat(), text);
            assert!(deltas.iter().all(|delta| !delta.is_empty()));
        }
        assert_eq!(
            word_deltas("[mock-llm] a  b"),
            vec!["[mock-llm]", " a", "  b"]
        );
    }

    #[tokio::test]
    async fn answers_are_marked_canned_or_echoed_and_recorded() {
        let llm = MockLlm::new()
            .respond_to("classify", "factual")
            .respond_to("score", "0.8")
            .echo_words(3);
        let record = llm.clone();

        let answer = llm.complete("classify and score this").await.unwrap();
        assert_eq!(
            answer.text, "[mock-llm] factual",
            "the first matching rule wins"
        );
        assert_eq!(answer.model, MockLlm::MODEL);

        let messages = [
            ChatMessage::system("You score sources."),
            ChatMessage::user("Source A"),
        ];
        let options = RequestOptions {
            temperature: Some(0.0),
            ..RequestOptions::default()
        };
        assert_eq!(
            llm.chat(&messages, &options).await.unwrap().text,
            "[mock-llm] 0.8"
        );

        let messages = [
            ChatMessage::user("an older question"),
            ChatMessage::assistant("an answer"),
            ChatMessage::user("  the   newest question of all\n"),
        ];
        let answer = llm
            .chat(&messages, &RequestOptions::default())
            .await
            .unwrap();
        assert_eq!(answer.text, "[mock-llm] echo: \"the newest question…\"");
        let answer = llm
            .chat(&[ChatMessage::system("hi")], &RequestOptions::default())
            .await
            .unwrap();
        assert_eq!(answer.text, "[mock-llm] echo: (no user message)");

        let requests = record.requests();
        assert_eq!(requests.len(), 4);
        assert_eq!(requests[1].options.temperature, Some(0.0));
        assert_eq!(requests[1].last_user_message(), Some("Source A"));
        assert_eq!(
            record.last_request().unwrap().messages,
            vec![ChatMessage::system("hi")]
        );
        assert!(requests.iter().all(|request| !request.streamed));
        record.clear_requests();
        assert_eq!(llm.request_count(), 0);
    }

    #[tokio::test]
    async fn streaming_yields_the_same_answer_word_by_word() {
        let llm = MockLlm::new();
        let prompt = "Why do tides happen twice a day?";
        let whole = llm.complete(prompt).await.unwrap().text;
        let deltas: Vec<String> = llm
            .stream_complete(prompt)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(deltas.concat(), whole);
        assert_eq!(deltas.len(), whole.split_whitespace().count());
        assert_eq!(deltas[0], MockLlm::MARKER);
        assert!(llm.last_request().unwrap().streamed);
    }

    #[test]
    fn strip_marker_only_strips_the_marker() {
        assert_eq!(MockLlm::strip_marker("[mock-llm] factual"), "factual");
        assert_eq!(MockLlm::strip_marker("factual"), "factual");
    }

    #[tokio::test(start_paused = true)]
    async fn delay_waits_before_answering() {
        let llm = MockLlm::new().delay(Duration::from_secs(5));
        let start = tokio::time::Instant::now();
        llm.complete("hello").await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
