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

use std::io::{IsTerminal, Write};

use anyhow::Context as _;
use eventflow::prelude::*;
use eventflow_examples::arg;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

const DEFAULT_QUERY: &str = "A customer asks for a refund of a damaged order";

/// A draft and whether a human must approve it before it goes out.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct ReviewEvent {
    content: String,
    requires_approval: bool,
}

/// What `request_review` returns: a question for a human, or the final result.
#[derive(EventUnion)]
enum ReviewRequest {
    Ask(InputRequiredEvent),
    Done(StopEvent),
}

/// What became of the draft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Approved,
    Rejected,
    /// No review was needed.
    Sent,
}

/// The run's result: the status and the content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Outcome {
    status: Status,
    content: String,
}

/// Words that make a reply a commitment a human must approve.
const NEEDS_APPROVAL: &[&str] = &["refund", "discount", "compensation"];

struct InteractiveWorkflow;

impl InteractiveWorkflow {
    /// Drafts the reply; an LLM call in a real workflow.
    fn generate_content(&self, query: &str) -> String {
        let query = query.to_lowercase();
        if query.contains("refund") {
            "Dear customer, we are sorry your order arrived damaged. \
             We will refund it in full within 5 business days."
                .to_owned()
        } else if query.contains("late") || query.contains("delay") {
            "Dear customer, we are sorry for the delay. \
             Please accept a 10% discount on your next order."
                .to_owned()
        } else {
            "Dear customer, thank you for writing to us. \
             We have passed your message on to the team."
                .to_owned()
        }
    }

    fn needs_review(&self, content: &str) -> bool {
        let content = content.to_lowercase();
        NEEDS_APPROVAL.iter().any(|word| content.contains(word))
    }
}

#[workflow]
impl InteractiveWorkflow {
    #[step]
    async fn generate(&self, ev: StartEvent) -> Result<ReviewEvent> {
        let query: String = ev.get("query")?;
        let content = self.generate_content(&query);
        Ok(ReviewEvent {
            requires_approval: self.needs_review(&content),
            content,
        })
    }

    #[step]
    async fn request_review(&self, ctx: &Context, ev: ReviewEvent) -> Result<ReviewRequest> {
        if !ev.requires_approval {
            return Ok(StopEvent::new(Outcome {
                status: Status::Sent,
                content: ev.content,
            })
            .into());
        }
        // `process_review` receives only the human's answer; the draft waits in the context.
        ctx.set("content", &ev.content)?;
        let prompt = format!(
            "This reply needs approval:\n\n    {}\n\nSend it? (yes/no)",
            ev.content
        );
        Ok(InputRequiredEvent::new(prompt).into())
    }

    #[step]
    async fn process_review(&self, ctx: &Context, ev: HumanResponseEvent) -> Result<StopEvent> {
        let content: String = ctx.get("content")?;
        let approved = matches!(ev.response.trim().to_lowercase().as_str(), "yes" | "y");
        let status = if approved {
            Status::Approved
        } else {
            Status::Rejected
        };
        Ok(StopEvent::new(Outcome { status, content }))
    }
}

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
    let workflow = InteractiveWorkflow.into_workflow()?;
    let handler = workflow.run(json!({ "query": query }));

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
    let Outcome { status, content } = session.outcome;
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
        assert!(session.questions.is_empty(), "{:?}", session.questions);
        assert!(
            session
                .outcome
                .content
                .starts_with("Dear customer, thank you")
        );
    }
}
