//! Running SQL on a connection: cached prepared statements (parsed once per connection, so a
//! commit does not re-parse its statements), and how SQLite's errors become [`StoreError`]s —
//! by result code, as the Postgres backend's are by SQLSTATE (see `sql::may_pass`).

use rusqlite::{Connection, Error, OptionalExtension, Params, Row};

use crate::StoreError;
use crate::sql::may_pass;

/// Runs a statement; the number of rows it changed.
pub(super) fn exec(conn: &Connection, sql: &str, params: impl Params) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute(params))
        .map_err(db)
}

/// The first row of a query, read by `read`; `None` when it returns none.
pub(super) fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.query_row(params, read).optional())
        .map_err(db)
}

/// Every row of a query, each read by `read`.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut read: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| {
            statement
                .query_map(params, |row| read(row))?
                .collect::<rusqlite::Result<Vec<T>>>()
        })
        .map_err(db)
}

/// Values that do not decode are data this version did not write; busy, locked, I/O, full and
/// cannot-open may pass, so the operation may be retried; anything else SQLite refuses, and
/// every error rusqlite raises itself, will be refused again.
pub(super) fn db(error: Error) -> StoreError {
    match error {
        Error::FromSqlConversionFailure(..)
        | Error::IntegralValueOutOfRange(..)
        | Error::InvalidColumnType(..)
        | Error::InvalidColumnName(_)
        | Error::InvalidColumnIndex(_)
        | Error::Utf8Error(_) => StoreError::Corrupt(error.to_string()),
        Error::SqliteFailure(failure, _) => {
            if may_pass(Some(&failure.extended_code.to_string())) {
                StoreError::Database(Box::new(error))
            } else {
                StoreError::Refused(Box::new(error))
            }
        }
        // The rest (a parameter that does not convert, a statement that is not one) are
        // mistakes retrying repeats.
        error => StoreError::Refused(Box::new(error)),
    }
}

/// The error of a batch that failed as a whole (its `BEGIN` or `COMMIT`), once for each write
/// of it: neither [`Error`] nor [`StoreError`] can be cloned.
pub(super) fn batch_failed(error: &Error) -> StoreError {
    match error {
        Error::SqliteFailure(failure, message) => {
            db(Error::SqliteFailure(*failure, message.clone()))
        }
        other => StoreError::Database(other.to_string().into()),
    }
}
