use std::rc::Rc;

use eventflow::prelude::*;

struct W {
    cache: Rc<String>,
}

#[workflow]
impl W {
    #[step]
    async fn start(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(format!("{}{:?}", self.cache, ev.kwargs()))
    }
}

fn main() {}
