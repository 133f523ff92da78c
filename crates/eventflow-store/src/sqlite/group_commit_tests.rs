//! The writer's group commit: writes queued while a batch is being written go together in the
//! next one, a write that fails fails alone, and an idle writer does not wait for company.
//! The writer is held busy by a write that blocks until the test has queued the others, so the
//! batches are known, not left to timing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use super::writer::MAX_BATCH;
use super::*;

fn key() -> WorkflowKey {
    WorkflowKey {
        name: "flow".into(),
        fingerprint: "f1".into(),
    }
}

/// A run created owned by worker `w`, with its lease (epoch 1).
async fn owned_run(store: &SqliteStore, run_id: &str) -> Lease {
    let created = store
        .create_run(NewRun {
            run_id: run_id.into(),
            workflow: key(),
            idempotency_key: None,
            start: json!({ "start": run_id }),
            owner: Some("w".into()),
        })
        .await
        .unwrap();
    let Created::New(Some(lease)) = created else {
        panic!("{created:?}")
    };
    lease
}

/// A commit appending journal entry `seq`.
fn entry(seq: u64) -> Commit {
    Commit {
        journal: vec![(seq, json!({ "tick": seq }))],
        ..Commit::default()
    }
}

/// Holds the writer thread busy until the returned sender is used (or dropped).
async fn hold(
    store: &Arc<SqliteStore>,
) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (started, running) = tokio::sync::oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let held = store.clone();
    let mut started = Some(started);
    let task = tokio::spawn(async move {
        held.writer
            .write(move |_| {
                if let Some(started) = started.take() {
                    let _ = started.send(());
                }
                let _ = released.recv();
                Ok(())
            })
            .await
            .unwrap();
    });
    running.await.unwrap();
    (release, task)
}

/// Releases the writer once `more` writes have queued after `queued`.
async fn release_after(
    store: &SqliteStore,
    queued: u64,
    more: u64,
    release: std::sync::mpsc::Sender<()>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.writer.stats().queued.load(Ordering::SeqCst) < queued + more {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writes never queued"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    release.send(()).unwrap();
}

fn batches(store: &SqliteStore) -> u64 {
    store.writer.stats().batches.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_batch_commits_together_and_a_stale_or_bad_commit_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let mut leases = Vec::new();
    for n in 0..10 {
        leases.push(owned_run(&store, &format!("r{n}")).await);
    }
    let before_r9 = store.get_run("r9").await.unwrap().unwrap();

    let (release, held) = hold(&store).await;
    let (queued, batches_before) = (
        store.writer.stats().queued.load(Ordering::SeqCst),
        batches(&store),
    );
    let commits = leases.iter().enumerate().map(|(n, lease)| {
        let store = store.clone();
        let mut lease = lease.clone();
        let mut commit = entry(2);
        match n {
            // A lease from an epoch the run never had: fenced.
            8 => lease.epoch = 7,
            // A gap in the journal: refused by the fencing update itself, which then writes
            // nothing.
            9 => commit = entry(5),
            _ => {}
        }
        async move { store.commit(&lease, commit).await }
    });
    let (outcomes, ()) = tokio::join!(
        futures::future::join_all(commits),
        release_after(&store, queued, 10, release)
    );
    held.await.unwrap();
    assert_eq!(
        batches(&store),
        batches_before + 1,
        "the ten commits were one batch"
    );

    for (n, outcome) in outcomes.iter().enumerate() {
        match n {
            8 => assert!(
                matches!(outcome, Err(StoreError::Fenced { .. })),
                "{outcome:?}"
            ),
            9 => assert!(
                matches!(outcome, Err(StoreError::Corrupt(_))),
                "{outcome:?}"
            ),
            _ => assert!(outcome.is_ok(), "r{n}: {outcome:?}"),
        }
    }
    assert_eq!(
        store.get_run("r9").await.unwrap().unwrap(),
        before_r9,
        "r9 is untouched"
    );

    // Acknowledged means on disk: a store opened afresh on the file sees exactly the commits
    // that succeeded.
    drop(store);
    let reopened = SqliteStore::open(&path).await.unwrap();
    for (n, lease) in leases.iter().enumerate() {
        let journal: Vec<u64> = reopened
            .load(&Lease {
                epoch: 1,
                ..lease.clone()
            })
            .await
            .unwrap()
            .journal
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        let want = if n < 8 { vec![1, 2] } else { vec![1] };
        assert_eq!(journal, want, "r{n}");
    }
}

#[tokio::test]
async fn a_batch_holds_at_most_max_batch_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("runs.db")).await.unwrap());
    let (release, held) = hold(&store).await;
    let (queued, batches_before) = (
        store.writer.stats().queued.load(Ordering::SeqCst),
        batches(&store),
    );
    let writes = MAX_BATCH * 2 + 1;
    let workflows = [key()];
    let heartbeats = (0..writes).map(|n| {
        let store = store.clone();
        let workflows = workflows.clone();
        async move { store.heartbeat(&format!("w{n}"), &workflows).await }
    });
    let (outcomes, ()) = tokio::join!(
        futures::future::join_all(heartbeats),
        release_after(&store, queued, writes as u64, release)
    );
    held.await.unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
    assert_eq!(
        batches(&store),
        batches_before + 3,
        "{writes} writes in batches of {MAX_BATCH}"
    );
}

/// A write that fails after writing is undone alone: the transaction is rolled back, and the
/// batch's other writes (before it, run again; after it) still land, in the same batch.
#[tokio::test]
async fn a_write_failing_midway_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("runs.db")).await.unwrap());
    let (a, b) = (owned_run(&store, "a").await, owned_run(&store, "b").await);
    let (release, held) = hold(&store).await;
    let (queued, batches_before) = (
        store.writer.stats().queued.load(Ordering::SeqCst),
        batches(&store),
    );
    let midway = store.writer.write(|conn| {
        query::exec(
            conn,
            "INSERT INTO workers (worker_id, workflows, heartbeat_at_ms) VALUES ('x', '[]', 0)",
            [],
        )?;
        Err::<(), _>(StoreError::Corrupt("failed midway".into()))
    });
    let writes = async {
        tokio::join!(
            store.commit(&a, entry(2)),
            midway,
            store.commit(&b, entry(2))
        )
    };
    let ((first, failed, last), ()) =
        tokio::join!(writes, release_after(&store, queued, 3, release));
    held.await.unwrap();
    assert!(first.is_ok() && last.is_ok(), "{first:?} {last:?}");
    assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
    assert_eq!(batches(&store), batches_before + 1);
    let workers = store
        .readers
        .read(|conn| {
            query::one(conn, "SELECT count(*) FROM workers", [], |row| {
                row.get::<_, i64>(0)
            })
        })
        .unwrap();
    assert_eq!(workers, Some(0), "the failed write's insert was undone");
    for lease in [&a, &b] {
        let journal = store.load(lease).await.unwrap().journal;
        assert_eq!(journal.len(), 2, "{}", lease.run_id);
    }
}
