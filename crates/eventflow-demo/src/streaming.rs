//! The `streaming` example's workflow: a run to watch while it works.
//!
//! Start it with `{"prompt": "Why are workflows event-driven?"}`; the result is the answer, a
//! string. Its one step publishes [`ProgressEvent`]s and the [`TokenEvent`] deltas of a (fake)
//! generation with `ctx.write_event_to_stream(...)` while it works, the way the reference's
//! Human-in-the-Loop pattern is consumed with `async for event in handler.stream_events():`.
//!
//! The stream is a log kept for the whole run: every subscriber gets every event, in order,
//! however late it subscribes, and the last item is always the run's terminal event (here the
//! `StopEvent`).

use std::time::Duration;

use eventflow::prelude::*;

/// The pause [`workflow()`] makes between tokens.
pub const DEFAULT_DELAY: Duration = Duration::from_millis(40);

/// How far a step has got, published to the stream (never routed to a step).
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// The step that published it.
    pub step: String,
    /// How far it has got, from 0 to 100.
    pub percent: u8,
    /// What it is doing.
    pub message: String,
}

/// One piece of the answer being generated, like the deltas of a streaming LLM: the tokens of
/// a run, in stream order, concatenate to its result.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct TokenEvent {
    /// The piece of text.
    pub text: String,
}

/// A one-step workflow that "generates" an answer token by token.
struct Generator {
    /// The pause between tokens, standing in for the model's latency.
    delay: Duration,
}

impl Generator {
    /// The canned answer; a real workflow would call an LLM's streaming API here.
    fn answer(prompt: &str) -> String {
        format!(
            "You asked: {prompt} In short, each step reacts to the events it accepts and emits \
             new ones, so work flows from step to step as events arrive."
        )
    }
}

#[workflow(name = "streaming")]
impl Generator {
    #[step]
    async fn generate(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent> {
        let prompt: String = ev.get("prompt")?;
        let progress = |percent, message: &str| {
            ctx.write_event_to_stream(ProgressEvent {
                step: ctx.step_name().to_owned(),
                percent,
                message: message.to_owned(),
            });
        };

        progress(0, "reading the prompt");
        tokio::time::sleep(self.delay).await;
        progress(25, "writing the answer");

        let answer = Self::answer(&prompt);
        // Split after each space, so the tokens concatenate back to the answer exactly.
        for token in answer.split_inclusive(' ') {
            tokio::time::sleep(self.delay).await;
            ctx.write_event_to_stream(TokenEvent {
                text: token.to_owned(),
            });
        }

        progress(100, "done");
        Ok(StopEvent::new(answer))
    }
}

/// The workflow, named `streaming`, pausing [`DEFAULT_DELAY`] between tokens. Start it with
/// `{"prompt": "..."}`; the result is the answer, a string.
pub fn workflow() -> Workflow {
    workflow_with_delay(DEFAULT_DELAY)
}

/// The workflow, named `streaming`, pausing `delay` between tokens.
pub fn workflow_with_delay(delay: Duration) -> Workflow {
    Generator { delay }
        .workflow_builder()
        // Only written to the stream: registered so that a resumed run gives them back typed.
        .event::<ProgressEvent>()
        .event::<TokenEvent>()
        .build()
        .expect("the streaming workflow is valid")
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    /// Events compare by name and fields.
    fn render(events: &[AnyEvent]) -> Vec<String> {
        events.iter().map(|e| format!("{e:?}")).collect()
    }

    fn tokens(events: &[AnyEvent]) -> String {
        events
            .iter()
            .filter_map(|e| e.downcast_ref::<TokenEvent>())
            .map(|t| t.text.as_str())
            .collect()
    }

    /// Runs the workflow on `prompt`; returns the events streamed and the run's result.
    async fn run(prompt: &str, delay: Duration) -> (Vec<AnyEvent>, String) {
        let handler = workflow_with_delay(delay).run(json!({ "prompt": prompt }));
        let events: Vec<AnyEvent> = handler.stream_events().collect().await;
        let output = handler.await.unwrap();
        (events, output.result().unwrap())
    }

    #[tokio::test]
    async fn events_arrive_in_order_and_end_with_the_stop_event() {
        let (events, result) = run("What is a step?", Duration::from_millis(1)).await;

        let last = events.last().expect("at least the stop event");
        assert!(last.is::<StopEvent>(), "{last:?}");
        assert_eq!(
            last.downcast_ref::<StopEvent>()
                .unwrap()
                .result::<String>()
                .unwrap(),
            result
        );
        assert_eq!(events.iter().filter(|e| e.is_terminal()).count(), 1);

        // The tokens, in stream order, spell out the result.
        assert_eq!(tokens(&events), result);
        assert!(result.starts_with("You asked: What is a step?"), "{result}");

        // Progress goes 0 -> 25 -> 100, with every token between 25 and 100.
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| match e.downcast_ref::<ProgressEvent>() {
                Some(p) if p.percent == 0 => "start",
                Some(p) if p.percent == 25 => "writing",
                Some(p) if p.percent == 100 => "done",
                Some(p) => panic!("unexpected progress {p:?}"),
                None if e.is::<TokenEvent>() => "token",
                None => "stop",
            })
            .collect();
        let token_count = result.split_inclusive(' ').count();
        let mut expected = vec!["start", "writing"];
        expected.extend(std::iter::repeat_n("token", token_count));
        expected.extend(["done", "stop"]);
        assert_eq!(kinds, expected);
    }

    #[tokio::test]
    async fn events_are_delivered_while_the_step_is_still_working() {
        let handler =
            workflow_with_delay(Duration::from_millis(5)).run(json!({ "prompt": "Are you live?" }));
        let mut events = handler.stream_events();
        let first = events.next().await.unwrap();
        assert_eq!(first.downcast_ref::<ProgressEvent>().unwrap().percent, 0);
        assert!(
            !handler.is_finished(),
            "the first event should arrive long before the run ends"
        );
        handler.await.unwrap();
    }

    #[tokio::test]
    async fn a_late_subscriber_sees_the_same_sequence() {
        let mut handler = workflow_with_delay(Duration::from_millis(1))
            .run(json!({ "prompt": "Who sees what?" }));

        // One subscriber follows the run live, in its own task...
        let live = handler.stream_events();
        let live = tokio::spawn(live.collect::<Vec<_>>());

        // ...while we wait for the run to finish (`&mut` keeps the handler usable)...
        let output = (&mut handler).await.unwrap();
        assert!(handler.is_finished());

        // ...and only then subscribe a second time.
        let late: Vec<AnyEvent> = handler.stream_events().collect().await;
        let live = live.await.unwrap();

        assert_eq!(render(&live), render(&late));
        assert!(late.last().unwrap().is::<StopEvent>());
        assert_eq!(tokens(&late), output.result::<String>().unwrap());
    }

    #[tokio::test]
    async fn streamed_events_are_plain_json() {
        let (events, _) = run("JSON?", Duration::from_millis(1)).await;
        assert_eq!(events[0].name(), "ProgressEvent");
        let first = events[0].to_json().unwrap();
        assert_eq!(first["message"], "reading the prompt", "{first}");
        assert_eq!(events[2].name(), "TokenEvent");
        assert_eq!(events[2].to_json().unwrap()["text"], "You ");
    }
}
