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
//!
//! The workflow is defined in the `eventflow-demo` crate (`eventflow_demo::streaming`, in
//! `crates/eventflow-demo/src/streaming.rs`), so that `eventflow serve --demo` serves it by name
//! too; this binary consumes its stream.

use std::io::Write;
use std::time::Duration;

use eventflow::prelude::*;
use eventflow_demo::streaming::{self, DEFAULT_DELAY, ProgressEvent, TokenEvent};
use eventflow_examples::arg;
use futures::StreamExt;

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

/// Runs the workflow on `prompt`, handing each streamed event to `on_event` as it arrives;
/// returns the events seen and the run's result.
async fn run(
    prompt: &str,
    delay: Duration,
    mut on_event: impl FnMut(&AnyEvent),
) -> anyhow::Result<(Vec<AnyEvent>, String)> {
    let handler = streaming::workflow_with_delay(delay).run(json!({ "prompt": prompt }));
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
    let (events, result) = run(&prompt, DEFAULT_DELAY, |event| printer.print(event)).await?;
    println!("\n{} events streamed; result:\n{result}", events.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_caller_sees_every_event_and_the_result() {
        let mut names = Vec::new();
        let (events, result) = run("What is a step?", Duration::from_millis(1), |event| {
            names.push(event.name().to_owned())
        })
        .await
        .unwrap();
        assert_eq!(names.len(), events.len());
        assert_eq!(names.first().map(String::as_str), Some("ProgressEvent"));
        assert_eq!(names.last().map(String::as_str), Some("StopEvent"));
        assert!(result.starts_with("You asked: What is a step?"), "{result}");
    }
}
