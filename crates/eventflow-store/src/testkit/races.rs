//! Races: concurrent creates, concurrent sends, a commit against a claim, a send against an idle release.

use super::support::*;

/// Concurrent creates with one idempotency key (from two store instances) make one run; the
/// others get its id. Concurrent creates of one run id make one run; the others are duplicates.
pub(super) async fn concurrent_idempotent_create(setup: Setup) -> Result<()> {
    let stores = [setup.store(), setup.open_again().await?];
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                store
                    .create_run(NewRun {
                        idempotency_key: Some("same-key".to_owned()),
                        owner: Some(format!("worker-{i}")),
                        ..spec(&format!("keyed-{i}"), &flow())
                    })
                    .await
            })
        })
        .collect();
    let mut new = Vec::new();
    let mut existing = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await?.with_context(|| format!("create keyed-{i}"))? {
            Created::New(lease) => new.push((i, lease)),
            Created::Existing(run_id) => existing.push(run_id),
        }
    }
    assert_eq!(new.len(), 1, "one create wins: {new:?}");
    let (winner, lease) = &new[0];
    let winner_id = format!("keyed-{winner}");
    assert_eq!(
        lease.as_ref().map(|lease| lease.run_id.as_str()),
        Some(winner_id.as_str())
    );
    for run_id in &existing {
        assert_eq!(run_id, &winner_id, "the others get the winner's id");
    }
    let runs = stores[0].list_runs(&RunFilter::default()).await?;
    assert_eq!(runs.len(), 1);

    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move { store.create_run(spec("same-id", &flow())).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await? {
            Ok(Created::New(None)) => created += 1,
            Err(StoreError::DuplicateRun { run_id }) => assert_eq!(run_id, "same-id"),
            other => bail!("a racing create of one id: {other:?}"),
        }
    }
    assert_eq!(created, 1, "one create of `same-id` wins");
    assert_eq!(stores[1].list_runs(&RunFilter::default()).await?.len(), 2);
    Ok(())
}

/// Concurrent sends of one message id queue it once; of different ids, all of them.
pub(super) async fn concurrent_sends_deduplicate(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let same: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { store.send("run", "once", event(&format!("copy {i}"))).await },
            )
        })
        .collect();
    let mut accepted = 0;
    for task in same {
        match task.await?.context("a racing send")? {
            Sent::Accepted => accepted += 1,
            Sent::Duplicate => {}
        }
    }
    assert_eq!(accepted, 1, "one of the racing sends is accepted");

    let different: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .send("run", &format!("m{i:02}"), event(&format!("m{i:02}")))
                    .await
            })
        })
        .collect();
    for task in different {
        assert_eq!(task.await?.context("a racing send")?, Sent::Accepted);
    }
    let inbox = store.inbox(&lease).await?;
    assert_eq!(inbox.len(), 17);
    let ids: HashSet<i64> = inbox.iter().map(|message| message.id).collect();
    assert_eq!(ids.len(), 17, "inbox rows have distinct ids");
    let mut names: Vec<&str> = msg_ids(&inbox);
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 17);
    for message in &inbox {
        if message.msg_id != "once" {
            assert_eq!(message.mail, event(&message.msg_id));
        }
    }
    Ok(())
}

/// A dead owner's commit racing another worker's claim either lands before the claim (and the
/// new owner loads it) or is fenced (and nothing of it is there): never after the claim.
pub(super) async fn commit_races_claim(store: DynStore) -> Result<()> {
    let mut landed = 0;
    for i in 0..20 {
        let run_id = format!("race-{i:02}");
        // "ghost" never heartbeats: its run is claimable at once.
        let lease = create_owned(&*store, &run_id, &flow(), "ghost").await?;
        let writer = {
            let store = store.clone();
            let lease = lease.clone();
            tokio::spawn(async move {
                store
                    .commit(
                        &lease,
                        Commit {
                            journal: ticks([2]),
                            events: published([1]),
                            ..Commit::default()
                        },
                    )
                    .await
            })
        };
        let claimer = {
            let store = store.clone();
            let run_id = run_id.clone();
            tokio::spawn(async move {
                store
                    .claim_run("rescuer", &run_id, &options(&[flow()]))
                    .await
            })
        };
        let written = writer.await?;
        let mut claim = claimer.await?.context("claim_run")?;
        if claim.is_none() {
            // A store may skip a run another transaction holds (Postgres's `SKIP LOCKED`): the
            // claim then comes after the commit, which must have landed.
            ensure!(
                written.is_ok(),
                "claim_run found nothing and the commit failed: {written:?}"
            );
            claim = store
                .claim_run("rescuer", &run_id, &options(&[flow()]))
                .await?;
        }
        let claim = claim.context("the orphan is claimable")?;
        ensure!(claim.recovered, "{claim:?}");
        let loaded = store.load(&claim.lease).await?;
        match written {
            Ok(()) => {
                landed += 1;
                assert_eq!(
                    loaded.journal,
                    vec![(1, start_of(&run_id)), (2, json!({"tick": 2}))]
                );
                assert_eq!(loaded.events, published([1]));
                assert_eq!(record(&*store, &run_id).await?.last_event_seq, 1);
            }
            Err(StoreError::Fenced { .. }) => {
                assert_eq!(loaded.journal, vec![(1, start_of(&run_id))]);
                assert_eq!(loaded.events, Vec::new());
                assert_eq!(record(&*store, &run_id).await?.last_event_seq, 0);
            }
            Err(error) => bail!("the racing commit failed otherwise: {error:?}"),
        }
        // Either way, the old lease is fenced now.
        let result = store.commit(&lease, everything(3, 2, Vec::new())).await;
        assert_fenced(result, &lease, "the ghost after the claim")?;
    }
    println!("{landed} of 20 racing commits landed before the claim");
    Ok(())
}

/// A message racing an idle release is never lost: whatever the order, the run ends `Running`
/// with the message unread, and claimable.
pub(super) async fn send_races_idle_release(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let mut run_ids = Vec::new();
    for i in 0..20 {
        let run_id = format!("race-{i:02}");
        let lease = create_owned(&*store, &run_id, &flow(), "worker-a").await?;
        let sender = {
            let store = store.clone();
            let run_id = run_id.clone();
            tokio::spawn(async move { store.send(&run_id, "ping", event("ping")).await })
        };
        let releaser = {
            let store = store.clone();
            tokio::spawn(async move { store.commit(&lease, release(true, None)).await })
        };
        assert_eq!(sender.await?.context("the racing send")?, Sent::Accepted);
        releaser.await?.context("the racing release")?;
        let run = record(&*store, &run_id).await?;
        assert_eq!(
            run.status,
            RunStatus::Running,
            "{run_id} has an unread message"
        );
        assert_eq!(run.owner, None);
        run_ids.push(run_id);
    }
    store.heartbeat("worker-b", &[flow()]).await?;
    let mut claimed = claim_ids(&*store, "worker-b", &options(&[flow()])).await?;
    claimed.sort();
    assert_eq!(claimed, run_ids, "every run is claimable");
    Ok(())
}
