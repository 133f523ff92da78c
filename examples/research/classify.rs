//! Offline topic classification: the categories, and the keywords that vote for each.

use crate::text::term_set;

/// The categories a topic is classified into, with the keywords that vote for each (offline).
const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "software engineering",
        &[
            "api",
            "async",
            "bug",
            "code",
            "compiler",
            "crate",
            "database",
            "deploy",
            "engine",
            "eventflow",
            "reducer",
            "run",
            "runtime",
            "rust",
            "server",
            "snapshot",
            "software",
            "step",
            "test",
            "thread",
            "tokio",
            "workflow",
        ],
    ),
    (
        "machine learning",
        &[
            "agent",
            "bm25",
            "classifier",
            "embedding",
            "language",
            "llm",
            "model",
            "neural",
            "prompt",
            "rag",
            "ranking",
            "retrieval",
            "training",
            "vector",
        ],
    ),
    (
        "science",
        &[
            "biology",
            "cell",
            "chemistry",
            "climate",
            "energy",
            "ocean",
            "physics",
            "planet",
            "quantum",
            "species",
            "volcano",
        ],
    ),
    (
        "business",
        &[
            "customer", "finance", "market", "pricing", "revenue", "sales", "startup", "strategy",
        ],
    ),
];
/// The category of a topic that matches none of the others.
pub(crate) const GENERAL: &str = "general";

/// Every category name, `general` last.
pub(crate) fn category_names() -> impl Iterator<Item = &'static str> {
    CATEGORIES
        .iter()
        .map(|(name, _)| *name)
        .chain(std::iter::once(GENERAL))
}

/// The category whose keywords the topic mentions most (the first on a tie), or `general`.
pub(crate) fn classify_by_keywords(topic: &str) -> String {
    let terms = term_set(topic);
    let mut best = (0, GENERAL);
    for (name, keywords) in CATEGORIES {
        let votes = term_set(&keywords.join(" ")).intersection(&terms).count();
        if votes > best.0 {
            best = (votes, name);
        }
    }
    best.1.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_TOPIC;

    #[test]
    fn classification_by_keywords() {
        assert_eq!(classify_by_keywords(DEFAULT_TOPIC), "software engineering");
        assert_eq!(
            classify_by_keywords("How does BM25 ranking work?"),
            "machine learning"
        );
        assert_eq!(classify_by_keywords("Why do volcanoes erupt?"), "science");
        assert_eq!(classify_by_keywords("The best pasta recipes"), GENERAL);
    }
}
