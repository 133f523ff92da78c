//! Context across runs: seeding state before a run, reading it after, and starting the next run
//! from what the last one left (a chat's memory).

use eventflow::RunContext;
use eventflow::prelude::*;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Memory {
    turns: Vec<String>,
}

/// Counts its runs in the key `n` and its inputs in the typed state.
fn counter() -> Workflow {
    Workflow::builder("counter")
        .add_step("count", |ctx: Context, ev: StartEvent| async move {
            let n = ctx.get_or::<u32>("n", 0)? + 1;
            ctx.set("n", n)?;
            let said: String = ev.get_opt("say")?.unwrap_or_default();
            ctx.edit_state(|memory: &mut Memory| memory.turns.push(said))?;
            Ok::<_, BoxError>(StopEvent::new(n))
        })
        .build()
        .unwrap()
}

/// Waits for a human before counting.
fn gated() -> Workflow {
    Workflow::builder("gated")
        .add_step("ask", |ctx: Context, _: StartEvent| async move {
            let answer = ctx.wait_for_event::<HumanResponseEvent>().await?;
            ctx.set("answer", &answer.response)?;
            Ok::<_, BoxError>(StopEvent::new(answer.response))
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn three_runs_count_one_two_three_from_each_others_context() -> anyhow::Result<()> {
    let workflow = counter();
    let first = workflow.run(json!({"say": "a"})).await?;
    assert_eq!(first.result::<u32>()?, 1);
    let context = first.context();
    let second = workflow
        .run_with_context(&context, json!({"say": "b"}))
        .await?;
    assert_eq!(second.result::<u32>()?, 2);
    let third = workflow
        .run_with_context(&context, json!({"say": "c"}))
        .await?;
    assert_eq!(third.result::<u32>()?, 3);
    // The handle follows its runs; each output keeps the state its run left.
    assert_eq!(context.get::<u32>("n")?, 3);
    let memory = context.edit_state(|m: &mut Memory| m.clone())?;
    assert_eq!(memory.turns, ["a", "b", "c"]);
    assert_eq!(first.context().get::<u32>("n")?, 1);
    assert_eq!(second.context().get::<u32>("n")?, 2);
    // An output's context forks: a run from it starts from that run's state.
    let fork = workflow
        .run_with_context(&first.context(), json!({}))
        .await?;
    assert_eq!(fork.result::<u32>()?, 2);
    Ok(())
}

#[tokio::test]
async fn a_seeded_context_starts_the_run_and_is_read_after() -> anyhow::Result<()> {
    let context = RunContext::new();
    context.set("n", 41)?;
    context.edit_state(|m: &mut Memory| m.turns.push("seed".into()))?;
    let output = counter()
        .run_with_context(&context, json!({"say": "hi"}))
        .await?;
    assert_eq!(output.result::<u32>()?, 42);
    assert_eq!(context.get::<u32>("n")?, 42);
    let memory = output.context().edit_state(|m: &mut Memory| m.clone())?;
    assert_eq!(memory.turns, ["seed", "hi"]);
    assert_eq!(context.running(), None);
    Ok(())
}

#[tokio::test]
async fn a_context_in_use_by_a_running_run_is_refused_until_it_ends() -> anyhow::Result<()> {
    let workflow = gated();
    let context = RunContext::new();
    let first = workflow.run_with_context(&context, json!({}));
    assert_eq!(context.running().as_deref(), Some(first.run_id()));
    let refused = workflow.run_with_context(&context, json!({})).await;
    match refused {
        Err(WorkflowError::ContextInUse { run_id }) => assert_eq!(run_id, first.run_id()),
        other => panic!("expected ContextInUse, got {other:?}"),
    }
    // The live context is the running run's: a value set from outside reaches its steps.
    assert!(first.context().get::<String>("answer").is_err());
    first.send_event(HumanResponseEvent::new("yes"))?;
    assert_eq!(first.await?.result::<String>()?, "yes");
    assert_eq!(context.get::<String>("answer")?, "yes");
    // Refused runs left the context alone: the next one starts from the first run's state.
    let second = workflow.run_with_context(&context, json!({}));
    second.send_event(HumanResponseEvent::new("again"))?;
    second.await?;
    assert_eq!(context.get::<String>("answer")?, "again");
    Ok(())
}

#[tokio::test]
async fn a_context_of_another_workflow_is_refused() -> anyhow::Result<()> {
    let output = counter().run(json!({})).await?;
    let refused = gated().run_with_context(&output.context(), json!({})).await;
    assert!(
        matches!(&refused, Err(WorkflowError::ContextOfOtherWorkflow { workflow }) if workflow == "counter"),
        "{refused:?}"
    );
    Ok(())
}
