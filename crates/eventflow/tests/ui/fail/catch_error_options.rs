use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, ev: StartEvent) -> StopEvent {
        StopEvent::new(ev.kwargs().len())
    }

    #[catch_error(for_step = ["start"])]
    async fn misspelt(&self, failed: StepFailedEvent) -> StopEvent {
        StopEvent::new(failed.attempts)
    }

    #[catch_error(for_steps = [])]
    async fn empty(&self, failed: StepFailedEvent) -> StopEvent {
        StopEvent::new(failed.attempts)
    }

    #[catch_error(for_steps = [start])]
    async fn unquoted(&self, failed: StepFailedEvent) -> StopEvent {
        StopEvent::new(failed.attempts)
    }
}

#[catch_error]
async fn outside(_failed: StepFailedEvent) {}

fn main() {}
