//! Retrieval on a small fixed corpus (tests/data/corpus): loading and splitting documents, BM25,
//! the vector index with the deterministic `MockEmbedding`, hybrid fusion, saving and loading.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use eventflow_llm::{
    Bm25Retriever, Document, Embedding, HybridRetriever, LlmError, MockEmbedding, Node, NodeParser,
    NodeWithScore, Retriever, VectorIndexConfig, VectorStoreIndex, reciprocal_rank_fusion,
};
use futures::future::BoxFuture;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus")
}

fn parser() -> NodeParser {
    NodeParser::new(300, 50).expect("valid chunk configuration")
}

fn corpus_nodes() -> Result<(Vec<Document>, Vec<Node>)> {
    let documents = Document::load_dir(corpus_dir())?;
    let nodes = parser().parse_documents(&documents);
    Ok((documents, nodes))
}

async fn corpus_index() -> Result<VectorStoreIndex> {
    let documents = Document::load_dir(corpus_dir())?;
    Ok(
        VectorStoreIndex::from_documents(&documents, &parser(), Arc::new(MockEmbedding::default()))
            .await?,
    )
}

/// A question, the file that answers it, and a phrase of the passage that answers it.
const QUESTIONS: &[(&str, &str, &str)] = &[
    (
        "How often should I feed my sourdough starter?",
        "sourdough.md",
        "fed regularly",
    ),
    (
        "What gives sourdough bread its sour taste?",
        "sourdough.md",
        "lactic",
    ),
    (
        "How do beekeepers treat a hive for varroa mites?",
        "beekeeping.md",
        "oxalic acid",
    ),
    (
        "How can I stop my bee colony from swarming?",
        "beekeeping.md",
        "super",
    ),
    (
        "Why are some volcanic eruptions explosive?",
        "volcanoes.md",
        "viscosity",
    ),
    (
        "What is Black's most popular reply to 1.e4 in chess?",
        "chess-openings.md",
        "Sicilian",
    ),
    (
        "What is a gambit in chess?",
        "chess-openings.md",
        "gambit sacrifices",
    ),
    (
        "What ratio of greens and browns does a compost pile need?",
        "composting.md",
        "three parts",
    ),
    (
        "Why does the sea have two high tides every day?",
        "tides.md",
        "bulges",
    ),
    (
        "What is the difference between spring tides and neap tides?",
        "tides.md",
        "neap tides",
    ),
    (
        "What does the borrow checker enforce about mutable references?",
        "rust-ownership.md",
        "borrow checker",
    ),
    (
        "What does the enzyme RuBisCO do in the Calvin cycle?",
        "photosynthesis.md",
        "RuBisCO fixes",
    ),
    (
        "How long should the long run be when training for a marathon?",
        "marathon-training.md",
        "long run",
    ),
    (
        "How much pressure does an espresso shot need?",
        "coffee-brewing.md",
        "nine bars",
    ),
    (
        "Who invented the lens that lighthouses use?",
        "lighthouses.md",
        "Fresnel",
    ),
    (
        "Why does a solar panel system need an inverter?",
        "solar-panels.md",
        "inverter",
    ),
];

