//! The in-memory store: one process, nothing survives it. For tests and for runs that need the
//! durable engine's semantics (leases, inbox, sequenced events) without a file.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use serde_json::Value;

use crate::EventJson;
use tokio::sync::broadcast;

use super::{
    Claim, ClaimOptions, Commit, CommitEnd, Created, InboxMessage, Lease, LoadedRun, Mail, NewRun,
    Reopened, RunFilter, RunRecord, RunStatus, Sent, Store, StoreError, StoreFuture, WorkflowKey,
    millis,
};

/// A [`Store`] in this process's memory.
pub struct MemoryStore {
    tables: Mutex<Tables>,
    wakeups: broadcast::Sender<String>,
}

#[derive(Default)]
struct Tables {
    runs: BTreeMap<String, RunRow>,
    /// Run ids in creation order, for listing oldest first.
    order: Vec<String>,
    idempotency: HashMap<String, String>,
    workers: HashMap<String, i64>,
    next_inbox_id: i64,
}

struct RunRow {
    record: RunRecord,
    wake_at_ms: Option<i64>,
    last_journal_seq: u64,
    journal: BTreeMap<u64, Value>,
    snapshot: Option<(u64, Value)>,
    inbox: Vec<(InboxMessage, bool)>,
    events: Vec<(u64, EventJson)>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("runs", &self.tables().runs.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            tables: Mutex::new(Tables {
                next_inbox_id: 1,
                ..Tables::default()
            }),
            wakeups: broadcast::channel(1024).0,
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self, run_id: &str) {
        let _ = self.wakeups.send(run_id.to_owned());
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Tables {
    fn owned<'a>(&'a mut self, lease: &Lease) -> Result<&'a mut RunRow, StoreError> {
        let fenced = || StoreError::fenced(lease);
        let row = self.runs.get_mut(&lease.run_id).ok_or_else(fenced)?;
        if row.record.owner.as_deref() != Some(lease.owner.as_str())
            || row.record.epoch != lease.epoch
        {
            return Err(fenced());
        }
        Ok(row)
    }

    fn owner_alive(&self, owner: &str, now: i64, ttl: Duration) -> bool {
        self.workers
            .get(owner)
            .is_some_and(|beat| now - beat <= millis(ttl))
    }

    /// Claims the run if claimable; parks it when it has been recovered too often.
    fn try_claim(
        &mut self,
        run_id: &str,
        worker: &str,
        options: &ClaimOptions,
        now: i64,
    ) -> Option<Claim> {
        let row = self.runs.get(run_id)?;
        let recovered = match row.record.status {
            RunStatus::Running => match &row.record.owner {
                None => false,
                Some(owner) if self.owner_alive(owner, now, options.lease_ttl) => return None,
                Some(_) => true,
            },
            RunStatus::Waiting if row.wake_at_ms.is_some_and(|at| at <= now) => false,
            _ => return None,
        };
        let row = self.runs.get_mut(run_id)?;
        let record = &mut row.record;
        record.epoch += 1;
        record.updated_at_ms = now;
        if recovered {
            record.recoveries += 1;
            if record.recoveries > options.max_recoveries {
                record.status = RunStatus::Parked;
                record.owner = None;
                record.error = Some(options.parking_reason());
                return None;
            }
        }
        record.status = RunStatus::Running;
        record.owner = Some(worker.to_owned());
        row.wake_at_ms = None;
        Some(Claim {
            lease: Lease {
                run_id: run_id.to_owned(),
                owner: worker.to_owned(),
                epoch: record.epoch,
            },
            recovered,
        })
    }
}

fn ready<'a, T: Send + 'a>(result: Result<T, StoreError>) -> StoreFuture<'a, T> {
    futures::future::ready(result).boxed()
}

