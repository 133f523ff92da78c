//! Errors: what they say, and which are transient.

use super::support::*;

/// Errors say what happened, name the run, and only database failures are transient.
pub(super) async fn errors_are_sane(store: DynStore) -> Result<()> {
    use RunStatus::*;
    let lease = create_owned(&*store, "run-e1", &flow(), "worker-a").await?;
    let mut errors = Vec::new();
    let stale = Lease {
        epoch: 7,
        ..lease.clone()
    };
    errors.push(
        store
            .commit(&stale, Commit::default())
            .await
            .expect_err("a stale commit fails"),
    );
    errors.push(
        store
            .commit(
                &lease,
                Commit {
                    journal: ticks([9]),
                    ..Commit::default()
                },
            )
            .await
            .expect_err("an out-of-sequence commit fails"),
    );
    errors.push(
        store
            .send("run-missing", "m1", event("m1"))
            .await
            .expect_err("a send to an unknown run fails"),
    );
    errors.push(
        store
            .create_run(spec("run-e1", &flow()))
            .await
            .expect_err("a duplicate create fails"),
    );
    commit(
        &*store,
        &lease,
        finish(RunStatus::Cancelled, None, Some("stop")),
    )
    .await?;
    errors.push(
        store
            .send("run-e1", "m1", event("m1"))
            .await
            .expect_err("a send to a finished run fails"),
    );

    let [fenced, corrupt, unknown, duplicate, finished] = errors.as_slice() else {
        bail!("five errors expected");
    };
    assert!(
        matches!(fenced, StoreError::Fenced { epoch: 7, .. }),
        "{fenced:?}"
    );
    assert!(matches!(corrupt, StoreError::Corrupt(_)), "{corrupt:?}");
    assert!(
        matches!(unknown, StoreError::UnknownRun { .. }),
        "{unknown:?}"
    );
    assert!(
        matches!(duplicate, StoreError::DuplicateRun { .. }),
        "{duplicate:?}"
    );
    assert!(
        matches!(
            finished,
            StoreError::RunFinished {
                status: RunStatus::Cancelled,
                ..
            }
        ),
        "{finished:?}"
    );
    for (error, must_name) in [
        (fenced, vec!["run-e1", "7"]),
        (corrupt, vec!["corrupt"]),
        (unknown, vec!["run-missing"]),
        (duplicate, vec!["run-e1", "already exists"]),
        (finished, vec!["run-e1", "cancelled"]),
    ] {
        let text = error.to_string();
        for word in must_name {
            ensure!(
                text.contains(word),
                "{error:?} displays as {text:?}, without {word:?}"
            );
        }
        ensure!(!error.is_transient(), "{error:?} is not transient");
    }

    // Statuses read back as written, and serialize as stored.
    for status in [Running, Waiting, Parked, Completed, Failed, Cancelled] {
        assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        assert_eq!(status.to_string(), status.as_str());
        assert_eq!(serde_json::to_value(status)?, json!(status.as_str()));
        assert_eq!(
            status.is_terminal(),
            matches!(status, Completed | Failed | Cancelled)
        );
    }
    assert_eq!(RunStatus::parse("Running"), None);

    let database = StoreError::Database(Box::new(std::io::Error::other("connection refused")));
    assert!(database.is_transient());
    let text = crate::error_chain(&database);
    ensure!(text == "database error: connection refused", "{text}");
    let source = std::error::Error::source(&database).context("a database error has a source")?;
    assert_eq!(source.to_string(), "connection refused");
    Ok(())
}
