//! Claiming: only served workflows, live owners kept and dead ones recovered, limits, concurrent claimers (in one store and across instances), one given run, and parking a run that crashed its workers too often.

use super::support::*;

/// `claim` returns only runs of served workflows: both name and fingerprint must match.
pub(super) async fn claim_only_served_workflows(store: DynStore) -> Result<()> {
    create(&*store, "served", &key("alpha", "fp-1")).await?;
    create(&*store, "other-fingerprint", &key("alpha", "fp-2")).await?;
    create(&*store, "other-name", &key("beta", "fp-1")).await?;
    create(&*store, "also-served", &key("gamma", "fp-3")).await?;
    store.heartbeat("worker-a", &[key("alpha", "fp-1")]).await?;
    store.heartbeat("worker-b", &[key("alpha", "fp-2")]).await?;

    let mut claimed = claim_ids(&*store, "worker-a", &options(&[key("alpha", "fp-1")])).await?;
    assert_eq!(claimed, vec!["served"]);
    assert_eq!(
        claim_ids(&*store, "worker-a", &options(&[])).await?,
        Vec::<String>::new()
    );
    claimed = claim_ids(
        &*store,
        "worker-a",
        &options(&[
            key("alpha", "fp-1"),
            key("gamma", "fp-3"),
            key("delta", "fp-2"),
        ]),
    )
    .await?;
    assert_eq!(claimed, vec!["also-served"]);
    for run_id in ["other-fingerprint", "other-name"] {
        let run = record(&*store, run_id).await?;
        assert_eq!(
            (run.owner, run.epoch),
            (None, 1),
            "{run_id} stays unclaimed"
        );
    }
    // A worker serving the other shapes gets them.
    let mut claimed = claim_ids(
        &*store,
        "worker-b",
        &options(&[key("alpha", "fp-2"), key("beta", "fp-1")]),
    )
    .await?;
    claimed.sort();
    assert_eq!(claimed, vec!["other-fingerprint", "other-name"]);
    Ok(())
}

/// A run whose owner heartbeats is not claimed; once the heartbeat is older than the TTL, it is
/// recovered: `recovered`, one more recovery, one more epoch.
pub(super) async fn claim_skips_live_owner_and_recovers_expired(store: DynStore) -> Result<()> {
    store.heartbeat("worker-a", &[flow()]).await?;
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let long = options(&[flow()]);
    assert_not_claimable(&*store, "run", &long).await?;

    tokio::time::sleep(PAST_SHORT_TTL).await;
    // The heartbeat is older than SHORT_TTL but not than LONG_TTL: TTL is the claimer's option.
    assert_not_claimable(&*store, "run", &long).await?;
    // A fresh heartbeat keeps the owner alive under a TTL shorter than the sleep.
    store.heartbeat("worker-a", &[flow()]).await?;
    let medium = ClaimOptions {
        lease_ttl: Duration::from_millis(600),
        ..options(&[flow()])
    };
    assert_not_claimable(&*store, "run", &medium).await?;
    let run = record(&*store, "run").await?;
    assert_eq!(
        (run.owner.as_deref(), run.epoch, run.recoveries),
        (Some("worker-a"), 1, 0)
    );

    tokio::time::sleep(Duration::from_millis(900)).await;
    let claims = store.claim("worker-b", &medium).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!(
        claims[0],
        Claim {
            lease: Lease {
                run_id: "run".to_owned(),
                owner: "worker-b".to_owned(),
                epoch: lease.epoch + 1,
            },
            recovered: true,
        }
    );
    let run = record(&*store, "run").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner.as_deref(), Some("worker-b"));
    assert_eq!(run.epoch, lease.epoch + 1);
    assert_eq!(run.recoveries, 1);

    // worker-b never heartbeated: it is dead at once, and worker-c recovers again.
    let claim = claim_run(&*store, "worker-c", "run", &long).await?;
    assert!(claim.recovered);
    assert_eq!(claim.lease.epoch, lease.epoch + 2);
    assert_eq!(record(&*store, "run").await?.recoveries, 2);
    Ok(())
}

