//! Committing: journal entries and events appended in sequence, gaps and overlaps refused, events read in pages, snapshots trimming the journal.

use super::support::*;

/// Commits append journal entries and events; `last_event_seq` follows.
pub(super) async fn commit_appends_journal_and_events(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=3),
            events: published(1..=2),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(record(&*store, "run").await?.last_event_seq, 2);
    // Journal only, then events only.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([4]),
            ..Commit::default()
        },
    )
    .await?;
    commit(
        &*store,
        &lease,
        Commit {
            events: published(3..=5),
            ..Commit::default()
        },
    )
    .await?;

    let loaded = store.load(&lease).await?;
    let mut journal = vec![(1, start_of("run"))];
    journal.extend(ticks(2..=4));
    assert_eq!(loaded.journal, journal);
    assert_eq!(loaded.snapshot, None);
    assert_eq!(loaded.events, published(1..=5));
    assert_eq!(all_events(&*store, "run").await?, published(1..=5));
    let run = record(&*store, "run").await?;
    assert_eq!(run.last_event_seq, 5);
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.owner.as_deref(), Some("worker-a"));
    assert_eq!(
        run.epoch, lease.epoch,
        "a commit without an end keeps the epoch"
    );
    Ok(())
}

/// A commit that does not continue the journal or the events is `Corrupt` and writes nothing.
pub(super) async fn commit_out_of_sequence_is_corrupt(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=3),
            events: published(1..=2),
            ..Commit::default()
        },
    )
    .await?;
    send(&*store, "run", "m1", event("m1")).await?;
    let inbox = store.inbox(&lease).await?;
    let consumed: Vec<i64> = inbox.iter().map(|message| message.id).collect();
    let before = observe(&*store, &lease).await?;

    // Last journal sequence 3, last event sequence 2.
    let cases = [
        ("journal skips a sequence", 5, 3),
        ("journal repeats the last sequence", 3, 3),
        ("journal restarts at 1", 1, 3),
        ("events skip a sequence", 4, 4),
        ("events repeat the last sequence", 4, 2),
        ("events restart at 1", 4, 1),
        ("both wrong", 7, 7),
    ];
    for (case, journal_seq, event_seq) in cases {
        let result = store
            .commit(&lease, everything(journal_seq, event_seq, consumed.clone()))
            .await;
        assert_corrupt(result, case)?;
        assert_eq!(
            observe(&*store, &lease).await?,
            before,
            "{case}: nothing is written"
        );
    }
    // Only events, or only journal, out of sequence.
    let result = store
        .commit(
            &lease,
            Commit {
                events: published([1]),
                ..Commit::default()
            },
        )
        .await;
    assert_corrupt(result, "events alone restart at 1")?;
    let result = store
        .commit(
            &lease,
            Commit {
                journal: ticks([2]),
                end: Some(CommitEnd::Release {
                    idle: false,
                    wake_after: None,
                }),
                ..Commit::default()
            },
        )
        .await;
    assert_corrupt(result, "journal alone repeats 2, with a release")?;
    assert_eq!(
        observe(&*store, &lease).await?,
        before,
        "nothing is written"
    );

    // The lease is still good: the right sequences go in.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([4]),
            consumed,
            events: published([3]),
            ..Commit::default()
        },
    )
    .await?;
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.journal.last(), Some(&(4, json!({"tick": 4}))));
    assert_eq!(loaded.events, published(1..=3));
    assert_eq!(store.inbox(&lease).await?, Vec::new());
    assert_eq!(record(&*store, "run").await?.last_event_seq, 3);
    Ok(())
}

/// Journal entries and events within one commit are contiguous too ("contiguous, after the
/// last"): a gap or a repeat inside a commit is `Corrupt` and writes nothing.
pub(super) async fn commit_with_gaps_is_corrupt(store: DynStore) -> Result<()> {
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
    let before = observe(&*store, &lease).await?;
    let cases = [
        ("journal gap", ticks([3, 5]), published([2])),
        ("journal repeat", ticks([3, 3]), published([2])),
        ("journal backwards", ticks([3, 4, 2]), published([2])),
        ("event gap", ticks([3]), published([2, 4])),
        ("event repeat", ticks([3]), published([2, 2])),
    ];
    for (case, journal, events) in cases {
        let result = store
            .commit(
                &lease,
                Commit {
                    journal,
                    events,
                    ..Commit::default()
                },
            )
            .await;
        assert_corrupt(result, case)?;
        assert_eq!(
            observe(&*store, &lease).await?,
            before,
            "{case}: nothing is written"
        );
    }
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(3..=5),
            events: published(2..=4),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(all_events(&*store, "run").await?, published(1..=4));
    Ok(())
}

