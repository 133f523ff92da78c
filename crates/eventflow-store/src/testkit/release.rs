//! Releasing: an idle run waits for an event or its wake-up time, any other is claimable at once.

use super::support::*;

/// `Release { idle: true }` makes the run `Waiting` and unowned; an event makes it claimable.
pub(super) async fn release_idle_waits_for_events(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(&*store, &lease, release(true, None)).await?;
    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Waiting);
    assert_eq!(run.owner, None);
    assert_eq!(run.epoch, lease.epoch + 1);
    assert_not_claimable(&*store, "run", &options(&[flow()])).await?;

    assert_eq!(
        send(&*store, "run", "m1", event("m1")).await?,
        Sent::Accepted
    );
    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner, None);
    let claims = store.claim("worker-b", &options(&[flow()])).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(!claims[0].recovered);
    assert_eq!(claims[0].lease.epoch, lease.epoch + 2);
    let inbox = store.inbox(&claims[0].lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["m1"]);
    assert_eq!(inbox[0].mail, event("m1"));

    // Waiting again, with a far wake-up time: an event still wakes it at once.
    commit(
        &*store,
        &claims[0].lease,
        Commit {
            consumed: vec![inbox[0].id],
            ..release(true, Some(Duration::from_secs(3600)))
        },
    )
    .await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Waiting);
    assert_not_claimable(&*store, "run", &options(&[flow()])).await?;
    send(&*store, "run", "m2", event("m2")).await?;
    let claim = claim_run(&*store, "worker-c", "run", &options(&[flow()])).await?;
    assert_eq!(msg_ids(&store.inbox(&claim.lease).await?), vec!["m2"]);
    Ok(())
}

/// An idle release with an unconsumed inbox message keeps the run `Running` and claimable; one
/// that consumes the last message in the same commit waits.
pub(super) async fn release_idle_with_unread_inbox_stays_running(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    send(&*store, "run", "early", event("early")).await?;
    commit(&*store, &lease, release(true, None)).await?;
    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner, None);
    let claims = store.claim("worker-b", &options(&[flow()])).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(!claims[0].recovered);
    let inbox = store.inbox(&claims[0].lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["early"]);

    // Consuming it in the releasing commit leaves nothing unread: the run waits.
    commit(
        &*store,
        &claims[0].lease,
        Commit {
            journal: ticks([2]),
            consumed: vec![inbox[0].id],
            ..release(true, None)
        },
    )
    .await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Waiting);
    assert_not_claimable(&*store, "run", &options(&[flow()])).await?;
    Ok(())
}

/// `Release { idle: false }` (a graceful shutdown) leaves the run `Running`, unowned and
/// claimable at once by another worker, without a recovery.
pub(super) async fn release_not_idle_is_claimable_at_once(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let created = record(&*store, "run").await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            ..release(false, None)
        },
    )
    .await?;
    let run = record(&*store, "run").await?;
    ensure!(
        run.updated_at_ms > created.updated_at_ms,
        "a release changes the run: updated_at_ms {} -> {}",
        created.updated_at_ms,
        run.updated_at_ms
    );
    assert_eq!(run.created_at_ms, created.created_at_ms);
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner, None);
    assert_eq!(run.epoch, lease.epoch + 1);
    // worker-a is still alive: that does not matter, it let go.
    store.heartbeat("worker-a", &[flow()]).await?;
    let claims = store.claim("worker-b", &options(&[flow()])).await?;
    assert_eq!(
        claims,
        vec![Claim {
            lease: Lease {
                run_id: "run".to_owned(),
                owner: "worker-b".to_owned(),
                epoch: lease.epoch + 2,
            },
            recovered: false,
        }]
    );
    assert_eq!(record(&*store, "run").await?.recoveries, 0);
    assert_eq!(store.load(&claims[0].lease).await?.journal.len(), 2);
    Ok(())
}

/// `Release { idle: true, wake_after }`: not claimable before the time, claimable after it.
pub(super) async fn release_idle_wakes_after(store: DynStore) -> Result<()> {
    let wake_after = Duration::from_secs(1);
    let lease = create_owned(&*store, "sleeper", &flow(), "worker-a").await?;
    let released = Instant::now();
    commit(&*store, &lease, release(true, Some(wake_after))).await?;
    assert_eq!(status(&*store, "sleeper").await?, RunStatus::Waiting);
    // The store released the run after `released`: by its clock, less time than
    // `released.elapsed()` has passed (give or take a millisecond of rounding).
    let too_early = |claimed: bool| {
        ensure!(
            !claimed || released.elapsed() + Duration::from_millis(50) >= wake_after,
            "claimable {:?} after an idle release with wake_after {wake_after:?}",
            released.elapsed()
        );
        Ok(claimed)
    };
    store.heartbeat("worker-b", &[flow()]).await?;
    let early = claim_ids(&*store, "worker-b", &options(&[flow()])).await?;
    if too_early(!early.is_empty())? {
        // The machine was slow enough for the time to pass: claimed, rightly.
        return Ok(());
    }
    let early = store
        .claim_run("worker-b", "sleeper", &options(&[flow()]))
        .await?;
    if too_early(early.is_some())? {
        return Ok(());
    }

    tokio::time::sleep(wake_after + Duration::from_millis(200)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let claim = loop {
        let claims = store.claim("worker-b", &options(&[flow()])).await?;
        if let Some(claim) = claims.into_iter().next() {
            break claim;
        }
        ensure!(
            Instant::now() < deadline,
            "not claimable {:?} after its wake-up time",
            released.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(
        released.elapsed() + Duration::from_millis(50) >= wake_after,
        "claimed before its wake-up time"
    );
    assert_eq!(claim.lease.run_id, "sleeper");
    assert!(!claim.recovered);
    assert_eq!(claim.lease.epoch, lease.epoch + 2);
    assert_eq!(status(&*store, "sleeper").await?, RunStatus::Running);
    Ok(())
}
