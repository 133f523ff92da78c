//! The model traits: [`Llm`] for text generation and [`Embedding`] for vectors.
//!
//! Both are object-safe (`Arc<dyn Llm>` is what a workflow holds), so their async methods return
//! boxed futures and streams.

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::LlmError;

/// Who said a chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
}

/// One message of a chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Options of one request; unset fields take the client's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestOptions {
    /// The model to use instead of the client's.
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// The most tokens to generate.
    pub max_tokens: Option<u32>,
}

/// A model's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The generated text.
    pub text: String,
    /// The model that answered, as the server reports it.
    pub model: String,
}

/// Text deltas of a streaming completion, in order.
pub type TextStream = BoxStream<'static, Result<String, LlmError>>;

/// A text-generation model.
pub trait Llm: Send + Sync {
    /// Answers a chat.
    fn chat<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        options: &'a RequestOptions,
    ) -> BoxFuture<'a, Result<Completion, LlmError>>;

    /// Streams the answer to a chat as text deltas.
    fn stream_chat<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        options: &'a RequestOptions,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>>;

    /// Completes a prompt (a chat of one user message).
    fn complete<'a>(&'a self, prompt: &'a str) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let messages = [ChatMessage::user(prompt)];
            self.chat(&messages, &RequestOptions::default()).await
        })
    }

    /// Streams the completion of a prompt.
    fn stream_complete<'a>(
        &'a self,
        prompt: &'a str,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        Box::pin(async move {
            let messages = [ChatMessage::user(prompt)];
            self.stream_chat(&messages, &RequestOptions::default())
                .await
        })
    }
}

/// A text-embedding model.
pub trait Embedding: Send + Sync {
    /// One vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>>;

    /// The vector of one text.
    fn embed_one<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<Vec<f32>, LlmError>> {
        Box::pin(async move {
            let texts = [text.to_owned()];
            let mut vectors = self.embed(&texts).await?;
            vectors.pop().ok_or_else(|| LlmError::InvalidResponse {
                url: String::new(),
                message: "no embedding returned".into(),
            })
        })
    }
}
