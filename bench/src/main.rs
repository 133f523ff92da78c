//! `eventflow-bench WORKLOAD N [--from-task]`: runs one benchmark workload and prints one JSON
//! line.
//!
//! By default the workload is driven from the main thread with `Runtime::block_on`, as under
//! `#[tokio::main]`. With `--from-task` it is driven from a task spawned on the runtime, as in a
//! server, where starting a run and receiving its result do not cross threads (see
//! `bench/README.md` for why that matters for w1).
//!
//! Workflow construction and a warm-up run of size 10 are not timed; the timed run's result is
//! checked, and a wrong result exits non-zero. See `bench/README.md` for the workloads and the
//! comparison with the Python engines.

mod workloads;

use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use workloads::Workload;

fn usage() -> ExitCode {
    eprintln!("usage: eventflow-bench WORKLOAD N [--from-task]");
    eprintln!(
        "workloads: {}",
        Workload::ALL.map(Workload::name).join(", ")
    );
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
