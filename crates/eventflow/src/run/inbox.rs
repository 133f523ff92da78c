//! A run's mailbox: what steps, the handler and timers send to the driver.
//!
//! A mutex-guarded queue and a [`Notify`] rather than a tokio mpsc channel: an mpsc channel
//! allocates a 32-slot block up front (3.6 KB for our message type), which made an idle run cost
//! more than everything else in it; this queue allocates only when messages arrive, and the
//! driver takes every queued message with one lock.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::Msg;

pub(crate) struct Inbox {
    /// `None` once the driver has stopped: nothing is accepted any more.
    queue: Mutex<Option<VecDeque<Msg>>>,
    notify: Notify,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Inbox {
            queue: Mutex::new(Some(VecDeque::new())),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<VecDeque<Msg>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message for the driver; hands it back when the run has ended.
    // The error is the message itself, as with tokio's `SendError<T>`: it was moved in anyway.
    #[allow(clippy::result_large_err)]
    pub(crate) fn send(&self, message: Msg) -> Result<(), Msg> {
        match self.lock().as_mut() {
            Some(queue) => queue.push_back(message),
            None => return Err(message),
        }
        // A single consumer: `notify_one` stores a permit when the driver is not waiting yet.
        self.notify.notify_one();
        Ok(())
    }

    /// Waits until messages are queued, then moves them all into `batch` (which must be empty).
    pub(crate) async fn receive(&self, batch: &mut VecDeque<Msg>) {
        loop {
            if let Some(queue) = self.lock().as_mut()
                && !queue.is_empty()
            {
                // Swapping hands the driver the filled buffer and the queue the empty one, so
                // both allocations are reused.
                std::mem::swap(queue, batch);
                return;
            }
            self.notify.notified().await;
        }
    }

    /// Whether no message is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().as_ref().is_none_or(VecDeque::is_empty)
    }

    /// Refuses every later message and drops the queued ones (their reply channels close, so
    /// whoever waits on them learns the run has ended).
    pub(crate) fn close(&self) {
        self.lock().take();
    }
}
