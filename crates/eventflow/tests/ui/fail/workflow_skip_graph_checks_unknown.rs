use eventflow::prelude::*;

struct W;

#[workflow(skip_graph_checks(terminal))]
impl W {
    #[step]
    async fn start(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }
}

fn main() {}
