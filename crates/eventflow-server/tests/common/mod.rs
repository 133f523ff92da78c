//! A real server on a loopback port over a SQLite store in a temporary directory, the test
//! workflows, and small HTTP helpers.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use eventflow::EventJson;
use eventflow::prelude::*;
use eventflow::store::{
    Claim, ClaimOptions, Commit, Created, InboxMessage, Lease, LoadedRun, Mail, NewRun, Reopened,
    RunFilter, RunRecord, Sent, SqliteStore, Store, StoreError, StoreFuture, WorkflowKey,
};
use eventflow_server::{RunningServer, Server, ServerConfig};
use futures::StreamExt;
use serde_json::Value;

mod raw;
mod workflows;
#[allow(unused_imports)] // Only some test files write raw requests.
pub(crate) use raw::*;
pub(crate) use workflows::*;

/// Counted by `visits` on each run.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Visit {
    pub n: u32,
}

/// Counts its runs in its context state (`visits`): a handler started again continues the
/// count. Its step takes at least 20 ms, for the step-duration metrics.
pub(crate) fn visits() -> Workflow {
    Workflow::builder("visits")
        .add_step("visit", |ctx: Context, ev: StartEvent| async move {
            let who: String = ev.get_opt("who")?.unwrap_or_else(|| "someone".to_owned());
            let n: u32 = ctx.get_or("visits", 0)? + 1;
            ctx.set("visits", n)?;
            ctx.write_event_to_stream(Visit { n });
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, BoxError>(StopEvent::new(format!("{who}: visit {n}")))
        })
        .build()
        .unwrap()
}

pub(crate) struct TestServer {
    pub running: Option<RunningServer>,
    pub url: String,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub dir: Arc<tempfile::TempDir>,
}

pub(crate) fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "eventflow_server=warn".to_owned()),
        )
        .with_test_writer()
        .try_init();
}

/// The configuration every test starts from: fast polling, short heartbeats and waits.
pub(crate) fn test_config() -> ServerConfig {
    ServerConfig::default()
        .poll_interval(Duration::from_millis(50))
        .sse_heartbeat(Duration::from_millis(200))
        .cancel_wait(Duration::from_secs(5))
}

/// A server with every test workflow, over a fresh SQLite file.
pub(crate) async fn start(config: ServerConfig) -> TestServer {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    start_in(dir, config).await
}

/// A server over the SQLite file in `dir` (shared by servers started in the same directory).
pub(crate) async fn start_in(dir: Arc<tempfile::TempDir>, config: ServerConfig) -> TestServer {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("runs.db")).await.unwrap());
    start_over(dir, store, config).await
}

/// A server over `store` (a wrapper of the SQLite file in `dir`, say).
pub(crate) async fn start_over(
    dir: Arc<tempfile::TempDir>,
    store: Arc<dyn Store>,
    config: ServerConfig,
) -> TestServer {
    init_logs();
    let server = Server::builder(config.store(store.clone()))
        .workflow(greet())
        .workflow(fail())
        .workflow(ask())
        .workflow(orders())
        .workflow(approve())
        .workflow(visits())
        .workflow(pair())
        .event_schema_json(
            "Progress",
            serde_json::json!({"type": "object", "properties": {"percent": {"type": "integer"}}, "required": ["percent"]}),
        )
        .build()
        .await
        .unwrap();
    let running = server.bind(([127, 0, 0, 1], 0)).await.unwrap();
    TestServer {
        url: running.url(),
        running: Some(running),
        http: reqwest::Client::new(),
        store,
        dir,
    }
}

impl TestServer {
    pub(crate) fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.at(path)).send().await.unwrap();
        split(response).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.at(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        split(response).await
    }

    pub(crate) async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let response = self
            .http
            .post(self.at(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        split(response).await
    }

    /// Starts `workflow` without waiting; returns the handler id.
    pub(crate) async fn start_run(&self, workflow: &str, body: Value) -> String {
        let (status, data) = self
            .post(&format!("/workflows/{workflow}/run-nowait"), body)
            .await;
        assert_eq!(status, 200, "{data}");
        data["handler_id"].as_str().unwrap().to_owned()
    }

    /// Polls the handler until its `eventflow_status` is one of `statuses`.
    pub(crate) async fn wait_status(&self, handler_id: &str, statuses: &[&str]) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, data) = self.get(&format!("/handlers/{handler_id}")).await;
            if statuses.contains(&data["eventflow_status"].as_str().unwrap_or("")) {
                return data;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "handler {handler_id} never reached {statuses:?}: {data}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every SSE event of a stream (`id`, parsed `data`) until the server closes it.
    pub(crate) async fn sse(
        &self,
        path: &str,
        last_event_id: Option<&str>,
    ) -> (u16, Vec<(String, Value)>) {
        let mut request = self.http.get(self.at(path));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if status != 200 {
            return (status, Vec::new());
        }
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let events = read_sse(response).await;
        (status, events)
    }

    pub(crate) async fn shutdown(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.unwrap();
        }
    }
}

