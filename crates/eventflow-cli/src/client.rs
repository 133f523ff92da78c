//! The client commands: each one a call (or a stream) of `eventflow-client`, its errors told in
//! words that say what to do.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use eventflow_client::{
    Client, ClientError, EventEnvelope, Handler, HandlerFilter, HandlerStatus, RunOptions,
    RunStatus, SendEvent,
};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::args::parse_fields;
use crate::output::{Output, Spinner, inline, readable, table};
use crate::{
    CancelArgs, DrawArgs, EventsArgs, HandlerArgs, HandlersArgs, HealthArgs, INTERRUPTED, RunArgs,
    SendArgs,
};

/// What a request was about, to explain a 404.
#[derive(Clone, Copy)]
enum About<'a> {
    Server,
    Workflow(&'a str),
    Handler(&'a str),
}

/// The context of the client commands: the client, the server's URL and how to print.
pub struct Cx {
    client: Client,
    url: String,
    has_token: bool,
    out: Output,
}

/// The type of the events that ask a human, and of their answers.
const QUESTION: &str = "InputRequiredEvent";
const ANSWER: &str = "HumanResponseEvent";

impl Cx {
    /// A client of the server at `url`.
    pub fn new(url: &str, token: Option<String>, out: Output) -> anyhow::Result<Cx> {
        let token = token.filter(|t| !t.is_empty());
        let mut builder = Client::builder(url);
        if let Some(token) = &token {
            builder = builder.token(token.clone());
        }
        let client = builder.build().map_err(|error| {
            anyhow!("invalid --url `{url}` ({error}); e.g. --url http://127.0.0.1:8080")
        })?;
        Ok(Cx {
            client,
            url: url.trim_end_matches('/').to_owned(),
            has_token: token.is_some(),
            out,
        })
    }

    /// Turns a client error into a message that says what to do.
    fn explain(&self, error: ClientError, about: About<'_>) -> anyhow::Error {
        let url = &self.url;
        match error {
            ClientError::Transport(source) => {
                if source.is_connect() {
                    anyhow!(
                        "cannot reach {url}: is `eventflow serve` running? (start one with \
                         `eventflow serve --demo`, or point --url / EVENTFLOW_URL at your server)"
                    )
                } else {
                    anyhow::Error::new(source).context(format!("the connection to {url} failed"))
                }
            }
            ClientError::Timeout { operation, after } => anyhow!(
                "{url} did not answer in time ({operation} gave up after {})",
                seconds(after)
            ),
            ClientError::Unauthorized { detail } if self.has_token => anyhow!(
                "{url} refused the token ({detail}): pass the server's token with --token or \
                 EVENTFLOW_TOKEN"
            ),
            ClientError::Unauthorized { .. } => {
                anyhow!("{url} requires a token: pass it with --token or EVENTFLOW_TOKEN")
            }
            ClientError::NotFound { detail } => match about {
                About::Workflow(name) => anyhow!(
                    "{url} serves no workflow `{name}` ({detail}): `eventflow workflows` lists \
                     the ones it serves"
                ),
                About::Handler(id) => anyhow!(
                    "{url} has no handler `{id}` ({detail}): `eventflow handlers` lists them"
                ),
                About::Server => {
                    anyhow!("{url} answered 404 ({detail}): is it an eventflow server? check --url")
                }
            },
            ClientError::BadRequest { detail } => {
                anyhow!("the server refused the request: {detail}")
            }
            ClientError::Conflict { detail } => anyhow!("{detail}"),
            ClientError::Http { status, detail } => anyhow!("{url} answered {status}: {detail}"),
            ClientError::Stream { handler_id, detail } => anyhow!(
                "lost the event stream of handler {handler_id} ({detail}); the run goes on on the \
                 server: `eventflow events {handler_id}` follows it again"
            ),
            other => anyhow::Error::new(other),
        }
    }

    /// `eventflow workflows`.
    pub async fn workflows(&self) -> anyhow::Result<ExitCode> {
        let spinner = self.out.spinner(format!("asking {}", self.url));
        let names = self
            .client
            .workflows()
            .await
            .map_err(|e| self.explain(e, About::Server))?;
        drop(spinner);
        if self.out.json {
            self.out.json_document(&json!({ "workflows": names }));
        } else if names.is_empty() {
            self.out.line(format!("{} serves no workflows", self.url));
        } else {
            for name in names {
                self.out.line(name);
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    /// `eventflow run`.
    pub async fn run(&self, args: RunArgs) -> anyhow::Result<ExitCode> {
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
    pub async fn events(&self, args: EventsArgs) -> anyhow::Result<ExitCode> {
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
    pub async fn send(&self, args: SendArgs) -> anyhow::Result<ExitCode> {
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

    /// `eventflow handlers`.
    pub async fn handlers(&self, args: HandlersArgs) -> anyhow::Result<ExitCode> {
        let mut filter = HandlerFilter::new();
        for status in &args.status {
            let parsed: RunStatus = serde_json::from_value(json!(status.to_lowercase()))
                .ok()
                .filter(|s| *s != RunStatus::Unknown)
                .ok_or_else(|| {
                    anyhow!(
                        "unknown status `{status}`: use running, waiting, parked, completed, \
                         failed or cancelled"
                    )
                })?;
            filter = filter.status(parsed);
        }
        for workflow in &args.workflow {
            filter = filter.workflow(workflow.clone());
        }
        let spinner = self.out.spinner(format!("asking {}", self.url));
        let handlers = self
            .client
            .handlers(&filter)
            .await
            .map_err(|e| self.explain(e, About::Server))?;
        drop(spinner);
        if self.out.json {
            self.out
                .json_document(&json!({ "handlers": serde_json::to_value(&handlers)? }));
            return Ok(ExitCode::SUCCESS);
        }
        if handlers.is_empty() {
            self.out.line("no handlers");
            return Ok(ExitCode::SUCCESS);
        }
        let rows: Vec<Vec<String>> = handlers
            .iter()
            .map(|h| {
                vec![
                    h.handler_id.clone(),
                    h.workflow_name.clone(),
                    status_of(h),
                    h.updated_at.as_deref().map(short_time).unwrap_or_default(),
                ]
            })
            .collect();
        self.out
            .line(table(&["HANDLER", "WORKFLOW", "STATUS", "UPDATED"], &rows));
        Ok(ExitCode::SUCCESS)
    }

    /// `eventflow handler`.
    pub async fn handler(&self, args: HandlerArgs) -> anyhow::Result<ExitCode> {
        let id = args.handler.as_str();
        let handler = if args.wait {
            let spinner = self.out.spinner(format!("waiting for {id}"));
            let handler = self
                .client
                .wait(id, args.timeout)
                .await
                .map_err(|e| match e {
                    ClientError::Timeout { after, .. } => anyhow!(
                        "handler {id} has not finished after {}; it goes on on the server",
                        seconds(after)
                    ),
                    other => self.explain(other, About::Handler(id)),
                })?;
            drop(spinner);
            handler
        } else {
            self.client
                .handler(id)
                .await
                .map_err(|e| self.explain(e, About::Handler(id)))?
        };
        if self.out.json {
            self.out.json_document(&serde_json::to_value(&handler)?);
        } else {
            let mut rows = vec![
                ("handler", handler.handler_id.clone()),
                ("workflow", handler.workflow_name.clone()),
                ("status", status_of(&handler)),
            ];
            for (label, time) in [
                ("started", &handler.started_at),
                ("updated", &handler.updated_at),
                ("completed", &handler.completed_at),
            ] {
                if let Some(time) = time {
                    rows.push((label, short_time(time)));
                }
            }
            if let Some(error) = &handler.error {
                rows.push(("error", error.clone()));
            }
            for (label, value) in rows {
                self.out.line(format!("{label:<11}{value}"));
            }
            if let Some(result) = handler.result_value() {
                self.out.line("result:");
                self.out.line(readable(result));
            }
        }
        // Waiting for a run that did not complete is a failure; showing one is not.
        Ok(if args.wait && handler.status != HandlerStatus::Completed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }

    /// `eventflow cancel`.
    pub async fn cancel(&self, args: CancelArgs) -> anyhow::Result<ExitCode> {
        let id = args.handler.as_str();
        let spinner = self.out.spinner(format!("cancelling {id}"));
        let outcome = self
            .client
            .cancel(id, args.purge)
            .await
            .map_err(|e| self.explain(e, About::Handler(id)))?;
        drop(spinner);
        if self.out.json {
            self.out.json_document(&serde_json::to_value(&outcome)?);
        } else if outcome.is_deleted() {
            self.out.line(format!("deleted {id}"));
        } else {
            let run = outcome
                .run_status
                .map(|status| format!(" (the run is {status})"))
                .unwrap_or_default();
            self.out.line(format!("cancelled {id}{run}"));
        }
        Ok(ExitCode::SUCCESS)
    }

    /// `eventflow draw`.
    pub async fn draw(&self, args: DrawArgs) -> anyhow::Result<ExitCode> {
        let name = args.workflow.as_str();
        let graph = self
            .client
            .workflow_representation(name)
            .await
            .map_err(|e| self.explain(e, About::Workflow(name)))?;
        let mermaid = crate::graph::flowchart(&graph).to_mermaid();
        if self.out.json {
            self.out.json_document(&json!({
                "workflow": name,
                "mermaid": mermaid,
                "graph": serde_json::to_value(&graph)?,
            }));
        } else {
            self.out.line(mermaid.trim_end());
        }
        Ok(ExitCode::SUCCESS)
    }

    /// `eventflow health`.
    pub async fn health(&self, args: HealthArgs) -> anyhow::Result<ExitCode> {
        let deadline = args.wait.map(|wait| Instant::now() + wait);
        let spinner = self.out.spinner(format!("asking {}", self.url));
        let health = loop {
            let answer = self.client.health().await;
            let retry = deadline.is_some_and(|deadline| Instant::now() < deadline);
            match answer {
                Ok(health) if health.is_healthy() || !retry => break health,
                Err(error) if !retry => return Err(self.explain(error, About::Server)),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        drop(spinner);
        if self.out.json {
            self.out.json_document(&serde_json::to_value(&health)?);
        } else {
            self.out.line(format!("{}: {}", self.url, health.status));
        }
        Ok(if health.is_healthy() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
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

/// eventflow's exact status when the server gives it, else the llama-agents one.
fn status_of(handler: &Handler) -> String {
    handler
        .eventflow_status
        .map(|status| status.to_string())
        .unwrap_or_else(|| handler.status.to_string())
}

/// `2026-11-24T09:19:34.566000+00:00` as `2026-11-24 09:19:34`.
fn short_time(time: &str) -> String {
    match (time.get(..10), time.get(11..19)) {
        (Some(date), Some(clock)) if time.as_bytes().get(10) == Some(&b'T') => {
            format!("{date} {clock}")
        }
        _ => time.to_owned(),
    }
}

/// `1.23s`.
fn seconds(duration: Duration) -> String {
    format!("{:.2}s", duration.as_secs_f64())
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

    #[test]
    fn times_are_shortened() {
        assert_eq!(
            short_time("2026-11-24T09:19:34.566000+00:00"),
            "2026-11-24 09:19:34"
        );
        assert_eq!(short_time("soon"), "soon");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_explained() {
        // Port 9 (discard) on loopback: nothing listens there in tests.
        let cx = Cx::new("http://127.0.0.1:9", None, Output::new(true)).unwrap();
        let error = cx.client.workflows().await.unwrap_err();
        let message = cx.explain(error, About::Server).to_string();
        assert!(
            message.contains("cannot reach http://127.0.0.1:9: is `eventflow serve` running?"),
            "{message}"
        );
    }
}
