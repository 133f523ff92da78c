//! Validation: every problem of a workflow's graph, reported at once when it is built.

use eventflow::prelude::*;
use eventflow::{ValidationProblem, WorkflowBuilder};

#[derive(Event, Clone, Serialize, Deserialize)]
struct A;
#[derive(Event, Clone, Serialize, Deserialize)]
struct B;
#[derive(Event, Clone, Serialize, Deserialize)]
struct Orphan;
#[derive(Event, Clone, Serialize, Deserialize)]
struct NeverSent;
#[derive(Event, Clone, Serialize, Deserialize)]
#[event(start)]
struct OtherStart;
#[derive(Event, Clone, Serialize, Deserialize)]
#[event(external)]
struct Approval;

mod elsewhere {
    use eventflow::prelude::*;
    /// Same name as the outer `A`, another type.
    #[derive(Event, Clone, Serialize, Deserialize)]
    pub(crate) struct A;
}

fn problems(builder: WorkflowBuilder) -> Vec<ValidationProblem> {
    match builder.build() {
        Err(errors) => errors.problems().to_vec(),
        Ok(_) => panic!("the workflow should be invalid"),
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let builder = Workflow::builder("broken")
        .add_step("begin", |_: StartEvent| async { A })
        .add_step("other_begin", |_: OtherStart| async { B })
        .add_step("emit_orphan", |_: A| async { Orphan })
        .add_step("wait_never", |_: NeverSent| async { StopEvent::new(()) })
        .add_step("eats_stop", |_: StopEvent| async { B })
        .add_step("begin", |_: B| async { StopEvent::new(()) })
        .add_step("clash", |_: B| async { elsewhere::A });
    let problems = problems(builder);
    let expected = [
        ValidationProblem::DuplicateStep {
            step: "begin".into(),
        },
        ValidationProblem::AcceptsStop {
            step: "eats_stop".into(),
            event: "StopEvent".into(),
        },
        ValidationProblem::SeveralStartTypes {
            types: vec![
                ("OtherStart".into(), vec!["other_begin".into()]),
                ("StartEvent".into(), vec!["begin".into()]),
            ],
        },
        ValidationProblem::NotAccepted {
            event: "Orphan".into(),
            emitted_by: vec!["emit_orphan".into()],
        },
        ValidationProblem::NeverProduced {
            event: "NeverSent".into(),
            accepted_by: vec!["wait_never".into()],
        },
    ];
    for problem in &expected {
        assert!(
            problems.contains(problem),
            "missing {problem:?} in {problems:#?}"
        );
    }
    assert!(
        problems.iter().any(
            |p| matches!(p, ValidationProblem::DuplicateEventName { event, .. } if event == "A")
        )
    );
    assert!(problems.contains(&ValidationProblem::Unreachable {
        step: "wait_never".into()
    }));
    assert!(problems.contains(&ValidationProblem::CannotStop {
        step: "emit_orphan".into()
    }));
}

/// A step whose only effect is a side effect (it returns `()`) ends its chain: it is no dead
/// end, and it still counts for reachability.
#[test]
fn a_step_that_emits_nothing_is_valid() {
    let workflow = Workflow::builder("side_effect")
        .add_step("begin", |_: StartEvent| async { A })
        .add_step("finish", |_: A| async { StopEvent::new(1) })
        .add_step("record", |_: A| async {})
        .build();
    assert!(workflow.is_ok(), "{:?}", workflow.err());
    // It is reached only through events, like any step.
    let problems = problems(
        Workflow::builder("side_effect")
            .add_step("begin", |_: StartEvent| async { StopEvent::new(1) })
            .add_step("record", |_: B| async {}),
    );
    assert!(
        problems.contains(&ValidationProblem::NeverProduced {
            event: "B".into(),
            accepted_by: vec!["record".into()],
        }),
        "{problems:#?}"
    );
}

#[derive(Event, Clone, Serialize, Deserialize)]
#[event(stop)]
struct Verdict;

#[test]
fn two_stop_event_types_are_refused_naming_both() {
    let problems = problems(
        Workflow::builder("two_ends")
            .add_step("begin", |_: StartEvent| async { A })
            .add_step("plain", |_: A| async { StopEvent::new(1) })
            .add_step("typed", |_: StartEvent| async { Verdict }),
    );
    assert!(
        problems.contains(&ValidationProblem::SeveralStopTypes {
            types: vec![
                ("StopEvent".into(), vec!["plain".into()]),
                ("Verdict".into(), vec!["typed".into()]),
            ],
        }),
        "{problems:#?}"
    );
}

#[test]
fn the_error_message_lists_each_problem_with_steps_and_events() {
    let error = Workflow::builder("broken")
        .add_step("begin", |_: StartEvent| async { A })
        .add_step("emit_orphan", |_: A| async { Orphan })
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert_eq!(
        message,
        "workflow `broken` is invalid (2 problems):\n  \
         - no step emits a stop event (StopEvent, or a type marked #[event(stop)]), so no run could finish\n  \
         - Orphan is emitted by step `emit_orphan` but no step accepts it"
    );
}

#[test]
fn a_workflow_needs_a_start_step_and_steps_at_all() {
    assert_eq!(
        problems(Workflow::builder("empty")),
        [ValidationProblem::NoSteps]
    );
    let problems =
        problems(Workflow::builder("headless").add_step("s", |_: A| async { StopEvent::new(()) }));
    assert!(
        problems.contains(&ValidationProblem::NoStartStep),
        "{problems:?}"
    );
    assert!(problems.contains(&ValidationProblem::NeverProduced {
        event: "A".into(),
        accepted_by: vec!["s".into()]
    }));
}

#[test]
fn outside_events_are_exempt_and_reachable() {
    // InputRequiredEvent need not be accepted; HumanResponseEvent and #[event(external)] events
    // need not be produced; the steps that accept them count as reachable.
    let workflow = Workflow::builder("hitl")
        .add_step("ask", |_: StartEvent| async {
            InputRequiredEvent::new("ok?")
        })
        .add_step("answer", |ev: HumanResponseEvent| async move {
            StopEvent::new(ev.response)
        })
        .add_step("approve", |_: Approval| async {
            StopEvent::new("approved")
        })
        .build();
    assert!(workflow.is_ok(), "{:?}", workflow.err());
}

#[test]
fn undeclared_send_event_is_caught_with_a_hint() {
    // The start step sends Work with ctx.send_event but does not declare it.
    let error = Workflow::builder("w")
        .add_step("start", |ctx: Context, _: StartEvent| async move {
            let _ = ctx.send_event(A);
        })
        .add_step("work", |_: A| async { StopEvent::new(()) })
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("declare #[step(emits(A))]"), "{message}");
    // Declared, it is valid.
    let ok = Workflow::builder("w")
        .step(
            Step::new("start", |ctx: Context, _: StartEvent| async move {
                let _ = ctx.send_event(A);
            })
            .emits::<A>(),
        )
        .add_step("work", |_: A| async { StopEvent::new(()) })
        .build();
    assert!(ok.is_ok());
}

