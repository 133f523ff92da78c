//! The SQLite store: one file, the embedded default. Several processes may share the file;
//! SQLite's write lock makes every claim and commit atomic across them.
//!
//! Writes go to the writer thread ([`writer`]), which owns this process's write connection and
//! commits whatever writes queued up in one transaction and one fsync (group commit). A write
//! that fails (a stale lease) fails alone: writes check before they write, and one that fails
//! after writing has the batch rolled back and the others run again, each in a savepoint (no
//! timer: an idle writer takes a lone write at once). Every batch is a
//! `BEGIN IMMEDIATE` transaction, which takes the write lock before it reads anything: a claim or
//! a fencing check can never act on a state another process changed between its read and its
//! write. Reads run on a pool of reader connections ([`readers`]), which WAL lets read beside
//! the writer.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::{
    Claim, ClaimOptions, Commit, Created, EventJson, InboxMessage, Lease, LoadedRun, Mail, NewRun,
    Reopened, RunFilter, RunRecord, Sent, Store, StoreError, StoreFuture, WorkflowKey,
};

/// The database's clock, in milliseconds since the Unix epoch: workers' clocks may disagree, the
/// file's is the one all of them share.
macro_rules! now_ms {
    () => {
        "CAST(round(unixepoch('subsec') * 1000) AS INTEGER)"
    };
}

// After the macros they use.
mod claim;
mod commit;
#[cfg(test)]
mod group_commit_tests;
mod open;
mod query;
mod readers;
mod rows;
#[cfg(test)]
mod tests;
mod writer;
mod writes;

pub use open::SqliteOptions;

use readers::Readers;
use writer::Writer;

/// A [`Store`] in a SQLite file (feature `sqlite`).
///
/// Processes sharing the file claim and commit safely; [`Store::wakeups`] only signals work
/// found in this process, so workers of other processes find it by polling.
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    wakeups: broadcast::Sender<String>,
    path: PathBuf,
    options: SqliteOptions,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    fn wake(&self, run_id: &str) {
        let _ = self.wakeups.send(run_id.to_owned());
    }
}

impl Store for SqliteStore {
    fn create_run(&self, run: NewRun) -> StoreFuture<'_, Created> {
        Box::pin(async move {
            let run_id = run.run_id.clone();
            // Encoded here, on the caller's thread: the writer's time is the store's throughput.
            let start = run.start.to_string();
            let created = self
                .writer
                .write(move |conn| writes::create(conn, &run, &start))
                .await?;
            if matches!(created, Created::New(_)) {
                self.wake(&run_id);
            }
            Ok(created)
        })
    }

    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>> {
        Box::pin(async move { self.readers.read(|conn| rows::run(conn, run_id)) })
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunRecord>> {
        let readers = self.readers.clone();
        let filter = filter.clone();
        Box::pin(async move {
            // May scan every run: off the async threads.
            tokio::task::spawn_blocking(move || readers.read(|conn| rows::runs(conn, &filter)))
                .await
                .map_err(|error| StoreError::Database(Box::new(error)))?
        })
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        workflows: &'a [WorkflowKey],
    ) -> StoreFuture<'a, ()> {
        let worker = worker.to_owned();
        let workflows = crate::sql::workflows_json(workflows);
        Box::pin(
            self.writer
                .write(move |conn| writes::heartbeat(conn, &worker, &workflows)),
        )
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Vec<Claim>> {
        let worker = worker.to_owned();
        let options = options.clone();
        Box::pin(async move {
            if options.limit == 0 || options.workflows.is_empty() {
                return Ok(Vec::new());
            }
            self.writer
                .write(move |conn| claim::claim_many(conn, &worker, &options))
                .await
        })
    }

    fn claim_run<'a>(
        &'a self,
        worker: &'a str,
        run_id: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Option<Claim>> {
        let worker = worker.to_owned();
        let run_id = run_id.to_owned();
        let options = options.clone();
        Box::pin(
            self.writer
                .write(move |conn| claim::claim_one(conn, &worker, &run_id, &options)),
        )
    }

    fn load<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, LoadedRun> {
        Box::pin(async move { self.readers.snapshot(|conn| rows::load(conn, lease)) })
    }

    fn inbox<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, Vec<InboxMessage>> {
        Box::pin(async move { self.readers.snapshot(|conn| rows::unread(conn, lease)) })
    }

    fn commit<'a>(&'a self, lease: &'a Lease, commit: Commit) -> StoreFuture<'a, ()> {
        // Encoded here, on the caller's thread: the writer's time is the store's throughput.
        let prepared = commit::Prepared::new(lease.clone(), commit);
        Box::pin(async move {
            let wake = self
                .writer
                .write(move |conn| commit::commit(conn, &prepared))
                .await?;
            if wake {
                self.wake(&lease.run_id);
            }
            Ok(())
        })
    }

    fn send<'a>(&'a self, run_id: &'a str, msg_id: &'a str, mail: Mail) -> StoreFuture<'a, Sent> {
        let owned = (run_id.to_owned(), msg_id.to_owned());
        Box::pin(async move {
            let sent = self
                .writer
                .write(move |conn| writes::queue(conn, &owned.0, &owned.1, &mail))
                .await?;
            if sent == Sent::Accepted {
                self.wake(run_id);
            }
            Ok(sent)
        })
    }

    fn events_after<'a>(
        &'a self,
        run_id: &'a str,
        after: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(u64, EventJson)>> {
        Box::pin(async move {
            self.readers
                .snapshot(|conn| rows::events(conn, run_id, after, limit))
        })
    }

    fn unpark<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        let owned = run_id.to_owned();
        Box::pin(async move {
            let unparked = self
                .writer
                .write(move |conn| writes::unpark(conn, &owned))
                .await?;
            if unparked {
                self.wake(run_id);
            }
            Ok(unparked)
        })
    }

    fn purge<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        let owned = run_id.to_owned();
        Box::pin(self.writer.write(move |conn| writes::purge(conn, &owned)))
    }

    fn reopen<'a>(
        &'a self,
        run_id: &'a str,
        entry: Value,
        owner: Option<&'a str>,
    ) -> StoreFuture<'a, Reopened> {
        let owned = (run_id.to_owned(), owner.map(str::to_owned));
        Box::pin(async move {
            let reopened = self
                .writer
                .write(move |conn| writes::restart(conn, &owned.0, &entry, owned.1.as_deref()))
                .await?;
            self.wake(run_id);
            Ok(reopened)
        })
    }

    fn wakeups(&self) -> broadcast::Receiver<String> {
        self.wakeups.subscribe()
    }
}
