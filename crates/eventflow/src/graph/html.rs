//! A self-contained HTML page of a workflow graph.
//!
//! The page carries its own layout (a small layered drawing in inline SVG) so it opens offline,
//! in CI artifacts and in bug reports, with nothing fetched and no JavaScript.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;

use super::text::{role_fill, slug};
use super::{Node, NodeId, WorkflowGraph};
use crate::event::EventRole;

const NODE_HEIGHT: f64 = 36.0;
const LAYER_GAP: f64 = 44.0;
const NODE_GAP: f64 = 36.0;
const MARGIN: f64 = 24.0;
/// A rough width of one character at the 13px label size, to size boxes without measuring text.
const CHAR_WIDTH: f64 = 7.4;

const STEP_FILL: &str = "#e8f0fe";
const STEP_STROKE: &str = "#1a73e8";

/// Where each node goes: its layer (row) and its centre, indexed like `graph.nodes`.
struct Layout {
    layer: Vec<usize>,
    layers: Vec<Vec<usize>>,
    width: Vec<f64>,
    centre: Vec<(f64, f64)>,
}

impl Layout {
    fn of(graph: &WorkflowGraph, ends: &[(usize, usize)]) -> Self {
        let layer = assign_layers(graph, ends);
        let mut layers = vec![Vec::new(); layer.iter().max().map_or(0, |max| max + 1)];
        for (index, &row) in layer.iter().enumerate() {
            layers[row].push(index);
        }
        reduce_crossings(&mut layers, &layer, ends);
        let width: Vec<f64> = graph.nodes.iter().map(node_width).collect();
        let row_width = |row: &[usize]| {
            row.iter().map(|&i| width[i]).sum::<f64>()
                + NODE_GAP * row.len().saturating_sub(1) as f64
        };
        let widest = layers.iter().map(|row| row_width(row)).fold(0.0, f64::max);
        let mut centre = vec![(0.0, 0.0); graph.nodes.len()];
        for (depth, row) in layers.iter().enumerate() {
            // Centring each row keeps a linear workflow a straight vertical line.
            let mut x = (widest - row_width(row)) / 2.0;
            let y = depth as f64 * (NODE_HEIGHT + LAYER_GAP) + NODE_HEIGHT / 2.0;
            for &i in row {
                centre[i] = (x + width[i] / 2.0, y);
                x += width[i] + NODE_GAP;
            }
        }
        Layout {
            layer,
            layers,
            width,
            centre,
        }
    }
}

/// Rows by BFS from the start event, so the drawing reads top to bottom in the order a run goes.
fn assign_layers(graph: &WorkflowGraph, ends: &[(usize, usize)]) -> Vec<usize> {
    let count = graph.nodes.len();
    let with_role = |role| (0..count).filter(move |&i| graph.nodes[i].role == Some(role));
    // A question for a human (outbound) leads to the answer (external) through the outside
    // world's node, so the answer is laid out below the question.
    let links = ends.to_vec();
    let mut layer: Vec<Option<usize>> = vec![None; count];
    let mut seeds: Vec<usize> = with_role(EventRole::Start).collect();
    let mut row = 0;
    loop {
        let mut queue: VecDeque<usize> = seeds.iter().copied().collect();
        for &seed in &seeds {
            layer[seed] = Some(row);
        }
        while let Some(node) = queue.pop_front() {
            for &(from, to) in &links {
                if from == node && layer[to].is_none() {
                    layer[to] = layer[node].map(|row| row + 1);
                    queue.push_back(to);
                }
            }
        }
        // Nodes only reached against the arrows (an event from outside that nothing emits) go
        // just above what they feed, not to the bottom.
        let mut changed = true;
        while changed {
            changed = false;
            for &(from, to) in &links {
                match (layer[from], layer[to]) {
                    (Some(row), None) => layer[to] = Some(row + 1),
                    (None, Some(row)) => layer[from] = Some(row.saturating_sub(1)),
                    _ => continue,
                }
                changed = true;
            }
        }
        // A part nothing links to the rest (or a hand-built graph without a start event) starts
        // over below, from a node nothing leads into if there is one.
        let unplaced: Vec<usize> = (0..count).filter(|&i| layer[i].is_none()).collect();
        let Some(&first) = unplaced.first() else {
            break;
        };
        let source = unplaced
            .iter()
            .copied()
            .find(|&i| links.iter().all(|&(_, to)| to != i));
        seeds = vec![source.unwrap_or(first)];
        row = layer.iter().flatten().max().map_or(0, |max| max + 1);
    }
    layer.into_iter().map(|row| row.unwrap_or(0)).collect()
}

