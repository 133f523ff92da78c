//! Reopening a finished run under its id.

use super::support::*;

/// Reopening a finished run with an owner appends the entry after the last, makes the run
/// `Running` under a new epoch with its outcome cleared, and keeps its journal and events; the
/// journal and events go on after the last; a run finished again reopens again.
pub(super) async fn reopen_continues_a_finished_run(store: DynStore) -> Result<()> {
    store.heartbeat("worker-b", &[flow()]).await?;
    let first = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &first,
        Commit {
            journal: ticks(2..=3),
            events: published(1..=2),
            ..finish(RunStatus::Completed, Some(stop_event()), None)
        },
    )
    .await?;
    let finished = record(&*store, "run").await?;

    let reopened = reopen(&*store, "run", 1, Some("worker-b")).await?;
    let lease = reopened
        .lease
        .clone()
        .context("a reopen with an owner returns a lease")?;
    assert_eq!(
        (lease.run_id.as_str(), lease.owner.as_str()),
        ("run", "worker-b")
    );
    ensure!(
        lease.epoch > finished.epoch,
        "the reopen raises the epoch: {} after {}",
        lease.epoch,
        finished.epoch
    );
    assert_eq!(reopened.journal_seq, 4, "the entry follows the last");
    assert_eq!(reopened.last_event_seq, 2);

    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner.as_deref(), Some("worker-b"));
    assert_eq!(run.epoch, lease.epoch);
    assert_eq!(
        (run.result, run.error),
        (None, None),
        "the outcome is cleared"
    );
    assert_eq!(run.recoveries, 0);
    assert_eq!(run.last_event_seq, 2);
    assert_eq!(run.workflow, flow());
    assert_eq!(run.created_at_ms, finished.created_at_ms);
    ensure!(
        run.updated_at_ms >= finished.updated_at_ms,
        "updated_at moves on"
    );

    let mut journal = vec![(1, start_of("run"))];
    journal.extend(ticks(2..=3));
    journal.push((4, reopening(1)));
    assert_eq!(
        store.load(&lease).await?,
        LoadedRun {
            snapshot: None,
            journal,
            events: published(1..=2),
        }
    );
    assert_eq!(store.inbox(&lease).await?, Vec::new());

    // Leases of before are fenced: the first owner's, and the new owner's under an older epoch.
    assert_fenced(
        store.load(&first).await,
        &first,
        "load under the first lease",
    )?;
    let result = store
        .commit(
            &first,
            Commit {
                journal: ticks([5]),
                events: published([3]),
                ..release(false, None)
            },
        )
        .await;
    assert_fenced(result, &first, "commit under the first lease")?;
    let older = Lease {
        epoch: finished.epoch,
        ..lease.clone()
    };
    assert_fenced(
        store.load(&older).await,
        &older,
        "load under an older epoch",
    )?;
    assert_eq!(record(&*store, "run").await?.epoch, lease.epoch);
    // Owned by a live worker: nobody else claims it.
    assert_not_claimable(&*store, "run", &options(&[flow()])).await?;

    // The journal and the events go on after the last.
    let over = Commit {
        journal: ticks([4]),
        ..Commit::default()
    };
    assert_corrupt(
        store.commit(&lease, over).await,
        "a commit over the reopening entry",
    )?;
    let replay = Commit {
        journal: ticks([5]),
        events: published([2]),
        ..Commit::default()
    };
    assert_corrupt(
        store.commit(&lease, replay).await,
        "events that do not continue after the last",
    )?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([5]),
            events: published(3..=4),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(all_events(&*store, "run").await?, published(1..=4));
    assert_eq!(store.events_after("run", 2, 10).await?, published(3..=4));
    assert_eq!(record(&*store, "run").await?.last_event_seq, 4);

    // Finished again, it reopens again, and again after that.
    commit(
        &*store,
        &lease,
        finish(RunStatus::Failed, None, Some("boom")),
    )
    .await?;
    let failed = record(&*store, "run").await?;
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (RunStatus::Failed, Some("boom"))
    );
    let second = reopen(&*store, "run", 2, Some("worker-b")).await?;
    assert_eq!((second.journal_seq, second.last_event_seq), (6, 4));
    let second = second.lease.context("a lease")?;
    ensure!(
        second.epoch > failed.epoch,
        "the second reopen raises the epoch"
    );
    assert_fenced(
        store.load(&lease).await,
        &lease,
        "the first reopening's lease",
    )?;
    let run = record(&*store, "run").await?;
    assert_eq!((run.status, run.error), (RunStatus::Running, None));
    commit(
        &*store,
        &second,
        Commit {
            journal: ticks([7]),
            events: published([5]),
            ..finish(RunStatus::Cancelled, None, Some("cancelled"))
        },
    )
    .await?;
    let third = reopen(&*store, "run", 3, Some("worker-b")).await?;
    assert_eq!((third.journal_seq, third.last_event_seq), (8, 5));
    let third = third.lease.context("a lease")?;
    let loaded = store.load(&third).await?;
    let seqs: Vec<u64> = loaded.journal.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert_eq!(loaded.journal[3], (4, reopening(1)));
    assert_eq!(loaded.journal[5], (6, reopening(2)));
    assert_eq!(loaded.journal[7], (8, reopening(3)));
    assert_eq!(loaded.events, published(1..=5));

    // Running again: a reopen in a row is refused.
    assert_run_active(&*store, "run", RunStatus::Running).await?;
    store
        .load(&third)
        .await
        .context("the lease survives a refused reopen")?;
    Ok(())
}

