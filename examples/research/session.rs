//! One run on the command line: the reviewer who answers the workflow's questions, and the
//! loop that relays them.

use std::io::{IsTerminal, Write};

use anyhow::{Context as _, bail};
use eventflow::prelude::*;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

use crate::report::ResearchReport;
use crate::workflow::ResearchWorkflow;

/// Who answers the workflow's questions.
pub(crate) enum Approvals {
    /// `--approve all`: yes to every question.
    All,
    /// `--approve none`: no to every question.
    None,
    /// A line of standard input per question.
    Stdin(Lines<BufReader<Stdin>>),
    /// Yes for the listed sources, no for the others (tests).
    #[cfg(test)]
    Only(Vec<&'static str>),
}

impl Approvals {
    pub(crate) fn from_flag(value: Option<&str>) -> anyhow::Result<Self> {
        Ok(match value {
            Some("all") => Approvals::All,
            Some("none") => Approvals::None,
            Some(other) => bail!("--approve takes `all` or `none`, not {other:?}"),
            None => Approvals::Stdin(BufReader::new(tokio::io::stdin()).lines()),
        })
    }

    async fn answer(&mut self, source: &str, question: &str) -> anyhow::Result<String> {
        println!("\n{question}");
        let fixed = |answer: &str| {
            println!("> {answer}");
            Ok(answer.to_owned())
        };
        match self {
            Approvals::All => fixed("yes"),
            Approvals::None => fixed("no"),
            #[cfg(test)]
            Approvals::Only(approved) => fixed(if approved.contains(&source) {
                "yes"
            } else {
                "no"
            }),
            Approvals::Stdin(lines) => {
                print!("> ");
                std::io::stdout().flush()?;
                let line = lines.next_line().await?.with_context(|| {
                    format!(
                        "standard input closed before the question about `{source}` was \
                         answered; pass --approve all or --approve none to run without a reviewer"
                    )
                })?;
                if !std::io::stdin().is_terminal() {
                    println!("{line}");
                }
                Ok(line.trim().to_owned())
            }
        }
    }
}

/// A question the workflow asked.
#[derive(Debug)]
pub(crate) struct Question {
    pub(crate) source: String,
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "main prints it when it is asked")
    )]
    pub(crate) prompt: String,
}

/// One run: the report and the questions asked on the way.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) report: ResearchReport,
    pub(crate) questions: Vec<Question>,
}

/// Runs the workflow on `topic`, answering its questions from `approvals`.
pub(crate) async fn research(
    workflow: ResearchWorkflow,
    topic: &str,
    approvals: &mut Approvals,
    verbose: bool,
) -> anyhow::Result<Session> {
    let workflow = workflow.into_workflow()?.verbose(verbose);
    let handler = workflow.run(json!({ "topic": topic }));
    let mut questions = Vec::new();
    let mut events = handler.stream_events();
    while let Some(event) = events.next().await {
        let Some(question) = event.downcast_ref::<InputRequiredEvent>() else {
            continue;
        };
        let answered = async {
            let source: String = question.get("source")?;
            let answer = approvals.answer(&source, &question.prefix).await?;
            handler.send_event(HumanResponseEvent::new(answer).with("source", &source))?;
            anyhow::Ok(source)
        };
        match answered.await {
            Ok(source) => questions.push(Question {
                source,
                prompt: question.prefix.clone(),
            }),
            Err(error) => {
                // Dropping the handler would leave the run waiting; stop it.
                handler.cancel();
                return Err(error);
            }
        }
    }
    let report = handler.await?.result()?;
    Ok(Session { report, questions })
}
