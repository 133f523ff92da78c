use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step(skip_graph_checks(reachable))]
    async fn misspelt(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }

    #[step(skip_graph_checks(dead_end, reachability, dead_end))]
    async fn listed_twice(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }

    #[step(skip_graph_checks = ["reachability"])]
    async fn python_spelling(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }

    #[step(skip_graph_checks("reachability"))]
    async fn quoted(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }

    #[step(skip_graph_checks())]
    async fn empty(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }

    #[step(skip_graph_checks(dead_end), skip_graph_checks(reachability))]
    async fn given_twice(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }

    #[step(skip_graph_checks(dead_end reachability))]
    async fn no_comma(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }
}

fn main() {}
