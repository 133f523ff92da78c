use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step(emits(String))]
    async fn start(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }
}

fn main() {}