#[test]
fn the_builder_skips_checks_given_by_name_and_reports_unknown_names_with_the_rest() {
    let orphan_emitter =
        || Workflow::builder("w").add_step("begin", |_: StartEvent| async { Orphan });
    // By name, as in the reference, or by value: the same skip.
    for builder in [
        orphan_emitter().skip_graph_checks(["terminal_event", "dead_end"]),
        orphan_emitter().skip_graph_checks([GraphCheck::TerminalEvent, GraphCheck::DeadEnd]),
    ] {
        let problems = problems(builder);
        assert_eq!(problems, [ValidationProblem::NoStopEvent], "{problems:#?}");
    }

    let error = orphan_emitter()
        .skip_graph_checks([String::from("terminal-event")])
        .add_step("island", |_: B| async { B })
        .step(Step::new("stray", |_: A| async { StopEvent::new(()) }).skip_graph_checks(["reach"]))
        .build()
        .unwrap_err();
    assert_eq!(
        error.problems(),
        [
            ValidationProblem::UnknownGraphCheck {
                step: None,
                name: "terminal-event".into(),
            },
            ValidationProblem::UnknownGraphCheck {
                step: Some("stray".into()),
                name: "reach".into(),
            },
            ValidationProblem::NotAccepted {
                event: "Orphan".into(),
                emitted_by: vec!["begin".into()],
            },
            ValidationProblem::NeverProduced {
                event: "A".into(),
                accepted_by: vec!["stray".into()],
            },
            ValidationProblem::CannotStop {
                step: "begin".into()
            },
            ValidationProblem::Unreachable {
                step: "island".into()
            },
            ValidationProblem::Unreachable {
                step: "stray".into()
            },
        ]
    );
    let message = error.to_string();
    assert!(
        message.contains(
            "- unknown graph check `terminal-event`; the checks are `reachability`, `dead_end` and `terminal_event`"
        ),
        "{message}"
    );
    assert!(
        message.contains("- unknown graph check `reach` skipped by step `stray`"),
        "{message}"
    );
    assert!(
        message.contains("skip the check with skip_graph_checks(reachability)"),
        "{message}"
    );
}

