//! Another store on the same data, as another process (or this one after a restart) opens it: what was committed is there, reopens are seen, first opens of a new location all succeed.

use super::support::*;

/// Everything committed is there for another store opened on the same data (another process,
/// or this one after a restart).
pub(super) async fn durable_across_reopen(setup: Setup) -> Result<()> {
    let store = setup.store();
    let created = store
        .create_run(NewRun {
            idempotency_key: Some("key-1".to_owned()),
            owner: Some("worker-a".to_owned()),
            ..spec("kept", &flow())
        })
        .await?;
    let Created::New(Some(lease)) = created else {
        bail!("expected a new owned run, got {created:?}");
    };
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=4),
            events: published(1..=3),
            snapshot: Some((3, json!({"state": 3}))),
            ..Commit::default()
        },
    )
    .await?;
    send(&*store, "kept", "m1", event("m1")).await?;
    send(&*store, "kept", "m2", event("m2")).await?;
    let inbox = store.inbox(&lease).await?;
    commit(
        &*store,
        &lease,
        Commit {
            consumed: vec![inbox[0].id],
            ..release(false, None)
        },
    )
    .await?;
    let done = create_owned(&*store, "done", &flow(), "worker-a").await?;
    commit(
        &*store,
        &done,
        finish(
            RunStatus::Completed,
            Some(json!({"type": "stop", "value": 1})),
            None,
        ),
    )
    .await?;
    let waiting = create_owned(&*store, "waiting", &flow(), "worker-a").await?;
    commit(&*store, &waiting, release(true, None)).await?;
    let runs = store.list_runs(&RunFilter::default()).await?;

    let reopened = setup.open_again().await?;
    assert_eq!(reopened.list_runs(&RunFilter::default()).await?, runs);
    assert_eq!(all_events(&*reopened, "kept").await?, published(1..=3));
    let again = reopened
        .create_run(NewRun {
            idempotency_key: Some("key-1".to_owned()),
            ..spec("kept-2", &flow())
        })
        .await?;
    assert_eq!(again, Created::Existing("kept".to_owned()));
    reopened.heartbeat("worker-b", &[flow()]).await?;
    let claim = claim_run(&*reopened, "worker-b", "kept", &options(&[flow()])).await?;
    assert_eq!(
        reopened.load(&claim.lease).await?,
        LoadedRun {
            snapshot: Some((3, json!({"state": 3}))),
            journal: ticks([4]),
            events: published(1..=3),
        }
    );
    assert_eq!(msg_ids(&reopened.inbox(&claim.lease).await?), vec!["m2"]);
    assert_eq!(
        send(&*reopened, "kept", "m1", event("m1")).await?,
        Sent::Duplicate
    );
    match reopened.send("done", "late", event("late")).await {
        Err(StoreError::RunFinished { .. }) => {}
        other => bail!("send to a finished run after reopening: got {other:?}"),
    }
    assert_eq!(status(&*reopened, "waiting").await?, RunStatus::Waiting);
    assert_not_claimable(&*reopened, "waiting", &options(&[flow()])).await?;
    // The first store sees the second's claim.
    assert_fenced(
        store.load(&lease).await,
        &lease,
        "the first store's old lease",
    )?;
    assert_eq!(
        record(&*store, "kept").await?.owner.as_deref(),
        Some("worker-b")
    );
    Ok(())
}

/// A run reopened by one store instance is seen (and signalled, where wake-ups cross instances)
/// by another; concurrent reopens from both reopen it once.
pub(super) async fn reopen_across_instances(setup: Setup) -> Result<()> {
    let store = setup.store();
    let other = setup.open_again().await?;
    let mut rx = other.wakeups();
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            events: published(1..=2),
            ..finish(RunStatus::Completed, Some(stop_event()), None)
        },
    )
    .await?;
    reopen(&*store, "run", 1, None).await?;
    if setup.wakeups_cross_instances() {
        expect_wakeup(&mut rx, "run", "reopened by another instance").await?;
    }
    other.heartbeat("worker-b", &[flow()]).await?;
    let claim = claim_run(&*other, "worker-b", "run", &options(&[flow()])).await?;
    assert!(!claim.recovered);
    assert_eq!(
        other.load(&claim.lease).await?,
        LoadedRun {
            snapshot: None,
            journal: vec![(1, start_of("run")), (2, reopening(1))],
            events: published(1..=2),
        }
    );

    // Rounds of two reopens racing from both instances: one wins, the other sees it running.
    let mut lease = claim.lease;
    let mut journal_seq = 2;
    for round in 0..5_u64 {
        commit(
            &*other,
            &lease,
            finish(RunStatus::Completed, Some(stop_event()), None),
        )
        .await?;
        let racers =
            [(store.clone(), "worker-a"), (other.clone(), "worker-b")].map(|(store, owner)| {
                tokio::spawn(
                    async move { store.reopen("run", reopening(round), Some(owner)).await },
                )
            });
        let mut won = Vec::new();
        for racer in racers {
            match racer.await? {
                Ok(reopened) => won.push(reopened),
                Err(StoreError::RunActive { status, .. }) => {
                    assert_eq!(status, RunStatus::Running)
                }
                Err(error) => bail!("round {round}: a racing reopen failed with {error:?}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one reopen wins: {won:?}"
        );
        let winner = won.pop().context("a winner")?;
        journal_seq += 1;
        assert_eq!(winner.journal_seq, journal_seq, "round {round}");
        lease = winner.lease.context("a lease")?;
        let run = record(&*store, "run").await?;
        assert_eq!(
            (run.owner.as_deref(), run.epoch),
            (Some(lease.owner.as_str()), lease.epoch)
        );
        let loaded = other.load(&lease).await?;
        assert_eq!(
            loaded.journal.last(),
            Some(&(journal_seq, reopening(round)))
        );
        assert_eq!(loaded.journal.len(), usize::try_from(journal_seq)?);
    }
    Ok(())
}

/// Several stores opening one new location at once all succeed (each runs the migrations) and
/// share the data.
pub(super) async fn concurrent_first_open(setup: Setup) -> Result<()> {
    let (a, b, c) = tokio::join!(
        setup.open_second_location(),
        setup.open_second_location(),
        setup.open_second_location(),
    );
    let stores = [a?, b?, c?];
    create(&*stores[0], "shared", &flow()).await?;
    for store in &stores {
        assert_eq!(record(&**store, "shared").await?.status, RunStatus::Running);
    }
    // A second opening of an existing location keeps its data.
    let again = setup.open_second_location().await?;
    assert_eq!(again.list_runs(&RunFilter::default()).await?.len(), 1);
    Ok(())
}
