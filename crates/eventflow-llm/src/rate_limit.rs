//! [`RateLimited`]: a wrapper that limits how many requests a model gets at once and per minute.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::{ChatMessage, Completion, Embedding, Llm, LlmError, RequestOptions, TextStream};

/// Wraps an [`Llm`] or an [`Embedding`] (or a client that is both) and limits its requests: at
/// most [`max_concurrent`](Self::max_concurrent) in flight and at most
/// [`requests_per_minute`](Self::requests_per_minute), spaced evenly (one every `60 s / m`, no
/// bursts), so a provider's per-minute limit is never exceeded.
///
/// A request first waits for a concurrency permit, then for its turn in the minute, then runs. A
/// streamed answer keeps its permit until the stream ends or is dropped. Chat requests and
/// embedding requests through the same wrapper share the limits; clones share them too.
///
/// ```
/// use std::sync::Arc;
///
/// use eventflow_llm::{Llm, MockLlm, RateLimited};
///
/// # async fn demo() -> Result<(), eventflow_llm::LlmError> {
/// let llm: Arc<dyn Llm> = Arc::new(RateLimited::new(MockLlm::new()).max_concurrent(4).requests_per_minute(600));
/// let answer = llm.complete("hello").await?;
/// assert!(answer.text.starts_with(MockLlm::MARKER));
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct RateLimited<L> {
    inner: L,
    concurrency: Option<Arc<Semaphore>>,
    pacer: Option<Arc<Pacer>>,
}

impl<L> RateLimited<L> {
    /// Wraps `inner`, with no limits until some are set.
    pub fn new(inner: L) -> Self {
        RateLimited {
            inner,
            concurrency: None,
            pacer: None,
        }
    }

    /// Allows at most `requests` in flight at once.
    ///
    /// # Panics
    ///
    /// If `requests` is 0.
    pub fn max_concurrent(mut self, requests: usize) -> Self {
        assert!(requests > 0, "max_concurrent must be at least 1");
        self.concurrency = Some(Arc::new(Semaphore::new(requests)));
        self
    }

    /// Allows at most `requests` per minute, starting one every `60 s / requests`.
    ///
    /// # Panics
    ///
    /// If `requests` is 0.
    pub fn requests_per_minute(mut self, requests: u32) -> Self {
        assert!(requests > 0, "requests_per_minute must be at least 1");
        let interval = Duration::from_secs(60) / requests;
        self.pacer = Some(Arc::new(Pacer {
            interval,
            next: Mutex::new(None),
        }));
        self
    }

    /// The wrapped model.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    /// Unwraps the model.
    pub fn into_inner(self) -> L {
        self.inner
    }

    /// Waits until a request may start; the permit, if any, must be held while it runs.
    async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = match &self.concurrency {
            // The semaphore is never closed, so acquiring only fails in theory.
            Some(semaphore) => Arc::clone(semaphore).acquire_owned().await.ok(),
            None => None,
        };
        if let Some(pacer) = &self.pacer {
            pacer.wait().await;
        }
        permit
    }
}

/// Spaces requests evenly: each one reserves the next free slot, `interval` after the previous.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    async fn wait(&self) {
        let now = Instant::now();
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = next.map_or(now, |next| next.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
    }
}

/// A stream that holds a concurrency permit until it ends or is dropped.
struct PermitStream {
    inner: TextStream,
    permit: Option<OwnedSemaphorePermit>,
}

impl Stream for PermitStream {
    type Item = Result<String, LlmError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            self.permit = None;
        }
        next
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

fn hold_permit(stream: TextStream, permit: Option<OwnedSemaphorePermit>) -> TextStream {
    match permit {
        Some(permit) => Box::pin(PermitStream {
            inner: stream,
            permit: Some(permit),
        }),
        None => stream,
    }
}

impl<L: Llm> Llm for RateLimited<L> {
    fn chat<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        options: &'a RequestOptions,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let _permit = self.admit().await;
            self.inner.chat(messages, options).await
        })
    }

    fn stream_chat<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        options: &'a RequestOptions,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        Box::pin(async move {
            let permit = self.admit().await;
            let stream = self.inner.stream_chat(messages, options).await?;
            Ok(hold_permit(stream, permit))
        })
    }

    fn complete<'a>(&'a self, prompt: &'a str) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let _permit = self.admit().await;
            self.inner.complete(prompt).await
        })
    }

    fn stream_complete<'a>(
        &'a self,
        prompt: &'a str,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        Box::pin(async move {
            let permit = self.admit().await;
            let stream = self.inner.stream_complete(prompt).await?;
            Ok(hold_permit(stream, permit))
        })
    }
}

impl<E: Embedding> Embedding for RateLimited<E> {
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        Box::pin(async move {
            let _permit = self.admit().await;
            self.inner.embed(texts).await
        })
    }

    fn embed_one<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<Vec<f32>, LlmError>> {
        Box::pin(async move {
            let _permit = self.admit().await;
            self.inner.embed_one(text).await
        })
    }
}
