//! The workflows the server's and the client's tests share (the client's tests include this
//! file by path).

use eventflow::prelude::*;
use eventflow::schemars::JsonSchema;

/// Published by `greet` half way.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub percent: u32,
}

/// The typed start event of `orders`.
#[derive(Event, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "eventflow::schemars")]
#[event(start)]
pub(crate) struct Order {
    /// What is ordered.
    pub item: String,
    /// How many.
    pub quantity: u32,
}

/// Greets `name`, publishing a `Progress` on the way.
pub(crate) fn greet() -> Workflow {
    Workflow::builder("greet")
        .add_step("greet", |ctx: Context, ev: StartEvent| async move {
            let name: String = ev.get_opt("name")?.unwrap_or_else(|| "world".to_owned());
            ctx.write_event_to_stream(Progress { percent: 50 });
            Ok::<_, BoxError>(StopEvent::new(format!("Hello, {name}!")))
        })
        .build()
        .unwrap()
}

/// Fails in its step `boom`.
pub(crate) fn fail() -> Workflow {
    Workflow::builder("fail")
        .add_step("boom", |_: StartEvent| async {
            Err::<StopEvent, BoxError>("kaboom".into())
        })
        .build()
        .unwrap()
}

/// Asks a human for a name and greets them.
pub(crate) fn ask() -> Workflow {
    Workflow::builder("ask")
        .add_step("ask", |ctx: Context, _: StartEvent| async move {
            let answer = ctx
                .wait_for_event::<HumanResponseEvent>()
                .prompt(InputRequiredEvent::new("Your name?"))
                .await?;
            Ok::<_, BoxError>(StopEvent::new(format!("Hi {}", answer.response)))
        })
        .build()
        .unwrap()
}

/// Human in the loop through step signatures, as in Python: `ask` emits the question, `answer`
/// takes the reply.
pub(crate) fn approve() -> Workflow {
    Workflow::builder("approve")
        .add_step("ask", |_: StartEvent| async {
            InputRequiredEvent::new("Approve?")
        })
        .add_step("answer", |ev: HumanResponseEvent| async move {
            StopEvent::new(ev.response == "yes")
        })
        .build()
        .unwrap()
}

/// What `pair`'s `answer` step returns: the second question, or both answers.
#[derive(EventUnion)]
pub(crate) enum PairOutcome {
    /// Asks for the second answer.
    Ask(InputRequiredEvent),
    /// Stops with both answers.
    Done(StopEvent),
}

/// Asks for two answers, one after the other (step signatures, as `approve`), and stops with
/// `"{first} and {second}"`: after the first answer the run cannot finish until a second one
/// comes, so a repeated send of the first is told apart from a finished run.
pub(crate) fn pair() -> Workflow {
    Workflow::builder("pair")
        .add_step("ask", |_: StartEvent| async {
            InputRequiredEvent::new("First?")
        })
        .add_step(
            "answer",
            |ctx: Context, ev: HumanResponseEvent| async move {
                let mut answers: Vec<String> = ctx.get_or("answers", Vec::new())?;
                answers.push(ev.response);
                ctx.set("answers", &answers)?;
                Ok::<_, BoxError>(match answers.as_slice() {
                    [_] => PairOutcome::from(InputRequiredEvent::new("Second?")),
                    answers => PairOutcome::from(StopEvent::new(answers.join(" and "))),
                })
            },
        )
        .build()
        .unwrap()
}

/// Prices an order: three per item.
pub(crate) fn orders() -> Workflow {
    Workflow::builder("orders")
        .add_step("price", |ev: Order| async move {
            StopEvent::new(ev.quantity * 3)
        })
        .build()
        .unwrap()
}
