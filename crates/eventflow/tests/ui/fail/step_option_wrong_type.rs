use std::time::Duration;

use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step(retry = Duration::from_secs(1))]
    async fn start(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }
}

fn main() {}
