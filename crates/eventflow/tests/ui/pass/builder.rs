// Steps built by hand: closures and async fns of both shapes.
use eventflow::prelude::*;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Middle {
    text: String,
}

async fn finish(ctx: Context, ev: Middle) -> Result<StopEvent> {
    ctx.set("length", ev.text.len())?;
    Ok(StopEvent::new(ev.text))
}

fn main() {
    let workflow = Workflow::builder("built")
        .step(Step::new("begin", |ev: StartEvent| async move {
            Ok::<_, EventFieldError>(Middle {
                text: ev.get("text")?,
            })
        }))
        .add_step("finish", finish)
        .build()
        .unwrap();
    assert_eq!(workflow.steps().len(), 2);

    let _ = Step::new("context", |ctx: Context, ev: StartEvent| async move {
        let _ = ctx.run_id();
        Some(StopEvent::new(ev.kwargs().len()))
    });
    let _ = Step::new("unit", |_ev: Middle| async {});
}
