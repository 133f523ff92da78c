//! Creating runs: the lease and record of a new run, idempotency keys, duplicate ids, the first load.

use super::support::*;

/// `create_run` returns the lease of an owned run (epoch 1) and records every field.
pub(super) async fn create_returns_lease_and_record(store: DynStore) -> Result<()> {
    let before = now_ms();
    create(&*store, "unowned", &flow()).await?;
    let lease = create_owned(&*store, "owned", &key("other", "fp-9"), "worker-a").await?;
    let keyed = store
        .create_run(NewRun {
            idempotency_key: Some("key-1".to_owned()),
            ..spec("keyed", &flow())
        })
        .await?;
    assert_eq!(keyed, Created::New(None));
    let after = now_ms();

    let unowned = record(&*store, "unowned").await?;
    assert_eq!(unowned.run_id, "unowned");
    assert_eq!(unowned.workflow, flow());
    assert_eq!(unowned.status, RunStatus::Running);
    assert_eq!(unowned.owner, None);
    assert_eq!(unowned.epoch, 1);
    assert_eq!(unowned.recoveries, 0);
    assert_eq!(unowned.idempotency_key, None);
    assert_eq!(unowned.result, None);
    assert_eq!(unowned.error, None);
    assert_eq!(unowned.last_event_seq, 0);
    // The store's clock may differ a little from this process's; a minute is generous.
    ensure!(
        unowned.created_at_ms > before - 60_000 && unowned.created_at_ms < after + 60_000,
        "created_at_ms {} is not around now ({before}..{after})",
        unowned.created_at_ms
    );
    ensure!(unowned.updated_at_ms >= unowned.created_at_ms);

    let owned = record(&*store, "owned").await?;
    assert_eq!(owned.workflow, key("other", "fp-9"));
    assert_eq!(owned.status, RunStatus::Running);
    assert_eq!(owned.owner.as_deref(), Some("worker-a"));
    assert_eq!(owned.epoch, lease.epoch);
    assert_eq!(owned.recoveries, 0);

    let keyed = record(&*store, "keyed").await?;
    assert_eq!(keyed.idempotency_key.as_deref(), Some("key-1"));
    assert_eq!(keyed.owner, None);

    assert_eq!(store.get_run("nobody").await?, None);
    assert_eq!(store.list_runs(&RunFilter::default()).await?.len(), 3);
    Ok(())
}

/// A second create with a used idempotency key returns the first run and changes nothing.
pub(super) async fn idempotent_create(store: DynStore) -> Result<()> {
    let first = store
        .create_run(NewRun {
            idempotency_key: Some("order-42".to_owned()),
            owner: Some("worker-a".to_owned()),
            ..spec("first", &flow())
        })
        .await?;
    let Created::New(Some(lease)) = first else {
        bail!("expected a new owned run, got {first:?}");
    };
    let original = record(&*store, "first").await?;

    // Another id, another workflow, another owner, another start: still the first run.
    let again = store
        .create_run(NewRun {
            run_id: "second".to_owned(),
            workflow: key("elsewhere", "fp-2"),
            idempotency_key: Some("order-42".to_owned()),
            start: json!({"type": "start", "other": true}),
            owner: Some("worker-b".to_owned()),
        })
        .await?;
    assert_eq!(again, Created::Existing("first".to_owned()));
    // The same id and key: the same answer.
    let same = store
        .create_run(NewRun {
            idempotency_key: Some("order-42".to_owned()),
            ..spec("first", &flow())
        })
        .await?;
    assert_eq!(same, Created::Existing("first".to_owned()));

    assert_eq!(store.get_run("second").await?, None);
    assert_eq!(record(&*store, "first").await?, original);
    let runs = store.list_runs(&RunFilter::default()).await?;
    assert_eq!(runs.len(), 1);
    // The first run's lease and journal are untouched.
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.journal, vec![(1, start_of("first"))]);

    // Another key is another run.
    let other = store
        .create_run(NewRun {
            idempotency_key: Some("order-43".to_owned()),
            ..spec("third", &flow())
        })
        .await?;
    assert_eq!(other, Created::New(None));
    assert_eq!(store.list_runs(&RunFilter::default()).await?.len(), 2);
    Ok(())
}

/// An existing run id without the same idempotency key is `DuplicateRun`, and nothing changes.
pub(super) async fn duplicate_run_id(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "dup", &flow(), "worker-a").await?;
    let original = record(&*store, "dup").await?;

    for (attempt, idempotency_key) in [("no key", None), ("another key", Some("fresh-key"))] {
        let result = store
            .create_run(NewRun {
                idempotency_key: idempotency_key.map(str::to_owned),
                start: json!({"type": "start", "replaced": true}),
                owner: Some("worker-b".to_owned()),
                ..spec("dup", &key("elsewhere", "fp-2"))
            })
            .await;
        match result {
            Err(StoreError::DuplicateRun { run_id }) => assert_eq!(run_id, "dup"),
            other => bail!("{attempt}: expected DuplicateRun, got {other:?}"),
        }
    }
    assert_eq!(record(&*store, "dup").await?, original);
    assert_eq!(
        store.load(&lease).await?.journal,
        vec![(1, start_of("dup"))]
    );
    assert_eq!(store.list_runs(&RunFilter::default()).await?.len(), 1);

    // The failed create did not take its key.
    let keyed = store
        .create_run(NewRun {
            idempotency_key: Some("fresh-key".to_owned()),
            ..spec("other", &flow())
        })
        .await?;
    assert_eq!(keyed, Created::New(None));
    Ok(())
}

/// A new run loads with its start as journal entry 1, no snapshot and no events.
pub(super) async fn load_after_create(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "owned", &flow(), "worker-a").await?;
    let loaded = store.load(&lease).await?;
    assert_eq!(
        loaded,
        LoadedRun {
            snapshot: None,
            journal: vec![(1, start_of("owned"))],
            events: Vec::new(),
        }
    );
    assert_eq!(store.inbox(&lease).await?, Vec::new());
    assert_eq!(all_events(&*store, "owned").await?, Vec::new());

    create(&*store, "unowned", &flow()).await?;
    let claim = claim_run(&*store, "worker-b", "unowned", &options(&[flow()])).await?;
    let loaded = store.load(&claim.lease).await?;
    assert_eq!(loaded.snapshot, None);
    assert_eq!(loaded.journal, vec![(1, start_of("unowned"))]);
    assert_eq!(loaded.events, Vec::new());
    Ok(())
}
