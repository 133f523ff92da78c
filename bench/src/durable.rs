//! The durable workloads: w2's loop and w3's fan-out, each as one durable run of an
//! [`Engine`] over a store chosen on the command line.
//!
//! Each measurement opens a fresh store (a new SQLite file, a new Postgres schema, or a new
//! in-memory store), starts an engine serving the workflow, runs a warm-up run of size 10
//! (untimed), then times one run of size N from `Engine::start` until `Engine::wait` returns
//! the finished record, and checks the record's result. A commit hook counts the store commits
//! of the timed run and the step completions they journaled.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use eventflow::durable::{CommitInfo, Engine, StartOptions};
use eventflow::prelude::*;
use eventflow::store::{
    MemoryStore, PostgresStore, RunRecord, RunStatus, SqliteStore, Store, is_postgres_url,
};

use crate::workloads;

/// How long the warm-up run may take before the measurement fails.
const WARM_UP_LIMIT: Duration = Duration::from_secs(60);

/// A durable benchmark workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DurableWorkload {
    /// w2's loop (one step looping N times) as one durable run; per item: one step.
    Loop,
    /// w3's fan-out (N events, 8 workers, a collector) as one durable run; per item: one event.
    Fanout,
    /// w4's three-step chain as N concurrent durable runs; per item: one run.
    Concurrent,
}

impl DurableWorkload {
    /// Every durable workload, in order.
    pub(crate) const ALL: [DurableWorkload; 3] = [
        DurableWorkload::Loop,
        DurableWorkload::Fanout,
        DurableWorkload::Concurrent,
    ];

    /// The workload's name on the command line and in the JSON line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            DurableWorkload::Loop => "w2_loop_durable",
            DurableWorkload::Fanout => "w3_fanout_durable",
            DurableWorkload::Concurrent => "w4_concurrent_durable",
        }
    }

    /// The workload named `name`.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }

    /// The workflow of size `n`, registered under `name`.
    fn workflow(self, name: &str, n: u64) -> anyhow::Result<Workflow> {
        match self {
            DurableWorkload::Loop => workloads::looping(name, n),
            DurableWorkload::Fanout => workloads::fanout(name, n),
            // The same workflow at every size: the size is how many runs.
            DurableWorkload::Concurrent => workloads::three_step_chain(name),
        }
    }

    /// The result a run of size `n` must return (w4: the run started with `c = n`).
    fn expected(self, n: u64) -> u64 {
        match self {
            DurableWorkload::Loop => n,
            DurableWorkload::Fanout => n * (n - 1),
            DurableWorkload::Concurrent => n + 3,
        }
    }

    /// How many step completions a run of size `n` journals: `n` turns of the loop; the start
    /// step, `n` workers and `n` collector invocations for the fan-out.
    fn expected_steps(self, n: u64) -> u64 {
        match self {
            DurableWorkload::Loop => n,
            DurableWorkload::Fanout => 1 + 2 * n,
            DurableWorkload::Concurrent => 3 * n,
        }
    }
}

/// The store a durable workload runs over, from `--store`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// `memory`: the in-memory store, no I/O (the journaling cost alone).
    Memory,
    /// `sqlite:PATH` (the file is deleted first, with its `-wal` and `-shm` files), or
    /// `sqlite` / `sqlite:` for a file in a temporary directory.
    Sqlite(Option<PathBuf>),
    /// `postgres:URL` or a bare `postgres://...` / `postgresql://...` URL; each measurement
    /// uses a fresh schema, dropped afterwards.
    Postgres(String),
}

