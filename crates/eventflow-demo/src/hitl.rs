//! The `hitl` example's workflow: the reference's human-in-the-loop `InteractiveWorkflow`.
//!
//! Start it with `{"query": "A customer asks for a refund of a damaged order"}`; the result is
//! an [`Outcome`], `{"status": ..., "content": ..., "response": ...}`. `generate` drafts a reply
//! to a customer, `request_review` either finishes at once or asks a human by returning an
//! `InputRequiredEvent` (which pauses the run and is published on its event stream), and
//! `process_review` turns the human's `HumanResponseEvent` (`{"response": "yes"}`) into the
//! result, which carries the response as given.
//!
//! Replies that commit money (a refund, a discount, ...) need a human's approval; others are
//! sent without review. The reply is approved when the response is "yes" or "y" (in any case,
//! spaces around ignored) and rejected otherwise.

use eventflow::prelude::*;

/// The query the example runs when given none: its reply needs approval.
pub const DEFAULT_QUERY: &str = "A customer asks for a refund of a damaged order";

/// A draft and whether a human must approve it before it goes out.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct ReviewEvent {
    /// The drafted reply.
    pub content: String,
    /// Whether it commits money, so that a human must approve it.
    pub requires_approval: bool,
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
pub enum Status {
    /// The human approved it.
    Approved,
    /// The human rejected it.
    Rejected,
    /// No review was needed.
    Sent,
}

/// The run's result: the status, the content and the human's response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// What became of the draft.
    pub status: Status,
    /// The drafted reply.
    pub content: String,
    /// The `response` of the `HumanResponseEvent` that decided, as given; `None` (`null`) when
    /// no review was needed.
    #[serde(default)]
    pub response: Option<String>,
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

#[workflow(name = "hitl")]
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
                response: None,
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
        Ok(StopEvent::new(Outcome {
            status,
            content,
            response: Some(ev.response),
        }))
    }
}

/// The workflow, named `hitl`. Start it with `{"query": "..."}`; when the reply needs approval
/// the run publishes an `InputRequiredEvent` and waits for a `HumanResponseEvent`. The result
/// is an [`Outcome`].
pub fn workflow() -> Workflow {
    InteractiveWorkflow
        .into_workflow()
        .expect("the hitl workflow is valid")
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use serde_json::Value;

    use super::*;

    /// Runs the workflow on `query`, answering every question with `answer`; returns the
    /// questions asked and the result as JSON, as a client that speaks only JSON sees it.
    async fn run(query: &str, answer: &str) -> (Vec<String>, Value) {
        let handler = workflow().run(json!({ "query": query }));
        let mut questions = Vec::new();
        let mut events = handler.stream_events();
        while let Some(event) = events.next().await {
            if event.name() == "InputRequiredEvent" {
                questions.push(event.to_json().unwrap()["prefix"].to_string());
                handler.send_event(HumanResponseEvent::new(answer)).unwrap();
            }
        }
        (questions, handler.await.unwrap().result().unwrap())
    }

    #[tokio::test]
    async fn the_result_carries_the_human_response() {
        let (questions, result) = run(DEFAULT_QUERY, "Yes").await;
        assert_eq!(questions.len(), 1);
        assert!(questions[0].contains("We will refund it in full"));
        assert_eq!(result["status"], "approved");
        assert_eq!(result["response"], "Yes");
        assert!(result["content"].as_str().unwrap().contains("refund"));
    }

    #[tokio::test]
    async fn a_rejection_carries_the_response_too() {
        let (_, result) = run("Our parcel is late", "not this time").await;
        assert_eq!(result["status"], "rejected");
        assert_eq!(result["response"], "not this time");
        let outcome: Outcome = serde_json::from_value(result).unwrap();
        assert_eq!(outcome.response.as_deref(), Some("not this time"));
    }

    #[tokio::test]
    async fn a_reply_sent_without_review_has_no_response() {
        let (questions, result) = run("Thank a customer for their feedback", "yes").await;
        assert!(questions.is_empty(), "{questions:?}");
        assert_eq!(result["status"], "sent");
        assert_eq!(result["response"], Value::Null);
    }
}
