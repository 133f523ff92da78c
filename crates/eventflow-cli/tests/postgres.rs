//! Two `eventflow serve` processes sharing one Postgres schema: a run started through one is
//! answered through the other, and a run the first one drives is taken over by the second when
//! the first is killed with SIGKILL (after its lease expires). Ignored unless asked for with
//! `--ignored` (as `bash .ci/run` does); they need `DATABASE_URL`.

mod common;

use std::time::Duration;

use common::{HITL_QUERY, ServerProcess, eventually, fastrand_suffix, status_of};

/// How long a killed server's runs stay its own.
const LEASE_TTL: &str = "2s";

/// A fresh schema in the database of `DATABASE_URL`, dropped when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn fresh(test: &str) -> Schema {
        let url = std::env::var("DATABASE_URL")
            .expect("the Postgres tests need DATABASE_URL (see the README)");
        Schema {
            url,
            name: format!("ef_cli_{test}_{}", fastrand_suffix()),
        }
    }

    /// `eventflow serve --demo` on this schema, with a short lease.
    fn server(&self, dir: &std::path::Path, worker: &str) -> ServerProcess {
        ServerProcess::start(
            dir,
            &self.url,
            0,
            &[
                "--schema",
                &self.name,
                "--lease-ttl",
                LEASE_TTL,
                "--poll-interval",
                "100ms",
                "--worker-id",
                worker,
            ],
        )
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use sqlx::Connection;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&self.url).await {
                let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
                let _ = sqlx::query(&drop).execute(&mut conn).await;
            }
        });
    }
}

/// A run started on A asks its question and waits in the store; A dies; the answer sent
/// through B wakes the run on B, the only server left, which finishes it.
#[test]
#[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
fn postgres_a_waiting_run_is_answered_through_another_server_after_its_first_died() {
    let schema = Schema::fresh("hitl");
    let dir = tempfile::tempdir().unwrap();
    let mut a = schema.server(dir.path(), "server-a");
    let b = schema.server(dir.path(), "server-b");

    let id = a.cli(&["run", "hitl", HITL_QUERY, "--nowait"]);
    let id = id.ok().trim().to_owned();
    // B sees the question A's run asked, and the run is released: in the store, owned by no one.
    eventually(Duration::from_secs(20), "the question, through B", || {
        let events = b
            .cli(&["--json", "events", &id, "--no-follow"])
            .json_lines();
        events
            .iter()
            .any(|e| e["type"] == "InputRequiredEvent")
            .then_some(())
    });
    eventually(Duration::from_secs(20), "the run released", || {
        let handler = b.cli(&["--json", "handler", &id]).json();
        (handler["eventflow_status"] == "waiting").then_some(())
    });
    a.kill();

    b.cli(&["send", &id, "HumanResponseEvent", "response=yes"])
        .ok();
    let done = b
        .cli(&["--json", "handler", &id, "--wait", "--timeout", "30s"])
        .json();
    assert_eq!(done["status"], "completed", "{done}\nB's log:\n{}", b.log());
    assert_eq!(done["result"]["value"]["result"]["response"], "yes");
    assert_eq!(done["result"]["value"]["result"]["status"], "approved");
}

/// A run A drives is taken over by B once A is killed and its lease has expired.
#[test]
#[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
fn postgres_a_run_in_progress_is_taken_over_when_its_server_is_killed() {
    let schema = Schema::fresh("takeover");
    let dir = tempfile::tempdir().unwrap();
    let mut a = schema.server(dir.path(), "server-a");
    let b = schema.server(dir.path(), "server-b");

    // A starts the run, so A drives it: a long prompt keeps it streaming for a few seconds.
    let prompt = format!("prompt={}", "why are workflows event driven? ".repeat(12));
    let id = a.cli(&["run", "streaming", &prompt, "--nowait"]);
    let id = id.ok().trim().to_owned();
    eventually(Duration::from_secs(20), "tokens, through B", || {
        let events = b
            .cli(&["--json", "events", &id, "--no-follow"])
            .json_lines();
        (events.iter().filter(|e| e["type"] == "TokenEvent").count() >= 3).then_some(())
    });
    assert_eq!(status_of(&b.url, &id), "running");
    a.kill();

    // B takes the run over once A's lease has expired, and finishes it.
    let done = b
        .cli(&["--json", "handler", &id, "--wait", "--timeout", "60s"])
        .json();
    assert_eq!(done["status"], "completed", "{done}\nB's log:\n{}", b.log());
    let answer = done["result"]["value"]["result"].as_str().unwrap();
    assert!(
        answer.starts_with("You asked: why are workflows"),
        "{answer}"
    );
    let log = b.log();
    assert!(
        log.lines()
            .any(|line| line.contains("recovering a run whose worker died") && line.contains(&id)),
        "B took the run over:\n{log}"
    );
}
