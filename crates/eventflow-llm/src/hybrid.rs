//! [`HybridRetriever`]: several retrievers fused by reciprocal rank fusion.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::{LlmError, NodeWithScore, Retriever};

/// Fuses ranked lists by reciprocal rank fusion (Cormack et al., 2009).
///
/// A node's fused score is the sum, over the lists it appears in, of `1 / (k + rank)` with
/// `rank` starting at 1; the lists' own scores are ignored. Nodes are identified by id: a node in
/// several lists appears once, with the node as the first list that has it gave it (a node
/// repeated within one list counts at its best rank only). The result is best first (ties in the
/// order the nodes were first met, list by list), at most `top_k` long.
pub fn reciprocal_rank_fusion(
    lists: &[Vec<NodeWithScore>],
    k: f32,
    top_k: usize,
) -> Vec<NodeWithScore> {
    // id -> its position in `fused`
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut fused: Vec<NodeWithScore> = Vec::new();
    for list in lists {
        let mut in_this_list: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (index, item) in list.iter().enumerate() {
            let id = item.node.id.as_str();
            if !in_this_list.insert(id) {
                continue;
            }
            let contribution = 1.0 / (k + (index + 1) as f32);
            match seen.get(id) {
                Some(&position) => fused[position].score += contribution,
                None => {
                    seen.insert(id, fused.len());
                    fused.push(NodeWithScore::new(item.node.clone(), contribution));
                }
            }
        }
    }
    // A stable sort keeps first-met order among equal scores.
    fused.sort_by(|a, b| b.score.total_cmp(&a.score));
    fused.truncate(top_k);
    fused
}

/// Runs several retrievers on the same query, concurrently, and fuses their results with
/// [`reciprocal_rank_fusion`] (`k = 60` by default): typically a [`Bm25Retriever`](crate::Bm25Retriever)
/// beside a [`VectorRetriever`](crate::VectorRetriever).
///
/// The returned scores are the fused scores. If any retriever fails, retrieval fails with its
/// error.
#[derive(Clone)]
pub struct HybridRetriever {
    retrievers: Vec<Arc<dyn Retriever>>,
    top_k: usize,
    rrf_k: f32,
}

impl HybridRetriever {
    /// The default reciprocal-rank-fusion constant.
    pub const DEFAULT_RRF_K: f32 = 60.0;

    /// A hybrid of no retrievers yet, returning at most `top_k` nodes.
    pub fn new(top_k: usize) -> Self {
        HybridRetriever {
            retrievers: Vec::new(),
            top_k,
            rrf_k: Self::DEFAULT_RRF_K,
        }
    }

    /// A hybrid of the given retrievers, returning at most `top_k` nodes.
    pub fn from_retrievers(retrievers: Vec<Arc<dyn Retriever>>, top_k: usize) -> Self {
        HybridRetriever {
            retrievers,
            top_k,
            rrf_k: Self::DEFAULT_RRF_K,
        }
    }

    /// The hybrid with one more retriever.
    pub fn with(mut self, retriever: impl Retriever + 'static) -> Self {
        self.retrievers.push(Arc::new(retriever));
        self
    }

    /// The hybrid with one more shared retriever.
    pub fn with_shared(mut self, retriever: Arc<dyn Retriever>) -> Self {
        self.retrievers.push(retriever);
        self
    }

    /// The hybrid with another fusion constant `k`.
    pub fn with_rrf_k(mut self, k: f32) -> Self {
        self.rrf_k = k;
        self
    }

    /// How many nodes it returns at most.
    pub fn top_k(&self) -> usize {
        self.top_k
    }

    /// How many retrievers it fuses.
    pub fn len(&self) -> usize {
        self.retrievers.len()
    }

    /// Whether it fuses no retriever at all (then it retrieves nothing).
    pub fn is_empty(&self) -> bool {
        self.retrievers.is_empty()
    }
}

impl std::fmt::Debug for HybridRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridRetriever")
            .field("retrievers", &self.retrievers.len())
            .field("top_k", &self.top_k)
            .field("rrf_k", &self.rrf_k)
            .finish()
    }
}

impl Retriever for HybridRetriever {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NodeWithScore>, LlmError>> {
        Box::pin(async move {
            if query.trim().is_empty() || self.top_k == 0 {
                return Ok(Vec::new());
            }
            let lists =
                futures::future::try_join_all(self.retrievers.iter().map(|r| r.retrieve(query)))
                    .await?;
            Ok(reciprocal_rank_fusion(&lists, self.rrf_k, self.top_k))
        })
    }
}
