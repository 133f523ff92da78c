//! JSON and sizes: values come back as they went in (NUL characters included), large commits, extreme arguments.

use super::support::*;

/// JSON comes back as it went in: start, journal, snapshot, events, inbox, result.
pub(super) async fn json_values_round_trip(store: DynStore) -> Result<()> {
    let rich = json!({
        "text": "héllo wörld — 你好 🚀 \"quoted\" back\\slash\nnew line\ttab",
        "control": "bell \u{7} escape \u{1b} del \u{7f} line sep \u{2028}",
        "numbers": [0, -1, 42, i64::MIN, i64::MAX, u64::MAX, 0.5, -2.25, 1e-7, 6.02e23],
        "nested": {"a": [[], {}, [null, true, false]], "b": {"c": {"d": {"e": "deep"}}}},
        "empty": "",
        "null": null,
        "keys with spaces": {"ünïcode kéy": 1, "": "empty key"},
    });
    let values = [
        rich.clone(),
        json!(null),
        json!(7),
        json!("a bare string"),
        json!([1, "two", 3.5]),
        json!({}),
    ];
    let created = store
        .create_run(NewRun {
            start: rich.clone(),
            owner: Some("worker-a".to_owned()),
            ..spec("run", &flow())
        })
        .await?;
    let Created::New(Some(lease)) = created else {
        bail!("expected a new owned run, got {created:?}");
    };
    let journal: Vec<(u64, Value)> = (2..).zip(values.iter().cloned()).collect();
    let events: Vec<(u64, EventJson)> = (1..)
        .zip(values.iter().map(|value| named("rich", value.clone())))
        .collect();
    commit(
        &*store,
        &lease,
        Commit {
            journal: journal.clone(),
            events: events.clone(),
            ..Commit::default()
        },
    )
    .await?;
    for (i, value) in values.iter().enumerate() {
        let mail = Mail::event(named("rich", value.clone()));
        send(&*store, "run", &format!("m{i}"), mail).await?;
    }
    let mut expected_journal = vec![(1, rich.clone())];
    expected_journal.extend(journal);
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.journal, expected_journal);
    assert_eq!(loaded.events, events);
    assert_eq!(all_events(&*store, "run").await?, events);
    let inbox = store.inbox(&lease).await?;
    let sent: Vec<Mail> = inbox.iter().map(|message| message.mail.clone()).collect();
    let expected: Vec<Mail> = values
        .iter()
        .map(|value| Mail::event(named("rich", value.clone())))
        .collect();
    assert_eq!(sent, expected);

    commit(
        &*store,
        &lease,
        Commit {
            snapshot: Some((7, rich.clone())),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(store.load(&lease).await?.snapshot, Some((7, rich.clone())));
    commit(
        &*store,
        &lease,
        finish(
            RunStatus::Completed,
            Some(rich.clone()),
            Some("ünïcode error ✓"),
        ),
    )
    .await?;
    let run = record(&*store, "run").await?;
    assert_eq!(run.result, Some(rich));
    assert_eq!(run.error.as_deref(), Some("ünïcode error ✓"));
    Ok(())
}

/// A JSON string may hold U+0000 (`"\u0000"`): valid JSON, which a step's output (a tool's, a
/// model's) can contain. The store keeps it like any other character, everywhere it keeps JSON.
/// (A `Database` error here would also be `is_transient`, so a worker would retry it forever.)
pub(super) async fn json_nul_characters_round_trip(store: DynStore) -> Result<()> {
    let nul = json!({"text": "before \u{0} after", "\u{0}key": ["\u{0}"]});
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let result = store
        .commit(
            &lease,
            Commit {
                journal: ticks([2]).into_iter().chain([(3, nul.clone())]).collect(),
                events: vec![(1, named("nul", nul.clone()))],
                snapshot: Some((3, nul.clone())),
                ..Commit::default()
            },
        )
        .await;
    result.context("committing JSON with U+0000")?;
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.snapshot, Some((3, nul.clone())));
    assert_eq!(loaded.events, vec![(1, named("nul", nul.clone()))]);
    let mail = Mail::event(named("nul", nul.clone()));
    send(&*store, "run", "m1", mail.clone())
        .await
        .context("sending JSON with U+0000")?;
    assert_eq!(store.inbox(&lease).await?[0].mail, mail);
    commit(
        &*store,
        &lease,
        finish(RunStatus::Completed, Some(nul.clone()), None),
    )
    .await?;
    assert_eq!(record(&*store, "run").await?.result, Some(nul.clone()));
    let created = store
        .create_run(NewRun {
            start: nul.clone(),
            owner: Some("worker-a".to_owned()),
            ..spec("started", &flow())
        })
        .await
        .context("creating a run whose start holds U+0000")?;
    let Created::New(Some(lease)) = created else {
        bail!("expected a new owned run, got {created:?}");
    };
    assert_eq!(store.load(&lease).await?.journal, vec![(1, nul)]);
    Ok(())
}

