//! Wake-ups across processes: the channel a schema's stores notify, and the task that listens
//! on it.

use std::hash::Hasher;
use std::time::Duration;

use fnv::FnvHasher;
use sqlx::PgConnection;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::broadcast;

use super::{CHANNEL, MAX_IDENTIFIER, PostgresStore, db};
use crate::StoreError;

/// Postgres rejects longer notification payloads (8000 bytes); longer run ids are not signalled.
const MAX_PAYLOAD: usize = 7999;

impl PostgresStore {
    /// Notifies other stores, once `conn`'s transaction commits, that `run_id` has work.
    pub(super) async fn notify(
        &self,
        conn: &mut PgConnection,
        run_id: &str,
    ) -> Result<(), StoreError> {
        let payload = format!("{}:{run_id}", self.instance);
        if payload.len() > MAX_PAYLOAD {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(payload)
            .execute(conn)
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// The notification channel of `schema`: its name when short enough, else a hash of it.
pub(super) fn schema_channel(schema: &str) -> String {
    let channel = format!("{CHANNEL}_{schema}");
    if channel.len() <= MAX_IDENTIFIER {
        return channel;
    }
    // FNV-1a of the name's bytes (`write`, not `Hash::hash`, which would add a terminator):
    // stable across processes and versions, unlike `std`'s hasher.
    let mut hasher = FnvHasher::default();
    hasher.write(schema.as_bytes());
    format!("{CHANNEL}_{:016x}", hasher.finish())
}

pub(super) async fn new_listener(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Forwards the run ids notified by other stores to `wakeups`, until aborted. `PgListener`
/// reconnects by itself after most connection losses; on any other error the listener is
/// replaced, retrying with a growing pause while the database is unreachable.
pub(super) async fn listen(
    mut listener: PgListener,
    pool: PgPool,
    channel: String,
    instance: String,
    wakeups: broadcast::Sender<String>,
) {
    loop {
        match listener.recv().await {
            Ok(notification) => {
                if let Some(run_id) = foreign_run_id(notification.payload(), &instance) {
                    let _ = wakeups.send(run_id.to_owned());
                }
            }
            Err(error) => {
                tracing::warn!(%error, channel = %channel, "eventflow: the Postgres wake-up listener failed; reconnecting");
                let mut pause = Duration::from_millis(250);
                loop {
                    tokio::time::sleep(pause).await;
                    match new_listener(&pool, &channel).await {
                        Ok(fresh) => {
                            listener = fresh;
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(%error, channel = %channel, "eventflow: cannot listen for Postgres wake-ups; retrying");
                            pause = (pause * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        }
    }
}

/// The run id of a notification `{instance}:{run_id}`, unless it came from this store (which
/// signalled it already). A payload without an instance tag is a bare run id.
pub(super) fn foreign_run_id<'a>(payload: &'a str, instance: &str) -> Option<&'a str> {
    match payload.split_once(':') {
        Some((from, run_id)) if from.len() == 32 && from.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (from != instance).then_some(run_id)
        }
        _ => Some(payload),
    }
}
