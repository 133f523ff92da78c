//! The six workloads, written with eventflow's public API only.

use anyhow::{Context as _, ensure};
use eventflow::prelude::*;
use futures::StreamExt;

/// A benchmark workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Ten steps in a line, run N times one after the other; per item: one run.
    Chain,
    /// One step looping N times; per item: one step execution.
    Loop,
    /// N events sent, worked on by 8 workers, collected; per item: one event.
    Fanout,
    /// N runs of a 3-step chain at once; per item: one run.
    Concurrent,
    /// One step writes N events to the stream; per item: one streamed event.
    Stream,
    /// A counter in the context state, incremented N times; per item: one iteration.
    State,
}

impl Workload {
    /// Every workload, in order.
    pub(crate) const ALL: [Workload; 6] = [
        Workload::Chain,
        Workload::Loop,
        Workload::Fanout,
        Workload::Concurrent,
        Workload::Stream,
        Workload::State,
    ];

    /// The workload's name on the command line and in the JSON line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Chain => "w1_chain",
            Workload::Loop => "w2_loop",
            Workload::Fanout => "w3_fanout",
            Workload::Concurrent => "w4_concurrent",
            Workload::Stream => "w5_stream",
            Workload::State => "w6_state",
        }
    }

    /// The workload named `name`.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Builds the workflow for size `n` (not timed).
    pub(crate) fn prepare(self, n: u64) -> anyhow::Result<Prepared> {
        let workflow = match self {
            Workload::Chain => chain()?,
            Workload::Loop => looping("w2_loop", n)?,
            Workload::Fanout => fanout("w3_fanout", n)?,
            Workload::Concurrent => three_step_chain("w4_concurrent")?,
            Workload::Stream => stream(n)?,
            Workload::State => state(n)?,
        };
        Ok(Prepared {
            workload: self,
            workflow,
            n,
        })
    }
}

/// A workflow built for one size, ready to run (the timed part).
pub(crate) struct Prepared {
    workload: Workload,
    workflow: Workflow,
    n: u64,
}

impl Prepared {
    /// Runs the workload and checks its result.
    pub(crate) async fn run(&self) -> anyhow::Result<()> {
        let n = self.n;
        match self.workload {
            Workload::Chain => {
                for _ in 0..n {
                    let c: u64 = self.workflow.run(json!({"c": 0})).await?.result()?;
                    ensure!(c == 10, "w1_chain returned {c}, expected 10");
                }
            }
            Workload::Loop | Workload::State => {
                let count: u64 = self.workflow.run(json!({})).await?.result()?;
                ensure!(
                    count == n,
                    "{} returned {count}, expected {n}",
                    self.workload.name()
                );
            }
            Workload::Fanout => {
                let sum: u64 = self.workflow.run(json!({})).await?.result()?;
                ensure!(
                    sum == n * (n - 1),
                    "w3_fanout returned {sum}, expected {}",
                    n * (n - 1)
                );
            }
            Workload::Concurrent => {
                let handlers: Vec<WorkflowHandler> = (0..n)
                    .map(|c| self.workflow.run(json!({ "c": c })))
                    .collect();
                let outputs = futures::future::join_all(handlers).await;
                for (c, output) in (0..n).zip(outputs) {
                    let result: u64 = output?.result()?;
                    ensure!(
                        result == c + 3,
                        "w4 run {c} returned {result}, expected {}",
                        c + 3
                    );
                }
            }
            Workload::Stream => {
                let handler = self.workflow.run(json!({}));
                let mut events = handler.stream_events();
                let mut ticks = 0u64;
                while let Some(event) = events.next().await {
                    if event.is::<TickEv>() {
                        ticks += 1;
                    }
                }
                let result: u64 = handler.await?.result()?;
                ensure!(
                    ticks == n && result == n,
                    "w5 counted {ticks} ticks, result {result}, expected {n}"
                );
            }
        }
        Ok(())
    }
}

/// An integer carried along a chain.
macro_rules! carriers {
    ($($name:ident),*) => {
        $(
            #[derive(Event, Clone, Serialize, Deserialize)]
            struct $name {
                c: u64,
            }
        )*
    };
}

carriers!(E1, E2, E3, E4, E5, E6, E7, E8, E9);

fn chain() -> anyhow::Result<Workflow> {
    // StartEvent(c=0) -> E1 -> ... -> E9 -> StopEvent, each step adding 1.
    macro_rules! link {
        ($builder:expr, $name:literal, $from:ident -> $to:ident) => {
            $builder.add_step($name, |ev: $from| async move { $to { c: ev.c + 1 } })
        };
    }
    let builder = Workflow::builder("w1_chain").add_step("s1", |ev: StartEvent| async move {
        Ok::<_, EventFieldError>(E1 {
            c: ev.get::<u64>("c")? + 1,
        })
    });
    let builder = link!(builder, "s2", E1 -> E2);
    let builder = link!(builder, "s3", E2 -> E3);
    let builder = link!(builder, "s4", E3 -> E4);
    let builder = link!(builder, "s5", E4 -> E5);
    let builder = link!(builder, "s6", E5 -> E6);
    let builder = link!(builder, "s7", E6 -> E7);
    let builder = link!(builder, "s8", E7 -> E8);
    let builder = link!(builder, "s9", E8 -> E9);
    let builder = builder.add_step("s10", |ev: E9| async move { StopEvent::new(ev.c + 1) });
    Ok(builder.build()?)
}