/// An owner that never heartbeated is dead: its runs are recovered at once. Unowned runs are
/// claimed without a recovery.
pub(super) async fn claim_recovers_owner_without_heartbeat(store: DynStore) -> Result<()> {
    let ghost = create_owned(&*store, "orphan", &flow(), "ghost").await?;
    create(&*store, "unowned", &flow()).await?;
    store.heartbeat("worker-a", &[flow()]).await?;
    let mut claims = store.claim("worker-a", &options(&[flow()])).await?;
    claims.sort_by(|a, b| a.lease.run_id.cmp(&b.lease.run_id));
    assert_eq!(
        claims,
        vec![
            Claim {
                lease: Lease {
                    run_id: "orphan".to_owned(),
                    owner: "worker-a".to_owned(),
                    epoch: ghost.epoch + 1,
                },
                recovered: true,
            },
            Claim {
                lease: Lease {
                    run_id: "unowned".to_owned(),
                    owner: "worker-a".to_owned(),
                    epoch: 2,
                },
                recovered: false,
            },
        ]
    );
    assert_eq!(record(&*store, "orphan").await?.recoveries, 1);
    assert_eq!(record(&*store, "unowned").await?.recoveries, 0);
    for claim in &claims {
        let run = record(&*store, &claim.lease.run_id).await?;
        assert_eq!(run.owner.as_deref(), Some("worker-a"));
        assert_eq!(run.epoch, claim.lease.epoch);
        assert_eq!(run.status, RunStatus::Running);
    }
    assert_fenced(store.load(&ghost).await, &ghost, "the ghost's load")?;
    // worker-a is alive: nothing more to claim.
    assert_eq!(
        claim_ids(&*store, "worker-b", &options(&[flow()])).await?,
        Vec::<String>::new()
    );
    Ok(())
}

/// `claim` returns at most `limit` runs, and every run once.
pub(super) async fn claim_respects_limit(store: DynStore) -> Result<()> {
    for i in 0..5 {
        create(&*store, &format!("run-{i}"), &flow()).await?;
    }
    store.heartbeat("worker-a", &[flow()]).await?;
    let limited = |limit| ClaimOptions {
        limit,
        ..options(&[flow()])
    };
    assert_eq!(store.claim("worker-a", &limited(0)).await?, Vec::new());
    let mut seen = HashSet::new();
    for expected in [2, 2, 1, 0] {
        let claims = store.claim("worker-a", &limited(2)).await?;
        assert_eq!(claims.len(), expected, "{claims:?}");
        for claim in claims {
            assert!(!claim.recovered);
            assert_eq!(claim.lease.epoch, 2);
            ensure!(
                seen.insert(claim.lease.run_id.clone()),
                "{claim:?} claimed twice"
            );
        }
    }
    assert_eq!(seen.len(), 5);
    Ok(())
}

/// Claims every claimable run for `worker`, a few at a time, until none is left.
pub(super) async fn claim_all(
    store: DynStore,
    worker: String,
    options: ClaimOptions,
) -> Result<Vec<String>> {
    store.heartbeat(&worker, &options.workflows).await?;
    let mut claimed = Vec::new();
    loop {
        let claims = store.claim(&worker, &options).await?;
        if claims.is_empty() {
            return Ok(claimed);
        }
        for claim in claims {
            ensure!(
                !claim.recovered,
                "{worker} recovered {claim:?} from a live worker"
            );
            ensure!(claim.lease.owner == worker);
            claimed.push(claim.lease.run_id);
        }
        tokio::task::yield_now().await;
    }
}

/// Checks that the claimers' runs are `expected` exactly once each, owned by their claimer.
pub(super) async fn check_disjoint(
    store: &dyn Store,
    expected: &[String],
    claimed: &[(String, Vec<String>)],
) -> Result<()> {
    let mut seen = HashSet::new();
    for (worker, runs) in claimed {
        for run_id in runs {
            ensure!(seen.insert(run_id.clone()), "{run_id} was claimed twice");
            let run = record(store, run_id).await?;
            assert_eq!(run.owner.as_deref(), Some(worker.as_str()), "{run_id}");
            assert_eq!(run.epoch, 2, "{run_id} was claimed once");
        }
    }
    let expected: HashSet<String> = expected.iter().cloned().collect();
    assert_eq!(seen, expected, "every run is claimed");
    Ok(())
}

