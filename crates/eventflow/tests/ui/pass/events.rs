// `#[derive(Event)]` with every option, on structs and enums; `#[derive(EventUnion)]` with paths.
use eventflow::prelude::*;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "app.Query", start)]
struct Query {
    text: String,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(stop)]
struct Answer(String);

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(external)]
struct Approval {
    approved: bool,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(outbound, name = "app.Progress")]
struct Progress;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(terminal, schema = json!({"type": "object", "properties": {"code": {"type": "integer"}}}))]
struct Aborted {
    code: i32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
enum Decision {
    Accept,
    Reject { reason: String },
}

#[derive(EventUnion)]
enum Input {
    Query(Query),
    Approval(Approval),
    Decision(Decision),
}

#[derive(EventUnion)]
enum Output {
    Answer(Answer),
    Decision(Decision),
    Progress(crate::Progress),
}

fn main() {
    assert_eq!(Query::NAME, "app.Query");
    assert_eq!(Query::ROLE, eventflow::EventRole::Start);
    assert_eq!(Answer::ROLE, eventflow::EventRole::Stop);
    assert_eq!(Approval::ROLE, eventflow::EventRole::External);
    assert_eq!(Progress::NAME, "app.Progress");
    assert_eq!(Progress::ROLE, eventflow::EventRole::Outbound);
    assert_eq!(Aborted::ROLE, eventflow::EventRole::Terminal);
    assert_eq!(
        Aborted::schema().unwrap()["properties"]["code"]["type"],
        "integer"
    );
    let _ = Aborted { code: 1 }.code;
    assert_eq!(Decision::NAME, "Decision");
    let _ = Decision::Reject {
        reason: String::new(),
    };
    let _ = Decision::Accept;
    let _: Output = Answer(String::new()).into();
    let _: Input = Approval { approved: true }.into();
    let _: Input = Query {
        text: String::new(),
    }
    .into();
}
