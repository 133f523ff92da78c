//! The locks and wake-ups of the run's mailbox and stream log, swappable for loom's.
//!
//! Normally these are `std`'s mutex and tokio's [`Notify`]. Under
//! `cfg(all(test, eventflow_loom))` they are loom's mutex and a [`Notify`] built on it, so the
//! loom models in `inbox.rs` and `stream.rs` explore every interleaving of the hand-written
//! queue/log logic: a lost wake-up shows up there as a deadlock, a lost or duplicated message as
//! a failed assertion. Nothing changes outside loom builds.
//!
//! tokio's own `Notify` cannot take part in a loom model (it is loom-aware only inside tokio's
//! test suite), so the loom one reimplements the documented semantics the callers rely on:
//! `notify_one` wakes one enabled waiter or stores a single permit; `notify_waiters` wakes every
//! `Notified` future *created* before the call (enabled or not) and stores nothing; `enable`
//! takes a stored permit; a dropped future that was chosen by `notify_one` passes the
//! notification on.

#[cfg(not(all(test, eventflow_loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard};
#[cfg(not(all(test, eventflow_loom)))]
pub(crate) use tokio::sync::Notify;

#[cfg(all(test, eventflow_loom))]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(all(test, eventflow_loom))]
pub(crate) use model::Notify;

/// Runs a loom model with at most two preemptions per execution unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise: the models then take about a second, where the unbounded search takes more
/// than twenty minutes (three preemptions take about 35 s). The mutations the models were checked
/// against (a lost wake-up, a cleared queue, a cursor that does not advance) fail at two.
#[cfg(all(test, eventflow_loom))]
pub(crate) fn check_model(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(model);
}

#[cfg(all(test, eventflow_loom))]
mod model {
    //! tokio's `Notify` contract over a loom mutex (see the module above).

    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use loom::sync::{Mutex, MutexGuard};

    /// A loom-visible stand-in for `tokio::sync::Notify`.
    pub(crate) struct Notify {
        state: Mutex<State>,
    }

    /// Everything the notify holds, under one loom mutex so that loom sees every access.
    #[derive(Default)]
    struct State {
        /// A `notify_one` that found no enabled waiter.
        permit: bool,
        /// How many times `notify_waiters` was called: a future created before a call is woken
        /// by it.
        calls: u64,
        /// Enabled futures, oldest first (`notify_one` picks the oldest not yet picked).
        waiters: Vec<Waiter>,
        /// The id of the next enabled future.
        next_id: u64,
    }

    /// An enabled `Notified` future.
    struct Waiter {
        /// Which future it is.
        id: u64,
        /// Its task's waker, once polled (taken when woken).
        waker: Option<Waker>,
        /// Picked by `notify_one`; the future completes at its next poll.
        notified: bool,
    }

    impl Notify {
        /// A notify with no permit and no waiter.
        pub(crate) fn new() -> Self {
            Notify {
                state: Mutex::new(State::default()),
            }
        }

        /// The state; no model panics while holding it, so it is never poisoned.
        fn lock(&self) -> MutexGuard<'_, State> {
            self.state
                .lock()
                .expect("no model thread panics holding it")
        }

        /// Wakes the oldest enabled waiter not yet picked, or stores a permit.
        pub(crate) fn notify_one(&self) {
            let mut state = self.lock();
            match state.waiters.iter_mut().find(|waiter| !waiter.notified) {
                Some(waiter) => {
                    waiter.notified = true;
                    if let Some(waker) = waiter.waker.take() {
                        waker.wake();
                    }
                }
                None => state.permit = true,
            }
        }

        /// Wakes every future created before this call; stores nothing.
        pub(crate) fn notify_waiters(&self) {
            let mut state = self.lock();
            state.calls += 1;
            for waiter in &mut state.waiters {
                if let Some(waker) = waiter.waker.take() {
                    waker.wake();
                }
            }
        }

        /// A future woken by a later `notify_waiters`, or by `notify_one` once enabled.
        pub(crate) fn notified(&self) -> Notified<'_> {
            let calls = self.lock().calls;
            Notified {
                notify: self,
                calls,
                id: None,
                done: false,
            }
        }
    }

    /// The future of [`Notify::notified`].
    pub(crate) struct Notified<'a> {
        /// The notify it waits on.
        notify: &'a Notify,
        /// `notify_waiters` calls seen at creation.
        calls: u64,
        /// Set once enabled (registered as a waiter).
        id: Option<u64>,
        /// Completed: later polls return at once.
        done: bool,
    }

    impl Notified<'_> {
        /// Registers the future so that `notify_one` can pick it before its first poll.
        pub(crate) fn enable(self: Pin<&mut Self>) {
            self.get_mut().check(None);
        }

        /// Whether the future is notified; if not, it is registered (with `waker` if given).
        fn check(&mut self, waker: Option<&Waker>) -> bool {
            if self.done {
                return true;
            }
            let mut state = self.notify.lock();
            let position = self
                .id
                .and_then(|id| state.waiters.iter().position(|w| w.id == id));
            let picked = position.is_some_and(|at| state.waiters[at].notified);
            if state.calls != self.calls || picked {
                if let Some(at) = position {
                    state.waiters.remove(at);
                }
                self.done = true;
                return true;
            }
            match position {
                Some(at) => {
                    if let Some(waker) = waker {
                        state.waiters[at].waker = Some(waker.clone());
                    }
                }
                None if state.permit => {
                    state.permit = false;
                    self.done = true;
                    return true;
                }
                None => {
                    let id = state.next_id;
                    state.next_id += 1;
                    state.waiters.push(Waiter {
                        id,
                        waker: waker.cloned(),
                        notified: false,
                    });
                    self.id = Some(id);
                }
            }
            false
        }
    }

    impl Future for Notified<'_> {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.get_mut().check(Some(cx.waker())) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    impl Drop for Notified<'_> {
        fn drop(&mut self) {
            let (Some(id), false) = (self.id, self.done) else {
                return;
            };
            let mut state = self.notify.lock();
            let Some(at) = state.waiters.iter().position(|w| w.id == id) else {
                return;
            };
            let waiter = state.waiters.remove(at);
            drop(state);
            if waiter.notified {
                // Picked by `notify_one` but never completed: hand the wake-up on, as tokio does.
                self.notify.notify_one();
            }
        }
    }
}
