//! Golden files: durable runs as a store holds them, written once by an earlier build, that
//! must keep decoding and rebuilding to the result recorded beside them.
//!
//! `tests/fixtures/journal_every_entry.v1.json` is a journal with every kind of entry (and every
//! kind of step error and state write); `tests/fixtures/durable_snapshot.v1.json` a durable
//! snapshot with the journal after it; `tests/fixtures/retry_decisions.v1.json` the same, written
//! after format 1 gained its optional retry fields (the decisions and times of failed attempts
//! in the journal, what retries are told of the attempts before them in the snapshot). Each records what replaying gives: the commands of every
//! entry, the reducer state and the context state, and what `rebuild` makes of the run. The
//! fixtures are never edited: a change of format bumps the version and adds new files (written
//! by `write_golden_fixtures`, which never overwrites one).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::harness::{
    Choices, RUN_ID, RebuiltRun, World, rebuild_run, reducer_json, replay_entry, state_json,
    workflow,
};
use super::{Entry, FormatError};
use crate::context::ContextState;
use crate::durable::rebuild::seed_of;
use crate::event::EventJson;
use crate::run::reducer::RunState;
use crate::store::LoadedRun;

/// The journal with every kind of entry (journal format 1).
const JOURNAL_FIXTURE: &str = "journal_every_entry.v1.json";
/// The durable snapshot (format 1) and the journal after it.
const SNAPSHOT_FIXTURE: &str = "durable_snapshot.v1.json";
/// A durable snapshot and journal (both format 1) with the optional retry fields added later.
const RETRY_FIXTURE: &str = "retry_decisions.v1.json";

/// The optional fields of a failed attempt's journal entry: its policy's decision and the times.
const RETRY_KINDS: [&str; 3] = [
    "step_done.failed_at_ms",
    "step_done.first_attempt_at_ms",
    "step_done.retry_after_ms",
];

/// Whether a stored run has what [`RETRY_FIXTURE`] must show: the retry fields in its journal,
/// a retry that knows its past in its snapshot, and a retry told of its past when it resumes.
fn has_retry_info(stored: &Stored, rebuilt: &RebuiltRun) -> bool {
    let found = coverage(&stored.journal);
    let in_journal = RETRY_KINDS.iter().all(|k| found.iter().any(|f| f == k));
    let in_snapshot = stored.snapshot.as_ref().is_some_and(|(_, snapshot)| {
        ["queued", "in_flight", "retrying"].iter().any(|part| {
            snapshot["reducer"][part]
                .as_array()
                .is_some_and(|entries| entries.iter().any(|e| e.get("past").is_some()))
        })
    });
    let resumed = rebuilt.resumed.iter().any(|c| c.contains("(first at"));
    in_journal && in_snapshot && resumed
}

/// A golden file: a stored run and what reading it must give.
#[derive(Serialize, Deserialize)]
struct Fixture {
    /// What the file holds, for a reader of it.
    about: String,
    /// The fixture workflow's name.
    workflow: String,
    /// The fixture workflow's fingerprint when the file was written: a changed workflow, not a
    /// changed format, is then reported as such.
    fingerprint: String,
    /// The run as stored.
    stored: Stored,
    /// What reading it must give.
    expected: Expected,
}

/// The run as the store held it (`LoadedRun`).
#[derive(Serialize, Deserialize)]
struct Stored {
    /// The durable snapshot and the sequence it covers.
    snapshot: Option<(u64, Value)>,
    /// The journal entries after it, with their sequences.
    journal: Vec<(u64, Value)>,
    /// The published events, with their sequences.
    events: Vec<(u64, EventJson)>,
}

/// What reading a fixture must give, as recorded by the build that wrote it.
#[derive(Serialize, Deserialize)]
struct Expected {
    /// Replaying every entry from the start (journals without a snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replayed: Option<Replayed>,
    /// `rebuild` of the stored run.
    rebuilt: RebuiltRun,
}

/// What applying each entry in order gives.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Replayed {
    /// Each entry's commands, as `SEQ: COMMAND`.
    commands: Vec<String>,
    /// The reducer's snapshot after the last entry.
    reducer: Value,
    /// The context state after the last entry.
    state: Value,
}

impl Stored {
    /// The run as `Store::load` returns it.
    fn loaded(&self) -> LoadedRun {
        LoadedRun {
            snapshot: self.snapshot.clone(),
            journal: self.journal.clone(),
            events: self.events.clone(),
        }
    }
}

