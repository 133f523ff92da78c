//! Opening the file: its options, the schema's migration, and the connections the store keeps.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tokio::sync::broadcast;

use super::SqliteStore;
use super::query::db;
use super::readers::Readers;
use super::writer::Writer;
use crate::StoreError;

/// How a [`SqliteStore`] opens its file.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Use `synchronous=NORMAL` instead of `FULL`: commits no longer wait for the disk, which is
    /// much faster, but a power loss or OS crash may lose the last commits (a crash of the process
    /// alone loses nothing). `create_run` then no longer guarantees durability when it returns.
    /// Off by default.
    pub synchronous_normal: bool,
    /// How long a write waits for another process holding the write lock before failing with a
    /// (transient) [`StoreError::Database`]. 10 seconds by default.
    pub busy_timeout: Duration,
    /// How many connections this process keeps open to the file: one for the writer, the rest
    /// for reads (at least one; a burst of reads beyond them opens more for a moment). 8 by
    /// default.
    pub max_connections: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_normal: false,
            busy_timeout: Duration::from_secs(10),
            max_connections: 8,
        }
    }
}

/// How often [`SqliteStore::open_with`] tries: processes opening a new file at once race to
/// switch it to WAL (a lock the busy timeout does not wait for) and to migrate it.
const OPEN_ATTEMPTS: u32 = 8;

/// How many prepared statements each connection keeps parsed: more than the store has.
const STATEMENT_CACHE: usize = 64;

impl SqliteStore {
    /// Opens the store in the file at `path`, creating it if missing, with the default
    /// `SqliteOptions` (`synchronous=FULL`: a returned write survives a power loss).
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens the store in the file at `path` with `options`, creating the file if missing and
    /// bringing its schema up to date.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        check_folder(&path)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_open(&path, &options).await {
                Ok(store) => return Ok(store),
                Err(error) if attempt >= OPEN_ATTEMPTS => return Err(error),
                Err(_) => {
                    let jitter = fastrand::u64(0..50);
                    tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt) + jitter))
                        .await;
                }
            }
        }
    }

    async fn try_open(path: &Path, options: &SqliteOptions) -> Result<SqliteStore, StoreError> {
        migrate(path, options).await?;
        let writer = Writer::spawn(connect(path, options).map_err(db)?)
            .map_err(|error| StoreError::Database(Box::new(error)))?;
        let keep = usize::try_from(options.max_connections.saturating_sub(1)).unwrap_or(1);
        let first_reader = connect(path, options).map_err(db)?;
        Ok(SqliteStore {
            writer,
            readers: Arc::new(Readers::new(
                first_reader,
                keep,
                path.to_path_buf(),
                options.clone(),
            )),
            wakeups: broadcast::channel(1024).0,
            path: path.to_path_buf(),
            options: options.clone(),
        })
    }
}

/// SQLite creates a missing file but not its folder, and says only "unable to open database
/// file" (retrying will not help either): name the folder instead.
fn check_folder(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(folder)
            if !folder.as_os_str().is_empty() && matches!(folder.try_exists(), Ok(false)) =>
        {
            Err(StoreError::MissingFolder {
                folder: folder.to_path_buf(),
            })
        }
        _ => Ok(()),
    }
}

/// Creates the file if missing, switches it to WAL and brings its schema up to date, with
/// sqlx's migrator: the same migrations and the same bookkeeping table (`_sqlx_migrations`) as
/// every earlier version, so files they wrote open, and they open files this one writes.
async fn migrate(path: &Path, options: &SqliteOptions) -> Result<(), StoreError> {
    let connect = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(options.busy_timeout)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(connect)
        .await
        .map_err(crate::sql::db)?;
    let migrated = sqlx::migrate!("./migrations/sqlite").run(&pool).await;
    pool.close().await;
    migrated.map_err(crate::sql::migrate_error)
}

/// A connection to the migrated file at `path`: WAL (the file's mode, set by [`migrate`]),
/// `synchronous` as the options say, the busy timeout, foreign keys, and a statement cache.
pub(super) fn connect(path: &Path, options: &SqliteOptions) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(options.busy_timeout)?;
    let synchronous = if options.synchronous_normal {
        "NORMAL"
    } else {
        "FULL"
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}