/// One barycenter sweep down and one up: each node moves towards the mean position of its
/// neighbours in the adjacent row. Cheap, and enough for workflow-sized graphs.
fn reduce_crossings(layers: &mut [Vec<usize>], layer: &[usize], ends: &[(usize, usize)]) {
    let rows = layers.len();
    let down = (1..rows).map(|row| (row, row - 1));
    let up = (0..rows.saturating_sub(1)).rev().map(|row| (row, row + 1));
    for (row, fixed) in down.chain(up).collect::<Vec<_>>() {
        let position: HashMap<usize, f64> = layers[fixed]
            .iter()
            .enumerate()
            .map(|(at, &node)| (node, at as f64))
            .collect();
        let mut keyed: Vec<(f64, usize)> = layers[row]
            .iter()
            .enumerate()
            .map(|(at, &node)| {
                let near: Vec<f64> = ends
                    .iter()
                    .filter_map(|&(from, to)| {
                        let other = if from == node {
                            to
                        } else if to == node {
                            from
                        } else {
                            return None;
                        };
                        if layer[other] == fixed {
                            position.get(&other).copied()
                        } else {
                            None
                        }
                    })
                    .collect();
                // A node with no neighbour in the fixed row keeps its place.
                let key = match near.len() {
                    0 => at as f64,
                    n => near.iter().sum::<f64>() / n as f64,
                };
                (key, node)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        layers[row] = keyed.into_iter().map(|(_, node)| node).collect();
    }
}

fn workers_note(node: &Node) -> Option<String> {
    node.num_workers
        .filter(|&workers| workers != crate::step::DEFAULT_NUM_WORKERS)
        .map(|workers| format!("{workers} worker{}", if workers == 1 { "" } else { "s" }))
}

fn node_width(node: &Node) -> f64 {
    let chars = node
        .id
        .name()
        .chars()
        .count()
        .max(workers_note(node).map_or(0, |n| n.len()));
    (chars as f64 * CHAR_WIDTH + 32.0).max(96.0)
}

fn role_stroke(role: EventRole) -> &'static str {
    match role {
        EventRole::Start => "#188038",
        EventRole::Stop | EventRole::Terminal => "#d93025",
        EventRole::External | EventRole::Outbound => "#8430ce",
        EventRole::Plain | EventRole::Internal => "#f9ab00",
    }
}

fn role_name(role: EventRole) -> &'static str {
    match role {
        EventRole::Start => "start event",
        EventRole::Stop => "stop event",
        EventRole::Terminal => "terminal event",
        EventRole::External => "external event",
        EventRole::Outbound => "outbound event",
        EventRole::Plain => "event",
        EventRole::Internal => "internal event",
    }
}

/// Text safe in HTML and XML, in element content and in quoted attributes alike.
fn escape(text: &str) -> String {
    super::text::replace_chars(
        text,
        &[
            ('&', "&amp;"),
            ('<', "&lt;"),
            ('>', "&gt;"),
            ('"', "&quot;"),
            ('\'', "&#39;"),
        ],
    )
}

/// How an edge is drawn: its SVG path, where its count goes, and how far left and right it
/// reaches (to size the picture).
struct Route {
    d: String,
    label: (f64, f64),
    reach: (f64, f64),
}

