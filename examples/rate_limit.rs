//! Rate limiting: `num_workers` and a semaphore ("Concurrent Execution", "Rate Limiting").
//!
//! ```text
//! cargo run --example rate_limit -- --max 3
//! cargo run --example rate_limit -- --max 20
//! ```
//!
//! `start` sends 20 `JobEvent`s with `ctx.send_event` (declared with `#[step(emits(JobEvent))]`,
//! since the step itself returns `()`), `work` handles them, and `collect` gathers the 20
//! results with `ctx.collect_events` and reports the peak concurrency `work` reached.
//!
//! Two limits apply to `work`, and the tighter one wins:
//!
//! - `#[step(num_workers = 8)]`: at most 8 invocations of the step run at once within a run;
//! - the reference's semaphore: the workflow holds a `tokio::sync::Semaphore` of
//!   `max_concurrent` permits (3 by default, `--max` to change it), and each job holds a permit
//!   while it works. Because the semaphore lives on the workflow instance, it limits all runs of
//!   the workflow together, like an API's rate limit; `num_workers` limits each run on its own.
//!
//! So the peak is `min(max_concurrent, 8)`: 3 with the default, and 8 with `--max 20`.
//!
//! The concurrency counters are atomics on the instance too, so they would add up over several
//! runs of one workflow; here each workflow is run once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eventflow::prelude::*;
use eventflow_examples::arg;
use tokio::sync::Semaphore;

/// How many jobs `start` sends.
const JOBS: usize = 20;

/// The `num_workers` of the `work` step.
const WORKERS: usize = 8;

/// How long one job takes.
const JOB_TIME: Duration = Duration::from_millis(20);

/// One job to do.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct JobEvent {
    id: usize,
}

/// One job done.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct JobDoneEvent {
    id: usize,
    output: usize,
}

/// The run's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Summary {
    jobs_done: usize,
    /// The most jobs that were being worked on at once.
    peak_concurrency: usize,
    /// The outputs, by job id.
    outputs: Vec<usize>,
}

struct RateLimitedWorkflow {
    /// The reference's `self.semaphore = asyncio.Semaphore(max_concurrent)`.
    semaphore: Semaphore,
    /// Jobs being worked on now.
    current: AtomicUsize,
    /// The most jobs worked on at once so far.
    peak: AtomicUsize,
}

impl RateLimitedWorkflow {
    fn new(max_concurrent: usize) -> Self {
        RateLimitedWorkflow {
            semaphore: Semaphore::new(max_concurrent),
            current: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }
}

#[workflow]
impl RateLimitedWorkflow {
    #[step(emits(JobEvent))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) -> Result<()> {
        for id in 0..JOBS {
            ctx.send_event(JobEvent { id })?;
        }
        Ok(())
    }

    #[step(num_workers = WORKERS)]
    async fn work(&self, ev: JobEvent) -> Result<JobDoneEvent> {
        // The reference's `async with self.semaphore:`; the permit is released when dropped.
        let _permit = self.semaphore.acquire().await?;
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);

        tokio::time::sleep(JOB_TIME).await; // the expensive, rate-limited call

        self.current.fetch_sub(1, Ordering::SeqCst);
        Ok(JobDoneEvent {
            id: ev.id,
            output: ev.id * ev.id,
        })
    }

    #[step]
    async fn collect(&self, ctx: &Context, ev: JobDoneEvent) -> Option<StopEvent> {
        let mut done = ctx.collect_events(ev, JOBS)?;
        done.sort_by_key(|job| job.id);
        Some(StopEvent::new(Summary {
            jobs_done: done.len(),
            peak_concurrency: self.peak.load(Ordering::SeqCst),
            outputs: done.into_iter().map(|job| job.output).collect(),
        }))
    }
}

async fn run(max_concurrent: usize, verbose: bool) -> anyhow::Result<Summary> {
    // A semaphore without permits would make every job wait forever.
    anyhow::ensure!(max_concurrent > 0, "--max must be at least 1");
    let workflow = RateLimitedWorkflow::new(max_concurrent)
        .into_workflow()?
        .verbose(verbose);
    let output = workflow.run(json!({})).await?;
    Ok(output.result()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let max_concurrent = match arg(&args, "max") {
        Some(max) => max.parse()?,
        None => 3,
    };
    let started = Instant::now();
    let summary = run(max_concurrent, true).await?;
    println!();
    println!(
        "{} jobs of {JOB_TIME:?} done in {:.0?}",
        summary.jobs_done,
        started.elapsed()
    );
    println!(
        "peak concurrency: {} (semaphore: {max_concurrent}, num_workers: {WORKERS})",
        summary.peak_concurrency
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_job_is_done_once() {
        let summary = run(3, false).await.unwrap();
        assert_eq!(summary.jobs_done, JOBS);
        let expected: Vec<usize> = (0..JOBS).map(|id| id * id).collect();
        assert_eq!(summary.outputs, expected);
    }

    #[tokio::test]
    async fn the_semaphore_bounds_concurrency_below_num_workers() {
        for max in [1, 3, 5] {
            let summary = run(max, false).await.unwrap();
            assert_eq!(summary.peak_concurrency, max, "--max {max}");
        }
    }

    #[tokio::test]
    async fn num_workers_bounds_concurrency_when_the_semaphore_allows_more() {
        for max in [WORKERS, 12, JOBS] {
            let summary = run(max, false).await.unwrap();
            assert_eq!(summary.peak_concurrency, WORKERS, "--max {max}");
        }
    }

    #[tokio::test]
    async fn a_tighter_limit_takes_longer() {
        let started = Instant::now();
        run(1, false).await.unwrap();
        // One job at a time: 20 jobs of 20 ms.
        assert!(started.elapsed() >= JOB_TIME * JOBS as u32);
    }
}
