//! Finishing, listing and purging runs.

use super::support::*;

/// A finishing commit records the outcome, clears the owner, fences the lease, and the run
/// accepts no more events.
pub(super) async fn finish_records_outcome(store: DynStore) -> Result<()> {
    let stop = json!({"type": "stop", "value": {"answer": 42}});
    let outcomes = [
        (RunStatus::Completed, Some(stop.clone()), None),
        (
            RunStatus::Failed,
            None,
            Some("step `fetch` failed: timeout"),
        ),
        (RunStatus::Cancelled, None, Some("cancelled")),
    ];
    for (outcome, result, error) in outcomes {
        let run_id = format!("run-{outcome}");
        let lease = create_owned(&*store, &run_id, &flow(), "worker-a").await?;
        commit(
            &*store,
            &lease,
            Commit {
                journal: ticks(2..=3),
                events: published(1..=2),
                ..finish(outcome, result.clone(), error)
            },
        )
        .await?;
        let run = record(&*store, &run_id).await?;
        assert_eq!(run.status, outcome);
        assert_eq!(run.result, result);
        assert_eq!(run.error.as_deref(), error);
        assert_eq!(run.owner, None);
        ensure!(run.epoch > lease.epoch, "finishing increases the epoch");
        assert_eq!(run.last_event_seq, 2);
        assert_eq!(all_events(&*store, &run_id).await?, published(1..=2));

        assert_fenced(store.load(&lease).await, &lease, "load after finish")?;
        assert_fenced(store.inbox(&lease).await, &lease, "inbox after finish")?;
        let result = store
            .commit(
                &lease,
                Commit {
                    journal: ticks([4]),
                    events: published([3]),
                    ..release(false, None)
                },
            )
            .await;
        assert_fenced(result, &lease, "commit after finish")?;
        assert_eq!(
            record(&*store, &run_id).await?,
            run,
            "nothing written after finish"
        );
        match store.send(&run_id, "late", event("late")).await {
            Err(StoreError::RunFinished { status, .. }) => assert_eq!(status, outcome),
            other => bail!("send after finish: expected RunFinished, got {other:?}"),
        }
        assert_not_claimable(&*store, &run_id, &options(&[flow()])).await?;
        assert!(!store.unpark(&run_id).await?);
    }
    Ok(())
}

/// `list_runs` filters by status and workflow name, oldest first.
pub(super) async fn list_runs_filters_oldest_first(store: DynStore) -> Result<()> {
    let alpha = key("alpha", "fp-1");
    let beta = key("beta", "fp-1");
    // Ids sort against creation order, so that sorting by id would show.
    let pause = Duration::from_millis(5);
    create(&*store, "run-z", &alpha).await?;
    tokio::time::sleep(pause).await;
    let waiting = create_owned(&*store, "run-y", &beta, "worker-a").await?;
    commit(&*store, &waiting, release(true, None)).await?;
    tokio::time::sleep(pause).await;
    let done = create_owned(&*store, "run-x", &alpha, "worker-a").await?;
    commit(&*store, &done, finish(RunStatus::Completed, None, None)).await?;
    tokio::time::sleep(pause).await;
    create(&*store, "run-w", &beta).await?;
    tokio::time::sleep(pause).await;
    create(&*store, "run-v", &key("alpha", "fp-2")).await?;

    let list = |status: Vec<RunStatus>, workflow: Vec<&str>| {
        let store = store.clone();
        let filter = RunFilter {
            status,
            workflow: workflow.into_iter().map(str::to_owned).collect(),
        };
        async move {
            let runs = store.list_runs(&filter).await?;
            anyhow::Ok(runs.into_iter().map(|run| run.run_id).collect::<Vec<_>>())
        }
    };
    use RunStatus::*;
    assert_eq!(
        list(vec![], vec![]).await?,
        ["run-z", "run-y", "run-x", "run-w", "run-v"]
    );
    assert_eq!(
        list(vec![Running], vec![]).await?,
        ["run-z", "run-w", "run-v"]
    );
    assert_eq!(list(vec![Waiting], vec![]).await?, ["run-y"]);
    assert_eq!(
        list(vec![Completed, Waiting], vec![]).await?,
        ["run-y", "run-x"]
    );
    assert_eq!(
        list(vec![Failed, Parked], vec![]).await?,
        Vec::<String>::new()
    );
    assert_eq!(
        list(vec![], vec!["alpha"]).await?,
        ["run-z", "run-x", "run-v"]
    );
    assert_eq!(
        list(vec![], vec!["beta", "gamma"]).await?,
        ["run-y", "run-w"]
    );
    assert_eq!(list(vec![Running], vec!["beta"]).await?, ["run-w"]);
    assert_eq!(
        list(vec![Running, Completed], vec!["alpha"]).await?,
        ["run-z", "run-x", "run-v"]
    );
    assert_eq!(list(vec![], vec!["gamma"]).await?, Vec::<String>::new());

    // Runs created within one millisecond are still listed in creation order.
    let burst: Vec<String> = (0..20).rev().map(|i| format!("burst-{i:02}")).collect();
    for run_id in &burst {
        create(&*store, run_id, &key("burst", "fp-1")).await?;
    }
    assert_eq!(list(vec![], vec!["burst"]).await?, burst);
    assert_eq!(list(vec![Running], vec![]).await?.len(), 23);

    // The records are whole.
    let runs = store.list_runs(&RunFilter::default()).await?;
    for run in &runs {
        assert_eq!(run, &record(&*store, &run.run_id).await?);
    }
    ensure!(
        runs.windows(2)
            .all(|pair| pair[0].created_at_ms <= pair[1].created_at_ms),
        "oldest first"
    );
    Ok(())
}

