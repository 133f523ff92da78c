//! The events between the steps: the topic, what each source found, and its verdict.

use eventflow::prelude::*;

/// The topic and its category.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TopicEvent {
    pub(crate) topic: String,
    pub(crate) category: String,
}

/// A passage found by a source: the file it comes from and where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Passage {
    /// The file, relative to the workspace root.
    pub(crate) file: String,
    /// Byte offsets in the file: `&file[start..end] == text`.
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) text: String,
    /// Whether the passage begins inside a fenced code block of its file.
    pub(crate) starts_in_code: bool,
}

/// What one source found, and how well it covers the topic.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SourceEvent {
    pub(crate) source: String,
    /// The passages' texts, best first.
    pub(crate) content: String,
    /// The share of the topic's terms that the content contains, from 0 to 1.
    pub(crate) quality: f32,
    pub(crate) passages: Vec<Passage>,
}

/// What became of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// At or above the threshold.
    Accepted,
    /// Below the threshold, approved by the reviewer.
    Approved,
    /// Below the threshold, rejected by the reviewer.
    Rejected,
    /// The source found nothing.
    Empty,
}

impl Verdict {
    pub(crate) fn included(self) -> bool {
        matches!(self, Verdict::Accepted | Verdict::Approved)
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Approved => "below the threshold, approved by the reviewer",
            Verdict::Rejected => "below the threshold, rejected by the reviewer",
            Verdict::Empty => "found nothing",
        }
    }
}

/// A source after its evaluation.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub(crate) struct EvaluatedEvent {
    pub(crate) source: SourceEvent,
    pub(crate) verdict: Verdict,
}
