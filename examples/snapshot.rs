//! Snapshot and resume: a human-in-the-loop pause that outlives the process.
//!
//! The reference's Human-in-the-Loop pattern pauses a run on an `InputRequiredEvent` until a
//! `HumanResponseEvent` comes back. A human may take days to answer, so the run should not have
//! to wait in memory: here one process runs a draft-approval workflow up to its question, takes
//! `handler.snapshot()`, writes it as JSON and cancels its copy of the run; a brand-new process
//! reads the file, `workflow.resume(snapshot)`s the run, sends the answer and prints the result.
//! The context state set before the pause (`draft_version`) is read after the resume, to show
//! it survived.
//!
//! ```text
//! cargo run --example snapshot                                # both halves, two processes
//! cargo run --example snapshot -- --file /tmp/run.json --answer no
//! cargo run --example snapshot -- --resume /tmp/run.json --answer yes   # the second half alone
//! ```
//!
//! Run without `--resume`, the example does the first half, then starts itself again as a child
//! process with `--resume PATH --answer ANSWER` and prints what the child printed.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use eventflow::RunSnapshot;
use eventflow::prelude::*;
use eventflow_examples::arg;
use futures::StreamExt;

const TOPIC: &str = "snapshots in eventflow";

/// A first draft, on its way to be revised.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct DraftEvent {
    text: String,
    version: u32,
}

/// Writes a draft, revises it, and publishes it only if a human approves.
struct DraftApproval;

#[workflow]
impl DraftApproval {
    #[step]
    async fn write(&self, ev: StartEvent) -> Result<DraftEvent> {
        let topic: String = ev.get("topic")?;
        Ok(DraftEvent {
            text: format!("A post about {topic}."),
            version: 1,
        })
    }

    #[step]
    async fn revise(&self, ctx: &Context, ev: DraftEvent) -> Result<InputRequiredEvent> {
        let text = ev.text.replace("A post", "A short, friendly post");
        let version = ev.version + 1;
        // The run's state: it is part of the snapshot, so the resumed run still has it.
        ctx.set("draft", &text)?;
        ctx.set("draft_version", version)?;
        Ok(InputRequiredEvent::new(format!(
            "Publish draft v{version}: \"{text}\"? (yes/no)"
        )))
    }

    #[step]
    async fn decide(&self, ctx: &Context, ev: HumanResponseEvent) -> Result<StopEvent> {
        let text: String = ctx.get("draft")?;
        let version: u32 = ctx.get("draft_version")?;
        let approved = matches!(ev.response.trim().to_lowercase().as_str(), "yes" | "y");
        Ok(StopEvent::new(if approved {
            format!("published draft v{version}: \"{text}\"")
        } else {
            format!("draft v{version} sent back for rework: \"{text}\"")
        }))
    }
}

/// Starts a run, waits until it asks for approval, and writes its snapshot to `path`.
/// Returns the run's id.
async fn start_and_snapshot(path: &Path) -> anyhow::Result<String> {
    let workflow = DraftApproval.into_workflow()?;
    let handler = workflow.run(json!({ "topic": TOPIC }));

    // Follow the run until its question appears: it is then idle, waiting for a human.
    let mut events = handler.stream_events();
    loop {
        let event = events
            .next()
            .await
            .context("the run's stream ended early")?;
        if let Some(question) = event.downcast_ref::<InputRequiredEvent>() {
            println!("the run asks: {}", question.prefix);
            break;
        }
        if event.is_terminal() {
            bail!("the run ended without asking for approval: {event:?}");
        }
    }

    let snapshot = handler.snapshot().await?;
    tokio::fs::write(path, snapshot.to_json())
        .await
        .with_context(|| format!("cannot write {}", path.display()))?;
    // The run now lives on in the file; stop this copy of it.
    handler.cancel();
    Ok(snapshot.run_id().to_owned())
}

