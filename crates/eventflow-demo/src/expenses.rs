//! The `durable` example's workflow, named `expenses`: an expense report that a human must
//! approve when it is above the policy.
//!
//! Start it with `{"amount": 420}` (whole euros); the result is a string. An amount of at most
//! 100 is reimbursed at once; a larger one makes the `approve` step wait with
//! `ctx.wait_for_event::<HumanResponseEvent>()`, publishing an `InputRequiredEvent`, and the
//! response "yes" (in any case) reimburses it while anything else refuses it. The workflow runs
//! in memory like any other, or durably on a store (the `durable` example), where the run
//! waits in the database and the step that asked runs again from its top when the answer
//! arrives, finding it waiting without asking twice.

use eventflow::prelude::*;

/// The most an expense may be to be reimbursed without review, in euros.
pub const POLICY_LIMIT: u32 = 100;

/// An expense report checked against the policy.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct Checked {
    /// The amount, in euros.
    pub amount: u32,
    /// Whether it is at most [`POLICY_LIMIT`].
    pub within_policy: bool,
}

/// The workflow, named `expenses`. Start it with `{"amount": N}`; the result is a string such
/// as `"420 EUR reimbursed"`.
pub fn workflow() -> Workflow {
    Workflow::builder("expenses")
        .add_step("check", |ev: StartEvent| async move {
            let amount: u32 = ev.get("amount")?;
            Ok::<_, BoxError>(Checked {
                amount,
                within_policy: amount <= POLICY_LIMIT,
            })
        })
        .add_step("approve", |ctx: Context, ev: Checked| async move {
            if ev.within_policy {
                return Ok::<_, BoxError>(StopEvent::new(format!(
                    "{} EUR reimbursed without review",
                    ev.amount
                )));
            }
            let answer = ctx
                .wait_for_event::<HumanResponseEvent>()
                .prompt(InputRequiredEvent::new(format!(
                    "Reimburse {} EUR, above the {POLICY_LIMIT} EUR policy? (yes/no)",
                    ev.amount
                )))
                .await?;
            let approved = answer.response.trim().eq_ignore_ascii_case("yes");
            Ok(StopEvent::new(format!(
                "{} EUR {}",
                ev.amount,
                if approved { "reimbursed" } else { "refused" }
            )))
        })
        .build()
        .expect("the expenses workflow is valid")
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    /// Runs the workflow in memory, answering every question with `answer`.
    async fn run(amount: u32, answer: &str) -> (Vec<String>, String) {
        let handler = workflow().run(json!({ "amount": amount }));
        let mut questions = Vec::new();
        let mut events = handler.stream_events();
        while let Some(event) = events.next().await {
            if let Some(question) = event.downcast_ref::<InputRequiredEvent>() {
                questions.push(question.prefix.clone());
                handler.send_event(HumanResponseEvent::new(answer)).unwrap();
            }
        }
        (questions, handler.await.unwrap().result().unwrap())
    }

    #[tokio::test]
    async fn a_large_expense_asks_and_follows_the_answer() {
        let (questions, result) = run(420, "yes").await;
        assert_eq!(
            questions,
            ["Reimburse 420 EUR, above the 100 EUR policy? (yes/no)"]
        );
        assert_eq!(result, "420 EUR reimbursed");
        assert_eq!(run(420, "no").await.1, "420 EUR refused");
    }

    #[tokio::test]
    async fn a_small_expense_is_reimbursed_without_asking() {
        let (questions, result) = run(40, "no").await;
        assert!(questions.is_empty(), "{questions:?}");
        assert_eq!(result, "40 EUR reimbursed without review");
    }
}
