use eventflow::prelude::*;

struct W;

impl W {
    #[step]
    async fn start(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }
}

fn main() {}
