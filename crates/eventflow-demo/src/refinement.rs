//! The `refinement` example's workflow: the reference's quality loop ("Branches and Loops",
//! "Loops for Refinement").
//!
//! Start it with `{"query": "What is ownership?"}`; the result is a [`Refined`]. `generate`
//! accepts the start event *or* a [`RefineEvent`] (an enum of both, derived with
//! `#[derive(EventUnion)]`) and drafts or improves an answer; `check_quality` either loops back
//! with a `RefineEvent` or ends the run with a `StopEvent` (another union). The loop is nothing
//! but an edge from `check_quality` back to `generate` in the graph.
//!
//! Semantics of the loop: `iteration` counts refinements. The first draft is iteration 0, and
//! each `RefineEvent` produces the next iteration. `check_quality` stops when
//! `quality_score > target` or `iteration >= 3` ([`MAX_ITERATIONS`]), so `generate` (and
//! `check_quality`) run at most 4 times: the first draft plus at most 3 refinements.
//!
//! The "quality" is deterministic, read from the text: a draft scores 0.5, and each
//! improvement a refinement adds (an example +0.2, a source +0.15, a summary +0.05) raises it,
//! with diminishing returns: 0.5, 0.7, 0.85, 0.9. With the reference's threshold of 0.8
//! ([`DEFAULT_TARGET`]) the loop exits early after two refinements; with a target of 0.95 it is
//! stopped by the cap.

use eventflow::prelude::*;

/// The most refinements a run makes.
pub const MAX_ITERATIONS: u32 = 3;

/// The quality [`workflow()`] aims for, the reference's: the loop stops once the score exceeds it.
pub const DEFAULT_TARGET: f64 = 0.8;

/// A draft to score.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct QualityCheckEvent {
    /// The query, from the start event.
    pub query: String,
    /// The draft.
    pub answer: String,
    /// How many refinements made it: 0 for the first draft.
    pub iteration: u32,
    /// Its quality, from 0.5 up.
    pub quality_score: f64,
}

/// A draft to improve: loops back to `generate`.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub struct RefineEvent {
    /// The query, from the start event.
    pub query: String,
    /// The draft to improve.
    pub answer: String,
    /// The draft's iteration; the improved draft is the next one.
    pub iteration: u32,
}

/// What `generate` accepts: the reference's `StartEvent | RefineEvent`.
#[derive(EventUnion)]
enum GenerateInput {
    Start(StartEvent),
    Refine(RefineEvent),
}

/// What `check_quality` returns: the reference's `RefineEvent | StopEvent`.
#[derive(EventUnion)]
enum CheckOutcome {
    Refine(RefineEvent),
    Stop(StopEvent),
}

/// Why the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The draft's quality exceeded the target.
    QualityReached,
    /// The draft had been refined [`MAX_ITERATIONS`] times.
    IterationCap,
}

/// The run's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Refined {
    /// The last draft.
    pub answer: String,
    /// How many refinements made it.
    pub iteration: u32,
    /// Its quality.
    pub quality_score: f64,
    /// Why the loop ended.
    pub reason: StopReason,
}

/// One improvement a refinement can make: a sentence starting with `marker`, worth `weight`.
struct Improvement {
    marker: &'static str,
    weight: f64,
    sentence: &'static str,
}

/// The improvements, in the order refinements make them.
const IMPROVEMENTS: &[Improvement] = &[
    Improvement {
        marker: "For example",
        weight: 0.2,
        sentence: "For example, a worked case makes the idea concrete.",
    },
    Improvement {
        marker: "Source:",
        weight: 0.15,
        sentence: "Source: the official documentation.",
    },
    Improvement {
        marker: "In short",
        weight: 0.05,
        sentence: "In short, that is the whole answer.",
    },
];

/// Scores an answer from its text: 0.5 for a draft, plus the weight of each improvement in it.
fn quality(answer: &str) -> f64 {
    0.5 + IMPROVEMENTS
        .iter()
        .filter(|improvement| answer.contains(improvement.marker))
        .map(|improvement| improvement.weight)
        .sum::<f64>()
}

/// Adds the first improvement the answer lacks (none when it has them all).
fn refine(answer: &str) -> String {
    match IMPROVEMENTS.iter().find(|i| !answer.contains(i.marker)) {
        Some(improvement) => format!("{answer} {}", improvement.sentence),
        None => answer.to_owned(),
    }
}

struct RefinementWorkflow {
    /// The loop stops once `quality_score > target`.
    target: f64,
}

