//! The SQLite store's own tests: what the conformance suite cannot see (the file on disk,
//! concurrent opens, processes sharing the file, corrupt rows).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::*;

fn key() -> WorkflowKey {
    WorkflowKey {
        name: "flow".into(),
        fingerprint: "f1".into(),
    }
}

fn options() -> ClaimOptions {
    ClaimOptions {
        workflows: vec![key()],
        limit: 10,
        lease_ttl: Duration::from_secs(30),
        max_recoveries: 2,
    }
}

fn new_run(run_id: &str) -> NewRun {
    NewRun {
        run_id: run_id.into(),
        workflow: key(),
        idempotency_key: None,
        start: json!({ "type": "start", "value": run_id }),
        owner: None,
    }
}

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("runs.db")).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn corrupt_rows_are_errors_not_panics() {
    let (_dir, store) = store().await;
    store.create_run(new_run("r1")).await.unwrap();
    store
        .writer
        .write(|conn| {
            query::exec(
                conn,
                "UPDATE runs SET result = 'not json' WHERE run_id = 'r1'",
                [],
            )
        })
        .await
        .unwrap();
    assert!(matches!(
        store.get_run("r1").await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    {
        let store = SqliteStore::open_with(
            &path,
            SqliteOptions {
                synchronous_normal: true,
                ..SqliteOptions::default()
            },
        )
        .await
        .unwrap();
        store.create_run(new_run("r1")).await.unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(store.get_run("r1").await.unwrap().is_some());
    assert!(format!("{store:?}").contains("runs.db"));
}

/// Promise 1: by default a write returns only once it is on disk (`synchronous=FULL`, 2, on
/// the writer's connection); `synchronous_normal` opts into `NORMAL` (1).
#[tokio::test]
async fn writes_wait_for_the_disk_unless_asked_not_to() {
    async fn level(store: &SqliteStore) -> i64 {
        let writer = store
            .writer
            .write(|conn| query::one(conn, "PRAGMA synchronous", [], |row| row.get(0)))
            .await
            .unwrap();
        let reader = store
            .readers
            .read(|conn| query::one(conn, "PRAGMA synchronous", [], |row| row.get(0)))
            .unwrap();
        assert_eq!(writer, reader);
        writer.unwrap()
    }
    let (dir, store) = store().await;
    assert_eq!(level(&store).await, 2, "FULL by default");
    let normal = SqliteStore::open_with(
        dir.path().join("normal.db"),
        SqliteOptions {
            synchronous_normal: true,
            ..SqliteOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(level(&normal).await, 1, "NORMAL when asked for");
}

/// Processes starting together on a new file race to switch it to WAL and to migrate it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_new_file_all_succeed() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        let opens = (0..4).map(|_| SqliteStore::open(&path));
        for store in futures::future::join_all(opens).await {
            store.unwrap();
        }
    }
}

/// Set in the child processes of `processes_sharing_a_file_never_claim_the_same_run`.
const CHILD_ENV: &str = "EVENTFLOW_SQLITE_TEST_CHILD";

/// Real processes this time (this test binary, run again as a claimer): SQLite's locks
/// between processes are file locks, not the ones between connections of one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_file_never_claim_the_same_run() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        let store = SqliteStore::open(&path).await.unwrap();
        let worker = format!("p{}", std::process::id());
        store.heartbeat(&worker, &[key()]).await.unwrap();
        let options = ClaimOptions {
            limit: 2,
            ..options()
        };
        loop {
            let claims = store.claim(&worker, &options).await.unwrap();
            if claims.is_empty() {
                return;
            }
            for claim in claims {
                println!("CLAIMED {}", claim.lease.run_id);
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    const RUNS: usize = 150;
    for n in 0..RUNS {
        store.create_run(new_run(&format!("r{n}"))).await.unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let children = (0..3).map(|_| {
        tokio::process::Command::new(&exe)
            .args([
                "--exact",
                "sqlite::tests::processes_sharing_a_file_never_claim_the_same_run",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .output()
    });
    let mut seen = HashSet::new();
    let mut per_child = Vec::new();
    for output in futures::future::join_all(children).await {
        let output = output.unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let claimed: Vec<_> = stdout
            .lines()
            // The harness's "test ... " may share the first line.
            .filter_map(|line| line.split_once("CLAIMED "))
            .map(|(_, run_id)| run_id.to_owned())
            .collect();
        per_child.push(claimed.len());
        for run_id in claimed {
            assert!(seen.insert(run_id.clone()), "{run_id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), RUNS, "claims per process: {per_child:?}");
}

#[tokio::test]
async fn a_file_in_a_missing_folder_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("missing").join("dir");
    let Err(error) = SqliteStore::open(folder.join("runs.db")).await else {
        panic!("the folder is missing");
    };
    assert!(
        matches!(&error, StoreError::MissingFolder { folder: f } if *f == folder),
        "{error:?}"
    );
    assert_eq!(
        crate::error_chain(&error),
        format!("the folder {} does not exist", folder.display())
    );
    // Nothing was created on the way.
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn the_error_chain_prints_each_cause_once() {
    // sqlx's database error embeds its source's text: the chain prints it once.
    #[derive(Debug, thiserror::Error)]
    #[error("driver failed: {0}")]
    struct Embedding(#[source] std::io::Error);
    let error = StoreError::Database(Box::new(Embedding(std::io::Error::other("disk on fire"))));
    assert_eq!(
        crate::error_chain(&error),
        "database error: driver failed: disk on fire"
    );
}