#[derive(Event, Clone, Serialize, Deserialize)]
struct Ping;
#[derive(Event, Clone, Serialize, Deserialize)]
struct Pong;

#[derive(EventUnion)]
enum PingOrStop {
    Ping(Ping),
    Stop(StopEvent),
}

/// The main path waits for an answer from outside; `ping` and `pong` play a rally that no chain
/// of events from the start leads to: it is started by sending a `Ping` into a run.
struct Rally;

#[workflow]
impl Rally {
    #[step]
    async fn serve(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent> {
        let answer = ctx.wait_for_event::<HumanResponseEvent>().await?;
        Ok(StopEvent::new(answer.response))
    }

    #[step(skip_graph_checks(reachability))]
    async fn ping(&self, _ev: Ping) -> Pong {
        Pong
    }

    #[step(skip_graph_checks(reachability))]
    async fn pong(&self, _ev: Pong) -> PingOrStop {
        PingOrStop::Stop(StopEvent::new("rally"))
    }
}

#[tokio::test]
async fn an_intentionally_unreachable_step_builds_and_runs_with_the_skip() {
    let workflow = Rally
        .into_workflow()
        .expect("the skipped checks do not apply");
    let names: Vec<&str> = workflow.steps().iter().map(Step::name).collect();
    assert_eq!(names, ["serve", "ping", "pong"]);
    // The graph is drawn as it is, island included.
    assert!(workflow.graph().to_mermaid().contains("pong"));

    // Along the main path the island never runs.
    let handler = workflow.run(json!({}));
    handler
        .send_event(HumanResponseEvent::new("answered"))
        .unwrap();
    let output = handler.await.unwrap();
    assert_eq!(output.result::<String>().unwrap(), "answered");
    assert_eq!(output.path().step_runs("ping"), 0);

    // Sent from outside, the event reaches the step no chain of events leads to.
    let handler = workflow.run(json!({}));
    handler.send_event(Ping).unwrap();
    let output = handler.await.unwrap();
    assert_eq!(output.result::<String>().unwrap(), "rally");
    assert_eq!(output.path().step_runs("ping"), 1);
    assert_eq!(output.path().step_runs("pong"), 1);
}

#[derive(Event, Clone, Serialize, Deserialize)]
struct Question;
#[derive(Event, Clone, Serialize, Deserialize)]
struct Answer {
    text: String,
}

/// `answer` returns an `Answer` no step accepts: `start` waits for it. The graph knows no edge
/// from a returned event to a wait, so the workflow skips the terminal-event check and `answer`
/// the dead-end one.
struct Oracle;

#[workflow(skip_graph_checks(terminal_event))]
impl Oracle {
    #[step(emits(Question))]
    async fn start(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent> {
        ctx.send_event(Question)?;
        let answer = ctx.wait_for_event::<Answer>().await?;
        Ok(StopEvent::new(answer.text))
    }

    #[step(skip_graph_checks(dead_end))]
    async fn answer(&self, _ev: Question) -> Answer {
        Answer { text: "42".into() }
    }
}

#[tokio::test]
async fn checks_skipped_for_the_workflow_and_for_a_step_by_the_macros() {
    let workflow = Oracle
        .into_workflow()
        .expect("the skipped checks do not apply");
    let output = workflow.run(json!({})).await.unwrap();
    assert_eq!(output.result::<String>().unwrap(), "42");
}
