//! `eventflow-bench WORKLOAD N [--from-task]`: runs one benchmark workload and prints one JSON
//! line. The durable workloads take a store:
//! `eventflow-bench w2_loop_durable|w3_fanout_durable|w4_concurrent_durable N --store memory|sqlite:PATH|postgres:URL
//! [--from-task]`.
//!
//! By default the workload is driven from the main thread with `Runtime::block_on`, as under
//! `#[tokio::main]`. With `--from-task` it is driven from a task spawned on the runtime, as in a
//! server, where starting a run and receiving its result do not cross threads (see
//! `bench/README.md` for why that matters for w1).
//!
//! Workflow construction and a warm-up run of size 10 are not timed; the timed run's result is
//! checked, and a wrong result exits non-zero. See `bench/README.md` for the workloads and the
//! comparison with the Python engines.
//!
//! A durable workload runs its workflow as one durable run of `eventflow::durable::Engine` over
//! a fresh store, timed from `Engine::start` to the finished record (see `durable.rs`); its line
//! adds the store's kind, the journaled step commits and the store transactions, per second.

mod durable;
mod workloads;

use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use durable::{DurableWorkload, StoreSpec};
use workloads::Workload;

fn usage() -> ExitCode {
    eprintln!("usage: eventflow-bench WORKLOAD N [--from-task]");
    eprintln!("       eventflow-bench DURABLE_WORKLOAD N --store STORE [--from-task]");
    eprintln!(
        "workloads: {}",
        Workload::ALL.map(Workload::name).join(", ")
    );
    eprintln!(
        "durable workloads: {}",
        DurableWorkload::ALL.map(DurableWorkload::name).join(", ")
    );
    eprintln!("stores: memory, sqlite:PATH (or sqlite: for a temporary file), postgres:URL");
    ExitCode::from(2)
}

/// The process's peak resident set size in MiB, from `/proc/self/status` (Linux only).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(workload) = args
        .first()
        .and_then(|name| DurableWorkload::from_name(name))
    {
        return main_durable(workload, &args[1..]);
    }
    let (Some(workload), Some(n)) = (
        args.first().and_then(|name| Workload::from_name(name)),
        args.get(1)
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0),
    ) else {
        return usage();
    };
    let from_task = match args.get(2).map(String::as_str) {
        None => false,
        Some("--from-task") if args.len() == 3 => true,
        Some(_) => return usage(),
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let measure = async move {
        let prepared = workload.prepare(n)?;
        workload.prepare(10)?.run().await?;
        let started = Instant::now();
        prepared.run().await?;
        anyhow::Ok(started.elapsed())
    };
    let outcome = if from_task {
        runtime.block_on(async {
            let task = tokio::spawn(measure);
            task.await
                .unwrap_or_else(|panic| Err(anyhow::anyhow!("the workload panicked: {panic}")))
        })
    } else {
        runtime.block_on(measure)
    };
    let elapsed = match outcome {
        Ok(elapsed) => elapsed,
        Err(error) => {
            eprintln!("{} n={n} failed: {error:#}", workload.name());
            return ExitCode::FAILURE;
        }
    };
    let seconds = elapsed.as_secs_f64();
    let mut line = json!({
        "engine": "eventflow",
        "workload": workload.name(),
        "n": n,
        "seconds": seconds,
        "per_item_us": seconds * 1e6 / n as f64,
        "peak_rss_mb": peak_rss_mb(),
    });
    if from_task {
        line["driven_from"] = json!("task");
    }
    if workload == Workload::Concurrent {
        line["runs_per_s"] = json!(n as f64 / seconds);
    }
    println!("{line}");
    ExitCode::SUCCESS
}

/// `eventflow-bench DURABLE_WORKLOAD N --store STORE [--from-task]` (`args` after the name).
fn main_durable(workload: DurableWorkload, args: &[String]) -> ExitCode {
    let Some(n) = args
        .first()
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n > 0)
    else {
        return usage();
    };
    let mut store = None;
    let mut from_task = false;
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        let value = match arg.as_str() {
            "--from-task" if !from_task => {
                from_task = true;
                continue;
            }
            "--store" => rest.next().map(String::as_str),
            other => match other.strip_prefix("--store=") {
                Some(value) => Some(value),
                None => return usage(),
            },
        };
        match value.map(StoreSpec::parse) {
            Some(Ok(spec)) if store.is_none() => store = Some(spec),
            Some(Err(error)) => {
                eprintln!("{error:#}");
                return usage();
            }
            _ => return usage(),
        }
    }
    let Some(store) = store else {
        eprintln!("{} needs --store", workload.name());
        return usage();
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let spec = store.clone();
    let measure = async move { durable::measure(workload, n, &spec).await };
    let outcome = if from_task {
        runtime.block_on(async {
            let task = tokio::spawn(measure);
            task.await
                .unwrap_or_else(|panic| Err(anyhow::anyhow!("the workload panicked: {panic}")))
        })
    } else {
        runtime.block_on(measure)
    };
    let measurement = match outcome {
        Ok(measurement) => measurement,
        Err(error) => {
            eprintln!(
                "{} n={n} --store {} failed: {error:#}",
                workload.name(),
                store.kind()
            );
            return ExitCode::FAILURE;
        }
    };
    let seconds = measurement.elapsed.as_secs_f64();
    let mut line = json!({
        "engine": "eventflow",
        "workload": workload.name(),
        "n": n,
        "store": store.kind(),
        "seconds": seconds,
        "per_item_us": seconds * 1e6 / n as f64,
        "step_commits": measurement.step_commits(),
        "step_commits_per_s": measurement.step_commits() as f64 / seconds,
        "store_commits": measurement.store_commits,
        "store_commits_per_s": measurement.store_commits as f64 / seconds,
        "result": measurement.result,
        "peak_rss_mb": peak_rss_mb(),
    });
    if workload == DurableWorkload::Concurrent {
        line["runs_per_s"] = json!(n as f64 / seconds);
    }
    if from_task {
        line["driven_from"] = json!("task");
    }
    println!("{line}");
    ExitCode::SUCCESS
}