/// `events_after` pages through the events exactly: no gaps, no duplicates, at most `limit`.
pub(super) async fn events_after_pages_exactly(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let mut next = 1;
    for (journal_seq, size) in (2..).zip([1, 5, 0, 7, 10]) {
        commit(
            &*store,
            &lease,
            Commit {
                journal: ticks([journal_seq]),
                events: published(next..next + size),
                ..Commit::default()
            },
        )
        .await?;
        next += size;
    }
    let total = next - 1;
    assert_eq!(total, 23);
    let all = published(1..=total);
    assert_eq!(record(&*store, "run").await?.last_event_seq, total);

    for limit in [1usize, 4, 7, 23, 100] {
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let page = store.events_after("run", after, limit).await?;
            let remaining = usize::try_from(total - after)?;
            assert_eq!(
                page.len(),
                remaining.min(limit),
                "limit {limit} after {after}"
            );
            let Some((last, _)) = page.last() else { break };
            assert_eq!(page[0].0, after + 1, "limit {limit}: no gap after {after}");
            after = *last;
            seen.extend(page);
        }
        assert_eq!(seen, all, "limit {limit}");
    }
    assert_eq!(store.events_after("run", 10, 3).await?, published(11..=13));
    assert_eq!(store.events_after("run", 22, 5).await?, published([23]));
    assert_eq!(store.events_after("run", 23, 5).await?, Vec::new());
    assert_eq!(store.events_after("run", 1_000, 5).await?, Vec::new());
    assert_eq!(store.events_after("run", 0, 0).await?, Vec::new());

    // Readers need no lease: after the run finishes, its events are still there.
    commit(
        &*store,
        &lease,
        finish(
            RunStatus::Completed,
            Some(json!({"type": "stop", "value": 0})),
            None,
        ),
    )
    .await?;
    assert_eq!(all_events(&*store, "run").await?, all);

    // A run without events, and an unknown run.
    create(&*store, "quiet", &flow()).await?;
    assert_eq!(store.events_after("quiet", 0, 10).await?, Vec::new());
    match store.events_after("nobody", 0, 10).await {
        Err(StoreError::UnknownRun { run_id }) => assert_eq!(run_id, "nobody"),
        other => bail!("events_after of an unknown run: expected UnknownRun, got {other:?}"),
    }
    Ok(())
}

/// A snapshot replaces the previous one, and `load` returns only the journal after it.
pub(super) async fn snapshot_replaces_and_trims_journal(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(2..=5),
            events: published(1..=2),
            snapshot: Some((4, json!({"state": "at 4"}))),
            ..Commit::default()
        },
    )
    .await?;
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.snapshot, Some((4, json!({"state": "at 4"}))));
    assert_eq!(loaded.journal, ticks([5]));
    assert_eq!(
        loaded.events,
        published(1..=2),
        "a snapshot keeps every event"
    );

    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(6..=7),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(store.load(&lease).await?.journal, ticks(5..=7));

    // A snapshot alone, covering the journal so far.
    commit(
        &*store,
        &lease,
        Commit {
            snapshot: Some((7, json!({"state": "at 7"}))),
            ..Commit::default()
        },
    )
    .await?;
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.snapshot, Some((7, json!({"state": "at 7"}))));
    assert_eq!(loaded.journal, Vec::new());

    // The journal continues after the snapshot, and a later snapshot replaces it.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks(8..=10),
            events: published([3]),
            snapshot: Some((9, json!({"state": "at 9"}))),
            ..Commit::default()
        },
    )
    .await?;
    let expected = LoadedRun {
        snapshot: Some((9, json!({"state": "at 9"}))),
        journal: ticks([10]),
        events: published(1..=3),
    };
    assert_eq!(store.load(&lease).await?, expected);

    // A new owner loads the same.
    commit(&*store, &lease, release(false, None)).await?;
    let claim = claim_run(&*store, "worker-b", "run", &options(&[flow()])).await?;
    assert_eq!(store.load(&claim.lease).await?, expected);
    commit(
        &*store,
        &claim.lease,
        Commit {
            journal: ticks([11]),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(store.load(&claim.lease).await?.journal, ticks(10..=11));
    Ok(())
}