/// Checks that, for every question, a node of the expected file containing the expected phrase
/// is among the first three results; returns how many questions had it first.
async fn assert_top3(name: &str, retriever: &dyn Retriever) -> Result<usize> {
    let mut firsts = 0;
    let mut failures = Vec::new();
    for (question, source, phrase) in QUESTIONS {
        let results = retriever.retrieve(question).await?;
        assert!(results.len() <= 3, "{name}: top_k is 3");
        let position = results
            .iter()
            .position(|r| r.node.source() == Some(source) && r.node.text.contains(phrase));
        match position {
            Some(0) => firsts += 1,
            Some(_) => {}
            None => failures.push(format!(
                "{question:?}: wanted {source} ({phrase:?}), got {:?}",
                results
                    .iter()
                    .map(|r| (r.node.id.as_str(), r.score))
                    .collect::<Vec<_>>()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{name} missed:\n{}",
        failures.join("\n")
    );
    println!(
        "{name}: {firsts}/{} questions answered by the first result",
        QUESTIONS.len()
    );
    Ok(firsts)
}

#[test]
fn the_corpus_loads_sorted_with_source_metadata() -> Result<()> {
    let documents = Document::load_dir(corpus_dir())?;
    assert_eq!(documents.len(), 12);
    let ids: Vec<&str> = documents.iter().map(|d| d.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    for document in &documents {
        assert_eq!(document.source(), Some(document.id.as_str()));
        assert_eq!(document.metadata["file_name"], document.id.as_str());
        assert!(document.is_markdown());
    }
    Ok(())
}

#[test]
fn node_offsets_are_exact() -> Result<()> {
    let (documents, nodes) = corpus_nodes()?;
    assert!(
        nodes.len() >= 3 * documents.len(),
        "every document is split into several nodes"
    );
    for node in &nodes {
        let document = documents
            .iter()
            .find(|d| Some(d.id.as_str()) == node.document_id())
            .unwrap();
        let range = node.offsets().expect("offsets in the metadata");
        assert_eq!(&document.text[range.clone()], node.text);
        assert_eq!(node.metadata["start_offset"], range.start);
        assert_eq!(node.metadata["end_offset"], range.end);
        assert_eq!(node.source(), document.source());
        assert!(node.text.chars().count() <= 300);
    }
    // Consecutive nodes of a document move forward and may overlap a little.
    for pair in nodes.windows(2) {
        if pair[0].document_id() == pair[1].document_id() {
            let (a, b) = (pair[0].offsets().unwrap(), pair[1].offsets().unwrap());
            assert!(b.start > a.start && b.end > a.end);
        }
    }
    Ok(())
}

#[test]
fn load_dir_recurses_skips_hidden_and_other_files_and_reports_errors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("guide/deep"))?;
    std::fs::create_dir_all(dir.path().join(".hidden"))?;
    std::fs::write(dir.path().join("b.txt"), "plain text")?;
    std::fs::write(dir.path().join("a.md"), "# A\n\nmarkdown")?;
    std::fs::write(dir.path().join("guide/deep/c.MD"), "deep")?;
    std::fs::write(dir.path().join("guide/image.png"), [0u8, 1, 2])?;
    std::fs::write(dir.path().join(".hidden/secret.md"), "no")?;
    std::fs::write(dir.path().join(".dotfile.txt"), "no")?;
    let documents = Document::load_dir(dir.path())?;
    let sources: Vec<&str> = documents.iter().filter_map(|d| d.source()).collect();
    assert_eq!(sources, ["a.md", "b.txt", "guide/deep/c.MD"]);
    assert_eq!(documents[2].metadata["file_name"], "c.MD");
    assert!(
        documents[0].is_markdown() && !documents[1].is_markdown() && documents[2].is_markdown()
    );

    let single = Document::load_file(dir.path().join("guide/deep/c.MD"))?;
    assert_eq!(single.text, "deep");
    assert!(single.is_markdown());
    assert!(
        single
            .source()
            .is_some_and(|s| s.ends_with("guide/deep/c.MD"))
    );

    let missing = dir.path().join("missing");
    match Document::load_dir(&missing) {
        Err(LlmError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an Io error, got {other:?}"),
    }
    match Document::load_dir(dir.path().join("b.txt")) {
        Err(error @ LlmError::Io { .. }) => assert!(error.to_string().contains("b.txt")),
        other => panic!("expected an Io error, got {other:?}"),
    }
    std::fs::write(dir.path().join("bad.txt"), [0xffu8, 0xfe, 0x00])?;
    match Document::load_dir(dir.path()) {
        Err(LlmError::Io { path, .. }) => assert!(path.ends_with("bad.txt")),
        other => panic!("expected an Io error for a non-UTF-8 file, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn bm25_finds_the_expected_passage_in_the_top_3() -> Result<()> {
    let (_, nodes) = corpus_nodes()?;
    let bm25 = Bm25Retriever::from_nodes(nodes, 3);
    assert_top3("BM25", &bm25).await?;
    Ok(())
}

#[tokio::test]
async fn hybrid_finds_the_expected_passage_in_the_top_3() -> Result<()> {
    let index = corpus_index().await?;
    let bm25 = Bm25Retriever::from_nodes(index.nodes(), 10);
    let hybrid = HybridRetriever::new(3)
        .with(bm25)
        .with(index.as_retriever(10));
    assert_top3("hybrid", &hybrid).await?;
    // The vector retriever alone, for information: the mock embedding only sees shared words.
    let vector = index.as_retriever(3);
    let mut found = 0;
    for (question, source, _) in QUESTIONS {
        let results = vector.retrieve(question).await?;
        found += usize::from(results.iter().any(|r| r.node.source() == Some(source)));
    }
    println!(
        "vector (MockEmbedding) alone: {found}/{} in the top 3",
        QUESTIONS.len()
    );
    Ok(())
}

#[tokio::test]
async fn save_and_load_give_identical_results() -> Result<()> {
    let index = corpus_index().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("index.jsonl");
    index.save(&path)?;
    let names: Vec<_> = std::fs::read_dir(dir.path())?
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["index.jsonl"], "no temporary file left behind");

    let loaded = VectorStoreIndex::load(&path, Arc::new(MockEmbedding::default()))?;
    assert_eq!(loaded.len(), index.len());
    assert_eq!(loaded.dimensions(), index.dimensions());
    assert_eq!(loaded.nodes(), index.nodes());
    for (question, _, _) in QUESTIONS {
        let before = index.search(question, 5).await?;
        let after = loaded.search(question, 5).await?;
        assert_eq!(before, after, "{question}");
    }
    // Saving over an existing file replaces it.
    loaded.save(&path)?;
    let again = VectorStoreIndex::load(&path, Arc::new(MockEmbedding::default()))?;
    assert_eq!(again.nodes(), index.nodes());
    // Saving into a folder that does not exist is an I/O error naming the file.
    let nowhere = dir.path().join("no/such/folder/index.jsonl");
    match index.save(&nowhere) {
        Err(LlmError::Io { path, .. }) => assert_eq!(path, nowhere),
        other => panic!("expected an Io error, got {other:?}"),
    }
    // An empty index round-trips too.
    let empty = VectorStoreIndex::new(Arc::new(MockEmbedding::default()));
    let empty_path = dir.path().join("empty.jsonl");
    empty.save(&empty_path)?;
    let empty = VectorStoreIndex::load(&empty_path, Arc::new(MockEmbedding::default()))?;
    assert!(empty.is_empty());
    assert!(empty.search("anything", 3).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn loading_a_corrupt_or_foreign_file_is_a_clear_error() -> Result<()> {
    let index = corpus_index().await?;
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good.jsonl");
    index.save(&good)?;
    let text = std::fs::read_to_string(&good)?;
    let mut lines: Vec<&str> = text.lines().collect();
    let embedding = || Arc::new(MockEmbedding::default()) as Arc<dyn Embedding>;

    let load = |name: &str, content: &str| -> LlmError {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        VectorStoreIndex::load(&path, embedding()).expect_err(name)
    };
    let message = |e: LlmError| match e {
        LlmError::InvalidData(message) => message,
        other => panic!("expected InvalidData, got {other:?}"),
    };

    assert!(message(load("empty.jsonl", "")).contains("empty file"));
    assert!(
        message(load("garbage.jsonl", "not json at all\n")).contains("not a saved vector index")
    );
    assert!(message(load("other.json", "{\"hello\": 1}\n")).contains("not a saved vector index"));
    let newer = text.replacen("\"version\":1", "\"version\":99", 1);
    let m = message(load("newer.jsonl", &newer));
    assert!(
        m.contains("version 99") && m.contains("reads version 1"),
        "{m}"
    );
    // Truncated: the last node missing.
    let truncated = lines[..lines.len() - 1].join("\n");
    assert!(message(load("truncated.jsonl", &truncated)).contains("truncated"));
    // Truncated in the middle of a line.
    let cut = &text[..text.len() - 40];
    let m = message(load("cut.jsonl", cut));
    assert!(
        m.contains("bad node record") && m.contains(&format!(":{}:", lines.len())),
        "{m}"
    );
    // A vector of the wrong length.
    let short = lines[1].replacen("\"embedding\":[", "\"embedding\":[0.5,", 1);
    lines[1] = &short;
    assert!(message(load("dims.jsonl", &lines.join("\n"))).contains("dimensions"));
    // A missing file is an I/O error naming it.
    let missing = dir.path().join("missing.jsonl");
    match VectorStoreIndex::load(&missing, embedding()) {
        Err(LlmError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an Io error, got {other:?}"),
    }
    Ok(())
}

fn node(id: &str) -> Node {
    Node::new(id, format!("text of {id}"))
}

fn scored(ids: &[&str]) -> Vec<NodeWithScore> {
    ids.iter()
        .map(|id| NodeWithScore::new(node(id), 100.0))
        .collect()
}

#[test]
fn reciprocal_rank_fusion_sums_reciprocal_ranks_and_dedups() {
    let lists = [
        scored(&["a", "b", "c"]),
        scored(&["c", "a", "d"]),
        scored(&["d", "d", "e"]),
    ];
    let fused = reciprocal_rank_fusion(&lists, 60.0, 10);
    let r = |rank: f32| 1.0 / (60.0 + rank);
    let expected = [
        ("a", r(1.0) + r(2.0)),
        ("c", r(3.0) + r(1.0)),
        ("d", r(3.0) + r(1.0)),
        ("b", r(2.0)),
        ("e", r(3.0)),
    ];
    let got: Vec<(&str, f32)> = fused
        .iter()
        .map(|n| (n.node.id.as_str(), n.score))
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((id, score), (want_id, want_score)) in got.iter().zip(expected) {
        assert_eq!(*id, want_id, "{got:?}");
        assert!(
            (score - want_score).abs() < 1e-7,
            "{id}: {score} vs {want_score}"
        );
    }
    // "c" and "d" tie; "c" was met first. The top_k cut applies after fusion.
    let top2 = reciprocal_rank_fusion(&lists, 60.0, 2);
    assert_eq!(
        top2.iter().map(|n| n.node.id.as_str()).collect::<Vec<_>>(),
        ["a", "c"]
    );
    assert!(reciprocal_rank_fusion(&[], 60.0, 5).is_empty());
}

/// A retriever returning fixed ids, or failing.
struct Fixed(Option<Vec<&'static str>>);

impl Retriever for Fixed {
    fn retrieve<'a>(
        &'a self,
        _query: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NodeWithScore>, LlmError>> {
        Box::pin(async move {
            match &self.0 {
                Some(ids) => Ok(scored(ids)),
                None => Err(LlmError::Config("this retriever always fails".into())),
            }
        })
    }
}

#[tokio::test]
async fn the_hybrid_retriever_fuses_and_propagates_errors() -> Result<()> {
    let hybrid = HybridRetriever::new(3)
        .with(Fixed(Some(vec!["x", "y"])))
        .with_shared(Arc::new(Fixed(Some(vec!["y", "z"]))));
    let got = hybrid.retrieve("question").await?;
    assert_eq!(
        got.iter().map(|n| n.node.id.as_str()).collect::<Vec<_>>(),
        ["y", "x", "z"]
    );
    assert!((got[0].score - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-7);

    let failing = hybrid.clone().with(Fixed(None));
    assert!(matches!(
        failing.retrieve("question").await,
        Err(LlmError::Config(_))
    ));
    assert!(
        HybridRetriever::new(3)
            .retrieve("question")
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn empty_indexes_and_empty_queries_give_empty_results() -> Result<()> {
    let empty_index = VectorStoreIndex::new(Arc::new(MockEmbedding::default()));
    let empty_bm25 = Bm25Retriever::from_nodes(Vec::new(), 3);
    assert!(
        empty_index
            .as_retriever(3)
            .retrieve("sourdough")
            .await?
            .is_empty()
    );
    assert!(empty_bm25.retrieve("sourdough").await?.is_empty());
    let hybrid = HybridRetriever::new(3)
        .with(empty_bm25)
        .with(empty_index.as_retriever(3));
    assert!(hybrid.retrieve("sourdough").await?.is_empty());

    let index = corpus_index().await?;
    let bm25 = Bm25Retriever::from_nodes(index.nodes(), 3);
    let hybrid = HybridRetriever::new(3)
        .with(bm25.clone())
        .with(index.as_retriever(3));
    for query in ["", "   ", "\n\t", "the of and", "?!."] {
        assert!(bm25.retrieve(query).await?.is_empty(), "{query:?}");
        assert!(
            index.as_retriever(3).retrieve(query).await?.is_empty(),
            "{query:?}"
        );
        assert!(hybrid.retrieve(query).await?.is_empty(), "{query:?}");
    }
    assert!(
        index
            .as_retriever(0)
            .retrieve("sourdough")
            .await?
            .is_empty()
    );
    assert!(
        bm25.clone()
            .with_top_k(0)
            .retrieve("sourdough")
            .await?
            .is_empty()
    );
    // Words no document has.
    assert!(bm25.retrieve("xylophone zeppelin").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn top_k_larger_than_the_corpus_returns_every_match_once() -> Result<()> {
    let index = corpus_index().await?;
    let all = index
        .as_retriever(10_000)
        .retrieve("how do bees make honey")
        .await?;
    assert_eq!(all.len(), index.len());
    let mut ids: Vec<&str> = all.iter().map(|n| n.node.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), index.len());
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score));

    let bm25 = Bm25Retriever::from_nodes(index.nodes(), 10_000);
    let matches = bm25.retrieve("how do bees make honey").await?;
    assert!(
        !matches.is_empty() && matches.len() < index.len(),
        "only nodes sharing a word"
    );
    assert!(matches.iter().all(|n| n.score > 0.0));
    assert_eq!(matches[0].node.source(), Some("beekeeping.md"));

    let hybrid = HybridRetriever::new(10_000)
        .with(bm25)
        .with(index.as_retriever(10_000));
    assert_eq!(
        hybrid.retrieve("how do bees make honey").await?.len(),
        index.len()
    );
    Ok(())
}

/// Counts the texts of every batch it is asked to embed.
struct CountingEmbedding {
    inner: MockEmbedding,
    calls: AtomicUsize,
    largest_batch: AtomicUsize,
    drop_one: bool,
}

impl Embedding for CountingEmbedding {
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.largest_batch.fetch_max(texts.len(), Ordering::SeqCst);
        Box::pin(async move {
            let mut vectors = self.inner.embed(texts).await?;
            if self.drop_one {
                vectors.pop();
            }
            Ok(vectors)
        })
    }
}

#[tokio::test]
async fn nodes_are_embedded_in_batches_and_bad_answers_rejected() -> Result<()> {
    let (_, nodes) = corpus_nodes()?;
    let embedding = Arc::new(CountingEmbedding {
        inner: MockEmbedding::new(32),
        calls: AtomicUsize::new(0),
        largest_batch: AtomicUsize::new(0),
        drop_one: false,
    });
    let config = VectorIndexConfig {
        embed_batch_size: 8,
        ..VectorIndexConfig::default()
    };
    let index = VectorStoreIndex::with_config(embedding.clone(), config);
    index.insert(nodes.clone()).await?;
    assert_eq!(index.len(), nodes.len());
    assert_eq!(embedding.largest_batch.load(Ordering::SeqCst), 8);
    assert_eq!(
        embedding.calls.load(Ordering::SeqCst),
        nodes.len().div_ceil(8)
    );
    assert_eq!(index.dimensions(), Some(32));
    // Inserting the same nodes again replaces them.
    index.insert(nodes.clone()).await?;
    assert_eq!(index.len(), nodes.len());

    let broken = Arc::new(CountingEmbedding {
        inner: MockEmbedding::new(32),
        calls: AtomicUsize::new(0),
        largest_batch: AtomicUsize::new(0),
        drop_one: true,
    });
    match VectorStoreIndex::from_nodes(nodes, broken).await {
        Err(LlmError::InvalidData(message)) => {
            assert!(message.contains("vectors for"), "{message}")
        }
        other => panic!("expected InvalidData, got {other:?}"),
    }
    Ok(())
}

#[test]
fn approximate_search_finds_the_exact_best_match_for_most_queries() -> Result<()> {
    const COUNT: usize = 1_000;
    const DIMENSIONS: usize = 24;
    const QUERIES: usize = 200;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut random_vector = || {
        (0..DIMENSIONS)
            .map(|_| rng.f32() * 2.0 - 1.0)
            .collect::<Vec<f32>>()
    };
    let index = VectorStoreIndex::with_config(
        Arc::new(MockEmbedding::new(DIMENSIONS)),
        VectorIndexConfig {
            approximate_threshold: 0,
            ef_construction: 40,
            ef_search: 40,
            ..VectorIndexConfig::default()
        },
    );
    let nodes: Vec<Node> = (0..COUNT).map(|i| node(&format!("n{i}"))).collect();
    let vectors: Vec<Vec<f32>> = (0..COUNT).map(|_| random_vector()).collect();
    index.insert_embedded(nodes, vectors)?;

    let mut same_top1 = 0;
    let mut recall_at_10 = 0;
    for _ in 0..QUERIES {
        let query = random_vector();
        let exact = index.search_exact(&query, 10)?;
        let approximate = index.search_approximate(&query, 10)?;
        assert_eq!(approximate.len(), 10);
        assert!(approximate.windows(2).all(|w| w[0].score >= w[1].score));
        if approximate[0].node.id == exact[0].node.id {
            same_top1 += 1;
            assert_eq!(
                approximate[0].score, exact[0].score,
                "scores are exact cosines"
            );
        }
        recall_at_10 += approximate
            .iter()
            .filter(|a| exact.iter().any(|e| e.node.id == a.node.id))
            .count();
    }
    println!(
        "approximate search: top-1 agrees with exact search for {same_top1}/{QUERIES} queries, \
         recall@10 {:.3}",
        recall_at_10 as f64 / (QUERIES * 10) as f64
    );
    assert!(
        same_top1 * 10 >= QUERIES * 9,
        "top-1 agreement {same_top1}/{QUERIES}"
    );
    // top_k beyond ef_search falls back to exact search.
    let query = random_vector();
    let exact = index.search_exact(&query, 100)?;
    assert_eq!(index.search_approximate(&query, 100)?, exact);
    Ok(())
}