impl Store for MemoryStore {
    fn create_run(&self, run: NewRun) -> StoreFuture<'_, Created> {
        let mut tables = self.tables();
        if let Some(key) = &run.idempotency_key
            && let Some(existing) = tables.idempotency.get(key)
        {
            return ready(Ok(Created::Existing(existing.clone())));
        }
        if tables.runs.contains_key(&run.run_id) {
            return ready(Err(StoreError::DuplicateRun { run_id: run.run_id }));
        }
        let now = now_ms();
        let lease = run.owner.as_ref().map(|owner| Lease {
            run_id: run.run_id.clone(),
            owner: owner.clone(),
            epoch: 1,
        });
        let record = RunRecord {
            run_id: run.run_id.clone(),
            workflow: run.workflow,
            status: RunStatus::Running,
            owner: run.owner,
            epoch: 1,
            recoveries: 0,
            idempotency_key: run.idempotency_key.clone(),
            result: None,
            error: None,
            last_event_seq: 0,
            created_at_ms: now,
            updated_at_ms: now,
        };
        if let Some(key) = run.idempotency_key {
            tables.idempotency.insert(key, run.run_id.clone());
        }
        tables.order.push(run.run_id.clone());
        tables.runs.insert(
            run.run_id.clone(),
            RunRow {
                record,
                wake_at_ms: None,
                last_journal_seq: 1,
                journal: BTreeMap::from([(1, run.start)]),
                snapshot: None,
                inbox: Vec::new(),
                events: Vec::new(),
            },
        );
        drop(tables);
        self.wake(&run.run_id);
        ready(Ok(Created::New(lease)))
    }

    fn get_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<RunRecord>> {
        let record = self.tables().runs.get(run_id).map(|row| row.record.clone());
        ready(Ok(record))
    }

    fn list_runs<'a>(&'a self, filter: &'a RunFilter) -> StoreFuture<'a, Vec<RunRecord>> {
        let tables = self.tables();
        let records = tables
            .order
            .iter()
            .filter_map(|id| tables.runs.get(id))
            .map(|row| &row.record)
            .filter(|r| filter.status.is_empty() || filter.status.contains(&r.status))
            .filter(|r| filter.workflow.is_empty() || filter.workflow.contains(&r.workflow.name))
            .cloned()
            .collect();
        ready(Ok(records))
    }

    fn heartbeat<'a>(
        &'a self,
        worker: &'a str,
        _workflows: &'a [WorkflowKey],
    ) -> StoreFuture<'a, ()> {
        self.tables().workers.insert(worker.to_owned(), now_ms());
        ready(Ok(()))
    }

    fn claim<'a>(
        &'a self,
        worker: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Vec<Claim>> {
        let mut tables = self.tables();
        let now = now_ms();
        let candidates: Vec<String> = tables
            .order
            .iter()
            .filter(|id| {
                tables.runs.get(*id).is_some_and(|row| {
                    options.workflows.contains(&row.record.workflow)
                        && matches!(row.record.status, RunStatus::Running | RunStatus::Waiting)
                })
            })
            .cloned()
            .collect();
        let mut claims = Vec::new();
        for run_id in candidates {
            if claims.len() >= options.limit {
                break;
            }
            if let Some(claim) = tables.try_claim(&run_id, worker, options, now) {
                claims.push(claim);
            }
        }
        ready(Ok(claims))
    }

    fn claim_run<'a>(
        &'a self,
        worker: &'a str,
        run_id: &'a str,
        options: &'a ClaimOptions,
    ) -> StoreFuture<'a, Option<Claim>> {
        let claim = self.tables().try_claim(run_id, worker, options, now_ms());
        ready(Ok(claim))
    }

    fn load<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, LoadedRun> {
        let mut tables = self.tables();
        let result = tables.owned(lease).map(|row| {
            let after = row.snapshot.as_ref().map_or(0, |(seq, _)| *seq);
            LoadedRun {
                snapshot: row.snapshot.clone(),
                journal: row
                    .journal
                    .range(after + 1..)
                    .map(|(seq, entry)| (*seq, entry.clone()))
                    .collect(),
                events: row.events.clone(),
            }
        });
        ready(result)
    }

    fn inbox<'a>(&'a self, lease: &'a Lease) -> StoreFuture<'a, Vec<InboxMessage>> {
        let mut tables = self.tables();
        let result = tables.owned(lease).map(|row| {
            row.inbox
                .iter()
                .filter(|(_, consumed)| !consumed)
                .map(|(message, _)| message.clone())
                .collect()
        });
        ready(result)
    }

    fn commit<'a>(&'a self, lease: &'a Lease, commit: Commit) -> StoreFuture<'a, ()> {
        let mut tables = self.tables();
        let row = match tables.owned(lease) {
            Ok(row) => row,
            Err(error) => return ready(Err(error)),
        };
        if let Err(error) = commit.check_continues(
            &lease.run_id,
            row.last_journal_seq,
            row.record.last_event_seq,
        ) {
            return ready(Err(error));
        }
        for (seq, entry) in commit.journal {
            row.last_journal_seq = seq;
            row.journal.insert(seq, entry);
        }
        for (message, consumed) in &mut row.inbox {
            if commit.consumed.contains(&message.id) {
                *consumed = true;
            }
        }
        for (seq, event) in commit.events {
            row.record.last_event_seq = seq;
            row.events.push((seq, event));
        }
        if let Some((seq, snapshot)) = commit.snapshot {
            row.journal = row.journal.split_off(&(seq + 1));
            row.snapshot = Some((seq, snapshot));
        }
        let now = now_ms();
        row.record.updated_at_ms = now;
        let mut wake = false;
        match commit.end {
            None => {}
            Some(CommitEnd::Finish {
                status,
                result,
                error,
            }) => {
                row.record.status = status;
                row.record.result = result;
                row.record.error = error;
                row.record.owner = None;
                row.record.epoch += 1;
                row.inbox.retain(|(_, consumed)| *consumed);
            }
            Some(CommitEnd::Release { idle, wake_after }) => {
                let unread = row.inbox.iter().any(|(_, consumed)| !consumed);
                row.record.owner = None;
                row.record.epoch += 1;
                if idle && !unread {
                    row.record.status = RunStatus::Waiting;
                    row.wake_at_ms = wake_after.map(|after| now.saturating_add(millis(after)));
                } else {
                    row.record.status = RunStatus::Running;
                    wake = true;
                }
            }
        }
        drop(tables);
        if wake {
            self.wake(&lease.run_id);
        }
        ready(Ok(()))
    }

    fn send<'a>(&'a self, run_id: &'a str, msg_id: &'a str, mail: Mail) -> StoreFuture<'a, Sent> {
        let mut tables = self.tables();
        let id = tables.next_inbox_id;
        let Some(row) = tables.runs.get_mut(run_id) else {
            return ready(Err(StoreError::unknown_run(run_id)));
        };
        if row
            .inbox
            .iter()
            .any(|(message, _)| message.msg_id == msg_id)
        {
            return ready(Ok(Sent::Duplicate));
        }
        let status = row.record.status;
        if status.is_terminal() {
            return ready(Err(StoreError::RunFinished {
                run_id: run_id.to_owned(),
                status,
            }));
        }
        let cancel_parked = status == RunStatus::Parked && mail == Mail::Cancel;
        row.inbox.push((
            InboxMessage {
                id,
                msg_id: msg_id.to_owned(),
                mail,
            },
            false,
        ));
        if status == RunStatus::Waiting || cancel_parked {
            row.record.status = RunStatus::Running;
            row.wake_at_ms = None;
        }
        row.record.updated_at_ms = now_ms();
        tables.next_inbox_id += 1;
        drop(tables);
        self.wake(run_id);
        ready(Ok(Sent::Accepted))
    }

    fn events_after<'a>(
        &'a self,
        run_id: &'a str,
        after: u64,
        limit: usize,
    ) -> StoreFuture<'a, Vec<(u64, EventJson)>> {
        let tables = self.tables();
        let result = match tables.runs.get(run_id) {
            None => Err(StoreError::unknown_run(run_id)),
            Some(row) => {
                // Sequences are contiguous from 1, so the index of `after + 1` is `after`.
                let start = usize::try_from(after).unwrap_or(usize::MAX);
                Ok(row.events.iter().skip(start).take(limit).cloned().collect())
            }
        };
        ready(result)
    }

    fn unpark<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        let mut tables = self.tables();
        let unparked = match tables.runs.get_mut(run_id) {
            Some(row) if row.record.status == RunStatus::Parked => {
                row.record.status = RunStatus::Running;
                row.record.recoveries = 0;
                row.record.error = None;
                row.record.updated_at_ms = now_ms();
                true
            }
            _ => false,
        };
        drop(tables);
        if unparked {
            self.wake(run_id);
        }
        ready(Ok(unparked))
    }

    fn purge<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, bool> {
        let mut tables = self.tables();
        let Some(row) = tables.runs.remove(run_id) else {
            return ready(Ok(false));
        };
        if let Some(key) = &row.record.idempotency_key {
            tables.idempotency.remove(key);
        }
        tables.order.retain(|id| id != run_id);
        ready(Ok(true))
    }

    fn reopen<'a>(
        &'a self,
        run_id: &'a str,
        entry: Value,
        owner: Option<&'a str>,
    ) -> StoreFuture<'a, Reopened> {
        let mut tables = self.tables();
        let Some(row) = tables.runs.get_mut(run_id) else {
            return ready(Err(StoreError::unknown_run(run_id)));
        };
        let status = row.record.status;
        if !status.is_terminal() {
            return ready(Err(StoreError::RunActive {
                run_id: run_id.to_owned(),
                status,
            }));
        }
        row.last_journal_seq += 1;
        let journal_seq = row.last_journal_seq;
        row.journal.insert(journal_seq, entry);
        let record = &mut row.record;
        record.status = RunStatus::Running;
        record.result = None;
        record.error = None;
        record.recoveries = 0;
        record.epoch += 1;
        record.owner = owner.map(str::to_owned);
        record.updated_at_ms = now_ms();
        row.wake_at_ms = None;
        let reopened = Reopened {
            lease: owner.map(|owner| Lease {
                run_id: run_id.to_owned(),
                owner: owner.to_owned(),
                epoch: record.epoch,
            }),
            journal_seq,
            last_event_seq: record.last_event_seq,
        };
        drop(tables);
        self.wake(run_id);
        ready(Ok(reopened))
    }

    fn wakeups(&self) -> broadcast::Receiver<String> {
        self.wakeups.subscribe()
    }
}
