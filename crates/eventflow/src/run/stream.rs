//! The run's event stream: an append-only log that any number of readers follow from the start.

use std::collections::VecDeque;
use std::sync::PoisonError;

use super::sync::{Mutex, MutexGuard, Notify};
use crate::event::AnyEvent;

struct Log {
    events: Vec<AnyEvent>,
    closed: bool,
}

/// Everything a run publishes, kept so that a reader who subscribes late still sees it all.
pub(crate) struct StreamLog {
    log: Mutex<Log>,
    notify: Notify,
}

impl StreamLog {
    /// A log holding `history` already (empty for a new run, the published events of a
    /// resumed one).
    pub(crate) fn new(history: Vec<AnyEvent>) -> Self {
        StreamLog {
            log: Mutex::new(Log {
                events: history,
                closed: false,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends an event; returns false (dropping it) once the run has finished.
    pub(crate) fn push(&self, event: AnyEvent) -> bool {
        {
            let mut log = self.lock();
            if log.closed {
                return false;
            }
            log.events.push(event);
        }
        self.notify.notify_waiters();
        true
    }

    /// Appends the terminal event and closes the log: nothing is published after it.
    pub(crate) fn close_with(&self, terminal: AnyEvent) {
        {
            let mut log = self.lock();
            if log.closed {
                return;
            }
            log.events.push(terminal);
            log.closed = true;
        }
        self.notify.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Every event published so far.
    pub(crate) fn history(&self) -> Vec<AnyEvent> {
        self.lock().events.clone()
    }

    /// The events published after the first `from`.
    pub(crate) fn since(&self, from: usize) -> Vec<AnyEvent> {
        let log = self.lock();
        log.events
            .get(from..)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// Waits until more than `len` events have been published.
    pub(crate) async fn grown_beyond(&self, len: usize) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().events.len() > len {
                return;
            }
            notified.await;
        }
    }

    /// Waits until the log holds events after the first `*next`, or is closed; moves those
    /// events into `buffer` and advances `*next` past them. Returns false when the log is closed
    /// and nothing is left to read: the reader has seen everything.
    pub(crate) async fn read_after(
        &self,
        next: &mut usize,
        buffer: &mut VecDeque<AnyEvent>,
    ) -> bool {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register before reading, so a push between the read and the await wakes us.
            notified.as_mut().enable();
            let closed = {
                let log = self.lock();
                buffer.extend(log.events[*next..].iter().cloned());
                *next = log.events.len();
                log.closed
            };
            if !buffer.is_empty() {
                return true;
            }
            if closed {
                return false;
            }
            notified.await;
        }
    }
}

#[cfg(all(test, eventflow_loom))]
mod loom_model {
    //! Loom models of the stream log: every interleaving of a publisher and its readers.
    //! Run with `RUSTFLAGS="--cfg eventflow_loom" cargo test -p eventflow --lib --release loom`.

    use loom::future::block_on;
    use loom::sync::Arc;
    use loom::thread;

    use super::*;
    use crate::StopEvent;
    use crate::run::sync::check_model;

    /// An event the models can tell apart by its number.
    fn event(number: u64) -> AnyEvent {
        AnyEvent::new(StopEvent::new(number))
    }

    /// The number of an event made by [`event`].
    fn number(event: &AnyEvent) -> u64 {
        event.downcast_ref::<StopEvent>().unwrap().result().unwrap()
    }

    /// Follows the log from its start to its end as `EventStream` does.
    fn read_all(log: &StreamLog) -> Vec<u64> {
        let mut next = 0;
        let mut buffer = VecDeque::new();
        let mut seen = Vec::new();
        while block_on(log.read_after(&mut next, &mut buffer)) {
            seen.extend(buffer.drain(..).map(|e| number(&e)));
        }
        seen
    }

    /// A reader racing the publisher (and one who subscribes while it publishes) sees the
    /// history, every published event and the terminal one, in order, exactly once, and then
    /// the end — a lost wake-up deadlocks the model.
    #[test]
    fn loom_readers_see_every_event_in_order_once_then_the_end() {
        check_model(|| {
            let log = Arc::new(StreamLog::new(vec![event(1)]));
            let publisher = {
                let log = log.clone();
                thread::spawn(move || {
                    assert!(log.push(event(2)));
                    log.close_with(event(3));
                    assert!(!log.push(event(4)), "nothing after the terminal event");
                })
            };
            let reader = {
                let log = log.clone();
                thread::spawn(move || read_all(&log))
            };
            assert_eq!(read_all(&log), [1, 2, 3]);
            assert_eq!(reader.join().unwrap(), [1, 2, 3]);
            publisher.join().unwrap();
            assert_eq!(
                log.history().iter().map(number).collect::<Vec<_>>(),
                [1, 2, 3]
            );
        });
    }

    /// The durable driver waits for events to persist with `grown_beyond`: a push from a step
    /// wakes it, however the two interleave.
    #[test]
    fn loom_a_push_wakes_a_driver_waiting_for_the_log_to_grow() {
        check_model(|| {
            let log = Arc::new(StreamLog::new(Vec::new()));
            let step = {
                let log = log.clone();
                thread::spawn(move || assert!(log.push(event(1))))
            };
            block_on(log.grown_beyond(0));
            assert_eq!(log.since(0).iter().map(number).collect::<Vec<_>>(), [1]);
            step.join().unwrap();
        });
    }
}