#[workflow(name = "refinement")]
impl RefinementWorkflow {
    #[step]
    async fn generate(&self, ev: GenerateInput) -> Result<QualityCheckEvent> {
        let (query, answer, iteration) = match ev {
            GenerateInput::Start(start) => {
                let query: String = start.get("query")?;
                let draft = format!("A first answer to \"{query}\".");
                (query, draft, 0)
            }
            GenerateInput::Refine(prev) => (prev.query, refine(&prev.answer), prev.iteration + 1),
        };
        let quality_score = quality(&answer);
        Ok(QualityCheckEvent {
            query,
            answer,
            iteration,
            quality_score,
        })
    }

    #[step]
    async fn check_quality(&self, ev: QualityCheckEvent) -> CheckOutcome {
        let reason = if ev.quality_score > self.target {
            StopReason::QualityReached
        } else if ev.iteration >= MAX_ITERATIONS {
            StopReason::IterationCap
        } else {
            return RefineEvent {
                query: ev.query,
                answer: ev.answer,
                iteration: ev.iteration,
            }
            .into();
        };
        StopEvent::new(Refined {
            answer: ev.answer,
            iteration: ev.iteration,
            quality_score: ev.quality_score,
            reason,
        })
        .into()
    }
}

/// The workflow, named `refinement`, aiming for [`DEFAULT_TARGET`]. Start it with
/// `{"query": "..."}`; the result is a [`Refined`].
pub fn workflow() -> Workflow {
    workflow_with_target(DEFAULT_TARGET)
}

/// The workflow, named `refinement`, whose loop stops once the quality exceeds `target` (or
/// after [`MAX_ITERATIONS`] refinements).
pub fn workflow_with_target(target: f64) -> Workflow {
    RefinementWorkflow { target }
        .into_workflow()
        .expect("the refinement workflow is valid")
}

#[cfg(test)]
mod tests {
    use eventflow::RunOutput;

    use super::*;

    /// Runs the loop once; the output carries the result and the path the run took.
    async fn run(query: &str, target: f64) -> RunOutput {
        workflow_with_target(target)
            .run(json!({ "query": query }))
            .await
            .unwrap()
    }

    #[test]
    fn quality_grows_with_each_refinement() {
        let mut answer = "A first answer.".to_owned();
        let mut scores = vec![quality(&answer)];
        for _ in 0..MAX_ITERATIONS {
            answer = refine(&answer);
            scores.push(quality(&answer));
        }
        assert!(scores.windows(2).all(|w| w[1] > w[0]), "{scores:?}");
    }

    #[tokio::test]
    async fn exits_early_once_quality_is_reached() {
        let output = run("What is ownership?", 0.8).await;
        let refined: Refined = output.result().unwrap();
        assert_eq!(refined.reason, StopReason::QualityReached);
        assert_eq!(refined.iteration, 2);
        assert!(refined.quality_score > 0.8);
        // The first draft and two refinements.
        assert_eq!(output.path().step_runs("generate"), 3);
        assert_eq!(output.path().step_runs("check_quality"), 3);
    }

    #[tokio::test]
    async fn a_good_enough_draft_is_not_refined() {
        let output = run("What is ownership?", 0.4).await;
        let refined: Refined = output.result().unwrap();
        assert_eq!(refined.iteration, 0);
        assert_eq!(refined.answer, "A first answer to \"What is ownership?\".");
        assert_eq!(output.path().step_runs("generate"), 1);
    }

    #[tokio::test]
    async fn never_makes_more_than_three_refinements() {
        // 0.95 is above the best score the text can reach, so only the cap ends the loop.
        let output = run("What is ownership?", 0.95).await;
        let refined: Refined = output.result().unwrap();
        assert_eq!(refined.reason, StopReason::IterationCap);
        assert_eq!(refined.iteration, MAX_ITERATIONS);
        assert!(refined.quality_score <= 0.95);
        // The first draft plus 3 refinements, and no more.
        assert_eq!(output.path().step_runs("generate"), 4);
        assert_eq!(output.path().step_runs("check_quality"), 4);
        for improvement in IMPROVEMENTS {
            assert!(refined.answer.contains(improvement.marker), "{refined:?}");
        }
    }

    #[tokio::test]
    async fn the_default_workflow_aims_for_the_reference_threshold() {
        let output = workflow()
            .run(json!({ "query": "What is ownership?" }))
            .await
            .unwrap();
        let refined: serde_json::Value = output.result().unwrap();
        assert_eq!(refined["reason"], "quality_reached");
        assert_eq!(refined["iteration"], 2);
    }
}
