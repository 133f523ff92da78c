//! The inbox: sends deduplicated by message id, consumed by commits, refused once a run finished, kept while no worker owns the run.

use super::support::*;

/// `send` queues once per message id and run; the inbox lists unconsumed messages in order.
pub(super) async fn inbox_send_and_dedup(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    create(&*store, "other", &flow()).await?;
    assert_eq!(
        send(&*store, "run", "m1", event("first")).await?,
        Sent::Accepted
    );
    assert_eq!(
        send(&*store, "run", "m1", event("replaced?")).await?,
        Sent::Duplicate
    );
    assert_eq!(
        send(&*store, "other", "m1", event("first")).await?,
        Sent::Accepted
    );
    assert_eq!(
        send(&*store, "run", "m2", event("second")).await?,
        Sent::Accepted
    );
    assert_eq!(
        send(&*store, "run", "m0", event("third")).await?,
        Sent::Accepted
    );

    let inbox = store.inbox(&lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["m1", "m2", "m0"], "oldest first");
    assert_eq!(
        inbox[0].mail,
        event("first"),
        "a duplicate does not replace"
    );
    assert_eq!(inbox[1].mail, event("second"));
    assert_eq!(inbox[2].mail, event("third"));
    ensure!(
        inbox.windows(2).all(|pair| pair[0].id < pair[1].id),
        "inbox ids grow: {inbox:?}"
    );

    // Consumed messages are still remembered: a resend is a duplicate.
    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            consumed: vec![inbox[0].id],
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(
        send(&*store, "run", "m1", event("again")).await?,
        Sent::Duplicate
    );
    assert_eq!(msg_ids(&store.inbox(&lease).await?), vec!["m2", "m0"]);
    Ok(())
}

