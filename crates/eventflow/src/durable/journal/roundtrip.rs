//! The journal's property: for any run, journaling each tick (`Entry` → JSON text → `Entry` →
//! tick) and applying it gives the same commands, reducer state and context state as applying
//! the tick directly; and rebuilding the run from the store (from its start, or from a durable
//! snapshot and the journal after it) gives what the direct run holds.
//!
//! This is what lets the run loop's code move between files without a silent change of
//! journal format: an entry kind that loses a field on its way through JSON fails here.

use proptest::prelude::*;

use super::harness::{Choices, World};

/// Drives a random run of up to `ticks` ticks from `seed` (continued after it finishes when
/// `restart`), with a durable snapshot after tick `cut`; checks every tick on the way and the
/// rebuilds at the end.
fn check_run(seed: u64, ticks: usize, restart: bool, cut: usize) -> Result<(), String> {
    let mut world = World::start(seed)?;
    let choices = Choices { may_end: true };
    let mut restarted = false;
    for tick in 0..ticks {
        if tick == cut {
            world.take_snapshot()?;
        }
        if !world.step(choices)? {
            if restart && !restarted {
                restarted = true;
                world.restart()?;
            } else {
                break;
            }
        }
    }
    let expected = world.expected_rebuild();
    let whole = super::harness::rebuild_run(world.workflow(), world.stored(false))?;
    check_rebuild("the whole journal", &expected, &whole, world.is_finished())?;
    if world.snapshot.is_some() {
        let partial = super::harness::rebuild_run(world.workflow(), world.stored(true))?;
        check_rebuild(
            "the snapshot and the journal after it",
            &expected,
            &partial,
            world.is_finished(),
        )?;
    }
    Ok(())
}

/// Compares a rebuild with the direct run. What resuming a finished run would start is not
/// compared: finished runs are never resumed (a continued one restarts from a fresh reducer).
fn check_rebuild(
    from: &str,
    expected: &super::harness::RebuiltRun,
    rebuilt: &super::harness::RebuiltRun,
    finished: bool,
) -> Result<(), String> {
    let same = expected.reducer == rebuilt.reducer
        && expected.state == rebuilt.state
        && expected.history == rebuilt.history
        && (finished || expected.resumed == rebuilt.resumed);
    if same {
        Ok(())
    } else {
        Err(format!(
            "rebuilt from {from}: expected {expected:#?}, got {rebuilt:#?}"
        ))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn journaled_ticks_replay_to_the_state_of_applied_ticks(
        seed in any::<u64>(),
        ticks in 1usize..120,
        restart in any::<bool>(),
        cut in 0usize..40,
    ) {
        if let Err(mismatch) = check_run(seed, ticks, restart, cut) {
            return Err(TestCaseError::fail(mismatch));
        }
    }
}

/// The property test's runs reach every entry kind (else it would check less than it claims).
#[test]
fn random_runs_journal_every_entry_kind() {
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let mut world = World::start(seed).unwrap();
        let mut restarted = false;
        for _ in 0..120 {
            if !world.step(Choices { may_end: true }).unwrap() {
                if restarted {
                    break;
                }
                restarted = true;
                world.restart().unwrap();
            }
        }
        for entry in &world.journal {
            kinds.insert(entry["tick"].as_str().unwrap().to_owned());
        }
    }
    let all = [
        "cancel",
        "emit",
        "restart",
        "retry_due",
        "start",
        "step_done",
        "timed_out",
        "wait",
        "wait_ended",
    ];
    assert_eq!(kinds, all.iter().map(|k| k.to_string()).collect());
}
