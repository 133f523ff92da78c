//! Building an [`Engine`]: the store, the workflows a worker serves, its timings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::engine::Engine;
use super::error::EngineError;
use super::hook::CommitInfo;
use super::worker::{EngineOptions, Inner, background, lock, workflow_key};
use crate::store::{IntoStore, Store, WorkflowKey};
use crate::workflow::Workflow;

/// Builds an [`Engine`]: a store, the workflows this worker serves, and its timings.
pub struct EngineBuilder {
    pub(super) store: Arc<dyn Store>,
    pub(super) workflows: Vec<Workflow>,
    pub(super) options: EngineOptions,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field(
                "workflows",
                &self
                    .workflows
                    .iter()
                    .map(Workflow::name)
                    .collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// Serves `workflow`: this worker starts and claims its runs.
    pub fn workflow(mut self, workflow: Workflow) -> Self {
        self.workflows.push(workflow);
        self
    }

    /// The worker's id in the store (default: a random UUID). Two live workers must not share
    /// one.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.options.worker_id = id.into();
        self
    }

    /// How long a worker may go without a heartbeat before its runs are taken over (default
    /// 10 s). Heartbeats are sent every third of it.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.options.lease_ttl = ttl;
        self
    }

    /// How often to look for claimable runs and new inbox messages when no wake-up signal came
    /// (default 500 ms). Signals make it faster in one process and with Postgres.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.options.poll_interval = interval;
        self
    }

    /// How many times a run may be taken over from a crashed worker before it is parked
    /// (default 3).
    pub fn max_recoveries(mut self, recoveries: u32) -> Self {
        self.options.max_recoveries = recoveries;
        self
    }

    /// Snapshot a run every this many journal entries (default 1000); runs are also
    /// snapshotted when they go idle and after every recovery.
    pub fn snapshot_every(mut self, entries: u64) -> Self {
        self.options.snapshot_every = entries.max(1);
        self
    }

    /// Calls `hook` after each commit of a run reaches the store and before the commands the
    /// commit decided (starting the next steps) are carried out: for metrics, and for fault
    /// tests that stop a worker at that exact point.
    pub fn on_commit(mut self, hook: impl Fn(&CommitInfo) + Send + Sync + 'static) -> Self {
        self.options.on_commit = Some(Arc::new(hook));
        self
    }

    /// With `false`, the engine starts runs, sends them events and reads them, but never drives
    /// one: every run it starts is detached, for a worker serving its workflow to claim (an API
    /// node of a cluster, or a client). Default `true`.
    pub fn drive_runs(mut self, drive: bool) -> Self {
        self.options.drive_runs = drive;
        self
    }

    /// Registers the worker and starts claiming runs.
    pub async fn start(self) -> Result<Engine, EngineError> {
        let keys: Vec<WorkflowKey> = if self.options.drive_runs {
            self.workflows.iter().map(workflow_key).collect()
        } else {
            Vec::new()
        };
        self.store.heartbeat(&self.options.worker_id, &keys).await?;
        let (stop, stopping) = watch::channel(false);
        let inner = Arc::new(Inner {
            store: self.store,
            workflows: self
                .workflows
                .into_iter()
                .map(|w| (w.name().to_owned(), w))
                .collect(),
            keys,
            options: self.options,
            active: Mutex::new(HashMap::new()),
            claim_now: Arc::default(),
            watchers: Default::default(),
            stop,
            stopping,
            background: Mutex::new(None),
        });
        let task = tokio::spawn(background(Arc::downgrade(&inner)));
        *lock(&inner.background) = Some(task);
        Ok(Engine { inner })
    }
}

impl Engine {
    /// An engine over `store`: add workflows, then [`EngineBuilder::start`].
    pub fn builder(store: impl IntoStore) -> EngineBuilder {
        EngineBuilder {
            store: store.into_store(),
            workflows: Vec::new(),
            options: EngineOptions {
                worker_id: uuid::Uuid::new_v4().to_string(),
                lease_ttl: Duration::from_secs(10),
                poll_interval: Duration::from_millis(500),
                max_recoveries: 3,
                snapshot_every: 1000,
                claim_batch: 32,
                on_commit: None,
                drive_runs: true,
            },
        }
    }
}
