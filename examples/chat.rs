//! Chat: a conversation kept across runs — each turn is one run of the workflow, started from the
//! context the previous turn left (the reference's `workflow.run(ctx=ctx)` on one `Context`).
//!
//! ```text
//! cargo run --example chat                                  # three scripted turns, offline
//! cargo run --example chat -- --turn "My name is Ada." --turn "What is my name?"
//! OPENAI_BASE_URL=... EVENTFLOW_LLM_MODEL=... cargo run --example chat   # a real model
//! ```
//!
//! The workflow has one step, `reply`: it reads the conversation so far from the run's typed
//! state, adds the user's message, asks the model with the whole conversation, and adds the
//! answer. Nothing but the context carries the conversation from one turn to the next: the
//! caller keeps a `RunContext` and starts every turn with `run_with_context`, so turn N's step
//! sees turn N-1's messages. Offline (no `OPENAI_BASE_URL`, or `--offline`), the model is
//! `MockLlm`, whose answers are labelled `[mock-llm]`; the count of messages it was sent shows
//! the memory growing.

use std::sync::Arc;

use eventflow::RunContext;
use eventflow::prelude::*;
use eventflow_examples::client_from_env;
use eventflow_llm::{ChatMessage, Llm, MockLlm, RequestOptions};

/// The conversation, kept in the run's typed state from turn to turn.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Conversation {
    messages: Vec<ChatMessage>,
}

/// One turn's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Turn {
    answer: String,
    /// How many messages the model was sent.
    sent: usize,
}

struct Chat {
    llm: Arc<dyn Llm>,
}

#[workflow]
impl Chat {
    #[step]
    async fn reply(&self, ctx: &Context, ev: StartEvent) -> Result<StopEvent> {
        let message: String = ev.get("message")?;
        let messages = ctx.edit_state(|conversation: &mut Conversation| {
            if conversation.messages.is_empty() {
                let system = "You are a helpful assistant. Keep answers short.";
                conversation.messages.push(ChatMessage::system(system));
            }
            conversation.messages.push(ChatMessage::user(message));
            conversation.messages.clone()
        })?;
        let answer = self.llm.chat(&messages, &RequestOptions::default()).await?;
        ctx.edit_state(|conversation: &mut Conversation| {
            conversation
                .messages
                .push(ChatMessage::assistant(answer.text.clone()))
        })?;
        Ok(StopEvent::new(Turn {
            answer: answer.text,
            sent: messages.len(),
        }))
    }
}

/// Runs one turn per message, each from the context the last one left; returns each turn.
async fn converse(
    workflow: &Workflow,
    context: &RunContext,
    turns: &[String],
) -> anyhow::Result<Vec<Turn>> {
    let mut results = Vec::new();
    for message in turns {
        let output = workflow
            .run_with_context(context, json!({ "message": message }))
            .await?;
        results.push(output.result::<Turn>()?);
    }
    Ok(results)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut turns: Vec<String> = args
        .iter()
        .zip(args.iter().skip(1))
        .filter(|(flag, _)| *flag == "--turn")
        .map(|(_, turn)| turn.clone())
        .collect();
    if turns.is_empty() {
        turns = ["My name is Ada.", "What is my name?", "Thanks, bye!"]
            .map(str::to_owned)
            .to_vec();
    }
    let offline = args.iter().any(|a| a == "--offline");
    let llm: Arc<dyn Llm> = match client_from_env(offline)? {
        Some(client) => Arc::new(client),
        None => Arc::new(MockLlm::new()),
    };
    let workflow = Chat { llm }.into_workflow()?;
    let context = RunContext::new();
    let results = converse(&workflow, &context, &turns).await?;
    for (message, turn) in turns.iter().zip(&results) {
        println!("you: {message}");
        println!("model ({} messages sent): {}", turn.sent, turn.answer);
    }
    let kept = context.edit_state(|conversation: &mut Conversation| conversation.messages.len())?;
    println!(
        "the context holds {kept} messages after {} turns",
        turns.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_turn_sends_the_whole_conversation_so_far() -> anyhow::Result<()> {
        let mock = MockLlm::new().respond_to("Ada", "Hello Ada");
        let workflow = Chat {
            llm: Arc::new(mock.clone()),
        }
        .into_workflow()?;
        let context = RunContext::new();
        let turns = ["My name is Ada.", "What is my name?", "Bye"].map(str::to_owned);
        let results = converse(&workflow, &context, &turns).await?;
        // The system message, then two more per turn.
        let sent: Vec<usize> = results.iter().map(|t| t.sent).collect();
        assert_eq!(sent, [2, 4, 6]);
        // The third turn's request still holds the first turn's message and answer.
        let third = &mock.requests()[2];
        assert_eq!(third.messages[1].content, "My name is Ada.");
        assert_eq!(third.messages[2].content, "[mock-llm] Hello Ada");
        let kept = context.edit_state(|c: &mut Conversation| c.messages.len())?;
        assert_eq!(kept, 7);
        Ok(())
    }
}
