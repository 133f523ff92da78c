//! Whole runs of the workflow, offline, over this repository's files.

use std::sync::Arc;

use eventflow_examples::workspace_root;
use eventflow_llm::MockLlm;

use crate::DEFAULT_TOPIC;
use crate::classify::GENERAL;
use crate::events::Verdict;
use crate::report::{ResearchReport, SourceOutcome};
use crate::session::{Approvals, research};
use crate::sources::setup;
use crate::workflow::{QUALITY_THRESHOLD, ResearchWorkflow};

async fn offline() -> ResearchWorkflow {
    setup(&workspace_root(), None).await.unwrap()
}

/// Checks that every citation points at its text in its file, and that the findings cite
/// every citation and nothing else.
fn assert_citations_hold(report: &ResearchReport) {
    let root = workspace_root();
    for c in &report.citations {
        let file = std::fs::read_to_string(root.join(&c.file)).unwrap();
        assert_eq!(file[c.start..c.end], c.text, "[{}] {}", c.number, c.file);
        assert!(
            report.findings.contains(&format!("[{}]", c.number)),
            "{}",
            report.findings
        );
    }
    let n = report.citations.len();
    assert!(!report.findings.contains(&format!("[{}]", n + 1)));
}

fn outcome<'a>(report: &'a ResearchReport, source: &str) -> &'a SourceOutcome {
    report.sources.iter().find(|s| s.source == source).unwrap()
}

/// Whether the report cites a passage of the source.
fn cites(report: &ResearchReport, source: &str) -> bool {
    report
        .citations
        .iter()
        .any(|c| c.found_by.iter().any(|s| s == source))
}

#[tokio::test]
async fn the_web_stand_in_is_weak_on_the_default_topic_and_the_docs_are_strong() {
    // The premise of the two tests below: the local "web" pages say nothing about eventflow.
    let session = research(offline().await, DEFAULT_TOPIC, &mut Approvals::All, false)
        .await
        .unwrap();
    let report = &session.report;
    let names: Vec<&str> = report.sources.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(names, ["web", "vector", "bm25"]);
    let web = outcome(report, "web");
    assert!(!web.passages.is_empty());
    assert!(web.quality < QUALITY_THRESHOLD, "{}", web.quality);
    assert!(
        web.passages
            .iter()
            .all(|p| p.file.starts_with("examples/data/web/"))
    );
    for docs in ["vector", "bm25"] {
        let docs = outcome(report, docs);
        assert_eq!(docs.verdict, Verdict::Accepted, "{docs:?}");
        assert!(
            docs.passages
                .iter()
                .all(|p| p.file.starts_with("docs/") || p.file == "README.md")
        );
    }
    assert_eq!(report.category, "software engineering");
    assert_eq!(report.classified_by, "keyword rules");
}

#[tokio::test]
async fn approve_all_includes_the_low_quality_sources() {
    let session = research(offline().await, DEFAULT_TOPIC, &mut Approvals::All, false)
        .await
        .unwrap();
    let report = &session.report;
    let low: Vec<&SourceOutcome> = report
        .sources
        .iter()
        .filter(|s| s.verdict != Verdict::Empty && s.quality < QUALITY_THRESHOLD)
        .collect();
    assert!(!low.is_empty());
    assert_eq!(
        session.questions.len(),
        low.len(),
        "{:?}",
        session.questions
    );
    for source in low {
        assert_eq!(source.verdict, Verdict::Approved);
        assert!(cites(report, &source.source), "{} not cited", source.source);
        let question = session
            .questions
            .iter()
            .find(|q| q.source == source.source)
            .unwrap();
        assert!(
            question
                .prompt
                .contains(&format!("Source `{}`", source.source))
        );
    }
    assert!(report.render().contains("## Excluded sources\n\nNone."));
    assert!(
        report
            .written_by
            .starts_with("Extractive: no model server configured")
    );
    assert_citations_hold(report);
}

#[tokio::test]
async fn approve_none_excludes_them_and_lists_them() {
    let session = research(offline().await, DEFAULT_TOPIC, &mut Approvals::None, false)
        .await
        .unwrap();
    let report = &session.report;
    let web = outcome(report, "web");
    assert_eq!(web.verdict, Verdict::Rejected);
    assert!(!cites(report, "web"));
    assert!(
        report
            .citations
            .iter()
            .all(|c| !c.file.starts_with("examples/data/web/"))
    );
    // Still cited: the accepted sources.
    assert!(cites(report, "vector") && cites(report, "bm25"));
    let rendered = report.render();
    let excluded = rendered.split("## Excluded sources").nth(1).unwrap();
    assert!(excluded.contains("- web (quality"), "{rendered}");
    assert!(excluded.contains(&web.passages[0].file), "{rendered}");
    assert_citations_hold(report);
}

#[tokio::test]
async fn answers_are_matched_to_their_source() {
    // Every source below the threshold: three questions open at once.
    let mut workflow = offline().await;
    workflow.threshold = 1.01;
    let mut approvals = Approvals::Only(vec!["vector"]);
    let session = research(workflow, DEFAULT_TOPIC, &mut approvals, false)
        .await
        .unwrap();
    let mut asked: Vec<&str> = session
        .questions
        .iter()
        .map(|q| q.source.as_str())
        .collect();
    asked.sort_unstable();
    assert_eq!(asked, ["bm25", "vector", "web"]);
    let verdicts: Vec<(&str, Verdict)> = session
        .report
        .sources
        .iter()
        .map(|s| (s.source.as_str(), s.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("web", Verdict::Rejected),
            ("vector", Verdict::Approved),
            ("bm25", Verdict::Rejected)
        ]
    );
    assert!(
        session
            .report
            .citations
            .iter()
            .all(|c| c.found_by.contains(&"vector".to_owned()))
    );
    assert_citations_hold(&session.report);
}

#[tokio::test]
async fn a_topic_nothing_matches_gives_an_empty_report() {
    let session = research(
        offline().await,
        "zyzzyva quokka",
        &mut Approvals::All,
        false,
    )
    .await
    .unwrap();
    // The hashing embedding still finds nearest passages, but they share no term.
    assert!(session.report.sources.iter().all(|s| s.quality == 0.0));
    assert_eq!(outcome(&session.report, "web").verdict, Verdict::Empty);
    assert_eq!(session.report.category, GENERAL);
}

#[tokio::test]
async fn with_a_model_it_classifies_and_writes_from_the_included_sources_only() {
    let llm = MockLlm::new()
        .respond_to("Classify the research topic", "Machine learning")
        .respond_to(
            "Write a short research report",
            "Snapshots keep the reducer state [1].",
        );
    let mut workflow = offline().await;
    workflow.llm = Some(Arc::new(llm.clone()));
    let session = research(workflow, DEFAULT_TOPIC, &mut Approvals::None, false)
        .await
        .unwrap();
    let report = &session.report;
    assert_eq!(report.category, "machine learning");
    assert_eq!(report.classified_by, format!("model {}", MockLlm::MODEL));
    // The mock's answer is shown as it is, marker included: it never passes for a model.
    assert_eq!(
        report.findings,
        "[mock-llm] Snapshots keep the reducer state [1]."
    );

    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let prompt = requests[1].last_user_message().unwrap();
    assert!(prompt.contains(&format!("Topic: {DEFAULT_TOPIC}")));
    assert!(prompt.contains("The topic's category is machine learning"));
    for c in &report.citations {
        assert!(prompt.contains(&c.text));
    }
    for p in &outcome(report, "web").passages {
        assert!(
            !prompt.contains(&p.text),
            "a rejected passage reached the model"
        );
    }
}
