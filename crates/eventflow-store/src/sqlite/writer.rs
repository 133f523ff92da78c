//! The writer: one thread that owns this process's write connection and runs every write of the
//! store, in batches — group commit.
//!
//! Callers queue a write and await its outcome. The thread takes whatever is queued (up to
//! [`MAX_BATCH`] writes) and runs it as one `BEGIN IMMEDIATE` transaction and one `COMMIT` — one
//! fsync of the WAL for the whole batch with `synchronous=FULL`. A write arriving at an idle
//! writer is a batch of one and goes at once; while a batch is on its way to the disk, the next
//! one gathers. Each caller hears of its write only after the `COMMIT` that covers it, so an
//! acknowledged write is as durable as one in a transaction of its own.
//!
//! A write that fails must fail alone. The writes check before they write (a commit's fencing
//! update is its first statement, and matches no row under a stale lease), so one that fails
//! has almost always written nothing, which SQLite's change counter confirms: the batch goes on.
//! One that failed after writing (a database error midway) is undone by rolling the transaction
//! back; the batch's earlier writes then run again, each in a savepoint of its own, so that any
//! later failure rolls back to its savepoint alone. Savepoints are not the rule because they
//! cost: SQLite copies every page a write touches into a sub-journal first.
//!
//! A thread rather than a task: SQLite calls block (on the disk, on another process's lock), and
//! the statements of a whole batch then cost no thread hop each, only the one to hand a write
//! over and the wake-up of its caller.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::query::{batch_failed, exec};
use crate::StoreError;

/// The most writes in one transaction: bounds how long the first of them waits for the batch's
/// `COMMIT`, and how long the file's write lock is held against other processes.
pub(super) const MAX_BATCH: usize = 256;

/// The handle of the writer thread; dropping it lets the thread finish the queued writes and
/// waits for it to close the connection.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Stats>,
}

/// What the writer did, for tests and diagnostics.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Writes queued.
    pub(super) queued: AtomicU64,
    /// Transactions committed or failed.
    pub(super) batches: AtomicU64,
}

impl Writer {
    /// Starts the writer thread over `conn`.
    pub(super) fn spawn(conn: Connection) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("eventflow-sqlite-writer".into())
            .spawn(move || run(&conn, &jobs, &thread_stats))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            stats,
        })
    }

    /// Runs `op` in the next batch; its outcome once the batch's transaction has committed (or
    /// the batch's error, if the transaction failed as a whole).
    /// `op` may run more than once (see the module's doc): only the last run's writes stay.
    pub(super) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, outcome) = oneshot::channel();
        let job = Box::new(Write {
            op,
            outcome: None,
            reply,
        });
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        let sent = self.queue.as_ref().map(|queue| queue.send(job));
        if !matches!(sent, Some(Ok(()))) {
            return Err(stopped());
        }
        // `op` comes back to be dropped here, with the values it owns.
        outcome
            .await
            .map_or_else(|_| Err(stopped()), |(outcome, _op)| outcome)
    }

    /// What the writer did so far.
    #[cfg(test)]
    pub(super) fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // The thread ends once the queue is empty; waiting closes the file before the store
            // is gone, so that whoever opens it next finds no connection of ours.
            let _ = thread.join();
        }
    }
}

/// The writer thread stopped (it panicked): writes cannot go through any more.
fn stopped() -> StoreError {
    StoreError::Database("the SQLite writer thread stopped".into())
}

/// One queued write: run in a batch, then answered.
trait Job: Send {
    /// Runs the write on the batch's connection; whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;

    /// Answers the caller: with the write's own outcome, or with `failed` (the batch's error)
    /// when the write succeeded but its batch did not commit.
    fn answer(self: Box<Self>, failed: Option<StoreError>);
}

struct Write<T, F> {
    op: F,
    outcome: Option<Result<T, StoreError>>,
    /// The outcome goes back with `op`, so that what `op` owns (a commit's encoded entries) is
    /// freed on the caller's thread: glibc frees memory of another thread's arena under a lock,
    /// which cost the writer a fifth of its time.
    reply: oneshot::Sender<(Result<T, StoreError>, F)>,
}

impl<T, F> Job for Write<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let outcome = (self.op)(conn);
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(self: Box<Self>, failed: Option<StoreError>) {
        let Write { op, outcome, reply } = *self;
        let outcome = match (outcome, failed) {
            (Some(Ok(_)), Some(failed)) => Err(failed),
            (Some(outcome), _) => outcome,
            (None, failed) => Err(failed.unwrap_or_else(stopped)),
        };
        // A caller that stopped waiting (its future dropped) still had its write applied.
        let _ = reply.send((outcome, op));
    }
}

