//! The run's result: the report, its citations and how each source fared, and its text.

use eventflow::prelude::*;

use crate::events::{Passage, Verdict};

/// A passage as cited in the report: `[number]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Citation {
    pub(crate) number: usize,
    pub(crate) file: String,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) text: String,
    pub(crate) starts_in_code: bool,
    /// The sources that found it.
    pub(crate) found_by: Vec<String>,
}

/// How a source fared.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SourceOutcome {
    pub(crate) source: String,
    pub(crate) description: String,
    pub(crate) quality: f32,
    pub(crate) verdict: Verdict,
    pub(crate) passages: Vec<Passage>,
}

/// The run's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ResearchReport {
    pub(crate) topic: String,
    pub(crate) category: String,
    pub(crate) classified_by: String,
    pub(crate) threshold: f32,
    /// Every source, in the order they are searched.
    pub(crate) sources: Vec<SourceOutcome>,
    /// The passages of the included sources, numbered.
    pub(crate) citations: Vec<Citation>,
    /// The body of the report, citing `[n]`.
    pub(crate) findings: String,
    /// Who wrote the findings.
    pub(crate) written_by: String,
}

impl ResearchReport {
    pub(crate) fn render(&self) -> String {
        let mut out = format!(
            "# Research report: {}\n\nCategory: {} (classified by {})\n\n## Findings\n\n{}\n\n{}\n",
            self.topic, self.category, self.classified_by, self.written_by, self.findings
        );
        out.push_str("\n## Sources\n\n");
        if self.citations.is_empty() {
            out.push_str("None.\n");
        }
        for c in &self.citations {
            out.push_str(&format!(
                "[{}] {}, bytes {}..{} (found by {})\n",
                c.number,
                c.file,
                c.start,
                c.end,
                c.found_by.join(", ")
            ));
        }
        out.push_str(&format!(
            "\n## Source evaluation (quality threshold {:.2})\n\n",
            self.threshold
        ));
        for s in &self.sources {
            out.push_str(&format!(
                "- {}: {} — quality {:.2}, {}\n",
                s.source,
                s.description,
                s.quality,
                s.verdict.describe()
            ));
        }
        out.push_str("\n## Excluded sources\n\n");
        let excluded: Vec<&SourceOutcome> = self
            .sources
            .iter()
            .filter(|s| !s.verdict.included())
            .collect();
        if excluded.is_empty() {
            out.push_str("None.\n");
        }
        for s in excluded {
            let passages: Vec<String> = s
                .passages
                .iter()
                .map(|p| format!("{} bytes {}..{}", p.file, p.start, p.end))
                .collect();
            let passages = if passages.is_empty() {
                "no passages".to_owned()
            } else {
                passages.join("; ")
            };
            out.push_str(&format!(
                "- {} (quality {:.2}, {}): {passages}\n",
                s.source,
                s.quality,
                s.verdict.describe()
            ));
        }
        out
    }
}