/// Concurrent claimers never get the same run: two claims joined on one task, and four workers
/// on their own tasks.
pub(super) async fn concurrent_claims_never_overlap(store: DynStore) -> Result<()> {
    let workflow = flow();
    let few = ClaimOptions {
        limit: 3,
        ..options(std::slice::from_ref(&workflow))
    };

    let joined: Vec<String> = (0..40).map(|i| format!("joined-{i:02}")).collect();
    for run_id in &joined {
        create(&*store, run_id, &workflow).await?;
    }
    store.heartbeat("worker-a", &[flow()]).await?;
    store.heartbeat("worker-b", &[flow()]).await?;
    // Single claims, racing.
    let (a, b) = tokio::join!(store.claim("worker-a", &few), store.claim("worker-b", &few));
    let (a, b) = (a?, b?);
    assert_eq!(a.len() + b.len(), 6, "{a:?} {b:?}");
    let first: Vec<(String, Vec<String>)> = vec![
        (
            "worker-a".to_owned(),
            a.into_iter().map(|c| c.lease.run_id).collect(),
        ),
        (
            "worker-b".to_owned(),
            b.into_iter().map(|c| c.lease.run_id).collect(),
        ),
    ];
    // Then two loops, racing until all are claimed.
    let (a, b) = tokio::join!(
        claim_all(store.clone(), "worker-a".to_owned(), few.clone()),
        claim_all(store.clone(), "worker-b".to_owned(), few.clone()),
    );
    let mut claimed = first;
    claimed[0].1.extend(a?);
    claimed[1].1.extend(b?);
    check_disjoint(&*store, &joined, &claimed).await?;

    let spawned: Vec<String> = (0..60).map(|i| format!("spawned-{i:02}")).collect();
    for run_id in &spawned {
        create(&*store, run_id, &workflow).await?;
    }
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let worker = format!("worker-{i}");
            let task = tokio::spawn(claim_all(store.clone(), worker.clone(), few.clone()));
            (worker, task)
        })
        .collect();
    let mut claimed = Vec::new();
    for (worker, task) in tasks {
        claimed.push((worker, task.await??));
    }
    check_disjoint(&*store, &spawned, &claimed).await?;
    Ok(())
}

/// Two store instances on the same data (two processes) never claim the same run.
pub(super) async fn concurrent_claims_across_instances(setup: Setup) -> Result<()> {
    let store = setup.store();
    let other = setup.open_again().await?;
    let runs: Vec<String> = (0..40).map(|i| format!("run-{i:02}")).collect();
    for run_id in &runs {
        create(&*store, run_id, &flow()).await?;
    }
    let few = ClaimOptions {
        limit: 3,
        ..options(&[flow()])
    };
    // Both workers heartbeat first, so that neither takes the other's runs as a recovery.
    store.heartbeat("worker-a", &[flow()]).await?;
    other.heartbeat("worker-b", &[flow()]).await?;
    let a = tokio::spawn(claim_all(store.clone(), "worker-a".to_owned(), few.clone()));
    let b = tokio::spawn(claim_all(other.clone(), "worker-b".to_owned(), few.clone()));
    let claimed = vec![
        ("worker-a".to_owned(), a.await??),
        ("worker-b".to_owned(), b.await??),
    ];
    check_disjoint(&*store, &runs, &claimed).await?;
    check_disjoint(&*other, &runs, &claimed).await?;
    Ok(())
}

/// `claim_run` claims one given run when it is claimable (whatever its workflow), else `None`.
pub(super) async fn claim_run_claims_one_run(store: DynStore) -> Result<()> {
    create(&*store, "target", &key("unserved", "fp-x")).await?;
    create(&*store, "bystander-run", &key("unserved", "fp-x")).await?;
    let nothing_served = options(&[]);
    let claim = claim_run(&*store, "worker-a", "target", &nothing_served).await?;
    assert_eq!(
        claim,
        Claim {
            lease: Lease {
                run_id: "target".to_owned(),
                owner: "worker-a".to_owned(),
                epoch: 2,
            },
            recovered: false,
        }
    );
    let run = record(&*store, "bystander-run").await?;
    assert_eq!(
        (run.owner, run.epoch),
        (None, 1),
        "claim_run claims only its run"
    );

    // Not claimable: owned by a live worker, waiting, finished, unknown.
    store.heartbeat("worker-a", &[]).await?;
    assert_eq!(
        store
            .claim_run("worker-b", "target", &nothing_served)
            .await?,
        None
    );
    let waiting = create_owned(&*store, "waiting", &flow(), "worker-a").await?;
    commit(&*store, &waiting, release(true, None)).await?;
    assert_eq!(
        store
            .claim_run("worker-b", "waiting", &nothing_served)
            .await?,
        None
    );
    let finished = create_owned(&*store, "finished", &flow(), "worker-a").await?;
    commit(
        &*store,
        &finished,
        finish(RunStatus::Failed, None, Some("boom")),
    )
    .await?;
    assert_eq!(
        store
            .claim_run("worker-b", "finished", &nothing_served)
            .await?,
        None
    );
    assert_eq!(
        store
            .claim_run("worker-b", "nobody", &nothing_served)
            .await?,
        None
    );

    // An orphan of a dead owner is recovered.
    let orphan = create_owned(&*store, "orphan", &flow(), "ghost").await?;
    let claim = claim_run(&*store, "worker-b", "orphan", &nothing_served).await?;
    assert!(claim.recovered);
    assert_eq!(claim.lease.epoch, orphan.epoch + 1);
    assert_eq!(record(&*store, "orphan").await?.recoveries, 1);
    Ok(())
}