/// A cubic Bézier through four points, labelled at its halfway point.
fn cubic(p: [(f64, f64); 4]) -> Route {
    let half = |k: fn((f64, f64)) -> f64| (k(p[0]) + 3.0 * k(p[1]) + 3.0 * k(p[2]) + k(p[3])) / 8.0;
    let xs = p.map(|q| q.0);
    let [a, b, c, d] = p.map(|(x, y)| format!("{x:.1},{y:.1}"));
    Route {
        d: format!("M{a} C{b} {c} {d}"),
        label: (half(|q| q.0), half(|q| q.1)),
        reach: (
            xs.into_iter().fold(f64::MAX, f64::min),
            xs.into_iter().fold(f64::MIN, f64::max),
        ),
    }
}

/// Spreads the ends of several edges along one side of a node, so their arrows and labels stay
/// apart instead of meeting in one point.
fn port(layout: &Layout, node: usize, slot: usize, slots: usize) -> f64 {
    let spacing = ((layout.width[node] - 40.0) / slots.max(2) as f64).min(18.0);
    layout.centre[node].0 + (slot as f64 - (slots as f64 - 1.0) / 2.0) * spacing
}

impl WorkflowGraph {
    /// The graph as a self-contained HTML page: a layered drawing in inline SVG (steps as
    /// rounded boxes, events as pills coloured by role), a legend, and the Mermaid text to copy.
    /// With a run's path (see [`WorkflowGraph::with_path`]), edges show how often they fired and
    /// edges not taken are dashed. Nothing is fetched and the page has no scripts.
    pub fn to_html(&self) -> String {
        let name = escape(&self.name);
        let has_path = self.edges.iter().any(|edge| edge.count.is_some());
        let steps = self
            .nodes
            .iter()
            .filter(|n| matches!(n.id, NodeId::Step(_)))
            .count();
        let events = self
            .nodes
            .iter()
            .filter(|n| matches!(n.id, NodeId::Event(_)))
            .count();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{name} · eventflow workflow</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
             <h1>{name}</h1>\n<p class=\"summary\">{steps} step{} · {events} event type{}{}</p>\n",
            plural(steps),
            plural(events),
            if has_path {
                " · with the path of one run"
            } else {
                ""
            },
        );
        out.push_str(&self.legend());
        out.push_str(&self.svg(has_path));
        let _ = write!(
            out,
            "<details>\n<summary>Mermaid source</summary>\n<pre>{}</pre>\n</details>\n</body>\n</html>\n",
            escape(&self.to_mermaid())
        );
        out
    }

    fn svg(&self, has_path: bool) -> String {
        let index: HashMap<_, _> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (&n.id, i))
            .collect();
        // A hand-built graph may name nodes it lacks; such edges cannot be drawn.
        let drawn: Vec<_> = self
            .edges
            .iter()
            .filter_map(|edge| Some((edge, (*index.get(&edge.from)?, *index.get(&edge.to)?))))
            .collect();
        let ends: Vec<(usize, usize)> = drawn.iter().map(|&(_, ends)| ends).collect();
        let layout = Layout::of(self, &ends);

        let mut min_x = 0.0_f64;
        let mut max_x = (0..self.nodes.len())
            .map(|i| layout.centre[i].0 + layout.width[i] / 2.0)
            .fold(0.0, f64::max);
        let mut loops = [0; 2];
        let (mut paths, mut labels) = (String::new(), String::new());
        for &(edge, (from, to)) in &drawn {
            let route = match layout.layer[to].cmp(&layout.layer[from]) {
                Ordering::Greater => downward(&layout, &ends, from, to),
                Ordering::Equal => sideways(&layout, from, to),
                Ordering::Less => upward(&layout, from, to, &mut loops),
            };
            min_x = min_x.min(route.reach.0);
            max_x = max_x.max(route.reach.1);
            let (class, marker) = match edge.count {
                Some(0) => ("edge unused", "arrow-unused"),
                Some(_) => ("edge fired", "arrow-fired"),
                None => ("edge", "arrow"),
            };
            let _ = writeln!(
                paths,
                "<path class=\"{class}\" marker-end=\"url(#{marker})\" d=\"{}\">\
                 <title>{} → {}</title></path>",
                route.d,
                escape(&edge.from.to_string()),
                escape(&edge.to.to_string()),
            );
            // Edges not taken are already dashed, as in the Mermaid text; "0×" would be clutter.
            if let Some(count @ 1..) = edge.count {
                let (x, y) = route.label;
                let _ = writeln!(
                    labels,
                    "<text class=\"count\" x=\"{x:.1}\" y=\"{y:.1}\">{count}×</text>"
                );
            }
        }

        let mut nodes = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            // With a run's path, nodes the run never touched fade so the path stands out.
            let idle = has_path
                && !drawn.iter().any(|&(edge, (from, to))| {
                    edge.count.unwrap_or(0) > 0 && (from == i || to == i)
                });
            nodes.push_str(&draw_node(node, &layout, i, idle));
        }

        let width = max_x - min_x + 2.0 * MARGIN;
        let height =
            layout.layers.len() as f64 * (NODE_HEIGHT + LAYER_GAP) - LAYER_GAP + 2.0 * MARGIN;
        format!(
            "<div class=\"graph\">\n<svg viewBox=\"{:.1} {:.1} {width:.1} {height:.1}\" \
             width=\"{width:.0}\" height=\"{height:.0}\" role=\"img\" aria-label=\"Graph of workflow {}\">\n\
             <defs>\n{}{}{}</defs>\n<g>\n{paths}</g>\n<g>\n{nodes}</g>\n<g>\n{labels}</g>\n</svg>\n</div>\n",
            min_x - MARGIN,
            -MARGIN,
            escape(&self.name),
            marker("arrow", "#5f6368"),
            marker("arrow-unused", "#bdc1c6"),
            marker("arrow-fired", "#1a73e8"),
        )
    }

    fn legend(&self) -> String {
        let swatch = |fill: &str, stroke: &str, radius: &str, label: &str| {
            format!(
                "<li><span class=\"swatch\" style=\"background:{fill};border-color:{stroke};\
                 border-radius:{radius}\"></span>{label}</li>\n"
            )
        };
        let mut out = String::from("<ul class=\"legend\">\n");
        if self.nodes.iter().any(|n| matches!(n.id, NodeId::Step(_))) {
            out.push_str(&swatch(STEP_FILL, STEP_STROKE, "4px", "step"));
        }
        if self.nodes.iter().any(|n| n.id == NodeId::Outside) {
            out.push_str(&swatch(
                role_fill(EventRole::External),
                role_stroke(EventRole::External),
                "1px",
                OUTSIDE,
            ));
        }
        // External and outbound events share a colour, as do stop and terminal ones.
        let groups: [&[EventRole]; 4] = [
            &[EventRole::Start],
            &[EventRole::Plain],
            &[EventRole::External, EventRole::Outbound],
            &[EventRole::Stop, EventRole::Terminal],
        ];
        for group in groups {
            let present: Vec<&str> = group
                .iter()
                .filter(|&&role| self.nodes.iter().any(|n| n.role == Some(role)))
                .map(|&role| role_name(role))
                .collect();
            if !present.is_empty() {
                let label = present.join(" / ");
                out.push_str(&swatch(
                    role_fill(group[0]),
                    role_stroke(group[0]),
                    "8px",
                    &label,
                ));
            }
        }
        if self.edges.iter().any(|e| e.count.unwrap_or(0) > 0) {
            out.push_str("<li><span class=\"line\"></span><b>n×</b>&nbsp;fired n times</li>\n");
        }
        if self.edges.iter().any(|e| e.count == Some(0)) {
            out.push_str("<li><span class=\"line unused\"></span>not taken</li>\n");
        }
        out.push_str("</ul>\n");
        out
    }
}

