//! The engine's modules import one way: event → step → workflow/graph → reducer → executor →
//! {memory loop, durable loop}, with no cycle.
//!
//! This test reads the crate's own source with `syn`, finds for each module the others it
//! refers to through paths (`crate::…`, `super::…`, `self::…`, a child module's name) in code
//! that is compiled outside tests, and checks the result against [`LAYERS`]. A name used through
//! a re-export (`crate::StopEvent`, `crate::run::Tick`) counts as a use of the module that
//! defines it. `docs/ARCHITECTURE.md` draws the same layers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Attribute, Item, Meta, Token, UseTree, Visibility};

/// The engine's layers, lowest first. A module may refer only to modules of lower layers (not
/// to its own layer's other modules). `run` and `durable` are split into their files, because
/// the reducer, the executor, the loops, the worker and the engine's handle are layers of their
/// own; `run` and `durable` alone name their `mod.rs`, which only declare and re-export (uses
/// through a re-export count for the defining file).
const LAYERS: &[&[&str]] = &[
    // Leaves: events and their JSON form; the typed errors of reading recorded runs; the verbose
    // mode's tracing layer.
    &["event", "replay", "verbose"],
    // A step's handle on its run, which reaches the run through a trait (`context::RunAccess`)
    // rather than naming it. (The store is a crate of its own, `eventflow-store`, below all.)
    &["context"],
    &["step"],
    // WorkflowError and the validation errors it holds.
    &["error"],
    &["workflow"],
    &["graph"],
    // The reducer, and the locks the mailbox and the stream log are built on.
    &["run::reducer", "run::sync"],
    &["run::snapshot", "run::stream"],
    &["run::message"],
    &["run::inbox"],
    // What a run's driver, contexts and handler share (implements `context::RunAccess`).
    &["run::shared"],
    // A run's context state as a caller's value, carried from run to run.
    &["run::context"],
    &["run::handler"],
    &["run::end"],
    &["run::executor"],
    // The in-memory loop over the executor; the durable side's leaves (its errors, the commit
    // hook's types, journal entries, readers' wake-ups).
    &[
        "run::in_memory",
        "durable::error",
        "durable::hook",
        "durable::journal",
        "durable::watch",
    ],
    // Run ids from outside; the journal writer.
    &["durable::run_id", "durable::recorder"],
    // The durable loop over the executor (journal -> apply -> commit -> execute); rebuilding a
    // run from what the journal writer stored.
    &["durable::run_loop", "durable::rebuild"],
    // The worker: claims, heartbeats, driving claimed runs.
    &["durable::worker"],
    // The engine's handle, then what builds it and the server's queries on it.
    &["durable::engine"],
    &["durable::builder", "durable::queries"],
    // The facades that only declare and re-export their files.
    &["durable", "run"],
];

/// Top-level modules whose files are layered one by one.
const SPLIT: &[&str] = &["run", "durable"];

/// A reference from one module to another, with where it was seen.
#[derive(Clone, Debug)]
struct Evidence {
    file: String,
    path: String,
}

/// What the source says: the modules, and who refers to whom.
#[derive(Debug, Default)]
struct Crate {
    /// Every module's path (`[]` for the crate root).
    modules: BTreeSet<Vec<String>>,
    /// Top-level modules declared inline in the crate root (`prelude`): part of the root.
    inline_top: BTreeSet<String>,
    /// For each module, the names its `use` items bring in, and the paths they name (several
    /// when a name is in two namespaces: the trait `Event` and the derive macro `Event`).
    aliases: HashMap<Vec<String>, HashMap<String, Vec<Vec<String>>>>,
    /// Raw references: the module they are in, the path as written, and where.
    refs: Vec<(Vec<String>, Vec<String>, Evidence)>,
}

/// The module graph: for each node, the nodes it refers to and one place that shows it.
type Graph = BTreeMap<String, BTreeMap<String, Evidence>>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Reads the crate whose root is `src/lib.rs` under `src`.
fn read_crate(src: &Path) -> Crate {
    let mut krate = Crate::default();
    read_module(&mut krate, src, &src.join("lib.rs"), src, Vec::new());
    krate
}