/// Messages listed in `Commit::consumed` leave the inbox; other runs' messages cannot be
/// consumed.
pub(super) async fn inbox_consumed_by_commit(store: DynStore) -> Result<()> {
    let lease = create_owned(&*store, "run", &flow(), "worker-a").await?;
    let other = create_owned(&*store, "other", &flow(), "worker-a").await?;
    for i in 1..=4 {
        send(&*store, "run", &format!("m{i}"), event(&format!("m{i}"))).await?;
    }
    send(&*store, "other", "theirs", event("theirs")).await?;
    let inbox = store.inbox(&lease).await?;
    let theirs = store.inbox(&other).await?;
    assert_eq!(msg_ids(&theirs), vec!["theirs"]);

    // Another run's row is not this lease's to consume: the commit ignores it or fails as
    // corrupt, but it never consumes it.
    let result = store
        .commit(
            &lease,
            Commit {
                consumed: vec![theirs[0].id],
                ..Commit::default()
            },
        )
        .await;
    ensure!(
        matches!(result, Ok(()) | Err(StoreError::Corrupt(_))),
        "consuming another run's row: {result:?}"
    );
    assert_eq!(
        store.inbox(&other).await?,
        theirs,
        "a commit consumes only its run's rows"
    );
    assert_eq!(store.inbox(&lease).await?, inbox);

    commit(
        &*store,
        &lease,
        Commit {
            journal: ticks([2]),
            consumed: vec![inbox[0].id, inbox[2].id],
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(msg_ids(&store.inbox(&lease).await?), vec!["m2", "m4"]);
    assert_eq!(store.inbox(&other).await?, theirs);

    // The next owner sees the same inbox.
    commit(&*store, &lease, release(false, None)).await?;
    let claim = claim_run(&*store, "worker-b", "run", &options(&[flow()])).await?;
    assert_eq!(msg_ids(&store.inbox(&claim.lease).await?), vec!["m2", "m4"]);
    commit(
        &*store,
        &claim.lease,
        Commit {
            consumed: vec![inbox[1].id, inbox[3].id],
            ..Commit::default()
        },
    )
    .await?;
    assert_eq!(store.inbox(&claim.lease).await?, Vec::new());
    Ok(())
}

/// `send` fails with `UnknownRun` for an unknown run and `RunFinished` for a finished one.
pub(super) async fn send_errors(store: DynStore) -> Result<()> {
    match store.send("nobody", "m1", event("m1")).await {
        Err(StoreError::UnknownRun { run_id }) => assert_eq!(run_id, "nobody"),
        other => bail!("send to an unknown run: expected UnknownRun, got {other:?}"),
    }
    assert_eq!(store.get_run("nobody").await?, None, "send creates no run");

    let outcomes = [
        (
            RunStatus::Completed,
            Some(json!({"type": "stop", "value": 1})),
            None,
        ),
        (RunStatus::Failed, None, Some("boom")),
        (RunStatus::Cancelled, None, Some("cancelled by operator")),
    ];
    for (outcome, result, error) in outcomes {
        let run_id = format!("run-{outcome}");
        let lease = create_owned(&*store, &run_id, &flow(), "worker-a").await?;
        send(&*store, &run_id, "consumed", event("consumed")).await?;
        send(&*store, &run_id, "unread", event("unread")).await?;
        let inbox = store.inbox(&lease).await?;
        commit(
            &*store,
            &lease,
            Commit {
                consumed: vec![inbox[0].id],
                ..finish(outcome, result, error)
            },
        )
        .await?;
        // A new message is too late.
        match store.send(&run_id, "after", event("after")).await {
            Err(StoreError::RunFinished { run_id: id, status }) => {
                assert_eq!(id, run_id);
                assert_eq!(status, outcome);
            }
            other => bail!("send to a {outcome} run: expected RunFinished, got {other:?}"),
        }
        // A retry of a message the run consumed was delivered: a duplicate, not an error (the
        // three stores agree; the trait's documentation does not order the two rules).
        assert_eq!(
            send(&*store, &run_id, "consumed", event("consumed")).await?,
            Sent::Duplicate,
            "a retried send of a consumed message to a {outcome} run"
        );
        // A message still unread when the run finished was never delivered: either answer
        // queues nothing.
        let result = store.send(&run_id, "unread", event("unread")).await;
        ensure!(
            matches!(
                result,
                Ok(Sent::Duplicate) | Err(StoreError::RunFinished { .. })
            ),
            "a retried send of an unread message to a {outcome} run: {result:?}"
        );
        assert_eq!(status(&*store, &run_id).await?, outcome);
    }
    Ok(())
}

/// Events sent while nobody owns the run, while another worker owns it, or while it waits are
/// all kept for the next owner, in order.
pub(super) async fn events_sent_before_owned_are_kept(store: DynStore) -> Result<()> {
    create(&*store, "run", &flow()).await?;
    send(&*store, "run", "a", event("a")).await?;
    send(&*store, "run", "b", event("b")).await?;
    let claim = claim_run(&*store, "worker-a", "run", &options(&[flow()])).await?;
    let inbox = store.inbox(&claim.lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["a", "b"]);
    assert_eq!(inbox[1].mail, event("b"));

    // While owned (by a worker that does not look at its inbox yet).
    send(&*store, "run", "c", event("c")).await?;
    commit(
        &*store,
        &claim.lease,
        Commit {
            journal: ticks([2]),
            consumed: vec![inbox[0].id],
            ..release(true, None)
        },
    )
    .await?;
    assert_eq!(
        status(&*store, "run").await?,
        RunStatus::Running,
        "b and c are unread"
    );
    let claim = claim_run(&*store, "worker-b", "run", &options(&[flow()])).await?;
    let inbox = store.inbox(&claim.lease).await?;
    assert_eq!(msg_ids(&inbox), vec!["b", "c"]);
    commit(
        &*store,
        &claim.lease,
        Commit {
            journal: ticks([3]),
            consumed: inbox.iter().map(|message| message.id).collect(),
            ..release(true, None)
        },
    )
    .await?;
    assert_eq!(status(&*store, "run").await?, RunStatus::Waiting);

    // While waiting.
    send(&*store, "run", "d", event("d")).await?;
    send(&*store, "run", "e", event("e")).await?;
    let claim = claim_run(&*store, "worker-c", "run", &options(&[flow()])).await?;
    assert_eq!(msg_ids(&store.inbox(&claim.lease).await?), vec!["d", "e"]);
    Ok(())
}