/// An edge to a lower row: out of the bottom of one node, into the top of the other.
fn downward(layout: &Layout, ends: &[(usize, usize)], from: usize, to: usize) -> Route {
    let down = |&&(a, b): &&(usize, usize)| layout.layer[b] > layout.layer[a];
    let outs = sorted_by_x(
        layout,
        ends.iter()
            .filter(down)
            .filter(|e| e.0 == from)
            .map(|e| e.1),
    );
    let ins = sorted_by_x(
        layout,
        ends.iter().filter(down).filter(|e| e.1 == to).map(|e| e.0),
    );
    let slot = |list: &[usize], node| list.iter().position(|&n| n == node).unwrap_or(0);
    let x0 = port(layout, from, slot(&outs, to), outs.len());
    let x1 = port(layout, to, slot(&ins, from), ins.len());
    let y0 = layout.centre[from].1 + NODE_HEIGHT / 2.0;
    let y1 = layout.centre[to].1 - NODE_HEIGHT / 2.0;
    let bend = (y1 - y0) / 2.0;
    cubic([(x0, y0), (x0, y0 + bend), (x1, y1 - bend), (x1, y1)])
}

/// An edge within a row: straight across between neighbours, else a dip under the nodes between.
fn sideways(layout: &Layout, from: usize, to: usize) -> Route {
    let ((x0, y), (x1, _)) = (layout.centre[from], layout.centre[to]);
    let row = &layout.layers[layout.layer[from]];
    let at = |node| row.iter().position(|&n| n == node).unwrap_or(0);
    if at(from).abs_diff(at(to)) == 1 {
        let sign = if x1 > x0 { 1.0 } else { -1.0 };
        let (a, b) = (
            x0 + sign * layout.width[from] / 2.0,
            x1 - sign * layout.width[to] / 2.0,
        );
        let mut route = cubic([(a, y), (a, y), (b, y), (b, y)]);
        // Above the line, clear of the short arrow.
        route.label.1 -= 10.0;
        return route;
    }
    let (bottom, dip) = (
        y + NODE_HEIGHT / 2.0,
        y + NODE_HEIGHT / 2.0 + LAYER_GAP * 0.6,
    );
    cubic([(x0, bottom), (x0, dip), (x1, dip), (x1, bottom)])
}

