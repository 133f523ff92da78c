//! Readers waiting on a run: woken by its commits in this process (other processes' commits
//! are seen by polling).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// What readers of one run wait on.
#[derive(Default)]
pub(super) struct Watch {
    /// Any commit: new events.
    pub(super) committed: Notify,
    /// The run finished (or this worker stopped driving it).
    pub(super) ended: Notify,
}

/// The runs readers wait on, by id.
#[derive(Default)]
pub(super) struct Watchers(Mutex<HashMap<String, Arc<Watch>>>);

impl Watchers {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Watch>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a reader of `run_id` until the returned registration drops.
    pub(super) fn watch(self: &Arc<Self>, run_id: &str) -> Watching {
        let watch = self.lock().entry(run_id.to_owned()).or_default().clone();
        Watching {
            watchers: self.clone(),
            run_id: run_id.to_owned(),
            watch,
        }
    }

    /// What the readers of `run_id` wait on, if any reader does.
    pub(super) fn get(&self, run_id: &str) -> Option<Arc<Watch>> {
        self.lock().get(run_id).cloned()
    }
}

/// A reader's registration; unregisters when the last reader of the run drops it.
pub(super) struct Watching {
    watchers: Arc<Watchers>,
    pub(super) run_id: String,
    pub(super) watch: Arc<Watch>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        let mut watchers = self.watchers.lock();
        // Two references left: the map's and ours.
        if Arc::strong_count(&self.watch) <= 2 {
            watchers.remove(&self.run_id);
        }
    }
}