/// Resumes the run snapshotted in `path` on a freshly built workflow, answers its question
/// with `answer`, and returns the run's result.
async fn resume_and_answer(path: &Path, answer: &str) -> anyhow::Result<String> {
    let json = tokio::fs::read_to_string(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let snapshot = RunSnapshot::from_json(&json)?;
    let workflow = DraftApproval.into_workflow()?;
    let handler = workflow.resume(snapshot)?;
    println!(
        "process {} resumed run {}; answering {answer:?}",
        std::process::id(),
        handler.run_id()
    );

    // The question was asked before the snapshot; the run is waiting for its answer.
    handler.send_event(HumanResponseEvent::new(answer))?;
    Ok(handler.await?.result()?)
}

/// The first half, then the second in a child process.
async fn parent(path: &Path, answer: &str) -> anyhow::Result<()> {
    let run_id = start_and_snapshot(path).await?;
    println!("snapshot of run {run_id} written to {}", path.display());

    let exe = std::env::current_exe()?;
    println!(
        "resuming it in a new process (pid of this one: {})",
        std::process::id()
    );
    let output = tokio::process::Command::new(exe)
        .arg("--resume")
        .arg(path)
        .args(["--answer", answer])
        .output()
        .await
        .context("cannot start the resuming process")?;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        println!("  | {line}");
    }
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        eprintln!("  | {line}");
    }
    if !output.status.success() {
        bail!("the resuming process failed ({})", output.status);
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let answer = arg(&args, "answer").unwrap_or_else(|| "yes".to_owned());
    match arg(&args, "resume") {
        Some(path) => {
            let result = resume_and_answer(Path::new(&path), &answer).await?;
            println!("result: {result}");
        }
        None => {
            let path = arg(&args, "file").map_or_else(
                || std::env::temp_dir().join("eventflow-snapshot-example.json"),
                PathBuf::from,
            );
            parent(&path, &answer).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary file for one test, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            let file = format!("eventflow-snapshot-test-{}-{name}.json", std::process::id());
            TempFile(std::env::temp_dir().join(file))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// The same run without a snapshot: answer the question as soon as it appears.
    async fn uninterrupted(answer: &str) -> anyhow::Result<String> {
        let handler = DraftApproval
            .into_workflow()?
            .run(json!({ "topic": TOPIC }));
        let mut events = handler.stream_events();
        while let Some(event) = events.next().await {
            if event.is::<InputRequiredEvent>() {
                handler.send_event(HumanResponseEvent::new(answer))?;
            }
        }
        Ok(handler.await?.result()?)
    }

    /// Runs `future` on a brand-new runtime in a brand-new thread, as a new process would.
    fn in_fresh_runtime<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
        std::thread::spawn(|| {
            tokio::runtime::Runtime::new()
                .expect("a runtime")
                .block_on(future)
        })
        .join()
        .expect("the thread did not panic")
    }

    #[test]
    fn a_resumed_run_ends_like_an_uninterrupted_one() {
        for answer in ["yes", "no"] {
            let file = TempFile::new(answer);
            let path = file.0.clone();

            // The first half runs on a runtime that is then shut down, with the original run.
            let first = tokio::runtime::Runtime::new().unwrap();
            let run_id = first.block_on(start_and_snapshot(&path)).unwrap();
            drop(first);
            assert!(!run_id.is_empty());
            let json = std::fs::read_to_string(&path).unwrap();
            assert!(json.contains("draft_version"), "{json}");

            let resumed =
                in_fresh_runtime(async move { resume_and_answer(&path, answer).await }).unwrap();
            let direct = in_fresh_runtime(uninterrupted(answer)).unwrap();

            assert_eq!(resumed, direct);
            // `draft_version` was set before the snapshot and read after the resume.
            assert!(resumed.contains("draft v2"), "{resumed}");
            let verdict = if answer == "yes" {
                "published"
            } else {
                "sent back"
            };
            assert!(resumed.contains(verdict), "{resumed}");
        }
    }

    /// `DraftApproval` as a later version might be: `revise` was dropped.
    struct DraftApprovalV2;

    #[workflow(name = "DraftApproval")]
    impl DraftApprovalV2 {
        #[step]
        async fn write(&self, ev: StartEvent) -> Result<InputRequiredEvent> {
            let topic: String = ev.get("topic")?;
            Ok(InputRequiredEvent::new(format!(
                "Publish a post about {topic}?"
            )))
        }

        #[step]
        async fn decide(&self, ev: HumanResponseEvent) -> StopEvent {
            StopEvent::new(ev.response)
        }
    }

    #[tokio::test]
    async fn a_snapshot_does_not_resume_on_a_different_workflow() {
        let file = TempFile::new("mismatch");
        start_and_snapshot(&file.0).await.unwrap();
        let snapshot = RunSnapshot::from_json(&std::fs::read_to_string(&file.0).unwrap()).unwrap();

        let error = DraftApprovalV2
            .into_workflow()
            .unwrap()
            .resume(snapshot)
            .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, SnapshotError::OtherWorkflow { .. }),
            "{error:?}"
        );
        assert!(message.contains("fingerprint"), "{message}");
        assert!(message.contains("`DraftApproval`"), "{message}");
        println!("{message}");
    }

    #[test]
    fn a_damaged_file_is_reported_as_such() {
        let error = RunSnapshot::from_json("{\"format\": 1}").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("snapshot has format version 1"),
            "{error}"
        );
        let error = RunSnapshot::from_json("{ damaged").unwrap_err();
        assert!(
            error.to_string().starts_with("invalid snapshot: "),
            "{error}"
        );
    }
}