/// An edge back up (a loop): out of the side of one node, up a straight run outside every row
/// it spans, and into the side of the other, so it never hides behind a node. Each further loop
/// on a side runs a little further out.
fn upward(layout: &Layout, from: usize, to: usize, loops: &mut [usize; 2]) -> Route {
    let spanned = || {
        layout.layers[layout.layer[to]..=layout.layer[from]]
            .iter()
            .flatten()
    };
    let left = spanned()
        .map(|&i| layout.centre[i].0 - layout.width[i] / 2.0)
        .fold(f64::MAX, f64::min);
    let right = spanned()
        .map(|&i| layout.centre[i].0 + layout.width[i] / 2.0)
        .fold(f64::MIN, f64::max);
    // The side with fewer nodes to cross on the way out of either end; then the nearer one.
    let beside = |node: usize, rightwards: bool| {
        let row = &layout.layers[layout.layer[node]];
        let at = row.iter().position(|&n| n == node).unwrap_or(0);
        if rightwards { row.len() - 1 - at } else { at }
    };
    let crossings = |rightwards| beside(from, rightwards) + beside(to, rightwards);
    let middle = (layout.centre[from].0 + layout.centre[to].0) / 2.0;
    let go_right = (crossings(true), right - middle) <= (crossings(false), middle - left);
    let side = usize::from(go_right);
    loops[side] += 1;
    let sign = if go_right { 1.0 } else { -1.0 };
    let x = if go_right { right } else { left } + sign * (16.0 + 14.0 * loops[side] as f64);
    let x0 = layout.centre[from].0 + sign * layout.width[from] / 2.0;
    let x1 = layout.centre[to].0 + sign * layout.width[to] / 2.0;
    let (y0, y1) = (layout.centre[from].1, layout.centre[to].1);
    let r = 10.0_f64.min((y0 - y1) / 2.0);
    let turn = x - sign * r;
    Route {
        d: format!(
            "M{x0:.1},{y0:.1} H{turn:.1} Q{x:.1},{y0:.1} {x:.1},{:.1} V{:.1} Q{x:.1},{y1:.1} {turn:.1},{y1:.1} H{x1:.1}",
            y0 - r,
            y1 + r
        ),
        label: (x, (y0 + y1) / 2.0),
        reach: (x.min(x0), x.max(x0)),
    }
}

