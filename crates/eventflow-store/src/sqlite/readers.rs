//! The reader connections: reads run on a small pool of connections of their own, beside the
//! writer's. In WAL mode a reader never waits for the writer (nor the writer for readers), and
//! sees every transaction committed before its read began — every write acknowledged so far.
//!
//! A read runs on the calling task's thread: a point read of an indexed row takes microseconds,
//! less than a hop to another thread and back would. Reads that may scan many rows
//! (`list_runs`) go to tokio's blocking pool instead.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use super::SqliteOptions;
use super::open::connect;
use super::query::db;
use crate::StoreError;

/// Idle reader connections, opened on demand.
pub(super) struct Readers {
    idle: Mutex<Vec<Connection>>,
    /// How many idle connections are kept; a burst of reads beyond it opens more, closed after.
    keep: usize,
    path: PathBuf,
    options: SqliteOptions,
}

impl Readers {
    /// A pool keeping up to `keep` connections to the file at `path`; `first` is one of them.
    pub(super) fn new(
        first: Connection,
        keep: usize,
        path: PathBuf,
        options: SqliteOptions,
    ) -> Readers {
        Readers {
            idle: Mutex::new(vec![first]),
            keep: keep.max(1),
            path,
            options,
        }
    }

    /// Runs `read` on a reader connection. A read transaction `read` leaves open is rolled back.
    pub(super) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path, &self.options).map_err(db)?,
        };
        let outcome = read(&conn);
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return outcome;
        }
        let mut idle = self.lock();
        if idle.len() < self.keep {
            idle.push(conn);
        }
        outcome
    }

    /// Runs `read` in one read transaction, so that its statements see the same moment.
    pub(super) fn snapshot<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.read(|conn| {
            conn.execute_batch("BEGIN").map_err(db)?;
            let outcome = read(conn)?;
            conn.execute_batch("COMMIT").map_err(db)?;
            Ok(outcome)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic while holding the lock leaves the vector whole.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
