//! Runs from the command line: `eventflow run` (start a run, follow its events, answer its
//! questions, print its result), `eventflow events` and `eventflow send`.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eventflow_client::{EventEnvelope, Handler, HandlerStatus, RunOptions, SendEvent};
use futures::StreamExt;
use serde_json::{Value, json};

use super::{About, Cx, seconds};
use crate::args::parse_fields;
use crate::output::{Spinner, inline, readable};
use crate::{EventsArgs, INTERRUPTED, RunArgs, SendArgs};

/// The type of the events that ask a human, and of their answers.
const QUESTION: &str = "InputRequiredEvent";
const ANSWER: &str = "HumanResponseEvent";

impl Cx {
    /// `eventflow run`.
    pub(crate) async fn run(&self, args: RunArgs) -> anyhow::Result<ExitCode> {
        let began = Instant::now();
        let start = parse_fields(&args.fields)?;
        let name = args.workflow.as_str();
        let mut options = RunOptions::new();
        if let Some(id) = &args.handler_id {
            options = options.handler_id(id.clone());
        }
        let spinner = self.out.spinner(format!("starting {name}"));
        let started = self
            .client
            .run_nowait_with(name, Value::Object(start), &options)
            .await
            .map_err(|e| self.explain(e, About::Workflow(name)))?;
        let id = started.handler_id.clone();
        if args.nowait {
            drop(spinner);
            if self.out.json {
                let mut handler = serde_json::to_value(&started.handler)?;
                handler["after_sequence"] = json!(started.after_sequence);
                self.out.json_document(&handler);
            } else {
                self.out.line(&id);
                eprintln!(
                    "started {name} as handler {id}: `eventflow events {id}` follows it, \
                     `eventflow handler {id} --wait` waits for its result"
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !self.out.json && !args.quiet {
            spinner.println(format!("handler {id} started (workflow {name})"));
        }
        spinner.set_message(format!("running {name}"));

        let deadline = args
            .timeout
            .map(|limit| tokio::time::Instant::now() + limit);
        let follow = self.follow(&id, started.after_sequence, &args, &spinner);
        let interrupted = tokio::signal::ctrl_c();
        let timed_out = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => futures::future::pending().await,
            }
        };
        enum Ended {
            Followed(anyhow::Result<()>),
            Interrupted,
            TimedOut,
        }
        let ended = tokio::select! {
            followed = follow => Ended::Followed(followed),
            _ = interrupted => Ended::Interrupted,
            () = timed_out => Ended::TimedOut,
        };
        match ended {
            Ended::Followed(followed) => followed?,
            Ended::Interrupted => {
                drop(spinner);
                eprintln!(
                    "interrupted; the run goes on on the server: `eventflow events {id}` follows \
                     it, `eventflow cancel {id}` cancels it"
                );
                return Ok(ExitCode::from(INTERRUPTED));
            }
            Ended::TimedOut => {
                drop(spinner);
                bail!(
                    "handler {id} has not finished after {}; it goes on on the server: \
                     `eventflow handler {id} --wait` waits for it",
                    seconds(args.timeout.unwrap_or_default())
                );
            }
        }
        // The stream ended with the run's last event; the handler says how it ended.
        spinner.set_message(format!("reading the result of {id}"));
        let handler = self
            .client
            .wait(&id, Duration::from_secs(30))
            .await
            .map_err(|e| self.explain(e, About::Handler(&id)))?;
        drop(spinner);
        self.finish(&handler, began.elapsed(), args.quiet)
    }

    /// Follows the run's events from `after`, printing them and answering its questions, until
    /// its stream ends.
    async fn follow(
        &self,
        id: &str,
        after: u64,
        args: &RunArgs,
        spinner: &Spinner,
    ) -> anyhow::Result<()> {
        let mut answers: VecDeque<String> = args.answer.iter().cloned().collect();
        let can_prompt = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        let mut events = self.client.events(id, Some(after));
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| self.explain(e, About::Handler(id)))?;
            if self.out.json {
                self.out.json_line(&event_json(&event));
            } else if !args.quiet && event.event_type != "StopEvent" {
                spinner.println(format!("  {}", event_line(&event)));
            }
            if event.event_type != QUESTION {
                continue;
            }
            let question = question_text(&event.value);
            let answer = match answers.pop_front() {
                Some(answer) => {
                    if !self.out.json && !args.quiet {
                        spinner.println(format!("  answered {answer:?} (--answer)"));
                    }
                    answer
                }
                None if can_prompt => {
                    spinner.pause();
                    // In text the question was just printed with its event.
                    let shown = !self.out.json && !args.quiet;
                    let answer = prompt(if shown { None } else { Some(&question) }).await?;
                    spinner.resume();
                    answer
                }
                None => {
                    spinner.eprintln(format!(
                        "handler {id} waits for an answer: `eventflow send {id} {ANSWER} \
                         response=...` answers it (or run with --answer TEXT)"
                    ));
                    spinner.set_message(format!("waiting for an answer to {id}"));
                    continue;
                }
            };
            let send = SendEvent::new(ANSWER, json!({ "response": answer }))
                .idempotency_key(format!("eventflow-cli:{id}:{}", event.seq));
            self.client
                .send_event_with(id, &send)
                .await
                .map_err(|e| self.explain(e, About::Handler(id)))?;
            spinner.set_message(format!("running {id}"));
        }
        Ok(())
    }

    /// Prints a finished run; the exit code says whether it completed.
    fn finish(&self, handler: &Handler, took: Duration, quiet: bool) -> anyhow::Result<ExitCode> {
        let completed = handler.status == HandlerStatus::Completed;
        if self.out.json {
            self.out.json_line(&serde_json::to_value(handler)?);
        } else if completed {
            let result = handler.result_value().cloned().unwrap_or(Value::Null);
            if !quiet {
                self.out
                    .line(format!("completed in {}; result:", seconds(took)));
            }
            self.out.line(readable(&result));
        } else {
            eprintln!(
                "handler {} {}: {}",
                handler.handler_id,
                handler.status,
                handler.error.as_deref().unwrap_or("no error given")
            );
        }
        Ok(if completed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// `eventflow events`.
    pub(crate) async fn events(&self, args: EventsArgs) -> anyhow::Result<ExitCode> {
        let id = args.handler.as_str();
        let after = if args.all { Some(0) } else { args.after };
        let spinner = self.out.spinner(format!("following {id}"));
        // Without following: stop at the last event published when we asked.
        let last = if args.no_follow {
            let handler = self
                .client
                .handler(id)
                .await
                .map_err(|e| self.explain(e, About::Handler(id)))?;
            Some(handler.last_sequence.unwrap_or(0))
        } else {
            None
        };
        if last.is_some_and(|last| after.is_some_and(|after| after >= last)) || last == Some(0) {
            return Ok(ExitCode::SUCCESS);
        }
        let mut events = self.client.events(id, after);
        let mut printed = 0usize;
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| self.explain(e, About::Handler(id)))?;
            if self.out.json {
                self.out.json_line(&event_json(&event));
            } else {
                spinner.println(event_line(&event));
            }
            printed += 1;
            if last.is_some_and(|last| event.seq >= last) {
                break;
            }
        }
        drop(spinner);
        if printed == 0 && !self.out.json {
            eprintln!("handler {id} has no events to show");
        }
        Ok(ExitCode::SUCCESS)
    }

    /// `eventflow send`.
    pub(crate) async fn send(&self, args: SendArgs) -> anyhow::Result<ExitCode> {
        let id = args.handler.as_str();
        let fields = parse_fields(&args.fields)?;
        let mut send = SendEvent::new(args.event_type.clone(), Value::Object(fields));
        if let Some(step) = &args.step {
            send = send.step(step.clone());
        }
        if let Some(key) = &args.key {
            send = send.idempotency_key(key.clone());
        }
        let outcome = self
            .client
            .send_event_with(id, &send)
            .await
            .map_err(|e| self.explain(e, About::Handler(id)))?;
        if self.out.json {
            self.out.json_document(&serde_json::to_value(&outcome)?);
        } else if outcome.duplicate {
            self.out.line(format!(
                "{} already sent to {id} with this key: not sent again",
                args.event_type
            ));
        } else {
            self.out.line(format!("sent {} to {id}", args.event_type));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// An event as one JSON line: `{"seq", "type", "value", "qualified_name"}`.
fn event_json(event: &EventEnvelope) -> Value {
    json!({
        "seq": event.seq,
        "type": event.event_type,
        "value": event.value,
        "qualified_name": event.qualified_name,
    })
}

/// An event as one line of text: `#3 TokenEvent {"text":"You "}`; a question's text follows
/// on lines of its own, indented.
fn event_line(event: &EventEnvelope) -> String {
    if event.event_type == QUESTION
        && let Some(Value::String(prefix)) = event.value.get("prefix")
        && event
            .value
            .as_object()
            .is_some_and(|fields| fields.len() == 1)
    {
        let mut text = format!("#{} {QUESTION}", event.seq);
        for line in prefix.lines() {
            text.push('\n');
            if !line.is_empty() {
                text.push_str("    ");
                text.push_str(line);
            }
        }
        return text;
    }
    let value = match &event.value {
        Value::Object(fields) if fields.is_empty() => String::new(),
        other => format!(" {}", inline(other)),
    };
    format!("#{} {}{value}", event.seq, event.event_type)
}

/// What an `InputRequiredEvent` asks: its `prefix`, else its fields.
fn question_text(value: &Value) -> String {
    match value.get("prefix") {
        Some(Value::String(prefix)) if !prefix.is_empty() => prefix.clone(),
        _ => inline(value),
    }
}

/// Asks `question` (unless it is on screen already) on stderr and reads one line from stdin.
async fn prompt(question: Option<&str>) -> anyhow::Result<String> {
    if let Some(question) = question {
        eprintln!("{question}");
    }
    eprint!("your answer> ");
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map(|read| (read, line))
    })
    .await
    .context("reading the answer")?
    .context("reading the answer from stdin")?;
    match line {
        (0, _) => bail!("no answer given (end of input); the run still waits for one"),
        (_, line) => Ok(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_print_on_one_line() {
        let mut event = EventEnvelope::new("TokenEvent", json!({"text": "You "}));
        event.seq = 3;
        assert_eq!(event_line(&event), "#3 TokenEvent {\"text\":\"You \"}");
        let mut event = EventEnvelope::new(QUESTION, json!({"prefix": "Approve?\n\n  ok"}));
        event.seq = 1;
        assert_eq!(
            event_line(&event),
            "#1 InputRequiredEvent\n    Approve?\n\n      ok"
        );
        let event = EventEnvelope::new("Tick", json!({}));
        assert_eq!(event_line(&event), "#0 Tick");
        assert_eq!(
            event_json(&event),
            json!({"seq": 0, "type": "Tick", "value": {}, "qualified_name": null})
        );
    }

    #[test]
    fn questions_show_their_prefix() {
        assert_eq!(question_text(&json!({"prefix": "Send it?"})), "Send it?");
        assert_eq!(question_text(&json!({"k": 1})), "{\"k\":1}");
    }
}
