//! The [`Retriever`] trait and its result, [`NodeWithScore`].

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::{LlmError, Node};

/// A retrieved node and how well it matched the query (higher is better).
///
/// What the score means depends on the retriever: cosine similarity for a
/// [`VectorRetriever`](crate::VectorRetriever), the Okapi BM25 score for a
/// [`Bm25Retriever`](crate::Bm25Retriever), the reciprocal-rank-fusion score for a
/// [`HybridRetriever`](crate::HybridRetriever). Scores of different retrievers are not
/// comparable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeWithScore {
    /// The node.
    pub node: Node,
    /// Its score for the query.
    pub score: f32,
}

impl NodeWithScore {
    /// A node with its score.
    pub fn new(node: Node, score: f32) -> Self {
        NodeWithScore { node, score }
    }
}

/// Finds the nodes that best match a query, best first.
///
/// Object-safe: a workflow holds an `Arc<dyn Retriever>`.
pub trait Retriever: Send + Sync {
    /// The best-matching nodes for `query`, best first, at most the retriever's `top_k`.
    ///
    /// An empty (or all-whitespace) query gives an empty list, not an error.
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NodeWithScore>, LlmError>>;
}

impl<R: Retriever + ?Sized> Retriever for Arc<R> {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NodeWithScore>, LlmError>> {
        (**self).retrieve(query)
    }
}

impl<R: Retriever + ?Sized> Retriever for Box<R> {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NodeWithScore>, LlmError>> {
        (**self).retrieve(query)
    }
}

impl<R: Retriever + ?Sized> Retriever for &R {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NodeWithScore>, LlmError>> {
        (**self).retrieve(query)
    }
}

/// Keeps the `k` best of a stream of scored items without sorting them all: a min-heap of size `k`.
///
/// Ties are broken by the smaller `position` (earlier item wins), so results are deterministic.
pub(crate) struct TopK {
    k: usize,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Scored>>,
}

/// A score and the position of what it scores; ordered by score, then by earlier position.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scored {
    pub(crate) score: f32,
    pub(crate) position: usize,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    /// "Greater" means "better": a higher score, or the same score at an earlier position.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.position.cmp(&self.position))
    }
}

impl TopK {
    /// Keeps the best `k`.
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: std::collections::BinaryHeap::with_capacity(k.saturating_add(1).min(4096)),
        }
    }

    /// Offers one item.
    pub(crate) fn push(&mut self, score: f32, position: usize) {
        if self.k == 0 {
            return;
        }
        let item = Scored { score, position };
        if self.heap.len() < self.k {
            self.heap.push(std::cmp::Reverse(item));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && item > worst.0
        {
            *worst = std::cmp::Reverse(item);
        }
    }

    /// The kept items, best first.
    pub(crate) fn into_sorted(self) -> Vec<Scored> {
        // `into_sorted_vec` is ascending in `Reverse`, that is best first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_the_best_in_order_and_breaks_ties_by_position() {
        let mut top = TopK::new(3);
        for (i, s) in [0.1, 0.9, 0.5, 0.9, 0.3, 0.7].into_iter().enumerate() {
            top.push(s, i);
        }
        let got: Vec<usize> = top.into_sorted().iter().map(|s| s.position).collect();
        assert_eq!(got, vec![1, 3, 5]);
    }

    #[test]
    fn top_k_of_zero_or_more_than_available() {
        let mut zero = TopK::new(0);
        zero.push(1.0, 0);
        assert!(zero.into_sorted().is_empty());
        let mut many = TopK::new(10);
        many.push(0.2, 0);
        many.push(0.4, 1);
        let got: Vec<usize> = many.into_sorted().iter().map(|s| s.position).collect();
        assert_eq!(got, vec![1, 0]);
    }
}
