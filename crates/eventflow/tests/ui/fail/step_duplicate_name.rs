use eventflow::prelude::*;

#[derive(Event, Clone, Serialize, Deserialize)]
struct Draft {
    text: String,
}

struct W;

#[workflow]
impl W {
    #[step]
    async fn write(&self, ev: StartEvent) -> Draft {
        Draft {
            text: format!("{:?}", ev.kwargs()),
        }
    }

    #[step(name = "write")]
    async fn publish(&self, ev: Draft) -> StopEvent {
        StopEvent::new(ev.text)
    }
}

fn main() {}
