use eventflow::prelude::*;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct QualityCheck {
    answer: String,
    iteration: u32,
    score: f64,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Refine {
    answer: String,
    iteration: u32,
}

#[derive(EventUnion)]
enum GenerateInput {
    Start(StartEvent),
    Refine(Refine),
}

#[derive(EventUnion)]
enum CheckOutput {
    Refine(Refine),
    Done(StopEvent),
}

struct Refinement;

#[workflow]
impl Refinement {
    #[step]
    async fn generate(&self, ev: GenerateInput) -> Result<QualityCheck> {
        let (answer, iteration) = match ev {
            GenerateInput::Start(start) => (start.get::<String>("query")?, 0),
            GenerateInput::Refine(r) => (format!("{} (refined)", r.answer), r.iteration + 1),
        };
        Ok(QualityCheck {
            answer,
            iteration,
            score: 0.5 + 0.2 * f64::from(iteration),
        })
    }

    #[step]
    async fn check(&self, ctx: &Context, ev: QualityCheck) -> CheckOutput {
        ctx.set("iterations", ev.iteration).unwrap();
        if ev.score > 0.8 || ev.iteration >= 3 {
            StopEvent::new(ev.answer).into()
        } else {
            Refine {
                answer: ev.answer,
                iteration: ev.iteration,
            }
            .into()
        }
    }
}

#[tokio::test]
async fn refinement_loop_runs() {
    let wf = Refinement.into_workflow().unwrap().verbose(true);
    let out = wf.run(json!({"query": "q"})).await.unwrap();
    assert_eq!(out.result::<String>().unwrap(), "q (refined) (refined)");
    println!("{:?}", out.path());
}