/// With `max_recoveries = N`, recoveries 1..=N claim, the (N+1)-th parks; `unpark` resumes.
pub(super) async fn parking_after_max_recoveries(store: DynStore) -> Result<()> {
    let limit = 2;
    let parking = ClaimOptions {
        max_recoveries: limit,
        ..options(&[flow()])
    };
    // Owners that never heartbeat are dead at once: each claim is a recovery.
    let mut lease = create_owned(&*store, "crashy", &flow(), "ghost-0").await?;
    for n in 1..=limit {
        let claims = store.claim(&format!("ghost-{n}"), &parking).await?;
        assert_eq!(claims.len(), 1, "recovery {n}: {claims:?}");
        assert!(claims[0].recovered);
        assert_eq!(claims[0].lease.epoch, lease.epoch + 1);
        lease = claims[0].lease.clone();
        assert_eq!(record(&*store, "crashy").await?.recoveries, n);
    }
    let claims = store.claim("ghost-last", &parking).await?;
    assert_eq!(claims, Vec::new(), "the recovery past the limit parks");
    let parked = record(&*store, "crashy").await?;
    assert_eq!(parked.status, RunStatus::Parked);
    assert_eq!(parked.owner, None);
    ensure!(parked.error.is_some(), "a parked run says why");
    assert_fenced(
        store.load(&lease).await,
        &lease,
        "the last owner after parking",
    )?;
    let result = store.commit(&lease, everything(2, 1, Vec::new())).await;
    assert_fenced(result, &lease, "the last owner's commit after parking")?;
    assert_eq!(status(&*store, "crashy").await?, RunStatus::Parked);
    assert_not_claimable(&*store, "crashy", &parking).await?;
    assert_not_claimable(&*store, "crashy", &options(&[flow()])).await?;
    assert_eq!(
        store
            .list_runs(&RunFilter {
                status: vec![RunStatus::Parked],
                ..RunFilter::default()
            })
            .await?
            .len(),
        1
    );

    // unpark: Running, recoveries reset, claimable without a recovery.
    assert!(store.unpark("crashy").await?);
    assert!(
        !store.unpark("crashy").await?,
        "a second unpark finds nothing parked"
    );
    let run = record(&*store, "crashy").await?;
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.recoveries, 0);
    assert_eq!(run.owner, None);
    let claims = store.claim("worker-a", &parking).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(!claims[0].recovered);
    assert_eq!(record(&*store, "crashy").await?.recoveries, 0);
    let loaded = store.load(&claims[0].lease).await?;
    assert_eq!(loaded.journal, vec![(1, start_of("crashy"))]);

    // With no recovery allowed, claim_run parks at the first.
    create_owned(&*store, "fragile", &flow(), "ghost").await?;
    let strict = ClaimOptions {
        max_recoveries: 0,
        ..options(&[flow()])
    };
    assert_eq!(store.claim_run("worker-a", "fragile", &strict).await?, None);
    assert_eq!(status(&*store, "fragile").await?, RunStatus::Parked);

    // unpark of runs that are not parked.
    assert!(!store.unpark("nobody").await?);
    create(&*store, "healthy", &flow()).await?;
    assert!(!store.unpark("healthy").await?);
    assert_eq!(status(&*store, "healthy").await?, RunStatus::Running);
    Ok(())
}

/// A parked run keeps messages sent to it; the cancel message makes it `Running` and claimable.
pub(super) async fn cancel_message_resumes_parked_run(store: DynStore) -> Result<()> {
    create_owned(&*store, "parked", &flow(), "ghost").await?;
    let strict = ClaimOptions {
        max_recoveries: 0,
        ..options(&[flow()])
    };
    assert_eq!(store.claim("worker-a", &strict).await?, Vec::new());
    assert_eq!(status(&*store, "parked").await?, RunStatus::Parked);

    assert_eq!(
        send(&*store, "parked", "hello", event("hello")).await?,
        Sent::Accepted
    );
    assert_eq!(
        status(&*store, "parked").await?,
        RunStatus::Parked,
        "an ordinary event"
    );
    assert_not_claimable(&*store, "parked", &strict).await?;

    assert_eq!(
        send(&*store, "parked", "stop", Mail::Cancel).await?,
        Sent::Accepted
    );
    assert_eq!(status(&*store, "parked").await?, RunStatus::Running);
    let claims = store.claim("worker-a", &strict).await?;
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert!(!claims[0].recovered);
    let inbox = store.inbox(&claims[0].lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["hello", "stop"]);
    assert_eq!(inbox[1].mail, Mail::Cancel);
    Ok(())
}
