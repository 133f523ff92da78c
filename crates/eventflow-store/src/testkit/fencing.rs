//! Fencing: under a stale, released or recovered lease nothing is read or written.

use super::support::*;

/// A lease with the wrong epoch or owner is fenced on every call, and writes nothing.
pub(super) async fn stale_lease_is_fenced(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            events: published([1]),
            ..Commit::default()
        },
    )
    .await?;
    send(&*store, "run", "m1", event("m1")).await?;
    let consumed: Vec<i64> = store.inbox(&lease).await?.iter().map(|m| m.id).collect();
    let before = observe(&*store, &lease).await?;

    let stale = [
        Lease {
            epoch: lease.epoch + 1,
            ..lease.clone()
        },
        Lease {
            epoch: 0,
            ..lease.clone()
        },
        Lease {
            owner: "worker-b".to_owned(),
            ..lease.clone()
        },
        Lease {
            owner: "worker-b".to_owned(),
            epoch: lease.epoch + 1,
            ..lease.clone()
        },
    ];
    for stale in &stale {
        assert_fenced(store.load(stale).await, stale, "load")?;
        assert_fenced(store.inbox(stale).await, stale, "inbox")?;
        let result = store
            .commit(stale, everything(3, 2, consumed.clone()))
            .await;
        assert_fenced(result, stale, "commit")?;
        let result = store.commit(stale, release(false, None)).await;
        assert_fenced(result, stale, "release")?;
        let result = store.commit(stale, Commit::default()).await;
        assert_fenced(result, stale, "an empty commit")?;
        assert_eq!(
            observe(&*store, &lease).await?,
            before,
            "{stale:?} wrote nothing"
        );
    }
    // A lease of a run that does not exist.
    let nobody = Lease {
        run_id: "nobody".to_owned(),
        ..lease.clone()
    };
    assert_fenced(store.load(&nobody).await, &nobody, "load of an unknown run")?;
    let result = store.commit(&nobody, everything(2, 1, Vec::new())).await;
    assert_fenced(result, &nobody, "commit to an unknown run")?;
    assert_eq!(store.get_run("nobody").await?, None);

    // The real lease still writes.
    commit(&*store, &lease, everything(3, 2, consumed)).await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Completed);
    Ok(())
}

/// After a release, the old lease is fenced and its writes change nothing.
pub(super) async fn released_lease_is_fenced(store: DynStore) -> Result<()> {
    for (run_id, idle) in [("busy", false), ("idle", true)] {
        let lease = create_owned(&*store, run_id, &flow(), "worker-a").await?;
        commit(
            &*store,
            &lease,
            Commit {
                journal: ticks([2]),
                events: published([1]),
                end: Some(CommitEnd::Release {
                    idle,
                    wake_after: None,
                }),
                ..Commit::default()
            },
        )
        .await?;
        let released = record(&*store, run_id).await?;
        assert_eq!(released.owner, None, "{run_id}");
        ensure!(
            released.epoch > lease.epoch,
            "{run_id}: a release increases the epoch"
        );

        assert_fenced(store.load(&lease).await, &lease, "load after release")?;
        assert_fenced(store.inbox(&lease).await, &lease, "inbox after release")?;
        let result = store.commit(&lease, everything(3, 2, Vec::new())).await;
        assert_fenced(result, &lease, "commit after release")?;
        let result = store.commit(&lease, release(false, None)).await;
        assert_fenced(result, &lease, "a second release")?;
        assert_eq!(
            record(&*store, run_id).await?,
            released,
            "{run_id}: nothing written"
        );
        assert_eq!(all_events(&*store, run_id).await?, published([1]));

        // The next owner sees exactly what the first committed.
        if idle {
            send(&*store, run_id, "wake", event("wake")).await?;
        }
        let claim = claim_run(&*store, "worker-b", run_id, &options(&[flow()])).await?;
        ensure!(
            claim.lease.epoch > released.epoch,
            "a claim increases the epoch"
        );
        let loaded = store.load(&claim.lease).await?;
        assert_eq!(
            loaded.journal,
            vec![(1, start_of(run_id)), (2, json!({"tick": 2}))]
        );
        assert_eq!(loaded.events, published([1]));
        // The first worker, coming back with its lease, is still fenced.
        let result = store.commit(&lease, everything(3, 2, Vec::new())).await;
        assert_fenced(result, &lease, "commit after another's claim")?;
        assert_eq!(store.load(&claim.lease).await?, loaded);
    }
    Ok(())
}

/// After another worker recovers a run from an expired owner, the old lease is fenced.
pub(super) async fn recovered_lease_is_fenced(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            events: published([1]),
            ..Commit::default()
        },
    )
    .await?;
    tokio::time::sleep(PAST_SHORT_TTL).await;
    store.heartbeat("worker-b", &[flow()]).await?;
    let claims = store
        .claim(
            "worker-b",
            &ClaimOptions {
                lease_ttl: SHORT_TTL,
                ..options(&[flow()])
            },
        )
        .await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    let claim = &claims[0];
    assert!(claim.recovered);
    assert_eq!(claim.lease.epoch, lease.epoch + 1);

    // The old owner wakes up, heartbeats and tries to go on: fenced, nothing written.
    store.heartbeat("worker-a", &[flow()]).await?;
    let before = observe(&*store, &claim.lease).await?;
    assert_fenced(store.load(&lease).await, &lease, "load by the old owner")?;
    assert_fenced(store.inbox(&lease).await, &lease, "inbox of the old owner")?;
    let result = store.commit(&lease, everything(3, 2, Vec::new())).await;
    assert_fenced(result, &lease, "commit by the old owner")?;
    let result = store.commit(&lease, release(true, None)).await;
    assert_fenced(result, &lease, "release by the old owner")?;
    assert_eq!(observe(&*store, &claim.lease).await?, before);
    assert_eq!(before.record.owner.as_deref(), Some("worker-b"));
    assert_eq!(before.record.status, RunStatus::Running);

    // The new owner writes.
    commit(&*store, &claim.lease, everything(3, 2, Vec::new())).await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Completed);
    Ok(())
}
