//! Human in the loop: the reference's `InteractiveWorkflow`.
//!
//! `generate` drafts a reply to a customer, `request_review` either finishes at once or asks a
//! human by returning an `InputRequiredEvent` (which pauses the run and is published on its
//! event stream), and `process_review` turns the human's `HumanResponseEvent` into the result.
//! The caller streams the run's events, answers each question, and awaits the result.
//!
//! ```text
//! cargo run --example hitl                       # asks on stdin
//! echo yes | cargo run --example hitl            # answers from a pipe
//! cargo run --example hitl -- --answer no        # answers without reading stdin
//! cargo run --example hitl -- --query "Thank a customer for their feedback"
//! ```
//!
//! Replies that commit money (a refund, a discount, ...) need a human's approval; others are
//! sent without review.
//!
//! The workflow is defined in the `eventflow-demo` crate (`eventflow_demo::hitl`, in
//! `crates/eventflow-demo/src/hitl.rs`), so that `eventflow serve --demo` serves it by name too;
//! this binary is the human: it answers the run's questions from `--answer` or standard input.

use std::io::{IsTerminal, Write};

use anyhow::Context as _;
use eventflow::prelude::*;
use eventflow_demo::hitl::{self, DEFAULT_QUERY, Outcome, Status};
use eventflow_examples::arg;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

/// Where the answers to the workflow's questions come from.
enum Answers {
    /// The same answer to every question (`--answer`, and tests).
    Fixed(String),
    /// A line of standard input per question.
    Stdin(Lines<BufReader<Stdin>>),
}

impl Answers {
    fn stdin() -> Self {
        Answers::Stdin(BufReader::new(tokio::io::stdin()).lines())
    }

    async fn answer(&mut self, question: &str) -> anyhow::Result<String> {
        println!("\n{question}");
        match self {
            Answers::Fixed(answer) => {
                println!("> {answer}");
                Ok(answer.clone())
            }
            Answers::Stdin(lines) => {
                print!("> ");
                std::io::stdout().flush()?;
                let line = lines
                    .next_line()
                    .await?
                    .context("standard input closed before an answer was given")?;
                if !std::io::stdin().is_terminal() {
                    // Piped in: show the answer, as a terminal would have.
                    println!("{line}");
                }
                Ok(line.trim().to_owned())
            }
        }
    }
}

/// One run of the workflow, with the questions it asked.
#[derive(Debug)]
struct Session {
    questions: Vec<String>,
    outcome: Outcome,
}

/// Runs the workflow on `query`, answering every question it asks from `answers`.
async fn run(query: &str, answers: &mut Answers) -> anyhow::Result<Session> {
    let handler = hitl::workflow().run(json!({ "query": query }));

    let mut questions = Vec::new();
    let mut events = handler.stream_events();
    while let Some(event) = events.next().await {
        if let Some(question) = event.downcast_ref::<InputRequiredEvent>() {
            let answer = match answers.answer(&question.prefix).await {
                Ok(answer) => answer,
                Err(error) => {
                    // Dropping the handler would leave the run waiting; stop it.
                    handler.cancel();
                    return Err(error);
                }
            };
            handler.send_event(HumanResponseEvent::new(answer))?;
            questions.push(question.prefix.clone());
        }
    }

    let outcome = handler.await?.result()?;
    Ok(Session { questions, outcome })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let query = arg(&args, "query").unwrap_or_else(|| DEFAULT_QUERY.to_owned());
    let mut answers = match arg(&args, "answer") {
        Some(answer) => Answers::Fixed(answer),
        None => Answers::stdin(),
    };

    println!("Query: {query}");
    let session = run(&query, &mut answers).await?;
    let Outcome {
        status, content, ..
    } = session.outcome;
    let verdict = match status {
        Status::Approved => "approved by the reviewer, sent",
        Status::Rejected => "rejected by the reviewer, not sent",
        Status::Sent => "sent without review",
    };
    println!("\nReply {verdict}:\n    {content}");
    println!("Questions asked: {}", session.questions.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Answers {
        Answers::Fixed(text.to_owned())
    }

    #[tokio::test]
    async fn yes_approves_the_reply() {
        for yes in ["yes", "y", "Yes", " YES "] {
            let session = run(DEFAULT_QUERY, &mut answer(yes)).await.unwrap();
            assert_eq!(session.outcome.status, Status::Approved, "answer {yes:?}");
            assert_eq!(session.outcome.response.as_deref(), Some(yes));
            assert!(session.outcome.content.contains("refund"));
            assert_eq!(session.questions.len(), 1);
            assert!(session.questions[0].contains("We will refund it in full"));
        }
    }

    #[tokio::test]
    async fn anything_else_rejects_it() {
        for no in ["no", "n", "yes please", ""] {
            let session = run("Our parcel is late", &mut answer(no)).await.unwrap();
            assert_eq!(session.outcome.status, Status::Rejected, "answer {no:?}");
            assert!(session.outcome.content.contains("discount"));
            assert_eq!(session.questions.len(), 1);
        }
    }

    #[tokio::test]
    async fn a_harmless_reply_is_sent_without_asking() {
        let session = run("Thank a customer for their feedback", &mut answer("no"))
            .await
            .unwrap();
        assert_eq!(session.outcome.status, Status::Sent);
        assert_eq!(session.outcome.response, None);
        assert!(session.questions.is_empty(), "{:?}", session.questions);
        assert!(
            session
                .outcome
                .content
                .starts_with("Dear customer, thank you")
        );
    }
}
