use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step(num_workers = 0)]
    async fn start(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }
}

fn main() {}