/// A reopened run keeps its snapshot: `load` returns it and the journal after it, the new entry
/// included, even when the snapshot covered the whole journal.
pub(super) async fn reopen_keeps_the_snapshot(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "snap", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=5),
            events: published(1..=3),
            snapshot: Some((4, json!({"state": 4}))),
            ..finish(RunStatus::Completed, Some(stop_event()), None)
        },
    )
    .await?;
    let reopened = reopen(&*store, "snap", 1, Some("worker-a")).await?;
    assert_eq!((reopened.journal_seq, reopened.last_event_seq), (6, 3));
    let lease = reopened.lease.context("a lease")?;
    assert_eq!(
        store.load(&lease).await?,
        LoadedRun {
            snapshot: Some((4, json!({"state": 4}))),
            journal: vec![(5, json!({"tick": 5})), (6, reopening(1))],
            events: published(1..=3),
        }
    );
    // A snapshot after the reopening replaces the old one.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([7]),
            snapshot: Some((6, json!({"state": 6}))),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(
        store.load(&lease).await?,
        LoadedRun {
            snapshot: Some((6, json!({"state": 6}))),
            journal: ticks([7]),
            events: published(1..=3),
        }
    );

    // The snapshot covered every entry: nothing of the journal is left but the count.
    let lease = create_owned(&*store, "covered", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=3),
            snapshot: Some((3, json!({"state": 3}))),
            ..finish(RunStatus::Failed, None, Some("boom"))
        },
    )
    .await?;
    let reopened = reopen(&*store, "covered", 1, Some("worker-a")).await?;
    assert_eq!((reopened.journal_seq, reopened.last_event_seq), (4, 0));
    let lease = reopened.lease.context("a lease")?;
    assert_eq!(
        store.load(&lease).await?,
        LoadedRun {
            snapshot: Some((3, json!({"state": 3}))),
            journal: vec![(4, reopening(1))],
            events: Vec::new(),
        }
    );
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([5]),
            events: published([1]),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(all_events(&*store, "covered").await?, published([1]));
    Ok(())
}

