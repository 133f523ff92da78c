//! The run's event stream: an append-only log that any number of readers follow from the start.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};

use futures::Stream;
use futures::stream::BoxStream;
use tokio::sync::Notify;

use crate::event::AnyEvent;
use crate::run::RunShared;

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

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
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
}

/// Where a reader is.
struct Cursor {
    run: Arc<RunShared>,
    next: usize,
    buffer: VecDeque<AnyEvent>,
}

/// A stream of the events a run publishes, from its first event to its terminal one.
///
/// Each reader gets every event, in order, whenever it subscribed; the last item is the run's
/// terminal event (its stop event, or the event of a failure, timeout or cancellation), after
/// which the stream ends.
pub struct EventStream {
    inner: BoxStream<'static, AnyEvent>,
}

impl EventStream {
    pub(crate) fn follow(run: Arc<RunShared>) -> Self {
        let cursor = Cursor {
            run,
            next: 0,
            buffer: VecDeque::new(),
        };
        let inner = futures::stream::unfold(cursor, |mut cursor| async move {
            loop {
                if let Some(event) = cursor.buffer.pop_front() {
                    return Some((event, cursor));
                }
                let stream = &cursor.run.stream;
                let notified = stream.notify.notified();
                tokio::pin!(notified);
                // Register before reading, so a push between the read and the await wakes us.
                notified.as_mut().enable();
                let closed = {
                    let log = stream.lock();
                    cursor
                        .buffer
                        .extend(log.events[cursor.next..].iter().cloned());
                    cursor.next = log.events.len();
                    log.closed
                };
                if cursor.buffer.is_empty() {
                    if closed {
                        return None;
                    }
                    notified.await;
                }
            }
        });
        EventStream {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for EventStream {
    type Item = AnyEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<AnyEvent>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}