/// `purge` deletes a run and all it recorded; a second purge finds nothing.
pub(super) async fn purge_removes_everything(store: DynStore) -> Result<()> {
    let lease = {
        let created = store
            .create_run(NewRun {
                idempotency_key: Some("key-1".to_owned()),
                owner: Some("worker-a".to_owned()),
                ..spec("doomed", &flow())
            })
            .await?;
        let Created::New(Some(lease)) = created else {
            bail!("expected a new owned run, got {created:?}");
        };
        lease
    };
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=3),
            events: published(1..=3),
            snapshot: Some((2, json!({"state": 2}))),
            ..Commit::default()
        },
    )
    .await?;
    send(&*store, "doomed", "m1", event("m1")).await?;
    create(&*store, "survivor", &flow()).await?;
    send(&*store, "survivor", "m1", event("m1")).await?;

    assert!(store.purge("doomed").await?);
    assert_eq!(store.get_run("doomed").await?, None);
    match store.events_after("doomed", 0, 10).await {
        Err(StoreError::UnknownRun { run_id }) => assert_eq!(run_id, "doomed"),
        other => bail!("events_after a purged run: expected UnknownRun, got {other:?}"),
    }
    match store.send("doomed", "m2", event("m2")).await {
        Err(StoreError::UnknownRun { .. }) => {}
        other => bail!("send to a purged run: expected UnknownRun, got {other:?}"),
    }
    // The owner's later calls are fenced.
    assert_fenced(store.load(&lease).await, &lease, "load after purge")?;
    assert_fenced(store.inbox(&lease).await, &lease, "inbox after purge")?;
    let result = store.commit(&lease, everything(4, 4, Vec::new())).await;
    assert_fenced(result, &lease, "commit after purge")?;
    assert_eq!(
        store.get_run("doomed").await?,
        None,
        "a fenced commit recreates nothing"
    );
    let ids: Vec<String> = store
        .list_runs(&RunFilter::default())
        .await?
        .into_iter()
        .map(|run| run.run_id)
        .collect();
    assert_eq!(ids, ["survivor"]);
    assert!(!store.purge("doomed").await?);
    assert!(!store.purge("nobody").await?);

    // Everything went: the id and the idempotency key are free, and nothing comes back.
    let again = store
        .create_run(NewRun {
            idempotency_key: Some("key-1".to_owned()),
            owner: Some("worker-b".to_owned()),
            ..spec("doomed", &flow())
        })
        .await?;
    let Created::New(Some(lease)) = again else {
        bail!("recreating a purged run: expected New, got {again:?}");
    };
    let loaded = store.load(&lease).await?;
    assert_eq!(
        loaded,
        LoadedRun {
            snapshot: None,
            journal: vec![(1, start_of("doomed"))],
            events: Vec::new(),
        }
    );
    assert_eq!(store.inbox(&lease).await?, Vec::new());
    assert_eq!(record(&*store, "doomed").await?.last_event_seq, 0);
    assert_eq!(
        send(&*store, "doomed", "m1", event("m1")).await?,
        Sent::Accepted
    );
    // The survivor kept its own.
    let claim = claim_run(&*store, "worker-c", "survivor", &options(&[flow()])).await?;
    assert_eq!(msg_ids(&store.inbox(&claim.lease).await?), vec!["m1"]);
    Ok(())
}