/// What the outside world's node is called in the drawing.
const OUTSIDE: &str = "outside world (a human, another system)";

fn draw_node(node: &Node, layout: &Layout, i: usize, idle: bool) -> String {
    let (cx, cy) = layout.centre[i];
    let (w, h) = (layout.width[i], NODE_HEIGHT);
    let (fill, stroke, radius, kind) = match (&node.id, node.role) {
        (NodeId::Outside, _) => (
            role_fill(EventRole::External),
            role_stroke(EventRole::External),
            2.0,
            OUTSIDE,
        ),
        (_, None) => (STEP_FILL, STEP_STROKE, 8.0, "step"),
        (_, Some(role)) => (role_fill(role), role_stroke(role), h / 2.0, role_name(role)),
    };
    let name = escape(node.id.name());
    let note = workers_note(node);
    let mut out = format!(
        "<g class=\"node{}\" id=\"{}\"><title>{kind}: {name}{}</title>\n\
         <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"{radius:.1}\" \
         fill=\"{fill}\" stroke=\"{stroke}\"/>\n",
        if idle { " idle" } else { "" },
        slug(&node.id),
        note.as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        cx - w / 2.0,
        cy - h / 2.0,
    );
    let name_y = if note.is_some() { cy - 6.0 } else { cy };
    let _ = writeln!(out, "<text x=\"{cx:.1}\" y=\"{name_y:.1}\">{name}</text>");
    if let Some(note) = note {
        let _ = writeln!(
            out,
            "<text class=\"note\" x=\"{cx:.1}\" y=\"{:.1}\">{note}</text>",
            cy + 10.0
        );
    }
    out.push_str("</g>\n");
    out
}

fn sorted_by_x(layout: &Layout, nodes: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut nodes: Vec<usize> = nodes.collect();
    nodes.sort_by(|&a, &b| layout.centre[a].0.total_cmp(&layout.centre[b].0));
    nodes
}

fn marker(id: &str, colour: &str) -> String {
    format!(
        "<marker id=\"{id}\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"9\" markerHeight=\"9\" markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"{colour}\"/></marker>\n"
    )
}

