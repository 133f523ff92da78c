//! What a server asks of the runs in the store, through the engine: listing and counting runs,
//! reading a page of a run's events, purging and unparking runs, and probing the store. So no
//! caller outside the engine needs the store itself (the engine does not hand it out).

use std::collections::HashMap;

use super::{Engine, EngineError, SequencedEvent};
use crate::store::{RunFilter, RunRecord, RunStatus};

/// What [`Engine::count_runs`] counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Runs by status (statuses without a run are absent).
    pub by_status: HashMap<RunStatus, u64>,
    /// `Running` runs no worker holds, waiting for one: new runs recorded for another worker,
    /// runs woken by an event, runs handed back at a shutdown.
    pub queued: u64,
}

impl Engine {
    /// The runs matching `filter`, oldest first: `limit` of them (all with `None`) after
    /// skipping `offset`.
    ///
    /// The store lists every matching run and the page is cut here: the `Store` trait has no
    /// paged query yet, so paging bounds the answer, not the read.
    pub async fn runs(
        &self,
        filter: &RunFilter,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<Vec<RunRecord>, EngineError> {
        let runs = self.inner.store.list_runs(filter).await?;
        Ok(runs
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .collect())
    }

    /// How many runs match `filter`, by status, and how many of them wait for a worker: one
    /// read of the store.
    pub async fn count_runs(&self, filter: &RunFilter) -> Result<RunCounts, EngineError> {
        let mut counts = RunCounts::default();
        for run in self.inner.store.list_runs(filter).await? {
            *counts.by_status.entry(run.status).or_default() += 1;
            if run.status == RunStatus::Running && run.owner.is_none() {
                counts.queued += 1;
            }
        }
        Ok(counts)
    }

    /// At most `limit` of the run's published events after sequence `after`, oldest first,
    /// without waiting for more (see [`Engine::events`] to follow a run). Fails with
    /// [`EngineError::UnknownRun`] when there is no such run.
    pub async fn events_page(
        &self,
        run_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, EngineError> {
        // The store answers an empty page for a run it does not know.
        self.record(run_id).await?;
        let page = self.inner.store.events_after(run_id, after, limit).await?;
        Ok(page
            .into_iter()
            .map(|(seq, event)| SequencedEvent { seq, event })
            .collect())
    }

    /// Deletes a run and everything recorded for it: journal, snapshots, inbox and events. A
    /// run that has not finished is asked to cancel first, so the worker driving it stops (its
    /// later commits would be fenced anyway). Fails with [`EngineError::UnknownRun`] when there
    /// is no such run.
    pub async fn purge(&self, run_id: &str) -> Result<(), EngineError> {
        if !self.record(run_id).await?.status.is_terminal() {
            match self.cancel(run_id).await {
                // Purged by someone else in between: the purge below says so.
                Ok(_) | Err(EngineError::UnknownRun { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        if self.inner.store.purge(run_id).await? {
            Ok(())
        } else {
            Err(EngineError::UnknownRun {
                run_id: run_id.to_owned(),
            })
        }
    }

    /// Makes a parked run (one that crashed its workers too often) `Running` again, with its
    /// recoveries reset, for a worker to claim. `Ok(false)` when the run is not parked; fails
    /// with [`EngineError::UnknownRun`] when there is no such run.
    pub async fn unpark(&self, run_id: &str) -> Result<bool, EngineError> {
        super::check_run_id(run_id)?;
        if self.inner.store.unpark(run_id).await? {
            return Ok(true);
        }
        // Not parked, or not there: the store answers false for both.
        self.record(run_id).await?;
        Ok(false)
    }

    /// Reads the store once: `Ok` when it answers (a health probe).
    pub async fn check_store(&self) -> Result<(), EngineError> {
        self.inner.store.get_run("eventflow-health-probe").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::store::{ClaimOptions, MemoryStore, NewRun, Store, WorkflowKey};

    fn key() -> WorkflowKey {
        WorkflowKey {
            name: "flow".into(),
            fingerprint: "f".into(),
        }
    }

    async fn create(store: &dyn Store, run_id: &str, owner: Option<&str>) {
        store
            .create_run(NewRun {
                run_id: run_id.into(),
                workflow: key(),
                idempotency_key: None,
                start: json!({"kind": "start"}),
                owner: owner.map(str::to_owned),
            })
            .await
            .unwrap();
    }

    /// An engine that drives nothing over a memory store holding `a` (owned by a live
    /// worker), `b` and `c` (waiting for a worker), all `Running`.
    async fn engine() -> (Engine, Arc<dyn Store>) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let engine = Engine::builder(store.clone())
            .drive_runs(false)
            .start()
            .await
            .unwrap();
        create(&*store, "a", Some(engine.worker_id())).await;
        create(&*store, "b", None).await;
        create(&*store, "c", None).await;
        (engine, store)
    }

    fn ids(runs: &[RunRecord]) -> Vec<&str> {
        runs.iter().map(|run| run.run_id.as_str()).collect()
    }

    #[tokio::test]
    async fn runs_are_paged_and_counted() {
        let (engine, _store) = engine().await;
        let all = RunFilter::default();
        assert_eq!(
            ids(&engine.runs(&all, 0, None).await.unwrap()),
            ["a", "b", "c"]
        );
        assert_eq!(ids(&engine.runs(&all, 1, Some(1)).await.unwrap()), ["b"]);
        assert!(engine.runs(&all, 3, None).await.unwrap().is_empty());
        let counts = engine.count_runs(&all).await.unwrap();
        assert_eq!(counts.by_status, HashMap::from([(RunStatus::Running, 3)]));
        let failed = RunFilter {
            status: vec![RunStatus::Failed],
            ..RunFilter::default()
        };
        assert!(
            engine
                .count_runs(&failed)
                .await
                .unwrap()
                .by_status
                .is_empty()
        );
        assert_eq!(counts.queued, 2);
        engine.check_store().await.unwrap();
        assert!(engine.events_page("b", 0, 10).await.unwrap().is_empty());
        assert!(matches!(
            engine.events_page("nobody", 0, 10).await,
            Err(EngineError::UnknownRun { .. })
        ));
    }

    #[tokio::test]
    async fn purge_deletes_and_cancels_live_runs() {
        let (engine, store) = engine().await;
        engine.purge("b").await.unwrap();
        assert_eq!(store.get_run("b").await.unwrap(), None);
        assert!(matches!(
            engine.purge("b").await,
            Err(EngineError::UnknownRun { run_id }) if run_id == "b"
        ));
        assert_eq!(
            ids(&engine.runs(&RunFilter::default(), 0, None).await.unwrap()),
            ["a", "c"]
        );
    }

    #[tokio::test]
    async fn unpark_resumes_parked_runs_only() {
        let (engine, store) = engine().await;
        // A run whose owner never heartbeats, claimed with no recovery allowed, is parked.
        create(&*store, "crashy", Some("ghost")).await;
        let strict = ClaimOptions {
            workflows: vec![key()],
            limit: 10,
            lease_ttl: Duration::ZERO,
            max_recoveries: 0,
        };
        assert_eq!(store.claim_run("w", "crashy", &strict).await.unwrap(), None);
        assert_eq!(
            engine.record("crashy").await.unwrap().status,
            RunStatus::Parked
        );
        assert!(engine.unpark("crashy").await.unwrap());
        assert_eq!(
            engine.record("crashy").await.unwrap().status,
            RunStatus::Running
        );
        assert!(!engine.unpark("crashy").await.unwrap(), "no longer parked");
        assert!(matches!(
            engine.unpark("nobody").await,
            Err(EngineError::UnknownRun { .. })
        ));
    }
}
