// Every mistake in one impl block is reported, not only the first.
use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    fn first(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }

    #[step(workers = 2)]
    async fn second(&self) -> StopEvent {
        StopEvent::new(())
    }
}

fn main() {}
