//! Golden in-memory snapshot: a `RunSnapshot` saved as JSON by an earlier build
//! (`tests/fixtures/run_snapshot.v2.json`) must keep resuming to the result recorded beside it
//! (`run_snapshot.v2.expected.json`): the stop event, everything the resumed run streams, and
//! the path taken (the reducer's edge counts, restored from the snapshot and continued).
//!
//! Users store these snapshots; a build that cannot resume them, or resumes them differently,
//! breaks them. A change of format bumps the version and adds a fixture; none is ever edited.
//! The journal and durable snapshot fixtures are checked by the crate's unit tests
//! (`durable::journal::golden`).

use std::path::PathBuf;

use eventflow::RunSnapshot;
use eventflow::prelude::*;
use futures::StreamExt;
use serde_json::Value;

const SNAPSHOT: &str = "run_snapshot.v2.json";
const EXPECTED: &str = "run_snapshot.v2.expected.json";

/// A section of the draft, reviewed on its own.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "fixture.Section")]
struct Section {
    index: u64,
}

/// A reviewed section.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "fixture.Reviewed")]
struct Reviewed {
    index: u64,
    words: u64,
}

/// Every section reviewed.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "fixture.Gathered")]
struct Gathered {
    words: u64,
}

/// The human's verdict on the draft.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "fixture.Approved")]
struct Approved {
    answer: String,
    words: u64,
}

/// The run's typed state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Notes {
    drafts: u64,
}

/// The workflow the fixture snapshot was taken of: a fan-out and fan-in, context keys and typed
/// state, and a step waiting for a human when the snapshot was taken. Do not change it: the
/// snapshot records its fingerprint.
fn workflow() -> Workflow {
    Workflow::builder("snapshot-fixture")
        .add_step("draft", |ctx: Context, start: StartEvent| async move {
            let topic: String = start.get("topic")?;
            ctx.set("topic", &topic)?;
            ctx.edit_state(|notes: &mut Notes| notes.drafts += 1)?;
            Ok::<_, BoxError>((0..3).map(|index| Section { index }).collect::<Vec<_>>())
        })
        .step(
            Step::new("review", |ctx: Context, section: Section| async move {
                let topic: String = ctx.get("topic")?;
                Ok::<_, BoxError>(Reviewed {
                    index: section.index,
                    words: section.index * 10 + topic.len() as u64,
                })
            })
            .num_workers(3),
        )
        .add_step("gather", |ctx: Context, reviewed: Reviewed| async move {
            ctx.collect_events(reviewed, 3).map(|all| Gathered {
                words: all.iter().map(|r| r.words).sum(),
            })
        })
        .add_step("approve", |ctx: Context, gathered: Gathered| async move {
            let topic: String = ctx.get("topic")?;
            let answer = ctx
                .wait_for_event::<HumanResponseEvent>()
                .prompt(InputRequiredEvent::new(format!("Publish '{topic}'?")))
                .await?;
            Ok::<_, BoxError>(Approved {
                answer: answer.response,
                words: gathered.words,
            })
        })
        .add_step("publish", |ctx: Context, approved: Approved| async move {
            let topic: String = ctx.get("topic")?;
            let notes: Notes = ctx.state()?;
            Ok::<_, BoxError>(StopEvent::new(json!({
                "topic": topic,
                "answer": approved.answer,
                "words": approved.words,
                "drafts": notes.drafts,
            })))
        })
        .build()
        .unwrap()
}

/// The fixtures folder; `EVENTFLOW_FIXTURES` points the tests at another (an edited copy, to
/// see them fail).
fn fixtures() -> PathBuf {
    std::env::var_os("EVENTFLOW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

fn read(name: &str) -> String {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn event_json(event: &AnyEvent) -> Value {
    serde_json::to_value(event.to_event_json().unwrap()).unwrap()
}

/// Resumes `snapshot`, answers the question it asks again (the waiting step runs again from
/// its top), and returns what the run gave: its result, its stream and its path.
async fn resume_and_answer(snapshot: RunSnapshot) -> anyhow::Result<Value> {
    let handler = workflow().resume(snapshot)?;
    let mut events = handler.stream_events();
    let mut stream = Vec::new();
    let mut questions = 0;
    while let Some(event) = events.next().await {
        if event.is::<InputRequiredEvent>() {
            questions += 1;
            // The first question is the snapshot's history; answer the one asked again, so the
            // answer never arrives before the wait (which would not publish its prompt).
            if questions == 2 {
                handler.send_event(HumanResponseEvent::new("yes"))?;
            }
        }
        stream.push(event_json(&event));
    }
    let output = handler.await?;
    Ok(json!({
        "result": event_json(output.event()),
        "stream": stream,
        "path": output.path(),
    }))
}

#[tokio::test]
async fn an_in_memory_snapshot_resumes_to_its_recorded_result() -> anyhow::Result<()> {
    let snapshot = RunSnapshot::from_json(&read(SNAPSHOT))?;
    assert_eq!(snapshot.workflow(), "snapshot-fixture");
    let expected: Value = serde_json::from_str(&read(EXPECTED))?;
    let resumed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        resume_and_answer(snapshot),
    )
    .await??;
    assert_eq!(resumed, expected);
    Ok(())
}

#[test]
fn a_snapshot_of_another_format_version_is_refused_by_name() {
    let mut json: Value = serde_json::from_str(&read(SNAPSHOT)).unwrap();
    assert_eq!(json["format"], 2, "the fixture is of format 2");
    for (version, written_by) in [(3, "a newer"), (1, "an older")] {
        json["format"] = version.into();
        // Parts of a future format need not decode at all: the version is checked first.
        json["reducer"] = json!("reshaped");
        let error = RunSnapshot::from_json(&json.to_string()).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "snapshot has format version {version}, but this build of eventflow \
                 reads version 2 only: it was written by {written_by} eventflow"
            )
        );
    }
}

/// Writes the fixture files that do not exist yet: a run of [`workflow`] snapshotted while it
/// waits for a human, and what resuming it gives. Run it once when the format changes (after
/// bumping the version in the names above), review the files and commit them:
/// `cargo test -p eventflow --test replay -- --ignored`.
#[tokio::test]
#[ignore = "writes the golden fixtures; run by hand when a format version is added"]
async fn write_golden_fixtures() -> anyhow::Result<()> {
    let dir = fixtures();
    std::fs::create_dir_all(&dir)?;
    let snapshot_path = dir.join(SNAPSHOT);
    if !snapshot_path.exists() {
        let handler = workflow().run(json!({"topic": "durability"}));
        let mut events = handler.stream_events();
        while let Some(event) = events.next().await {
            if event.is::<InputRequiredEvent>() {
                break;
            }
        }
        let snapshot = handler.snapshot().await?;
        handler.cancel();
        std::fs::write(&snapshot_path, snapshot.to_json() + "\n")?;
        eprintln!("wrote {}", snapshot_path.display());
    }
    let expected_path = dir.join(EXPECTED);
    if !expected_path.exists() {
        let snapshot = RunSnapshot::from_json(&std::fs::read_to_string(&snapshot_path)?)?;
        let resumed = resume_and_answer(snapshot).await?;
        std::fs::write(
            &expected_path,
            serde_json::to_string_pretty(&resumed)? + "\n",
        )?;
        eprintln!("wrote {}", expected_path.display());
    }
    Ok(())
}