/// Reads the module in `file` (its children's files are under `dir`).
fn read_module(krate: &mut Crate, src: &Path, file: &Path, dir: &Path, path: Vec<String>) {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
    let parsed = syn::parse_file(&text)
        .unwrap_or_else(|error| panic!("cannot parse {}: {error}", file.display()));
    let shown = file
        .strip_prefix(src.parent().expect("src has a parent"))
        .unwrap_or(file)
        .display()
        .to_string();
    read_items(krate, src, &shown, &parsed.items, dir, path);
}

fn read_items(
    krate: &mut Crate,
    src: &Path,
    file: &str,
    items: &[Item],
    dir: &Path,
    path: Vec<String>,
) {
    krate.modules.insert(path.clone());
    for item in items {
        if test_only(item_attrs(item)) {
            continue;
        }
        match item {
            Item::Mod(module) => {
                let name = module.ident.to_string();
                let mut child = path.clone();
                child.push(name.clone());
                match &module.content {
                    Some((_, items)) => {
                        if path.is_empty() {
                            krate.inline_top.insert(name.clone());
                        }
                        read_items(krate, src, file, items, &dir.join(&name), child);
                    }
                    None => {
                        let flat = dir.join(format!("{name}.rs"));
                        let (child_file, child_dir) = if flat.exists() {
                            (flat, dir.join(&name))
                        } else {
                            (dir.join(&name).join("mod.rs"), dir.join(&name))
                        };
                        read_module(krate, src, &child_file, &child_dir, child);
                    }
                }
            }
            Item::Use(item_use) => {
                let mut leaves = Vec::new();
                use_leaves(&item_use.tree, &mut Vec::new(), &mut leaves);
                let aliases = krate.aliases.entry(path.clone()).or_default();
                for (name, target) in &leaves {
                    if let Some(name) = name {
                        aliases
                            .entry(name.clone())
                            .or_default()
                            .push(target.clone());
                    }
                }
                // A re-export (`pub use`, `pub(crate) use`) only names an item for others: the
                // code that uses the name is charged for it, through the alias.
                if matches!(item_use.vis, Visibility::Inherited) {
                    for (_, target) in leaves {
                        let evidence = Evidence {
                            file: file.to_owned(),
                            path: target.join("::"),
                        };
                        krate.refs.push((path.clone(), target, evidence));
                    }
                }
            }
            other => {
                let mut collector = PathCollector { paths: Vec::new() };
                collector.visit_item(other);
                for target in collector.paths {
                    let evidence = Evidence {
                        file: file.to_owned(),
                        path: target.join("::"),
                    };
                    krate.refs.push((path.clone(), target, evidence));
                }
            }
        }
    }
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Whether a `#[cfg(..)]` among `attrs` compiles the item only in tests.
fn test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<Meta>()
                .is_ok_and(|predicate| outside_tests(&predicate) == Some(false))
    })
}