/// The SSE events of a response until it ends (heartbeat comments are skipped).
pub(crate) async fn read_sse(response: reqwest::Response) -> Vec<(String, Value)> {
    use eventsource_stream::Eventsource;
    let mut stream = response.bytes_stream().eventsource();
    let mut events = Vec::new();
    let reading = async {
        while let Some(event) = stream.next().await {
            let event = event.unwrap();
            events.push((event.id, serde_json::from_str(&event.data).unwrap()));
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reading)
        .await
        .expect("the stream did not close");
    events
}

/// Appends what a raw response stream sends to `text` until it contains `marker` (5 s at most).
pub(crate) async fn read_raw_until(
    raw: &mut (impl futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
    text: &mut String,
    marker: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !text.contains(marker) {
        let chunk = tokio::time::timeout_at(deadline, raw.next())
            .await
            .unwrap_or_else(|_| panic!("`{marker}` never came: {text:?}"))
            .expect("the stream ended")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

pub(crate) async fn split(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// The keys the Python client's `HandlerData` model requires.
pub(crate) const HANDLER_KEYS: [&str; 10] = [
    "handler_id",
    "workflow_name",
    "run_id",
    "error",
    "result",
    "result_unreadable",
    "status",
    "started_at",
    "updated_at",
    "completed_at",
];

pub(crate) fn assert_handler_shape(data: &Value) {
    for key in HANDLER_KEYS {
        assert!(
            data.get(key).is_some(),
            "HandlerData misses `{key}`: {data}"
        );
    }
    let status = data["status"].as_str().unwrap();
    assert!(
        ["running", "completed", "failed", "cancelled"].contains(&status),
        "{status}"
    );
    let started = data["started_at"].as_str().unwrap();
    assert!(
        started.ends_with("+00:00") && started.contains('T'),
        "{started}"
    );
}

/// A store that fails on demand: while `broken`, reading a run or its events is a database
/// error, as when the database cannot be reached. Everything else goes to `inner`.
pub(crate) struct FlakyStore {
    pub inner: Arc<dyn Store>,
    pub broken: std::sync::atomic::AtomicBool,
}

impl FlakyStore {
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        FlakyStore {
            inner,
            broken: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(crate) fn set_broken(&self, broken: bool) {
        self.broken
            .store(broken, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            Err(StoreError::Database("the database is unreachable".into()))
        } else {
            Ok(())
        }
    }
}

impl Store for FlakyStore {
    fn create_run(&self, run: NewRun) -> StoreFuture<'_, Created> {
        self.inner.create_run(run)
    }
    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>> {
        Box::pin(async move {
            self.check()?;
            self.inner.get_run(run_id).await
        })
    }
    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunRecord>> {
        self.inner.list_runs(filter)
    }
    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        workflows: &'a [WorkflowKey],
    ) -> StoreFuture<'a, ()> {
        self.inner.heartbeat(worker, workflows)
    }
    fn claim<'a>(
        &'a self,
        worker: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Vec<Claim>> {
        self.inner.claim(worker, options)
    }
    fn claim_run<'a>(
        &'a self,
        worker: &'a str,
        run_id: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Option<Claim>> {
        self.inner.claim_run(worker, run_id, options)
    }
    fn load<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, LoadedRun> {
        self.inner.load(lease)
    }
    fn inbox<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, Vec<InboxMessage>> {
        self.inner.inbox(lease)
    }
    fn commit<'a>(&'a self, lease: &'a Lease, commit: Commit) -> StoreFuture<'a, ()> {
        self.inner.commit(lease, commit)
    }
    fn send<'a>(&'a self, run_id: &'a str, msg_id: &'a str, mail: Mail) -> StoreFuture<'a, Sent> {
        self.inner.send(run_id, msg_id, mail)
    }
    fn events_after<'a>(
        &'a self,
        run_id: &'a str,
        after: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(u64, EventJson)>> {
        Box::pin(async move {
            self.check()?;
            self.inner.events_after(run_id, after, limit).await
        })
    }
    fn unpark<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        self.inner.unpark(run_id)
    }
    fn purge<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        self.inner.purge(run_id)
    }
    fn reopen<'a>(
        &'a self,
        run_id: &'a str,
        entry: Value,
        owner: Option<&'a str>,
    ) -> StoreFuture<'a, Reopened> {
        self.inner.reopen(run_id, entry, owner)
    }
    fn wakeups(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.inner.wakeups()
    }
}