#[derive(Event, Clone, Serialize, Deserialize)]
struct LoopEv {
    i: u64,
}

#[derive(EventUnion)]
enum LoopIn {
    Start(StartEvent),
    Again(LoopEv),
}

#[derive(EventUnion)]
enum LoopOut {
    Again(LoopEv),
    Done(StopEvent),
}

/// The w2 workflow under the name `name`: one step accepting `StartEvent | LoopEv`, looping
/// until it has run `n` times, then stopping with `n`.
pub(crate) fn looping(name: &str, n: u64) -> anyhow::Result<Workflow> {
    Ok(Workflow::builder(name)
        .add_step("spin", move |ev: LoopIn| async move {
            let i = match ev {
                LoopIn::Start(_) => 1,
                LoopIn::Again(ev) => ev.i + 1,
            };
            if i >= n {
                LoopOut::Done(StopEvent::new(i))
            } else {
                LoopOut::Again(LoopEv { i })
            }
        })
        .build()?)
}

#[derive(Event, Clone, Serialize, Deserialize)]
struct WorkEv {
    x: u64,
}

#[derive(Event, Clone, Serialize, Deserialize)]
struct ResultEv {
    y: u64,
}

/// The w3 workflow under the name `name`: a start step sends `n` `WorkEv`, a worker step
/// (8 workers) doubles each, a collector sums the `n` results (`n * (n - 1)`).
pub(crate) fn fanout(name: &str, n: u64) -> anyhow::Result<Workflow> {
    let count = usize::try_from(n).context("N too large")?;
    Ok(Workflow::builder(name)
        .step(
            Step::new("start", move |ctx: Context, _: StartEvent| async move {
                for x in 0..n {
                    ctx.send_event(WorkEv { x })?;
                }
                Ok::<_, BoxError>(())
            })
            .emits::<WorkEv>(),
        )
        .step(
            Step::new("work", |ev: WorkEv| async move { ResultEv { y: 2 * ev.x } }).num_workers(8),
        )
        .add_step("collect", move |ctx: Context, ev: ResultEv| async move {
            ctx.collect_events(ev, count)
                .map(|all| StopEvent::new(all.iter().map(|r| r.y).sum::<u64>()))
        })
        .build()?)
}

#[derive(Event, Clone, Serialize, Deserialize)]
struct Plus1 {
    c: u64,
}

#[derive(Event, Clone, Serialize, Deserialize)]
struct Plus2 {
    c: u64,
}

/// w4's workflow: three steps, each adding 1 to the start event's `c`.
pub(crate) fn three_step_chain(name: &str) -> anyhow::Result<Workflow> {
    Ok(Workflow::builder(name)
        .add_step("a", |ev: StartEvent| async move {
            Ok::<_, EventFieldError>(Plus1 {
                c: ev.get::<u64>("c")? + 1,
            })
        })
        .add_step("b", |ev: Plus1| async move { Plus2 { c: ev.c + 1 } })
        .add_step("c", |ev: Plus2| async move { StopEvent::new(ev.c + 1) })
        .build()?)
}

#[derive(Event, Clone, Serialize, Deserialize)]
struct TickEv {
    i: u64,
}

fn stream(n: u64) -> anyhow::Result<Workflow> {
    Ok(Workflow::builder("w5_stream")
        .add_step("ticker", move |ctx: Context, _: StartEvent| async move {
            for i in 0..n {
                ctx.write_event_to_stream(TickEv { i });
            }
            StopEvent::new(n)
        })
        .build()?)
}

#[derive(Event, Clone, Serialize, Deserialize)]
struct TickLoop;

#[derive(EventUnion)]
enum CountIn {
    Start(StartEvent),
    Again(TickLoop),
}

#[derive(EventUnion)]
enum CountOut {
    Again(TickLoop),
    Done(StopEvent),
}

fn state(n: u64) -> anyhow::Result<Workflow> {
    Ok(Workflow::builder("w6_state")
        .add_step("count", move |ctx: Context, _: CountIn| async move {
            let counter: u64 = ctx.get_or("counter", 0)?;
            let counter = counter + 1;
            ctx.set("counter", counter)?;
            Ok::<_, StateError>(if counter >= n {
                CountOut::Done(StopEvent::new(counter))
            } else {
                CountOut::Again(TickLoop)
            })
        })
        .build()?)
}