/// Reopened without an owner, a run is `Running`, unowned and claimable by workers of its
/// workflow, not as a recovery; its recoveries are reset.
pub(super) async fn reopen_without_owner_is_claimable(store: DynStore) -> Result<()> {
    let mut rx = store.wakeups();
    // Taken over from a dead owner once before it finished.
    create_owned(&*store, "run", &flow(), "ghost").await?;
    let claim = claim_run(&*store, "worker-a", "run", &options(&[flow()])).await?;
    assert!(claim.recovered);
    commit(
        &*store,
        &claim.lease,
        Commit {
            journal: ticks([2]),
            events: published([1]),
            ..finish(RunStatus::Cancelled, None, Some("cancelled"))
        },
    )
    .await?;
    let finished = record(&*store, "run").await?;
    assert_eq!(finished.recoveries, 1);

    let reopened = reopen(&*store, "run", 1, None).await?;
    assert_eq!(
        reopened,
        Reopened {
            lease: None,
            journal_seq: 3,
            last_event_seq: 1,
        }
    );
    expect_wakeup(&mut rx, "run", "reopened without an owner").await?;
    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner, None);
    assert_eq!(run.recoveries, 0, "a reopen resets the recoveries");
    assert_eq!((run.result, run.error), (None, None));
    ensure!(run.epoch > finished.epoch, "the reopen raises the epoch");
    assert_fenced(
        store.load(&claim.lease).await,
        &claim.lease,
        "the last owner's lease",
    )?;

    assert_eq!(
        claim_ids(&*store, "worker-x", &options(&[key("other", "fp-1")])).await?,
        Vec::<String>::new(),
        "only workers of its workflow claim it"
    );
    store.heartbeat("worker-b", &[flow()]).await?;
    let claims = store.claim("worker-b", &options(&[flow()])).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(
        !claims[0].recovered,
        "claiming a reopened run is no recovery"
    );
    ensure!(claims[0].lease.epoch > run.epoch);
    assert_eq!(record(&*store, "run").await?.recoveries, 0);
    let loaded = store.load(&claims[0].lease).await?;
    assert_eq!(
        loaded.journal,
        vec![
            (1, start_of("run")),
            (2, json!({"tick": 2})),
            (3, reopening(1))
        ]
    );
    assert_eq!(loaded.events, published([1]));

    // `claim_run` takes one too.
    let lease = create_owned(&*store, "one", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        finish(RunStatus::Completed, Some(stop_event()), None),
    )
    .await?;
    reopen(&*store, "one", 1, None).await?;
    let claim = claim_run(&*store, "worker-c", "one", &options(&[flow()])).await?;
    assert!(!claim.recovered);
    assert_eq!(
        store.load(&claim.lease).await?.journal,
        vec![(1, start_of("one")), (2, reopening(1))]
    );
    Ok(())
}

/// Only a finished run reopens: a running (owned or not), waiting or parked one fails with
/// `RunActive` and is left as it was; an unknown or purged one with `UnknownRun`.
pub(super) async fn reopen_refused_unless_finished(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let owned = create_owned(&*store, "owned", &flow(), "worker-a").await?;
    commit(
        &*store,
        &owned,
        Commit {
            journal: ticks([2]),
            events: published([1]),
            ..Commit::default()
        },
    )
    .await?;
    assert_run_active(&*store, "owned", RunStatus::Running).await?;
    assert_eq!(
        store.load(&owned).await?.journal,
        vec![(1, start_of("owned")), (2, json!({"tick": 2}))],
        "the owner's lease and journal are untouched"
    );
    commit(
        &*store,
        &owned,
        Commit {
            journal: ticks([3]),
            events: published([2]),
            ..Commit::default()
        },
    )
    .await?;

    create(&*store, "unowned", &flow()).await?;
    assert_run_active(&*store, "unowned", RunStatus::Running).await?;

    let waiting = create_owned(&*store, "waiting", &flow(), "worker-a").await?;
    commit(&*store, &waiting, release(true, None)).await?;
    assert_run_active(&*store, "waiting", RunStatus::Waiting).await?;
    assert_not_claimable(&*store, "waiting", &options(&[flow()])).await?;

    create_owned(&*store, "parked", &flow(), "ghost").await?;
    let strict = ClaimOptions {
        max_recoveries: 0,
        ..options(&[flow()])
    };
    assert_eq!(store.claim_run("worker-a", "parked", &strict).await?, None);
    assert_run_active(&*store, "parked", RunStatus::Parked).await?;
    assert!(
        store.unpark("parked").await?,
        "still parked after the refusal"
    );

    // Nothing was appended to the runs refused.
    let claim = claim_run(&*store, "worker-a", "unowned", &options(&[flow()])).await?;
    assert_eq!(
        store.load(&claim.lease).await?.journal,
        vec![(1, start_of("unowned"))]
    );
    send(&*store, "waiting", "m1", event("m1")).await?;
    let claim = claim_run(&*store, "worker-a", "waiting", &options(&[flow()])).await?;
    assert_eq!(
        store.load(&claim.lease).await?.journal,
        vec![(1, start_of("waiting"))]
    );

    let error = store
        .reopen("owned", reopening(1), None)
        .await
        .expect_err("reopening a running run fails");
    let text = error.to_string();
    ensure!(
        text.contains("owned") && text.contains("running"),
        "{error:?} displays as {text:?}"
    );
    ensure!(!error.is_transient(), "{error:?} is not transient");

    for owner in [None, Some("worker-a")] {
        match store.reopen("nobody", reopening(1), owner).await {
            Err(StoreError::UnknownRun { run_id }) => assert_eq!(run_id, "nobody"),
            other => bail!("reopen of an unknown run: expected UnknownRun, got {other:?}"),
        }
    }
    assert_eq!(
        store.get_run("nobody").await?,
        None,
        "a reopen creates nothing"
    );

    let done = create_owned(&*store, "purged", &flow(), "worker-a").await?;
    commit(
        &*store,
        &done,
        finish(RunStatus::Completed, Some(stop_event()), None),
    )
    .await?;
    assert!(store.purge("purged").await?);
    match store.reopen("purged", reopening(1), Some("worker-a")).await {
        Err(StoreError::UnknownRun { run_id }) => assert_eq!(run_id, "purged"),
        other => bail!("reopen of a purged run: expected UnknownRun, got {other:?}"),
    }
    assert_eq!(store.get_run("purged").await?, None);
    Ok(())
}

