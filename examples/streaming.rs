//! Streaming: watching a run while it works.
//!
//! The reference's Human-in-the-Loop usage pattern consumes a run with
//! `async for event in handler.stream_events():`. This example shows that stream on its own: a
//! step publishes `ProgressEvent`s and the `TokenEvent` deltas of a (fake) generation with
//! `ctx.write_event_to_stream(...)` while it works, and the caller prints each event the moment
//! it arrives, then awaits the handler for the result.
//!
//! ```text
//! cargo run --example streaming -- --prompt "Why are workflows event-driven?"
//! ```
//!
//! The stream is a log kept for the whole run: every subscriber gets every event, in order,
//! however late it subscribes, and the last item is always the run's terminal event (here the
//! `StopEvent`).

use std::io::Write;
use std::time::Duration;

use eventflow::prelude::*;
use eventflow_examples::arg;
use futures::StreamExt;

/// How far a step has got, published to the stream (never routed to a step).
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct ProgressEvent {
    step: String,
    percent: u8,
    message: String,
}

/// One piece of the answer being generated, like the deltas of a streaming LLM.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct TokenEvent {
    text: String,
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

#[workflow]
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

/// Prints events as they arrive: tokens inline, like a chat UI, everything else on its own line.
#[derive(Default)]
struct Printer {
    mid_line: bool,
}

impl Printer {
    fn print(&mut self, event: &AnyEvent) {
        if let Some(token) = event.downcast_ref::<TokenEvent>() {
            print!("{}", token.text);
            // Flush so each token shows up now, not when the line ends.
            let _ = std::io::stdout().flush();
            self.mid_line = true;
            return;
        }
        if std::mem::take(&mut self.mid_line) {
            println!();
        }
        if let Some(progress) = event.downcast_ref::<ProgressEvent>() {
            println!(
                "[{:>3}%] {}: {}",
                progress.percent, progress.step, progress.message
            );
        } else if event.is::<StopEvent>() {
            println!("[stop] the run finished");
        } else {
            println!("[{}] {event:?}", event.name());
        }
    }
}

fn build(delay: Duration) -> anyhow::Result<Workflow> {
    Ok(Generator { delay }.into_workflow()?)
}

/// Runs the workflow on `prompt`, handing each streamed event to `on_event` as it arrives;
/// returns the events seen and the run's result.
async fn run(
    prompt: &str,
    delay: Duration,
    mut on_event: impl FnMut(&AnyEvent),
) -> anyhow::Result<(Vec<AnyEvent>, String)> {
    let handler = build(delay)?.run(json!({ "prompt": prompt }));
    let mut events = handler.stream_events();
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        on_event(&event);
        seen.push(event);
    }
    // The stream ended with the terminal event; the handler now holds the result.
    let output = handler.await?;
    Ok((seen, output.result()?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let prompt =
        arg(&args, "prompt").unwrap_or_else(|| "Why are workflows event-driven?".to_owned());
    let mut printer = Printer::default();
    let (events, result) = run(&prompt, Duration::from_millis(40), |event| {
        printer.print(event)
    })
    .await?;
    println!("\n{} events streamed; result:\n{result}", events.len());
    Ok(())
}

#[cfg(test)]
mod tests {
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

    #[tokio::test]
    async fn events_arrive_in_order_and_end_with_the_stop_event() {
        let (events, result) = run("What is a step?", Duration::from_millis(1), |_| {})
            .await
            .unwrap();

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
        let handler = build(Duration::from_millis(5))
            .unwrap()
            .run(json!({ "prompt": "Are you live?" }));
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
        let mut handler = build(Duration::from_millis(1))
            .unwrap()
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
}
