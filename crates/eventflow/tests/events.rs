//! Events: names, roles, the built-in events, typed start and stop events.

use eventflow::prelude::*;
use eventflow::{EventRole, RunFailedEvent};

#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(name = "app.Query")]
struct Renamed {
    q: String,
}

#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(start)]
struct Order {
    item: String,
    quantity: u32,
}

#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(stop)]
struct Invoice {
    total_cents: u64,
    lines: Vec<String>,
}

#[test]
fn names_default_to_the_type_and_can_be_overridden() {
    assert_eq!(Order::NAME, "Order");
    assert_eq!(Renamed::NAME, "app.Query");
    assert_eq!(Order::ROLE, EventRole::Start);
    assert_eq!(Invoice::ROLE, EventRole::Stop);
    assert_eq!(Renamed::ROLE, EventRole::Plain);
    assert_eq!(HumanResponseEvent::ROLE, EventRole::External);
    assert_eq!(InputRequiredEvent::ROLE, EventRole::Outbound);
}

#[test]
fn start_event_get_names_the_key_and_the_type() {
    let start = StartEvent::new().with("query", "hi").with("k", 5);
    assert_eq!(start.get::<String>("query").unwrap(), "hi");
    assert_eq!(start.get::<u8>("k").unwrap(), 5);
    let missing = start.get::<String>("topic").unwrap_err();
    assert_eq!(
        missing.to_string(),
        "StartEvent has no field `topic` (it has: k, query)"
    );
    let wrong = start.get::<Vec<u32>>("query").unwrap_err();
    assert!(
        wrong
            .to_string()
            .starts_with("StartEvent field `query` is not a valid `alloc::vec::Vec<u32>`:"),
        "{wrong}"
    );
    assert_eq!(start.get_opt::<String>("absent").unwrap(), None);
}

#[test]
fn human_in_the_loop_events_carry_extra_fields() {
    let question = InputRequiredEvent::new("Approve?").with("request_id", 7);
    let json = serde_json::to_value(&question).unwrap();
    assert_eq!(json, json!({"prefix": "Approve?", "request_id": 7}));
    let answer: HumanResponseEvent =
        serde_json::from_value(json!({"response": "yes", "user": "ada"})).unwrap();
    assert_eq!(answer.response, "yes");
    assert_eq!(answer.get::<String>("user").unwrap(), "ada");
}

struct Shop;

#[workflow]
impl Shop {
    #[step]
    async fn bill(&self, order: Order) -> Invoice {
        Invoice {
            total_cents: 250 * u64::from(order.quantity),
            lines: vec![format!("{} x{}", order.item, order.quantity)],
        }
    }
}

