//! Durable runs on a SQLite file: a run that waits for a human survives the process.
//!
//! `start` records an expense-approval run in the database and drives it until it asks its
//! question; the process then exits, and the run waits in the file, holding no memory. `answer`
//! — in a new process, minutes or days later — sends the human's answer, and whichever worker
//! picks the run up finishes it: the step that asked runs again from its top and finds the
//! answer waiting, without asking twice.
//!
//! ```text
//! cargo run --example durable -- start --db /tmp/expenses.db --amount 420
//! cargo run --example durable -- answer --db /tmp/expenses.db --run RUN_ID --approve yes
//! cargo run --example durable -- demo --db /tmp/expenses.db     # both, in one command
//! ```
//!
//! The workflow, `expenses`, is defined in the `eventflow-demo` crate (`eventflow_demo::expenses`,
//! in `crates/eventflow-demo/src/expenses.rs`), so that `eventflow serve --demo` serves it by name
//! too; this binary runs it on a durable engine.

use std::time::Duration;

use anyhow::{Context as _, bail};
use eventflow::durable::Engine;
use eventflow::prelude::*;
use eventflow::store::{RunStatus, SqliteStore};
use eventflow_demo::expenses;
use eventflow_examples::arg;
use serde_json::Value;

async fn engine(db: &str) -> anyhow::Result<Engine> {
    let store = SqliteStore::open(db)
        .await
        .with_context(|| format!("cannot open the database {db}"))?;
    Ok(Engine::builder(store)
        .workflow(expenses::workflow())
        .poll_interval(Duration::from_millis(50))
        .start()
        .await?)
}

/// Starts a run and returns once it waits for its answer (or finished without one).
async fn start(db: &str, amount: u32) -> anyhow::Result<String> {
    let engine = engine(db).await?;
    let run_id = engine
        .start("expenses", json!({ "amount": amount }))
        .await?;
    println!("run {run_id} started");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = engine.record(&run_id).await?.status;
        if status == RunStatus::Waiting || status.is_terminal() {
            break status;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("run {run_id} is still {status} after 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    print_events(&engine, &run_id).await?;
    println!("run {run_id} is {status}");
    engine.shutdown().await;
    Ok(run_id)
}

/// Sends the answer and waits for the result.
async fn answer(db: &str, run_id: &str, approve: &str) -> anyhow::Result<String> {
    let engine = engine(db).await?;
    engine
        .send_event(
            run_id,
            &format!("answer:{run_id}"),
            HumanResponseEvent::new(approve),
        )
        .await?;
    let record = engine.wait(run_id, Some(Duration::from_secs(30))).await?;
    let result = match record.status {
        RunStatus::Completed => record
            .result
            .map_or(Value::Null, |stop| stop["value"]["result"].clone()),
        other => bail!("run {run_id} ended {other}: {:?}", record.error),
    };
    print_events(&engine, run_id).await?;
    println!("result: {result}");
    engine.shutdown().await;
    Ok(result.as_str().unwrap_or_default().to_owned())
}

async fn print_events(engine: &Engine, run_id: &str) -> anyhow::Result<()> {
    for event in engine.events_page(run_id, 0, 1000).await? {
        println!(
            "  event {}: {} {}",
            event.seq, event.event.name, event.event.value
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("demo");
    let db = arg(&args, "db").unwrap_or_else(|| "eventflow-expenses.db".to_owned());
    match command {
        "start" => {
            let amount = arg(&args, "amount").unwrap_or_else(|| "420".into());
            start(&db, amount.parse().context("--amount is a whole number")?).await?;
        }
        "answer" => {
            let run_id = arg(&args, "run").context("answer needs --run RUN_ID")?;
            let approve = arg(&args, "approve").unwrap_or_else(|| "yes".into());
            answer(&db, &run_id, &approve).await?;
        }
        "demo" => {
            // Two engines one after the other, as two processes would be.
            let run_id = start(&db, 420).await?;
            answer(&db, &run_id, "yes").await?;
        }
        other => bail!("unknown command `{other}`: start, answer or demo"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_answer_completes_the_run_after_the_first_engine_is_gone() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("expenses.db").display().to_string();
        let run_id = start(&db, 420).await?;
        let engine = engine(&db).await?;
        assert_eq!(engine.record(&run_id).await?.status, RunStatus::Waiting);
        engine.shutdown().await;
        assert_eq!(answer(&db, &run_id, "no").await?, "420 EUR refused");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_expense_needs_no_answer() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("expenses.db").display().to_string();
        let run_id = start(&db, 40).await?;
        let engine = engine(&db).await?;
        let record = engine.record(&run_id).await?;
        assert_eq!(record.status, RunStatus::Completed);
        engine.shutdown().await;
        Ok(())
    }
}