/// A message id the run consumed before it finished is still a duplicate after a reopen; one
/// left unread at the finish went with it, and is new again; new ones are accepted.
pub(super) async fn reopen_keeps_message_dedup(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    assert_eq!(
        send(&*store, "run", "m1", event("m1")).await?,
        Sent::Accepted
    );
    assert_eq!(
        send(&*store, "run", "m2", event("m2")).await?,
        Sent::Accepted
    );
    let inbox = store.inbox(&lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["m1", "m2"]);
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            consumed: vec![inbox[0].id],
            ..finish(RunStatus::Completed, Some(stop_event()), None)
        },
    )
    .await?;
    assert_eq!(
        send(&*store, "run", "m1", event("m1")).await?,
        Sent::Duplicate
    );

    let reopened = reopen(&*store, "run", 1, Some("worker-a")).await?;
    assert_eq!(reopened.journal_seq, 3);
    let lease = reopened.lease.context("a lease")?;
    assert_eq!(
        store.inbox(&lease).await?,
        Vec::new(),
        "the message unread at the finish went with it"
    );
    assert_eq!(
        send(&*store, "run", "m1", event("m1")).await?,
        Sent::Duplicate,
        "consumed before the finish"
    );
    assert_eq!(
        send(&*store, "run", "m3", event("m3")).await?,
        Sent::Accepted
    );
    assert_eq!(
        send(&*store, "run", "m3", event("m3")).await?,
        Sent::Duplicate
    );
    assert_eq!(
        send(&*store, "run", "m2", event("m2 again")).await?,
        Sent::Accepted,
        "dropped unread at the finish"
    );
    let inbox = store.inbox(&lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["m3", "m2"]);
    assert_eq!(inbox[1].mail, event("m2 again"));

    // Consumed after the reopening, they deduplicate after the next finish and reopen too.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([4]),
            consumed: inbox.iter().map(|message| message.id).collect(),
            ..finish(RunStatus::Completed, Some(stop_event()), None)
        },
    )
    .await?;
    let reopened = reopen(&*store, "run", 2, None).await?;
    assert_eq!((reopened.lease, reopened.journal_seq), (None, 5));
    for msg_id in ["m1", "m2", "m3"] {
        assert_eq!(
            send(&*store, "run", msg_id, event(msg_id)).await?,
            Sent::Duplicate,
            "{msg_id} after the second reopen"
        );
    }
    assert_eq!(
        send(&*store, "run", "m4", event("m4")).await?,
        Sent::Accepted
    );
    let claim = claim_run(&*store, "worker-a", "run", &options(&[flow()])).await?;
    assert_eq!(msg_ids(&store.inbox(&claim.lease).await?), vec!["m4"]);
    Ok(())
}

/// A reopen signals the run to every receiver, with or without an owner.
pub(super) async fn reopen_wakes_workers(store: DynStore) -> Result<()> {
    let mut rx = store.wakeups();
    let mut second = store.wakeups();
    for (run_id, owner) in [("unowned", None), ("owned", Some("worker-a"))] {
        let lease = create_owned(&*store, run_id, &flow(), "worker-a").await?;
        commit(
            &*store,
            &lease,
            finish(RunStatus::Completed, Some(stop_event()), None),
        )
        .await?;
        reopen(&*store, run_id, 1, owner).await?;
        expect_wakeup(&mut rx, run_id, "reopened").await?;
        expect_wakeup(&mut second, run_id, "reopened, second receiver").await?;
    }
    Ok(())
}
