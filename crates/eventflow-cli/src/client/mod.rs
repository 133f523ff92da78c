//! The client commands: each one a call (or a stream) of `eventflow-client`, its errors told in
//! words that say what to do. The commands that follow a run's events (`run`, `events`, `send`)
//! are in [`runs`]; the ones that ask about workflows and handlers are here.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use eventflow_client::{Client, ClientError, Handler, HandlerFilter, HandlerStatus, RunStatus};
use serde_json::json;

use crate::output::{Output, readable, table};
use crate::{CancelArgs, DrawArgs, HandlerArgs, HandlersArgs, HealthArgs};

mod runs;

/// What a request was about, to explain a 404.
#[derive(Clone, Copy)]
enum About<'a> {
    Server,
    Workflow(&'a str),
    Handler(&'a str),
}

/// The context of the client commands: the client, the server's URL and how to print.
pub(crate) struct Cx {
    client: Client,
    url: String,
    has_token: bool,
    out: Output,
}

impl Cx {
    /// A client of the server at `url`.
    pub(crate) fn new(url: &str, token: Option<String>, out: Output) -> anyhow::Result<Cx> {
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
    pub(crate) async fn workflows(&self) -> anyhow::Result<ExitCode> {
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

    /// `eventflow handlers`.
    pub(crate) async fn handlers(&self, args: HandlersArgs) -> anyhow::Result<ExitCode> {
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
    pub(crate) async fn handler(&self, args: HandlerArgs) -> anyhow::Result<ExitCode> {
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
    pub(crate) async fn cancel(&self, args: CancelArgs) -> anyhow::Result<ExitCode> {
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
    pub(crate) async fn draw(&self, args: DrawArgs) -> anyhow::Result<ExitCode> {
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
    pub(crate) async fn health(&self, args: HealthArgs) -> anyhow::Result<ExitCode> {
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