/// The writer thread: batches until the store is dropped.
fn run(conn: &Connection, jobs: &mpsc::Receiver<Box<dyn Job>>, stats: &Stats) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Blocks while idle; then takes what queued up meanwhile, without waiting for more.
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        // A panicking write must not take the store down with it: its batch is dropped (every
        // caller of it hears that the write did not happen) and rolled back, and the writer
        // goes on with the next one.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_batch(conn, &mut batch);
        }));
        if ran.is_err() {
            batch.clear();
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
}

/// Runs `batch` in one transaction and answers every write of it; leaves `batch` empty.
fn run_batch(conn: &Connection, batch: &mut Vec<Box<dyn Job>>) {
    let mut pending: VecDeque<Box<dyn Job>> = batch.drain(..).collect();
    let mut done: Vec<Box<dyn Job>> = Vec::with_capacity(pending.len());
    // Once a write failed after writing, every write of the batch gets a savepoint.
    let mut careful = false;
    if !begin(conn, &mut pending) {
        return;
    }
    while let Some(mut job) = pending.pop_front() {
        let changes = conn.total_changes();
        let ok = if careful {
            match in_savepoint(conn, job.as_mut()) {
                Some(ok) => ok,
                None => {
                    // The write could not be isolated (no savepoint, or no rollback to it): undo
                    // the whole transaction, fail its writes (nothing was acknowledged), and go on
                    // with the rest in a new one.
                    if !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                    job.answer(Some(lost_batch("a write could not be isolated")));
                    for job in done.drain(..) {
                        job.answer(Some(lost_batch("a write could not be isolated")));
                    }
                    if !begin(conn, &mut pending) {
                        return;
                    }
                    continue;
                }
            }
        } else {
            job.run(conn)
        };
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full disk), and the
            // batch's earlier writes with it: fail them, go on with the rest in a new one.
            job.answer(Some(lost_batch("SQLite rolled the transaction back")));
            for job in done.drain(..) {
                job.answer(Some(lost_batch("SQLite rolled the transaction back")));
            }
            if !begin(conn, &mut pending) {
                return;
            }
            continue;
        }
        if ok || careful || conn.total_changes() == changes {
            done.push(job);
            continue;
        }
        // The write failed after writing: undo the transaction, answer it (its own error), and
        // run the batch's earlier writes again, carefully.
        let _ = conn.execute_batch("ROLLBACK");
        job.answer(None);
        careful = true;
        for job in done.drain(..).rev() {
            pending.push_front(job);
        }
        if !begin(conn, &mut pending) {
            return;
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for job in done {
                job.answer(None);
            }
        }
        Err(error) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            for job in done {
                job.answer(Some(batch_failed(&error)));
            }
        }
    }
}

/// Starts the batch's transaction; false (with every pending write failed) when it cannot.
fn begin(conn: &Connection, pending: &mut VecDeque<Box<dyn Job>>) -> bool {
    if !conn.is_autocommit() {
        // A rollback that failed left a transaction open: nothing of it was acknowledged.
        let _ = conn.execute_batch("ROLLBACK");
    }
    match conn.execute_batch("BEGIN IMMEDIATE") {
        Ok(()) => true,
        Err(error) => {
            for job in pending.drain(..) {
                job.answer(Some(batch_failed(&error)));
            }
            false
        }
    }
}

/// Runs `job` in a savepoint, rolled back if it fails; whether it succeeded, or `None` when a
/// failed write could not be undone alone (the savepoint did not open, or rolling back to it
/// failed) and the transaction holds what it wrote.
fn in_savepoint(conn: &Connection, job: &mut dyn Job) -> Option<bool> {
    exec(conn, "SAVEPOINT write", []).ok()?;
    let ok = job.run(conn);
    if conn.is_autocommit() {
        return Some(ok);
    }
    if !ok {
        exec(conn, "ROLLBACK TO write", []).ok()?;
    }
    let _ = exec(conn, "RELEASE write", []);
    Some(ok)
}

/// The error of a write whose batch was rolled back before its `COMMIT`: transient, the write
/// may be tried again.
fn lost_batch(why: &str) -> StoreError {
    StoreError::Database(format!("the batch was rolled back: {why}").into())
}