/// The fixtures folder; `EVENTFLOW_FIXTURES` points the tests at another (an edited copy, to
/// see them fail).
fn fixtures() -> PathBuf {
    std::env::var_os("EVENTFLOW_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// Reads a fixture, checking it was written with today's fixture workflow.
fn load(name: &str) -> Fixture {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let fixture: Fixture = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a fixture: {e}", path.display()));
    let workflow = workflow();
    assert_eq!(
        (fixture.workflow.as_str(), fixture.fingerprint.as_str()),
        (workflow.name(), workflow.fingerprint()),
        "{name} was written with another fixture workflow: the harness's workflow must not change"
    );
    fixture
}

/// Replays every entry from the start, as `rebuild` does but keeping each entry's commands.
fn replay(journal: &[(u64, Value)]) -> Result<Replayed, String> {
    let workflow = workflow();
    let spec = &*workflow.spec;
    let mut state = RunState::new(spec, seed_of(RUN_ID));
    let store = ContextState::default();
    let mut commands = Vec::new();
    for (seq, entry) in journal {
        for command in replay_entry(spec, &mut state, &store, *seq, entry.clone())? {
            commands.push(format!(
                "{seq}: {}",
                super::harness::describe(spec, &command)
            ));
        }
    }
    Ok(Replayed {
        commands,
        reducer: reducer_json(spec, &state),
        state: state_json(spec, &store),
    })
}

/// The entry kinds, step error kinds and state write kinds in a journal, and which optional
/// fields its entries use.
fn coverage(journal: &[(u64, Value)]) -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    for (_, entry) in journal {
        let tick = entry["tick"].as_str().unwrap_or("?");
        found.insert(tick.to_owned());
        if let Some(fields) = entry.as_object() {
            for field in fields.keys().filter(|f| *f != "tick") {
                found.insert(format!("{tick}.{field}"));
            }
        }
        if let Some(kind) = entry["error"]["kind"].as_str() {
            found.insert(format!("error.{kind}"));
        }
        if let Some(writes) = entry["writes"].as_object() {
            found.extend(writes.keys().map(|k| format!("writes.{k}")));
        }
    }
    found.into_iter().collect()
}

/// What a journal with every kind of entry must hold.
const EVERY_KIND: [&str; 24] = [
    "cancel",
    "emit",
    "emit.event",
    "emit.from",
    "emit.target",
    "error.failed",
    "error.panicked",
    "error.timed_out",
    "restart",
    "retry_due",
    "start",
    "step_done",
    "step_done.error",
    "step_done.events",
    "step_done.retryable",
    "step_done.writes",
    "timed_out",
    "wait",
    "wait.prompt",
    "wait.requirements",
    "wait_ended",
    "writes.collected",
    "writes.kv",
    "writes.typed",
];

/// Whether a journal holds all of [`EVERY_KIND`].
fn has_every_kind(journal: &[(u64, Value)]) -> bool {
    let found = coverage(journal);
    EVERY_KIND.iter().all(|k| found.iter().any(|f| f == k))
}

#[test]
fn a_journal_with_every_entry_kind_replays_to_its_recorded_result() {
    let fixture = load(JOURNAL_FIXTURE);
    assert!(
        has_every_kind(&fixture.stored.journal),
        "the fixture lacks some of {EVERY_KIND:?}: it has {:?}",
        coverage(&fixture.stored.journal)
    );
    let replayed = replay(&fixture.stored.journal).unwrap();
    let expected = fixture.expected.replayed.expect("recorded");
    assert_eq!(replayed.commands, expected.commands);
    assert_eq!(replayed.reducer, expected.reducer);
    assert_eq!(replayed.state, expected.state);
    let rebuilt = rebuild_run(&workflow(), fixture.stored.loaded()).unwrap();
    assert_eq!(rebuilt, fixture.expected.rebuilt);
}

#[test]
fn a_durable_snapshot_and_the_journal_after_it_rebuild_to_the_recorded_result() {
    let fixture = load(SNAPSHOT_FIXTURE);
    let (_, snapshot) = fixture.stored.snapshot.as_ref().expect("a snapshot");
    assert_eq!(snapshot["format"], 1);
    assert!(
        !fixture.stored.journal.is_empty(),
        "entries after the snapshot"
    );
    let rebuilt = rebuild_run(&workflow(), fixture.stored.loaded()).unwrap();
    assert_eq!(rebuilt, fixture.expected.rebuilt);
}

/// Entries and snapshots with the retry fields (added to format 1 without a version bump: they
/// are optional, and a build without them reads them as it read entries before).
#[test]
fn a_durable_run_with_retry_decisions_and_times_rebuilds_to_the_recorded_result() {
    let fixture = load(RETRY_FIXTURE);
    assert!(
        has_retry_info(&fixture.stored, &fixture.expected.rebuilt),
        "the fixture lacks a retry field, a retry's past in its snapshot or on resume"
    );
    let rebuilt = rebuild_run(&workflow(), fixture.stored.loaded()).unwrap();
    assert_eq!(rebuilt, fixture.expected.rebuilt);
}

#[test]
fn a_durable_snapshot_without_a_version_is_version_1() {
    let fixture = load(SNAPSHOT_FIXTURE);
    let mut loaded = fixture.stored.loaded();
    let (_, snapshot) = loaded.snapshot.as_mut().unwrap();
    snapshot.as_object_mut().unwrap().remove("format");
    let rebuilt = rebuild_run(&workflow(), loaded).unwrap();
    assert_eq!(rebuilt, fixture.expected.rebuilt);
}

#[test]
fn a_durable_snapshot_of_a_future_version_is_refused_by_name() {
    let fixture = load(SNAPSHOT_FIXTURE);
    let mut loaded = fixture.stored.loaded();
    let (_, snapshot) = loaded.snapshot.as_mut().unwrap();
    snapshot["format"] = 2.into();
    let error = rebuild_run(&workflow(), loaded).unwrap_err();
    assert_eq!(
        error,
        "durable snapshot has format version 2, but this build of eventflow reads version 1 only: \
         it was written by a newer eventflow"
    );
}

#[test]
fn a_journal_entry_of_a_future_version_is_refused_by_name() {
    let fixture = load(JOURNAL_FIXTURE);
    let (_, entry) = &fixture.stored.journal[0];
    assert!(
        entry.get("v").is_none(),
        "version 1 entries carry no version"
    );
    let with = |v: Value| {
        let mut entry = entry.clone();
        entry["v"] = v;
        Entry::from_json(entry)
    };
    assert!(with(1.into()).is_ok(), "an explicit version 1 reads");
    match with(7.into()) {
        Err(FormatError::UnsupportedVersion {
            what: "journal entry",
            version: 7,
            oldest: 1,
            newest: 1,
        }) => {}
        other => panic!("expected version 7 to be refused, got {other:?}"),
    }
    assert!(matches!(
        with("one".into()),
        Err(FormatError::Invalid { .. })
    ));
    // And a rebuild stops at it, naming it.
    let mut loaded = fixture.stored.loaded();
    loaded.journal[3].1["v"] = 2.into();
    let error = rebuild_run(&workflow(), loaded).unwrap_err();
    assert!(
        error.starts_with("journal entry has format version 2"),
        "{error}"
    );
}

/// Writes the golden fixtures that do not exist yet. Run it once when a format changes (after
/// bumping its version and naming the new files above), review the files and commit them:
/// `cargo test -p eventflow --lib golden::write_golden_fixtures -- --ignored`.
#[test]
#[ignore = "writes the golden fixtures; run by hand when a format version is added"]
fn write_golden_fixtures() {
    let dir = fixtures();
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, fixture: Fixture| {
        let path = dir.join(name);
        if path.exists() {
            eprintln!("{} exists: left as it is", path.display());
            return;
        }
        let text = serde_json::to_string_pretty(&fixture).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        eprintln!("wrote {}", path.display());
    };
    let workflow = workflow();
    let fixture = |about: &str, world: &World, from_snapshot: bool, replayed| {
        let loaded = world.stored(from_snapshot);
        let rebuilt = rebuild_run(&workflow, loaded.clone()).unwrap();
        assert_eq!(
            rebuilt,
            world.expected_rebuild(),
            "rebuild agrees with the run"
        );
        Fixture {
            about: about.to_owned(),
            workflow: workflow.name().to_owned(),
            fingerprint: workflow.fingerprint().to_owned(),
            stored: Stored {
                snapshot: loaded.snapshot,
                journal: loaded.journal,
                events: loaded.events,
            },
            expected: Expected { replayed, rebuilt },
        }
    };

    // The first seed whose run, cancelled, continued and timed out, journals every kind.
    let calm = Choices { may_end: false };
    let world = (0..10_000)
        .find_map(|seed| {
            let mut world = World::start(seed).unwrap();
            for _ in 0..40 {
                world.step(calm).unwrap();
            }
            if !world.is_finished() {
                world.cancel().unwrap();
            }
            world.restart().unwrap();
            for _ in 0..40 {
                world.step(calm).unwrap();
            }
            if !world.is_finished() {
                world.time_out().unwrap();
            }
            has_every_kind(&world.stored(false).journal).then_some(world)
        })
        .expect("some seed journals every kind");
    let (reducer, state) = world.direct_json();
    let replayed = Replayed {
        commands: world.commands.clone(),
        reducer,
        state,
    };
    assert_eq!(replay(&world.stored(false).journal).unwrap(), replayed);
    write(
        JOURNAL_FIXTURE,
        fixture(
            "A durable run's journal with every kind of entry, step error and state write: \
             cancelled, continued (restart) and timed out. Written by eventflow's journal \
             format 1; replay and rebuild must give `expected`. Never edit: add a new fixture.",
            &world,
            false,
            Some(replayed),
        ),
    );

    // The first seed whose snapshot holds every part of a run's state.
    let full = |snapshot: &Value| {
        let reducer = &snapshot["reducer"];
        let state = &snapshot["state"];
        ["queued", "in_flight", "retrying", "waiters", "unclaimed"]
            .iter()
            .all(|part| reducer[part].as_array().is_some_and(|a| !a.is_empty()))
            && state["kv"].as_object().is_some_and(|kv| !kv.is_empty())
            && !state["typed"].is_null()
            && state["collect"].as_array().is_some_and(|c| !c.is_empty())
    };
    let world = (0..10_000)
        .find_map(|seed| {
            let mut world = World::start(seed).unwrap();
            for _ in 0..30 {
                world.step(calm).unwrap();
            }
            world.take_snapshot().unwrap();
            for _ in 0..8 {
                world.step(calm).unwrap();
            }
            let (_, snapshot) = world.snapshot.as_ref().unwrap();
            (!world.is_finished() && full(snapshot) && world.stored(true).journal.len() >= 8)
                .then_some(world)
        })
        .expect("some seed snapshots every part");
    write(
        SNAPSHOT_FIXTURE,
        fixture(
            "A durable run as the store holds it mid-run: a snapshot with queued, in-flight and \
             retrying invocations, waiters, unclaimed events, context keys, typed state and a \
             collect buffer, then the journal after it. Written by eventflow's durable snapshot \
             format 1 and journal format 1; rebuild must give `expected.rebuilt`. Never edit: \
             add a new fixture.",
            &world,
            true,
            None,
        ),
    );

    // The first seed whose snapshot and journal hold the retry fields.
    let world = (0..10_000)
        .find_map(|seed| {
            let mut world = World::start(seed).unwrap();
            for _ in 0..30 {
                world.step(calm).unwrap();
            }
            world.take_snapshot().unwrap();
            for _ in 0..20 {
                world.step(calm).unwrap();
            }
            let loaded = world.stored(true);
            let stored = Stored {
                snapshot: loaded.snapshot,
                journal: loaded.journal,
                events: loaded.events,
            };
            (!world.is_finished() && has_retry_info(&stored, &world.expected_rebuild()))
                .then_some(world)
        })
        .expect("some seed journals the retry fields");
    write(
        RETRY_FIXTURE,
        fixture(
            "A durable run as the store holds it mid-run, after journal format 1 gained its \
             optional retry fields: a snapshot whose retries know the attempts before them, then \
             the journal after it, whose failed attempts carry their policy's decision and their \
             times. Written by eventflow's durable snapshot format 1 and journal format 1; \
             rebuild must give `expected.rebuilt`. Never edit: add a new fixture.",
            &world,
            true,
            None,
        ),
    );
}

/// Promise 2: a journal is replayed in order or not at all; one with an entry missing (a store
/// returning a gap) is refused, not replayed around the hole.
#[test]
fn a_journal_with_a_gap_is_not_replayed() {
    use crate::prelude::*;
    use crate::run::Tick;
    let workflow = Workflow::builder("gap")
        .add_step("only", |_: StartEvent| async { StopEvent::new("done") })
        .build()
        .unwrap();
    let start = Entry::encode(
        &workflow.spec,
        &Tick::Start(AnyEvent::new(StartEvent::new())),
        crate::context::StateWrites::default(),
    )
    .and_then(serde_json::to_value)
    .unwrap();
    let cancel = serde_json::to_value(Entry::Cancel).unwrap();
    let loaded = LoadedRun {
        journal: vec![(1, start), (3, cancel)],
        ..LoadedRun::default()
    };
    let Err(error) = rebuild_run(&workflow, loaded) else {
        panic!("a journal without entry 2 was replayed");
    };
    assert!(error.contains("entries are missing"), "{error}");
}
