use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step(workers = 2)]
    async fn start(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }
}

fn main() {}