/// Whether a cfg predicate holds in a build that is not a test: `Some(false)` when it surely
/// does not, `None` when it depends on other settings (features, `eventflow_loom`).
fn outside_tests(predicate: &Meta) -> Option<bool> {
    let nested = |list: &syn::MetaList| {
        list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
            .map(|metas| metas.into_iter().map(|m| outside_tests(&m)).collect())
            .unwrap_or_else(|_| vec![None])
    };
    match predicate {
        Meta::Path(path) if path.is_ident("test") => Some(false),
        Meta::List(list) if list.path.is_ident("not") => nested(list)
            .first()
            .copied()
            .flatten()
            .map(|value: bool| !value),
        Meta::List(list) if list.path.is_ident("all") => {
            let values: Vec<Option<bool>> = nested(list);
            if values.contains(&Some(false)) {
                Some(false)
            } else if values.iter().all(|v| *v == Some(true)) {
                Some(true)
            } else {
                None
            }
        }
        Meta::List(list) if list.path.is_ident("any") => {
            let values: Vec<Option<bool>> = nested(list);
            if values.contains(&Some(true)) {
                Some(true)
            } else if values.iter().all(|v| *v == Some(false)) {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The paths a `use` tree names, each with the name it brings in (none for a glob, whose
/// path ends at the module).
fn use_leaves(
    tree: &UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Option<String>, Vec<String>)>,
) {
    match tree {
        UseTree::Path(path) => {
            prefix.push(path.ident.to_string());
            use_leaves(&path.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(name) => {
            let ident = name.ident.to_string();
            let mut full = prefix.clone();
            if ident == "self" {
                let last = full.last().cloned();
                out.push((last, full));
            } else {
                full.push(ident.clone());
                out.push((Some(ident), full));
            }
        }
        UseTree::Rename(rename) => {
            let mut full = prefix.clone();
            let ident = rename.ident.to_string();
            if ident != "self" {
                full.push(ident);
            }
            out.push((Some(rename.rename.to_string()), full));
        }
        UseTree::Glob(_) => out.push((None, prefix.clone())),
        UseTree::Group(group) => {
            for tree in &group.items {
                use_leaves(tree, prefix, out);
            }
        }
    }
}

/// Collects the paths in an item's code, skipping nested items compiled only in tests.
struct PathCollector {
    paths: Vec<Vec<String>>,
}

impl<'ast> Visit<'ast> for PathCollector {
    fn visit_item(&mut self, item: &'ast Item) {
        if !test_only(item_attrs(item)) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs: &[Attribute] = match item {
            syn::ImplItem::Fn(f) => &f.attrs,
            syn::ImplItem::Const(c) => &c.attrs,
            syn::ImplItem::Type(t) => &t.attrs,
            _ => &[],
        };
        if !test_only(attrs) {
            syn::visit::visit_impl_item(self, item);
        }
    }

    // A `use` inside a function body: its paths are trees, not `Path`s, to syn.
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut leaves = Vec::new();
        use_leaves(&item.tree, &mut Vec::new(), &mut leaves);
        self.paths.extend(leaves.into_iter().map(|(_, path)| path));
    }

    // `pub(super)`, `pub(in crate::x)` say who may see an item, not what it uses.
    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            self.paths
                .push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, path);
    }

    // Macro arguments are tokens to syn; a `crate::…` path among them is code all the same.
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        scan_tokens(mac.tokens.clone(), &mut self.paths);
        syn::visit::visit_macro(self, mac);
    }
}

/// Finds `crate::a::b`, `super::a`, `self::a` sequences in macro tokens.
fn scan_tokens(tokens: TokenStream, out: &mut Vec<Vec<String>>) {
    let mut flat = Vec::new();
    flatten(tokens, &mut flat);
    let mut i = 0;
    while i < flat.len() {
        if let TokenTree::Ident(start) = &flat[i] {
            let start = start.to_string();
            if matches!(start.as_str(), "crate" | "super" | "self") {
                let mut path = vec![start];
                let mut j = i + 1;
                while let (
                    Some(TokenTree::Punct(a)),
                    Some(TokenTree::Punct(b)),
                    Some(TokenTree::Ident(next)),
                ) = (flat.get(j), flat.get(j + 1), flat.get(j + 2))
                {
                    if a.as_char() != ':' || b.as_char() != ':' {
                        break;
                    }
                    path.push(next.to_string());
                    j += 3;
                }
                if path.len() > 1 {
                    out.push(path);
                }
                i = j;
                continue;
            }
        }
        i += 1;
    }
}

fn flatten(tokens: TokenStream, out: &mut Vec<TokenTree>) {
    for token in tokens {
        match token {
            TokenTree::Group(group) => flatten(group.stream(), out),
            other => out.push(other),
        }
    }
}

impl Crate {
    /// The absolute path `written` names in module `at`, or `None` for a path outside the
    /// crate (another crate, a local name).
    fn absolute(&self, at: &[String], written: &[String]) -> Option<Vec<String>> {
        let (first, rest) = written.split_first()?;
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "self" => Some(at.iter().chain(rest).cloned().collect()),
            "super" => {
                let mut base = at.to_vec();
                base.pop();
                let mut rest = rest;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                Some(base.into_iter().chain(rest.iter().cloned()).collect())
            }
            _ => {
                let mut child = at.to_vec();
                child.push(first.clone());
                if self.modules.contains(&child) {
                    return Some(at.iter().chain(written).cloned().collect());
                }
                // A name brought in by a `use` of this module (`Tick::Emit` after `use
                // crate::run::Tick`) is charged to that `use` already.
                None
            }
        }
    }

    /// The module that defines what `path` (absolute) names: through modules, then through
    /// the aliases (`use` items) of the module where the module part ends.
    fn defining_module(&self, path: &[String], depth: usize) -> Vec<String> {
        let mut module = Vec::new();
        for (index, segment) in path.iter().enumerate() {
            let mut next = module.clone();
            next.push(segment.clone());
            if self.modules.contains(&next) {
                module = next;
                continue;
            }
            // The first of the name's targets that is in this crate.
            let targets = self.aliases.get(&module).and_then(|a| a.get(segment));
            if depth < 16
                && let Some(found) = targets.into_iter().flatten().find_map(|target| {
                    let target: Vec<String> = self
                        .absolute(&module, target)
                        .unwrap_or_else(|| target.clone())
                        .into_iter()
                        .chain(path[index + 1..].iter().cloned())
                        .collect();
                    let found = self.defining_module(&target, depth + 1);
                    (!found.is_empty()).then_some(found)
                })
            {
                return found;
            }
            break;
        }
        module
    }

    /// The graph node a module belongs to: its top-level module, or for a [`SPLIT`] one, its
    /// file. `None` for the crate root and what is declared inline in it (`prelude`).
    fn node(&self, module: &[String]) -> Option<String> {
        let top = module.first()?;
        if self.inline_top.contains(top) {
            return None;
        }
        match module.get(1) {
            Some(file) if SPLIT.contains(&top.as_str()) => Some(format!("{top}::{file}")),
            _ => Some(top.clone()),
        }
    }

    /// Every module's node, and the references between different nodes.
    fn graph(&self) -> Graph {
        let mut graph = Graph::new();
        for module in &self.modules {
            if let Some(node) = self.node(module) {
                graph.entry(node).or_default();
            }
        }
        for (at, written, evidence) in &self.refs {
            let Some(from) = self.node(at) else { continue };
            let Some(target) = self.absolute(at, written) else {
                continue;
            };
            let Some(to) = self.node(&self.defining_module(&target, 0)) else {
                continue;
            };
            if from != to {
                graph
                    .entry(from)
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| evidence.clone());
            }
        }
        graph
    }
}