/// One commit with thousands of journal entries and events and a large snapshot.
pub(super) async fn large_commit(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "big", &flow(), "worker-a").await?;
    let journal = ticks(2..=2001);
    let events = published(1..=5000);
    let blob = "x".repeat(1 << 20);
    commit(
        &*store,
        &lease,
        Commit {
            journal,
            events: events.clone(),
            snapshot: Some((1500, json!({"blob": blob}))),
            ..Commit::default()
        },
    )
    .await?;
    for i in 0..300 {
        send(&*store, "big", &format!("m{i:03}"), event("m")).await?;
    }
    let inbox = store.inbox(&lease).await?;
    assert_eq!(inbox.len(), 300);
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2002]),
            consumed: inbox.iter().map(|message| message.id).collect(),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(store.inbox(&lease).await?, Vec::new());
    let loaded = store.load(&lease).await?;
    assert_eq!(loaded.snapshot, Some((1500, json!({"blob": blob}))));
    assert_eq!(loaded.journal, ticks(1501..=2002));
    assert_eq!(loaded.events, events);
    assert_eq!(record(&*store, "big").await?.last_event_seq, 5000);
    assert_eq!(
        store.events_after("big", 4990, 100).await?,
        published(4991..=5000)
    );
    Ok(())
}

/// Arguments at the ends of their types are answered, not failed on.
pub(super) async fn extreme_arguments(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    commit(
        &*store,
        &lease,
        Commit {
            events: published(1..=3),
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(
        store.events_after("run", 0, usize::MAX).await?,
        published(1..=3)
    );
    assert_eq!(
        store.events_after("run", 1, usize::MAX).await?,
        published(2..=3)
    );
    assert_eq!(store.events_after("run", u64::MAX, 10).await?, Vec::new());
    assert_eq!(
        store.events_after("run", u64::MAX - 1, usize::MAX).await?,
        Vec::new()
    );
    assert_eq!(
        store
            .events_after("run", u64::try_from(i64::MAX)?, 10)
            .await?,
        Vec::new()
    );

    for epoch in [u64::MAX, u64::try_from(i64::MAX)? + 1] {
        let stale = Lease {
            epoch,
            ..lease.clone()
        };
        assert_fenced(store.load(&stale).await, &stale, "load with a huge epoch")?;
        let result = store.commit(&stale, everything(2, 4, Vec::new())).await;
        assert_fenced(result, &stale, "commit with a huge epoch")?;
    }

    // A TTL no heartbeat is older than, a wake-up that never comes, a limit of everything.
    store.heartbeat("worker-a", &[flow()]).await?;
    store.heartbeat("worker-b", &[flow()]).await?;
    let forever = ClaimOptions {
        limit: usize::MAX,
        lease_ttl: Duration::MAX,
        max_recoveries: u32::MAX,
        ..options(&[flow()])
    };
    assert_eq!(store.claim("worker-b", &forever).await?, Vec::new());
    commit(&*store, &lease, release(true, Some(Duration::MAX))).await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Waiting);
    assert_eq!(store.claim("worker-b", &forever).await?, Vec::new());
    for i in 0..3 {
        create(&*store, &format!("free-{i}"), &flow()).await?;
    }
    assert_eq!(store.claim("worker-b", &forever).await?.len(), 3);
    send(&*store, "run", "m1", event("m1")).await?;
    assert_eq!(claim_ids(&*store, "worker-b", &forever).await?, vec!["run"]);
    Ok(())
}
