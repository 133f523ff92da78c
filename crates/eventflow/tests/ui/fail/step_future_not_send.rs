use std::rc::Rc;

use eventflow::prelude::*;

struct W;

async fn think() {}

#[workflow]
impl W {
    #[step]
    async fn start(&self, ev: StartEvent) -> StopEvent {
        let count = Rc::new(ev.kwargs().len());
        think().await;
        StopEvent::new(*count)
    }
}

fn main() {}
