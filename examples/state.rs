//! State: sharing data between steps through the context ("Managing State", "Using Context").
//!
//! ```text
//! cargo run --example state -- --user alice --items "invoice,receipt,contract"
//! ```
//!
//! Three steps run in a line: `remember` (the reference's `step1`) stores the user id and the
//! start time with `ctx.set`; `process` does the work and never sees them; `report` (the
//! reference's `step2`) reads them back with `ctx.get`. The events between the steps carry only
//! the work, so the two values reach `report` through the context alone: this is how steps
//! that are not adjacent share data.
//!
//! Two kinds of state are shown:
//!
//! - key/value pairs (`ctx.set` / `ctx.get`), stored as JSON and read back as any type; a
//!   missing key or a wrong type is an error naming the key and the type, which `report`
//!   prints rather than panicking on;
//! - one typed state struct per run, `RunStats`, edited in place with
//!   `ctx.edit_state(|stats: &mut RunStats| ...)` by every step, to accumulate results.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventflow::prelude::*;
use eventflow_examples::arg;

/// The work `process` is given: note that it does not carry the user id.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct WorkEvent {
    items: Vec<String>,
}

/// What `process` did.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct ProcessedEvent {
    processed: Vec<String>,
}

/// The run's typed state, accumulated across steps with `ctx.edit_state`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct RunStats {
    /// The steps that ran, in order.
    steps: Vec<String>,
    /// How many items were processed.
    items_processed: usize,
}

/// The run's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Report {
    user_id: String,
    elapsed_ms: f64,
    processed: Vec<String>,
    stats: RunStats,
    /// The error of reading a key that was never set.
    missing_key_error: Option<String>,
    /// The error of reading `user_id` as a number.
    wrong_type_error: Option<String>,
}

/// Seconds since the Unix epoch, like Python's `time.time()`.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Records that `step` ran in the run's typed state.
fn record_step(ctx: &Context, step: &str) -> Result<(), StateError> {
    ctx.edit_state(|stats: &mut RunStats| stats.steps.push(step.to_owned()))
}

struct StateWorkflow;

#[workflow]
impl StateWorkflow {
    #[step]
    async fn remember(&self, ctx: &Context, ev: StartEvent) -> Result<WorkEvent> {
        let user_id: String = ev.get("user_id")?;
        ctx.set("user_id", user_id)?;
        ctx.set("start_time", now())?;
        record_step(ctx, "remember")?;
        Ok(WorkEvent {
            items: ev.get("items")?,
        })
    }

    #[step]
    async fn process(&self, ctx: &Context, ev: WorkEvent) -> Result<ProcessedEvent> {
        // Some slow work, so the elapsed time `report` computes is visible.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let processed: Vec<String> = ev.items.iter().map(|item| item.to_uppercase()).collect();
        ctx.edit_state(|stats: &mut RunStats| {
            stats.steps.push("process".to_owned());
            stats.items_processed += processed.len();
        })?;
        Ok(ProcessedEvent { processed })
    }

    #[step]
    async fn report(&self, ctx: &Context, ev: ProcessedEvent) -> Result<StopEvent> {
        let user_id: String = ctx.get("user_id")?;
        let start_time: f64 = ctx.get("start_time")?;
        let elapsed_ms = (now() - start_time) * 1000.0;

        // Reading what is not there, or as the wrong type, is an error, not a panic.
        let missing_key_error = ctx
            .get::<String>("session_token")
            .err()
            .map(|error| error.to_string());
        let wrong_type_error = ctx
            .get::<u64>("user_id")
            .err()
            .map(|error| error.to_string());

        record_step(ctx, "report")?;
        let stats = ctx.state::<RunStats>()?;
        Ok(StopEvent::new(Report {
            user_id,
            elapsed_ms,
            processed: ev.processed,
            stats,
            missing_key_error,
            wrong_type_error,
        }))
    }
}

async fn run(user_id: &str, items: &[&str], verbose: bool) -> anyhow::Result<Report> {
    let workflow = StateWorkflow.into_workflow()?.verbose(verbose);
    let output = workflow
        .run(json!({ "user_id": user_id, "items": items }))
        .await?;
    Ok(output.result()?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let user_id = arg(&args, "user").unwrap_or_else(|| "alice".to_owned());
    let items = arg(&args, "items").unwrap_or_else(|| "invoice,receipt,contract".to_owned());
    let items: Vec<&str> = items.split(',').map(str::trim).collect();
    let report = run(&user_id, &items, true).await?;
    println!();
    println!(
        "user_id (set in `remember`, read in `report`): {}",
        report.user_id
    );
    println!("elapsed since `remember`: {:.1} ms", report.elapsed_ms);
    println!("processed: {}", report.processed.join(", "));
    println!(
        "stats: steps {:?}, {} items processed",
        report.stats.steps, report.stats.items_processed
    );
    if let Some(error) = &report.missing_key_error {
        println!("reading a missing key:  {error}");
    }
    if let Some(error) = &report.wrong_type_error {
        println!("reading the wrong type: {error}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_set_in_one_step_are_read_in_another() {
        let report = run("bob", &["a", "b"], false).await.unwrap();
        assert_eq!(report.user_id, "bob");
        // `process` sleeps 20 ms between `remember` storing the start time and `report`.
        assert!(report.elapsed_ms >= 20.0, "{report:?}");
        assert!(report.elapsed_ms < 10_000.0, "{report:?}");
        assert_eq!(report.processed, ["A", "B"]);
    }

    #[tokio::test]
    async fn typed_state_accumulates_across_steps() {
        let report = run("carol", &["x", "y", "z"], false).await.unwrap();
        assert_eq!(
            report.stats,
            RunStats {
                steps: vec!["remember".into(), "process".into(), "report".into()],
                items_processed: 3,
            }
        );
    }

    #[tokio::test]
    async fn each_run_has_its_own_state() {
        let workflow = StateWorkflow.into_workflow().unwrap();
        let (first, second) = tokio::join!(
            workflow.run(json!({ "user_id": "u1", "items": ["a"] })),
            workflow.run(json!({ "user_id": "u2", "items": ["a", "b"] })),
        );
        let first: Report = first.unwrap().result().unwrap();
        let second: Report = second.unwrap().result().unwrap();
        assert_eq!(
            (first.user_id.as_str(), first.stats.items_processed),
            ("u1", 1)
        );
        assert_eq!(
            (second.user_id.as_str(), second.stats.items_processed),
            ("u2", 2)
        );
    }

    #[tokio::test]
    async fn errors_name_the_key_and_the_type() {
        let report = run("dave", &[], false).await.unwrap();
        let missing = report
            .missing_key_error
            .expect("reading a missing key fails");
        assert!(missing.contains("`session_token`"), "{missing}");
        let wrong = report
            .wrong_type_error
            .expect("reading a string as u64 fails");
        assert!(wrong.contains("`user_id`"), "{wrong}");
        assert!(wrong.contains("u64"), "{wrong}");
    }
}
