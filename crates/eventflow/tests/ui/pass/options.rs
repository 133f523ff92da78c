// Every step option, and the workflow's options.
use std::time::Duration;

use eventflow::prelude::*;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Progress {
    done: u32,
}

const WORKERS: usize = 3;

struct Options;

// `Progress` is sent to no step but `progress`; `Unheard` is accepted by none, on purpose.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Unheard;

#[workflow(name = "x", skip_graph_checks(terminal_event))]
impl Options {
    #[step(
        num_workers = 2,
        retry = RetryPolicy::fixed(Duration::from_millis(5)),
        timeout = Duration::from_secs(1),
        emits(Progress, Unheard),
        skip_graph_checks(reachability, dead_end),
        name = "custom"
    )]
    async fn start(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent> {
        ctx.send_event(Progress { done: 1 })?;
        Ok(StopEvent::new(ev.kwargs().len()))
    }

    // Options are expressions: a constant, a longer policy; `emits` with paths, several types.
    #[step(
        num_workers = WORKERS,
        retry = RetryPolicy::exponential(Duration::from_millis(1)).max_attempts(5).jitter(true),
        emits(eventflow::StopEvent, Progress)
    )]
    async fn progress(&self, ctx: &Context, ev: Progress) {
        if ev.done < 3 {
            ctx.send_event(Progress { done: ev.done + 1 }).unwrap();
        } else {
            ctx.send_event(StopEvent::new(ev.done)).unwrap();
        }
    }
}

fn main() {
    let workflow = Options.into_workflow().unwrap();
    assert_eq!(workflow.name(), "x");
    let names: Vec<&str> = workflow.steps().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["custom", "progress"]);
    let custom = &workflow.steps()[0];
    assert!(custom.emitted().iter().any(|ty| ty.name() == "Progress"));
    let debug = format!("{custom:?}");
    assert!(debug.contains("num_workers: 2"), "{debug}");
    assert!(debug.contains("timeout: Some(1s)"), "{debug}");
    assert_eq!(
        custom.skipped_graph_checks(),
        [GraphCheck::Reachability, GraphCheck::DeadEnd]
    );
    assert!(workflow.steps()[1].skipped_graph_checks().is_empty());
}