/// A cycle of the graph, as its nodes in order (the first repeated at the end), if any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        graph: &Graph,
        node: &str,
        marks: &mut HashMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack
                    .iter()
                    .position(|n| n == node)
                    .expect("open is on the stack");
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(cycle) = visit(graph, next, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut marks, &mut Vec::new()))
}

/// The cycle, each step with the file and path that make it.
fn describe_cycle(graph: &Graph, cycle: &[String]) -> String {
    let mut text = format!(
        "the engine's modules import each other in a cycle: {}",
        cycle.join(" -> ")
    );
    for pair in cycle.windows(2) {
        let evidence = &graph[&pair[0]][&pair[1]];
        let _ = write!(
            text,
            "\n  {} -> {}: {} refers to {}",
            pair[0], pair[1], evidence.file, evidence.path
        );
    }
    text
}

fn layer_of(node: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&node))
}

/// Every edge that does not point to a lower layer, explained.
fn wrong_way_edges(graph: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for (from, edges) in graph {
        for (to, evidence) in edges {
            let (Some(from_layer), Some(to_layer)) = (layer_of(from), layer_of(to)) else {
                continue;
            };
            if to_layer >= from_layer {
                let relation = if to_layer == from_layer {
                    "in the same layer"
                } else {
                    "above it"
                };
                problems.push(format!(
                    "`{from}` (layer {from_layer}) refers to `{to}` (layer {to_layer}), which is {relation}: {} refers to {}",
                    evidence.file, evidence.path
                ));
            }
        }
    }
    problems
}

