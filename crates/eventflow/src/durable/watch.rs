//! Readers waiting on a run: woken by its commits in this process.

use std::sync::Arc;

use tokio::sync::Notify;

use super::worker::{Inner, lock};

/// What readers of one run wait on.
#[derive(Default)]
pub(super) struct Watch {
    /// Any commit: new events.
    pub(super) committed: Notify,
    /// The run finished (or this worker stopped driving it).
    pub(super) ended: Notify,
}

/// A reader's registration; unregisters when the last reader of the run drops it.
pub(super) struct Watching {
    pub(super) inner: Arc<Inner>,
    pub(super) run_id: String,
    pub(super) watch: Arc<Watch>,
}

impl Watching {
    pub(super) fn new(inner: &Arc<Inner>, run_id: &str) -> Self {
        let watch = lock(&inner.watchers)
            .entry(run_id.to_owned())
            .or_default()
            .clone();
        Watching {
            inner: inner.clone(),
            run_id: run_id.to_owned(),
            watch,
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut watchers = lock(&self.inner.watchers);
        // Two references left: the map's and ours.
        if Arc::strong_count(&self.watch) <= 2 {
            watchers.remove(&self.run_id);
        }
    }
}
