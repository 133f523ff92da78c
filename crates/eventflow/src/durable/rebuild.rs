//! Rebuilding a durable run from what its journal writer stored: the latest snapshot, the
//! journal after it and the published events, replayed through the reducer and prepared to run
//! again in this process.

use super::journal::Entry;
use super::recorder::{DurableRun, DurableSnapshot};
use crate::context::ContextState;
use crate::event::AnyEvent;
use crate::replay::ReplayError;
use crate::run::reducer::RunState;
use crate::store::LoadedRun;
use crate::workflow::Workflow;

/// The reducer's seed of a durable run: derived from its id, so a replay draws the same
/// retry jitter as the run did.
pub(crate) fn seed_of(run_id: &str) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, run_id.as_bytes());
    std::hash::Hasher::finish(&hasher)
}

/// A run rebuilt from the store: its reducer state after the journal, recovered, ready to resume.
pub(crate) struct Rebuilt {
    pub(crate) state: RunState,
    pub(crate) live: ContextState,
    pub(crate) history: Vec<AnyEvent>,
    pub(crate) durable: DurableRun,
}

/// Rebuilds a run from its latest snapshot and the journal after it.
pub(crate) fn rebuild(
    workflow: &Workflow,
    loaded: LoadedRun,
    mut durable: DurableRun,
) -> Result<Rebuilt, ReplayError> {
    let spec = &*workflow.spec;
    let step_index = |name: &str| spec.step_index(name);
    let event_type = |name: &str| spec.event_by_name(name);
    let (mut state, live, committed, mut seq) = match loaded.snapshot {
        Some((seq, json)) => {
            let image = DurableSnapshot::from_json(json)?.image;
            // Two context states from one image: the live one, which steps write as they run,
            // and the one completed steps left, which later snapshots record.
            let committed = image.context(spec)?;
            let (state, live) = image.restore(spec)?;
            (state, live, committed, seq)
        }
        None => (
            RunState::new(spec, seed_of(&durable.lease.run_id)),
            ContextState::default(),
            ContextState::default(),
            0,
        ),
    };
    let mut commands = Vec::new();
    for (entry_seq, json) in loaded.journal {
        if entry_seq != seq + 1 {
            return Err(ReplayError::Gap {
                after: seq,
                next: entry_seq,
            });
        }
        seq = entry_seq;
        let entry = Entry::from_json(json)?;
        if matches!(entry, Entry::Restart { .. }) {
            let seed = seed_of(&format!("{}/{entry_seq}", durable.lease.run_id));
            state = RunState::new(spec, seed);
        }
        let (tick, writes) = entry.decode(spec)?;
        if !writes.is_empty() {
            live.apply_writes(writes.clone(), step_index, event_type)?;
            committed.apply_writes(writes, step_index, event_type)?;
        }
        state.apply(spec, tick, &mut commands);
        commands.clear();
    }
    // Nothing of the run is running in this process: what was in flight runs again.
    state.recover();
    let history: Vec<AnyEvent> = loaded
        .events
        .into_iter()
        .map(|(_, json)| spec.decode_published(json))
        .collect();
    durable.resume_after(committed, seq, history.len());
    Ok(Rebuilt {
        state,
        live: live.tracking_writes(),
        history,
        durable,
    })
}
