use eventflow::prelude::*;

#[derive(Event, Clone, Serialize, Deserialize)]
struct Answer {
    text: String,
}

struct W;

#[workflow]
impl W {
    #[step]
    async fn combine(&self, start: StartEvent, answer: Answer) -> StopEvent {
        let _ = start;
        StopEvent::new(answer.text)
    }
}

fn main() {}
