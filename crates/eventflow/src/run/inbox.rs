//! A run's mailbox: what steps, the handler and timers send to the driver.
//!
//! A mutex-guarded queue and a [`Notify`] rather than a tokio mpsc channel: an mpsc channel
//! allocates a 32-slot block up front (3.6 KB for our message type), which made an idle run cost
//! more than everything else in it; this queue allocates only when messages arrive, and the
//! driver takes every queued message with one lock.

use std::collections::VecDeque;
use std::sync::PoisonError;

use super::message::Msg;
use super::sync::{Mutex, MutexGuard, Notify};

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

#[cfg(all(test, eventflow_loom))]
mod loom_model {
    //! Loom models of the mailbox: every interleaving of a few senders and the driver.
    //! Run with `RUSTFLAGS="--cfg eventflow_loom" cargo test -p eventflow --lib --release loom`.

    use loom::future::block_on;
    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::run::Tick;
    use crate::run::sync::check_model;

    /// A message the models can tell apart by its number.
    fn message(number: u64) -> Msg {
        Msg::Tick(Tick::RetryDue { timer: number })
    }

    /// The number of a message made by [`message`].
    fn number(message: &Msg) -> u64 {
        match message {
            Msg::Tick(Tick::RetryDue { timer }) => *timer,
            _ => unreachable!("the models send only numbered messages"),
        }
    }

    /// Two senders race the driver, which waits on an empty mailbox between batches: it is
    /// woken for every message (a lost wake-up deadlocks the model), receives each exactly
    /// once, and each sender's messages in the order sent.
    #[test]
    fn loom_concurrent_sends_are_each_received_once_in_order() {
        check_model(|| {
            let inbox = Arc::new(Inbox::new());
            let first = {
                let inbox = inbox.clone();
                thread::spawn(move || {
                    assert!(inbox.send(message(1)).is_ok());
                    assert!(inbox.send(message(2)).is_ok());
                })
            };
            let second = {
                let inbox = inbox.clone();
                thread::spawn(move || assert!(inbox.send(message(3)).is_ok()))
            };
            let mut received = Vec::new();
            let mut batch = VecDeque::new();
            while received.len() < 3 {
                block_on(inbox.receive(&mut batch));
                assert!(!batch.is_empty(), "receive returns only with messages");
                received.extend(batch.drain(..).map(|m| number(&m)));
            }
            first.join().unwrap();
            second.join().unwrap();
            assert!(inbox.is_empty());
            let position = |n| received.iter().position(|&m| m == n).unwrap();
            assert!(
                position(1) < position(2),
                "one sender's order: {received:?}"
            );
            let mut sorted = received.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [1, 2, 3], "each message once: {received:?}");
        });
    }

    /// A sender races the driver stopping: each message is received, or handed back to the
    /// sender, or dropped by `close` (which closes its reply channel so its waiter learns the
    /// run ended) — never silently kept, and nothing is accepted after `close`.
    #[test]
    fn loom_a_send_racing_close_is_received_refused_or_dropped() {
        check_model(|| {
            let inbox = Arc::new(Inbox::new());
            let (reply, mut replied) = tokio::sync::oneshot::channel();
            let sender = {
                let inbox = inbox.clone();
                thread::spawn(move || {
                    assert!(inbox.send(message(1)).is_ok());
                    inbox.send(Msg::Snapshot(reply)).err()
                })
            };
            let mut batch = VecDeque::new();
            block_on(inbox.receive(&mut batch));
            inbox.close();
            let refused = sender.join().unwrap();
            assert_eq!(batch.front().map(number), Some(1));
            let received = batch.iter().any(|m| matches!(m, Msg::Snapshot(_)));
            let dropped = matches!(
                replied.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed)
            ) && refused.is_none();
            assert_eq!(
                u8::from(received) + u8::from(refused.is_some()) + u8::from(dropped),
                1,
                "received {received}, refused {}, dropped {dropped}",
                refused.is_some()
            );
            assert!(inbox.send(message(2)).is_err(), "closed for good");
            assert!(inbox.is_empty());
        });
    }
}