impl StoreSpec {
    /// Parses the value of `--store`.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        if text == "memory" {
            return Ok(StoreSpec::Memory);
        }
        if is_postgres_url(text) {
            return Ok(StoreSpec::Postgres(text.to_owned()));
        }
        if let Some(url) = text.strip_prefix("postgres:") {
            ensure!(
                is_postgres_url(url),
                "--store postgres:URL needs a postgres:// URL, got `{url}`"
            );
            return Ok(StoreSpec::Postgres(url.to_owned()));
        }
        if text == "sqlite" {
            return Ok(StoreSpec::Sqlite(None));
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            return Ok(StoreSpec::Sqlite(
                (!path.is_empty()).then(|| PathBuf::from(path)),
            ));
        }
        bail!("unknown store `{text}`: use memory, sqlite:PATH or postgres:URL")
    }

    /// The store's kind in the JSON line: `memory`, `sqlite` or `postgres`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            StoreSpec::Memory => "memory",
            StoreSpec::Sqlite(_) => "sqlite",
            StoreSpec::Postgres(_) => "postgres",
        }
    }

    /// Opens a fresh, empty store (not timed).
    async fn open_fresh(&self) -> anyhow::Result<FreshStore> {
        Ok(match self {
            StoreSpec::Memory => FreshStore {
                store: Arc::new(MemoryStore::new()),
                drop_schema: None,
                _temp_dir: None,
            },
            StoreSpec::Sqlite(path) => {
                let (path, dir) = match path {
                    Some(path) => {
                        for suffix in ["", "-wal", "-shm"] {
                            let mut file = path.clone().into_os_string();
                            file.push(suffix);
                            match std::fs::remove_file(&file) {
                                Ok(()) => {}
                                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                                Err(e) => {
                                    return Err(e).with_context(|| {
                                        format!("cannot delete {}", PathBuf::from(file).display())
                                    });
                                }
                            }
                        }
                        (path.clone(), None)
                    }
                    None => {
                        let dir = tempfile::tempdir().context("cannot create a temporary dir")?;
                        (dir.path().join("bench.db"), Some(dir))
                    }
                };
                let store = SqliteStore::open(&path)
                    .await
                    .with_context(|| format!("cannot open sqlite:{}", path.display()))?;
                FreshStore {
                    store: Arc::new(store),
                    drop_schema: None,
                    _temp_dir: dir,
                }
            }
            StoreSpec::Postgres(url) => {
                let schema = format!(
                    "ef_bench_{}_{:08x}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos())
                );
                let store = PostgresStore::connect_schema(url, &schema)
                    .await
                    .with_context(|| format!("cannot open Postgres schema {schema}"))?;
                FreshStore {
                    store: Arc::new(store),
                    drop_schema: Some((url.clone(), schema)),
                    _temp_dir: None,
                }
            }
        })
    }
}

/// A store opened for one measurement, and what to remove once it is done.
struct FreshStore {
    store: Arc<dyn Store>,
    /// The Postgres URL and the schema to drop afterwards.
    drop_schema: Option<(String, String)>,
    /// The temporary directory of an SQLite file, removed when dropped.
    _temp_dir: Option<tempfile::TempDir>,
}

/// Drops a Postgres schema and everything in it.
async fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .context("cannot connect to drop the benchmark schema")?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut connection)
        .await
        .with_context(|| format!("cannot drop schema {schema}"))?;
    connection.close().await.ok();
    Ok(())
}

/// What one durable measurement found.
#[derive(Clone, Debug)]
pub(crate) struct Measurement {
    /// Wall time from `Engine::start` to the finished record.
    pub elapsed: Duration,
    /// The run's checked result.
    pub result: u64,
    /// Step completions the run's commits journaled (from the commit hook).
    pub step_completions: u64,
    /// Store transactions of the runs: their creation (the journaled start) and every commit.
    pub store_commits: u64,
    /// How many runs were timed: 1, or N for w4.
    pub runs: u64,
}

impl Measurement {
    /// Journaled step commits: each run's start plus every step completion.
    pub(crate) fn step_commits(&self) -> u64 {
        self.runs + self.step_completions
    }
}

/// What the commit hook counts for the runs it watches: those whose id starts with a prefix.
#[derive(Default)]
struct Counters {
    prefix: std::sync::Mutex<String>,
    commits: AtomicU64,
    steps: AtomicU64,
    finished: AtomicU64,
}

impl Counters {
    fn watch(&self, prefix: &str) {
        *self.prefix.lock().unwrap_or_else(|e| e.into_inner()) = prefix.to_owned();
        self.commits.store(0, Ordering::SeqCst);
        self.steps.store(0, Ordering::SeqCst);
        self.finished.store(0, Ordering::SeqCst);
    }