const STYLE: &str = "body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px; color: #202124; }
h1 { font-size: 22px; margin: 0 0 4px; }
.summary { color: #5f6368; margin: 0 0 12px; }
.legend { list-style: none; padding: 0; margin: 0 0 16px; display: flex; flex-wrap: wrap; gap: 8px 20px; font-size: 13px; }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 28px; height: 14px; border: 1.5px solid; }
.line { display: inline-block; width: 28px; border-top: 3px solid #1a73e8; }
.line.unused { border-top: 1.5px dashed #bdc1c6; }
.graph { display: inline-block; max-width: calc(100% - 18px); overflow: auto; border: 1px solid #dadce0; border-radius: 8px; padding: 8px; background: #fff; }
svg text { font-size: 13px; text-anchor: middle; dominant-baseline: central; fill: #202124; }
svg text.note { font-size: 10px; fill: #5f6368; }
svg rect { stroke-width: 1.5; }
.node.idle { opacity: 0.45; }
.edge { fill: none; stroke: #5f6368; stroke-width: 1.5; }
.edge.unused { stroke: #bdc1c6; stroke-dasharray: 5 4; }
.edge.fired { stroke: #1a73e8; stroke-width: 2.75; }
text.count { font-size: 12px; font-weight: 600; fill: #1a73e8; paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
details { margin-top: 16px; }
pre { background: #f8f9fa; border: 1px solid #dadce0; border-radius: 6px; padding: 12px; overflow: auto; font-size: 12px; }
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Edge;

    fn step(name: &str) -> Node {
        Node {
            id: NodeId::Step(name.into()),
            role: None,
            num_workers: Some(crate::step::DEFAULT_NUM_WORKERS),
        }
    }

    fn event(name: &str, role: EventRole) -> Node {
        Node {
            id: NodeId::Event(name.into()),
            role: Some(role),
            num_workers: None,
        }
    }

    fn edge(from: &Node, to: &Node) -> Edge {
        Edge {
            from: from.id.clone(),
            to: to.id.clone(),
            count: None,
        }
    }

    /// start -> gen -> check -> {refine -> gen (loop), stop}, and an external event into check
    /// plus an island nothing connects.
    fn refinement() -> WorkflowGraph {
        let (start, stop) = (
            event("Start", EventRole::Start),
            event("Stop", EventRole::Stop),
        );
        let (generate, check) = (step("gen"), step("check"));
        let (draft, refine) = (
            event("Draft", EventRole::Plain),
            event("Refine", EventRole::Plain),
        );
        let human = event("Human", EventRole::External);
        let island = event("Island", EventRole::Plain);
        let edges = vec![
            edge(&start, &generate),
            edge(&refine, &generate),
            edge(&generate, &draft),
            edge(&draft, &check),
            edge(&human, &check),
            edge(&check, &refine),
            edge(&check, &stop),
        ];
        WorkflowGraph {
            name: "refine".into(),
            nodes: vec![generate, check, start, stop, draft, refine, human, island],
            edges,
        }
    }

    fn layers_by_name(graph: &WorkflowGraph) -> HashMap<String, usize> {
        let index: HashMap<_, _> = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (&n.id, i))
            .collect();
        let ends: Vec<_> = graph
            .edges
            .iter()
            .map(|e| (index[&e.from], index[&e.to]))
            .collect();
        let layer = assign_layers(graph, &ends);
        graph
            .nodes
            .iter()
            .map(|n| n.id.name().to_owned())
            .zip(layer)
            .collect()
    }

    #[test]
    fn layers_follow_the_run_from_the_start_event() {
        let layers = layers_by_name(&refinement());
        assert_eq!(layers["Start"], 0);
        assert_eq!(layers["gen"], 1);
        assert_eq!(layers["Draft"], 2);
        assert_eq!(layers["check"], 3);
        assert_eq!(layers["Refine"], 4);
        assert_eq!(layers["Stop"], 4);
        // Fed from outside: drawn just above its consumer, not below everything.
        assert_eq!(layers["Human"], 2);
        assert_eq!(layers["Island"], 5);
    }

    #[test]
    fn loops_are_curved_around_the_side_and_labels_escaped() {
        let mut graph = refinement();
        graph.name = "a<b & \"c\"".into();
        let html = graph.to_html();
        assert!(
            html.contains("<h1>a&lt;b &amp; &quot;c&quot;</h1>"),
            "{html}"
        );
        assert_eq!(
            html.matches("<path class=\"edge\"").count(),
            graph.edges.len()
        );
        // The loop Refine -> gen runs straight up outside every node's box.
        let looped = html
            .lines()
            .find(|l| l.contains("event:Refine → step:gen"))
            .unwrap();
        let run: f64 = looped
            .split(" Q")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(looped.contains(" V"), "{looped}");
        let attr = |line: &str, name: &str| -> f64 {
            let rest = line.split(&format!(" {name}=\"")).nth(1).unwrap();
            rest.split('"').next().unwrap().parse().unwrap()
        };
        for rect in html.lines().filter(|l| l.starts_with("<rect ")) {
            let (x, width) = (attr(rect, "x"), attr(rect, "width"));
            assert!(run < x || run > x + width, "{looped} crosses {rect}");
        }
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