#[tokio::test]
async fn typed_start_and_stop_events() -> anyhow::Result<()> {
    let workflow = Shop.into_workflow()?;
    assert_eq!(workflow.start_event().name(), "Order");
    let order = Order {
        item: "tea".into(),
        quantity: 4,
    };
    let output = workflow.run(order.clone()).await?;
    let invoice: Invoice = output.result()?;
    assert_eq!(invoice.total_cents, 1000);
    assert_eq!(output.clone().into_event::<Invoice>().unwrap(), invoice);

    // Keyword arguments become the typed start event, as `run(**kwargs)` in the reference.
    let output = workflow.run(json!({"item": "tea", "quantity": 4})).await?;
    assert_eq!(output.result::<Invoice>()?, invoice);
    // Missing or wrongly typed ones fail the run at once, naming the field and the event.
    let error = workflow.run(json!({"item": "tea"})).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid start event: expected Order, got arguments that do not decode: missing field \
         `quantity`"
    );
    let error = workflow
        .run(json!({"item": "tea", "quantity": "four"}))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("expected Order")
            && error.to_string().contains("invalid type: string \"four\""),
        "{error}"
    );
    // Another typed event is still refused by name.
    let error = workflow
        .run(Invoice {
            total_cents: 1,
            lines: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid start event: expected Order, got Invoice"
    );
    // So does JSON that is not an object.
    let error = Workflow::builder("w")
        .add_step("s", |_: StartEvent| async { StopEvent::new(1) })
        .build()?
        .run(json!([1, 2]))
        .await
        .unwrap_err();
    assert!(
        matches!(error, WorkflowError::InvalidStart { .. }),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn stop_event_result_of_the_wrong_type_is_a_clear_error() -> anyhow::Result<()> {
    let workflow = Workflow::builder("w")
        .add_step("s", |_: StartEvent| async { StopEvent::new("text") })
        .build()?;
    let output = workflow.run(json!({})).await?;
    let error = output.result::<u32>().unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the run's result is not a valid `u32`"),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_run_publishes_one_terminal_failure_event() -> anyhow::Result<()> {
    use futures::StreamExt;
    let workflow = Workflow::builder("w")
        .step(
            Step::new("s", |_: StartEvent| async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Err::<StopEvent, _>(std::io::Error::other("disk full"))
            })
            .retry(RetryPolicy::fixed(std::time::Duration::ZERO).max_attempts(2)),
        )
        .build()?;
    let handler = workflow.run(json!({}));
    let events: Vec<AnyEvent> = handler.stream_events().collect().await;
    assert_eq!(events.len(), 1);
    let failed = events[0].downcast_ref::<RunFailedEvent>().unwrap();
    assert_eq!(failed.step.as_deref(), Some("s"));
    assert_eq!(failed.error, "disk full");
    // The attempts made and how long the last one ran.
    assert_eq!(failed.attempts, Some(2));
    assert!(failed.elapsed_ms.is_some_and(|ms| ms >= 20), "{failed:?}");
    assert!(events[0].is_terminal());
    assert!(handler.await.is_err());
    Ok(())
}

#[test]
fn a_workflow_knows_the_built_in_events_a_client_may_send_or_a_snapshot_may_hold()
-> anyhow::Result<()> {
    let workflow = Workflow::builder("w")
        .add_step("s", |_: StartEvent| async { StopEvent::new(1) })
        .build()?;
    let known: Vec<&str> = workflow
        .known_event_types()
        .iter()
        .map(|ty| ty.name())
        .collect();
    assert_eq!(
        known,
        [
            "HumanResponseEvent",
            "InputRequiredEvent",
            "StartEvent",
            "StopEvent"
        ]
    );
    // The terminal events are published by the engine alone: a client cannot send one.
    assert!(workflow.event_type("RunFailedEvent").is_none());
    assert!(workflow.event_type("RunCancelledEvent").is_none());
    Ok(())
}

mod schemas {
    use eventflow::prelude::*;
    use eventflow::schemars::JsonSchema;

    #[derive(Event, JsonSchema, Clone, Serialize, Deserialize)]
    #[schemars(crate = "eventflow::schemars")]
    struct Order {
        id: u64,
        note: Option<String>,
    }

    #[derive(Event, Clone, Serialize, Deserialize)]
    struct Untyped {
        id: u64,
    }

    #[test]
    fn a_derived_json_schema_reaches_the_event_type() {
        let schema = EventType::of::<Order>().schema().unwrap();
        assert_eq!(schema["properties"]["id"]["type"], "integer");
        assert_eq!(schema["required"], json!(["id"]));
        assert!(EventType::of::<Untyped>().schema().is_none());
    }

    /// A schema given to the derive is the event's, even when `JsonSchema` would derive one.
    #[derive(Event, JsonSchema, Clone, Serialize, Deserialize)]
    #[schemars(crate = "eventflow::schemars")]
    #[event(schema = json!({"type": "object", "additionalProperties": true}))]
    struct Open {
        id: u64,
    }

    #[test]
    fn a_schema_given_to_the_derive_is_the_event_types() {
        assert_eq!(
            EventType::of::<Open>().schema(),
            Some(json!({"type": "object", "additionalProperties": true}))
        );
    }

    #[test]
    fn built_in_events_describe_their_fields() {
        let stop = EventType::of::<StopEvent>().schema().unwrap();
        assert_eq!(stop["required"], json!(["result"]));
        let answer = EventType::of::<HumanResponseEvent>().schema().unwrap();
        assert_eq!(answer["properties"]["response"]["type"], "string");
        let question = serde_json::to_value(InputRequiredEvent::new("ok?")).unwrap();
        let schema = EventType::of::<InputRequiredEvent>().schema().unwrap();
        for required in schema["required"].as_array().unwrap() {
            assert!(question.get(required.as_str().unwrap()).is_some());
        }
    }
}