    fn on_commit(&self, info: &CommitInfo) {
        if !info.run_id.starts_with(
            self.prefix
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_str(),
        ) {
            return;
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.steps
            .fetch_add(info.completed.len() as u64, Ordering::SeqCst);
        if info.finished.is_some() {
            self.finished.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Runs `workload` of size `n` as one durable run over a fresh `store`, after an untimed
/// warm-up run of size 10, and checks its result.
pub(crate) async fn measure(
    workload: DurableWorkload,
    n: u64,
    store: &StoreSpec,
) -> anyhow::Result<Measurement> {
    let FreshStore {
        store,
        drop_schema: schema,
        _temp_dir,
    } = store.open_fresh().await?;
    let outcome = measure_on(workload, n, store).await;
    let dropped = match schema {
        Some((url, schema)) => drop_schema(&url, &schema).await,
        None => Ok(()),
    };
    let measurement = outcome?;
    dropped?;
    Ok(measurement)
}

async fn measure_on(
    workload: DurableWorkload,
    n: u64,
    store: Arc<dyn Store>,
) -> anyhow::Result<Measurement> {
    let name = workload.name();
    let warm_up_name = format!("{name}_warm_up");
    let counters = Arc::new(Counters::default());
    let hook = counters.clone();
    let engine = Engine::builder(store)
        .workflow(workload.workflow(&warm_up_name, 10)?)
        .workflow(workload.workflow(name, n)?)
        .on_commit(move |info| hook.on_commit(info))
        .start()
        .await?;
    let outcome = async {
        let runs = if workload == DurableWorkload::Concurrent {
            n
        } else {
            1
        };
        let warm_up = start_runs(&engine, workload, &warm_up_name, 10, "warm-up").await?;
        wait_runs(&engine, workload, 10, &warm_up, Some(WARM_UP_LIMIT)).await?;

        let prefix = format!("{name}-{n}");
        counters.watch(&prefix);
        let started = Instant::now();
        let run_ids = start_runs(&engine, workload, name, n, &prefix).await?;
        let result = wait_runs(&engine, workload, n, &run_ids, None).await?;
        let elapsed = started.elapsed();
        // The hook runs just after the last commit wakes `wait`: let it count that commit.
        let deadline = Instant::now() + Duration::from_secs(5);
        while counters.finished.load(Ordering::SeqCst) < runs && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let measurement = Measurement {
            elapsed,
            result,
            step_completions: counters.steps.load(Ordering::SeqCst),
            store_commits: runs + counters.commits.load(Ordering::SeqCst),
            runs,
        };
        let expected = workload.expected_steps(n);
        if measurement.step_completions != expected {
            eprintln!(
                "{name} n={n}: the commits journaled {} step completions, expected {expected}",
                measurement.step_completions
            );
        }
        anyhow::Ok(measurement)
    }
    .await;
    engine.shutdown().await;
    outcome
}

/// Starts the runs of one measurement of size `n`, with ids starting with `prefix`: one run, or
/// for w4 `n` runs at once (run `c` starts with `c`).
async fn start_runs(
    engine: &Engine,
    workload: DurableWorkload,
    name: &str,
    n: u64,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let start = |run_id: String, c: u64| async move {
        let options = StartOptions {
            run_id: Some(run_id),
            ..StartOptions::default()
        };
        anyhow::Ok(
            engine
                .start_with(name, json!({ "c": c }), options)
                .await?
                .run_id,
        )
    };
    if workload != DurableWorkload::Concurrent {
        return Ok(vec![start(prefix.to_owned(), 0).await?]);
    }
    futures::future::try_join_all((0..n).map(|c| start(format!("{prefix}-{c}"), c))).await
}

/// Waits for the runs [`start_runs`] started and checks their results; the first run's.
async fn wait_runs(
    engine: &Engine,
    workload: DurableWorkload,
    n: u64,
    run_ids: &[String],
    limit: Option<Duration>,
) -> anyhow::Result<u64> {
    let records =
        futures::future::try_join_all(run_ids.iter().map(|run_id| engine.wait(run_id, limit)))
            .await?;
    let mut first = None;
    for (c, record) in (0..).zip(&records) {
        // A w4 run started with `c` returns `c + 3`; the others return the size's result.
        let size = if workload == DurableWorkload::Concurrent {
            c
        } else {
            n
        };
        let result = check(workload, size, record)?;
        first.get_or_insert(result);
    }
    first.context("no run was started")
}

/// Checks that `record` is a completed run returning the workload's result; returns it.
fn check(workload: DurableWorkload, n: u64, record: &RunRecord) -> anyhow::Result<u64> {
    let name = workload.name();
    ensure!(
        record.status == RunStatus::Completed,
        "{name} n={n} ended {} ({})",
        record.status,
        record.error.as_deref().unwrap_or("no error")
    );
    let result = record
        .result
        .as_ref()
        .and_then(|json| json.pointer("/value/result"))
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("{name} n={n} finished with result {:?}", record.result))?;
    let expected = workload.expected(n);
    ensure!(
        result == expected,
        "{name} returned {result}, expected {expected}"
    );
    Ok(result)
}