#[test]
fn the_engine_has_no_import_cycle() {
    let graph = read_crate(&src_dir()).graph();
    if let Some(cycle) = find_cycle(&graph) {
        panic!("{}", describe_cycle(&graph, &cycle));
    }
}

#[test]
fn every_import_points_down_the_layers() {
    let graph = read_crate(&src_dir()).graph();
    let problems = wrong_way_edges(&graph);
    assert!(
        problems.is_empty(),
        "modules must refer only to lower layers (LAYERS in tests/architecture.rs, drawn in \
         docs/ARCHITECTURE.md); move the code so the reference points down, or change the \
         design and both of those:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_layers_name_every_module_once() {
    let graph = read_crate(&src_dir()).graph();
    let nodes: BTreeSet<&str> = graph.keys().map(String::as_str).collect();
    let listed: Vec<&str> = LAYERS
        .iter()
        .flat_map(|layer| layer.iter().copied())
        .collect();
    let unplaced: Vec<&&str> = nodes.iter().filter(|n| !listed.contains(n)).collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from LAYERS: {unplaced:?}"
    );
    let unknown: Vec<&&str> = listed.iter().filter(|n| !nodes.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "LAYERS names modules that do not exist: {unknown:?}"
    );
    let distinct: BTreeSet<&&str> = listed.iter().collect();
    assert_eq!(distinct.len(), listed.len(), "LAYERS names a module twice");
}

/// The check sees what it must: on a made-up crate whose two modules refer to each other —
/// one through a re-export at the crate root, one from a child file through `super::`, one
/// in a macro, one in a function's `use` — it finds the cycle, and ignores a test module's
/// reference and a visibility.
#[test]
fn the_check_finds_a_cycle_through_reexports_children_and_macros() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("b")).expect("src/b");
    let write = |file: &str, text: &str| std::fs::write(src.join(file), text).expect("write");
    write(
        "lib.rs",
        "mod a; mod b; mod c; pub use a::Alpha; pub mod prelude { pub use crate::c::*; }",
    );
    // `pub(in crate::c)` is a visibility, not a use of `c`.
    write(
        "a.rs",
        "pub struct Alpha; pub fn f() { let _ = crate::b::beta(); } pub(in crate::c) struct D;",
    );
    write(
        "b/mod.rs",
        "mod inner; pub fn beta() { use crate::c::h as _; }",
    );
    write(
        "b/inner.rs",
        "use super::super::Alpha; pub fn g(_: Alpha) {}",
    );
    write(
        "c.rs",
        "pub fn h() { println!(\"{:?}\", crate::a::f()); }\n\
         #[cfg(test)] mod tests { use crate::b::beta; }",
    );
    let graph = read_crate(&src).graph();
    let edges = |node: &str| graph[node].keys().cloned().collect::<Vec<_>>();
    assert_eq!(edges("a"), ["b"]);
    assert_eq!(
        edges("b"),
        ["a", "c"],
        "b/inner.rs reaches a through the root's re-export; b/mod.rs uses c inside a function"
    );
    assert_eq!(
        edges("c"),
        ["a"],
        "the macro's path counts, the test module's does not"
    );
    let cycle = find_cycle(&graph).expect("a and b form a cycle");
    assert_eq!(cycle, ["a", "b", "a"]);
    let message = describe_cycle(&graph, &cycle);
    assert!(message.contains("a -> b -> a"), "{message}");
    assert!(message.contains("src/b/inner.rs refers to"), "{message}");
}
