//! Serves six workflows over the llama-agents-server API: a greeter, a failing one, two
//! human-in-the-loop ones, one with a typed start event (`orders`) and one that keeps a count in
//! its context state across the runs of a handler id (`visits`).
//!
//! ```text
//! cargo run -p eventflow-server --example serve -- [ADDR] [STORE_URL]
//! # defaults: 127.0.0.1:8080 sqlite:eventflow-example.db
//! curl -X POST localhost:8080/workflows/greet/run -d '{"start_event": {"name": "Ada"}}'
//! ```

use eventflow::prelude::*;
use eventflow::schemars::JsonSchema;
use eventflow_server::{Server, ServerConfig};

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Progress {
    percent: u32,
}

fn greet() -> Workflow {
    Workflow::builder("greet")
        .add_step("greet", |ctx: Context, ev: StartEvent| async move {
            let name: String = ev.get_opt("name")?.unwrap_or_else(|| "world".to_owned());
            ctx.write_event_to_stream(Progress { percent: 50 });
            Ok::<_, BoxError>(StopEvent::new(format!("Hello, {name}!")))
        })
        .build()
        .expect("a valid workflow")
}

fn fail() -> Workflow {
    Workflow::builder("fail")
        .add_step("boom", |_: StartEvent| async {
            Err::<StopEvent, BoxError>("kaboom".into())
        })
        .build()
        .expect("a valid workflow")
}

fn ask() -> Workflow {
    Workflow::builder("ask")
        .add_step("ask", |ctx: Context, _: StartEvent| async move {
            let answer = ctx
                .wait_for_event::<HumanResponseEvent>()
                .prompt(InputRequiredEvent::new("Your name?"))
                .await?;
            Ok::<_, BoxError>(StopEvent::new(format!("Hi {}", answer.response)))
        })
        .build()
        .expect("a valid workflow")
}

fn approve() -> Workflow {
    Workflow::builder("approve")
        .add_step("ask", |_: StartEvent| async {
            InputRequiredEvent::new("Approve?")
        })
        .add_step("answer", |ev: HumanResponseEvent| async move {
            StopEvent::new(ev.response == "yes")
        })
        .build()
        .expect("a valid workflow")
}

/// The typed start event of `orders`: run requests give its fields, `{"item": "tea",
/// "quantity": 2}`.
#[derive(Event, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[schemars(crate = "eventflow::schemars")]
#[event(start)]
struct Order {
    item: String,
    quantity: u32,
}

fn orders() -> Workflow {
    Workflow::builder("orders")
        .add_step("price", |ev: Order| async move {
            StopEvent::new(format!(
                "{} x {}: {}",
                ev.quantity,
                ev.item,
                ev.quantity * 3
            ))
        })
        .build()
        .expect("a valid workflow")
}

/// Counts the runs of a handler: start it again with the same `handler_id` and the count goes on.
fn visits() -> Workflow {
    Workflow::builder("visits")
        .add_step("visit", |ctx: Context, ev: StartEvent| async move {
            let who: String = ev.get_opt("who")?.unwrap_or_else(|| "someone".to_owned());
            let n: u32 = ctx.get_or("visits", 0)? + 1;
            ctx.set("visits", n)?;
            Ok::<_, BoxError>(StopEvent::new(format!("{who}: visit {n}")))
        })
        .build()
        .expect("a valid workflow")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "eventflow_server=info".to_owned()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()?;
    let store = args
        .next()
        .unwrap_or_else(|| "sqlite:eventflow-example.db".to_owned());
    let mut config = ServerConfig::default().store_url(store);
    if let Ok(token) = std::env::var("EVENTFLOW_TOKEN") {
        config = config.auth_token(token);
    }
    Server::builder(config)
        .workflow(greet())
        .workflow(fail())
        .workflow(ask())
        .workflow(approve())
        .workflow(orders())
        .workflow(visits())
        .event_schema_json(
            "Progress",
            json!({"type": "object", "properties": {"percent": {"type": "integer"}}, "required": ["percent"]}),
        )
        .build()
        .await?
        .serve(addr)
        .await?;
    Ok(())
}
