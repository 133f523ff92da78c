//! `RateLimited`: concurrency and requests-per-minute limits, on tokio's paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use eventflow_llm::{
    ChatMessage, Completion, Embedding, Llm, LlmError, MockLlm, RateLimited, RequestOptions,
    TextStream,
};
use futures::future::{BoxFuture, join_all};
use futures::{StreamExt, TryStreamExt};
use tokio::time::Instant;

/// A model that takes `latency` per request and records how many requests are in flight and
/// when each started.
#[derive(Default)]
struct Probe {
    latency: Duration,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    started: Mutex<Vec<Instant>>,
}

impl Probe {
    fn new(latency: Duration) -> Self {
        Probe {
            latency,
            ..Probe::default()
        }
    }

    async fn run(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.started.lock().unwrap().push(Instant::now());
        tokio::time::sleep(self.latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    fn starts(&self) -> Vec<Instant> {
        self.started.lock().unwrap().clone()
    }
}

impl Llm for Probe {
    fn chat<'a>(
        &'a self,
        _messages: &'a [ChatMessage],
        _options: &'a RequestOptions,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            self.run().await;
            Ok(Completion {
                text: "probe".into(),
                model: "probe".into(),
            })
        })
    }

    fn stream_chat<'a>(
        &'a self,
        messages: &'a [ChatMessage],
        options: &'a RequestOptions,
    ) -> BoxFuture<'a, Result<TextStream, LlmError>> {
        Box::pin(async move {
            let completion = self.chat(messages, options).await?;
            Ok(futures::stream::iter([Ok(completion.text)]).boxed())
        })
    }
}

impl Embedding for Probe {
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        Box::pin(async move {
            self.run().await;
            Ok(texts.iter().map(|_| vec![1.0]).collect())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn concurrency_never_exceeds_the_limit() -> Result<()> {
    let limited = RateLimited::new(Probe::new(Duration::from_millis(100))).max_concurrent(3);
    let started = Instant::now();
    let answers = join_all((0..20).map(|_| limited.complete("hello"))).await;
    assert!(answers.iter().all(Result::is_ok));
    let probe = limited.inner();
    assert_eq!(
        probe.peak.load(Ordering::SeqCst),
        3,
        "the limit is reached and never exceeded"
    );
    assert_eq!(probe.starts().len(), 20);
    // 20 requests, 3 at a time, 100 ms each: 7 rounds.
    assert_eq!(started.elapsed(), Duration::from_millis(700));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn without_limits_everything_runs_at_once() -> Result<()> {
    let limited = RateLimited::new(Probe::new(Duration::from_millis(100)));
    join_all((0..20).map(|_| limited.complete("hello"))).await;
    assert_eq!(limited.inner().peak.load(Ordering::SeqCst), 20);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn requests_per_minute_spaces_the_requests() -> Result<()> {
    let limited = RateLimited::new(Probe::new(Duration::from_millis(10))).requests_per_minute(120);
    let started = Instant::now();
    join_all((0..5).map(|_| limited.complete("hello"))).await;
    let starts = limited.inner().starts();
    assert_eq!(starts.len(), 5);
    assert_eq!(starts[0], started, "the first request is not delayed");
    for pair in starts.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            Duration::from_millis(500),
            "120 a minute is one every 500 ms"
        );
    }

    // After a quiet spell the next request goes at once, without a burst of catch-up.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let quiet = Instant::now();
    join_all((0..2).map(|_| limited.complete("hello"))).await;
    let starts = limited.inner().starts();
    assert_eq!(starts[5], quiet);
    assert_eq!(starts[6] - starts[5], Duration::from_millis(500));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn both_limits_together_and_clones_share_them() -> Result<()> {
    let limited = Arc::new(
        RateLimited::new(Probe::new(Duration::from_secs(2)))
            .max_concurrent(2)
            .requests_per_minute(60),
    );
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let limited = Arc::clone(&limited);
            tokio::spawn(async move { limited.complete("hello").await })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let probe = limited.inner();
    assert!(probe.peak.load(Ordering::SeqCst) <= 2);
    let starts = probe.starts();
    for pair in starts.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(1),
            "{:?}",
            pair[1] - pair[0]
        );
    }

    let mock = RateLimited::new(MockLlm::new()).requests_per_minute(60);
    let clone = mock.clone();
    let started = Instant::now();
    mock.complete("one").await?;
    clone.complete("two").await?;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "the clone waits its turn"
    );
    assert_eq!(
        mock.inner().request_count(),
        2,
        "clones share the mock's record too"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_stream_holds_its_permit_until_it_ends() -> Result<()> {
    let limited = RateLimited::new(MockLlm::new()).max_concurrent(1);
    let stream = limited.stream_complete("first question").await?;

    // While the stream is alive, a second request waits.
    let second =
        tokio::time::timeout(Duration::from_secs(60), limited.complete("second question")).await;
    assert!(
        second.is_err(),
        "the second request ran while the stream held the only permit"
    );

    let deltas: Vec<String> = stream.try_collect().await?;
    assert_eq!(deltas.concat(), r#"[mock-llm] echo: "first question""#);
    let answer =
        tokio::time::timeout(Duration::from_secs(1), limited.complete("second question")).await??;
    assert!(answer.text.contains("second question"));

    // Dropping a stream early also frees the permit.
    let stream = limited.stream_complete("third").await?;
    drop(stream);
    tokio::time::timeout(Duration::from_secs(1), limited.complete("fourth")).await??;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn embeddings_are_limited_too() -> Result<()> {
    let limited = RateLimited::new(Probe::new(Duration::from_millis(100))).max_concurrent(2);
    let texts = vec!["a".to_owned(), "b".to_owned()];
    let results = join_all((0..10).map(|_| limited.embed(&texts))).await;
    assert!(
        results
            .iter()
            .all(|vectors| vectors.as_ref().is_ok_and(|vectors| vectors.len() == 2))
    );
    assert_eq!(limited.inner().peak.load(Ordering::SeqCst), 2);
    assert_eq!(limited.embed_one("c").await?, vec![1.0]);
    Ok(())
}

#[test]
#[should_panic(expected = "max_concurrent must be at least 1")]
fn zero_concurrency_is_refused() {
    let _ = RateLimited::new(MockLlm::new()).max_concurrent(0);
}
