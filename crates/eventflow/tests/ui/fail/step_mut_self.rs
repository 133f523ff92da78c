use eventflow::prelude::*;

struct W {
    count: usize,
}

#[workflow]
impl W {
    #[step]
    async fn start(&mut self, ev: StartEvent) -> StopEvent {
        self.count += 1;
        StopEvent::new(ev.kwargs().len())
    }
}

fn main() {}
