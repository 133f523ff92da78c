//! Prometheus metrics, written in the text exposition format by hand.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds of the request duration histogram, in seconds.
const REQUEST_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Upper bounds of the step duration histogram, in seconds: steps run from microseconds (pure
/// computation) to minutes (model calls, tools).
const STEP_BUCKETS: [f64; 15] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A Prometheus histogram over the upper bounds `N` of a bucket list (cumulative counts).
struct Histogram<const N: usize> {
    counts: [u64; N],
    count: u64,
    sum: f64,
}

impl<const N: usize> Default for Histogram<N> {
    fn default() -> Self {
        Histogram {
            counts: [0; N],
            count: 0,
            sum: 0.0,
        }
    }
}

impl<const N: usize> Histogram<N> {
    fn observe(&mut self, bounds: &[f64; N], seconds: f64) {
        for (count, bound) in self.counts.iter_mut().zip(bounds) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// The `_bucket`, `_sum` and `_count` lines of the histogram `name` with `labels`.
    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64; N]) {
        for (count, bound) in self.counts.iter().zip(bounds) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// What the engine reported about one step, by workflow and step.
#[derive(Default)]
struct StepStats {
    completed: u64,
    failed: u64,
    durations: Histogram<{ STEP_BUCKETS.len() }>,
}

/// The server's counters; cluster-wide gauges are read from the store at scrape time.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    durations: Mutex<BTreeMap<(String, String), Histogram<{ REQUEST_BUCKETS.len() }>>>,
    runs_started: Mutex<BTreeMap<String, u64>>,
    runs_finished: Mutex<BTreeMap<(String, String), u64>>,
    steps: Mutex<BTreeMap<(String, String), StepStats>>,
    streams: AtomicI64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub(crate) fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        *lock(&self.requests)
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        lock(&self.durations)
            .entry((method.to_owned(), route.to_owned()))
            .or_default()
            .observe(&REQUEST_BUCKETS, took.as_secs_f64());
    }

    pub(crate) fn run_started(&self, workflow: &str) {
        *lock(&self.runs_started)
            .entry(workflow.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn run_finished(&self, workflow: &str, status: &str) {
        *lock(&self.runs_finished)
            .entry((workflow.to_owned(), status.to_owned()))
            .or_default() += 1;
    }

    /// An attempt of `step` of a run of `workflow` ended after `took`: completed, or `failed`
    /// (it may be retried).
    pub(crate) fn step_attempt(&self, workflow: &str, step: &str, took: Duration, failed: bool) {
        let mut steps = lock(&self.steps);
        let stats = steps
            .entry((workflow.to_owned(), step.to_owned()))
            .or_default();
        if failed {
            stats.failed += 1;
        } else {
            stats.completed += 1;
        }
        stats.durations.observe(&STEP_BUCKETS, took.as_secs_f64());
    }

    pub(crate) fn stream_opened(self: &Arc<Self>) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    /// The exposition text; `runs` (status -> count) and `queue_depth` come from the store.
    pub(crate) fn render(&self, runs: &BTreeMap<&'static str, u64>, queue_depth: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP eventflow_http_requests_total HTTP requests answered, by route and status."
        );
        let _ = writeln!(out, "# TYPE eventflow_http_requests_total counter");
        for ((method, route, status), count) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "eventflow_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                label(method),
                label(route)
            );
        }
        let _ = writeln!(
            out,
            "# HELP eventflow_http_request_duration_seconds Time to answer HTTP requests (streams: until headers)."
        );
        let _ = writeln!(
            out,
            "# TYPE eventflow_http_request_duration_seconds histogram"
        );
        for ((method, route), histogram) in lock(&self.durations).iter() {
            let labels = format!("method=\"{}\",route=\"{}\"", label(method), label(route));
            histogram.render(
                &mut out,
                "eventflow_http_request_duration_seconds",
                &labels,
                &REQUEST_BUCKETS,
            );
        }
        let _ = writeln!(
            out,
            "# HELP eventflow_runs_started_total Runs started through this server."
        );
        let _ = writeln!(out, "# TYPE eventflow_runs_started_total counter");
        for (workflow, count) in lock(&self.runs_started).iter() {
            let _ = writeln!(
                out,
                "eventflow_runs_started_total{{workflow=\"{}\"}} {count}",
                label(workflow)
            );
        }
        let _ = writeln!(
            out,
            "# HELP eventflow_runs_finished_total Runs this process's engine finished, by status."
        );
        let _ = writeln!(out, "# TYPE eventflow_runs_finished_total counter");
        for ((workflow, status), count) in lock(&self.runs_finished).iter() {
            let _ = writeln!(
                out,
                "eventflow_runs_finished_total{{workflow=\"{}\",status=\"{}\"}} {count}",
                label(workflow),
                label(status)
            );
        }
        let steps = lock(&self.steps);
        let step_labels = |workflow: &str, step: &str| {
            format!("workflow=\"{}\",step=\"{}\"", label(workflow), label(step))
        };
        let _ = writeln!(
            out,
            "# HELP eventflow_steps_completed_total Step attempts that completed, as this process's engine journaled them."
        );
        let _ = writeln!(out, "# TYPE eventflow_steps_completed_total counter");
        for ((workflow, step), stats) in steps.iter() {
            let _ = writeln!(
                out,
                "eventflow_steps_completed_total{{{}}} {}",
                step_labels(workflow, step),
                stats.completed
            );
        }
        let _ = writeln!(
            out,
            "# HELP eventflow_step_failures_total Step attempts that failed (retried or not)."
        );
        let _ = writeln!(out, "# TYPE eventflow_step_failures_total counter");
        for ((workflow, step), stats) in steps.iter() {
            let _ = writeln!(
                out,
                "eventflow_step_failures_total{{{}}} {}",
                step_labels(workflow, step),
                stats.failed
            );
        }
        let _ = writeln!(
            out,
            "# HELP eventflow_step_duration_seconds How long step attempts ran (completed and failed ones)."
        );
        let _ = writeln!(out, "# TYPE eventflow_step_duration_seconds histogram");
        for ((workflow, step), stats) in steps.iter() {
            stats.durations.render(
                &mut out,
                "eventflow_step_duration_seconds",
                &step_labels(workflow, step),
                &STEP_BUCKETS,
            );
        }
        drop(steps);
        let _ = writeln!(
            out,
            "# HELP eventflow_runs Runs in the store, by status (every server of the store)."
        );
        let _ = writeln!(out, "# TYPE eventflow_runs gauge");
        for (status, count) in runs {
            let _ = writeln!(out, "eventflow_runs{{status=\"{status}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP eventflow_queue_depth Runs with work to do and no worker holding them."
        );
        let _ = writeln!(out, "# TYPE eventflow_queue_depth gauge");
        let _ = writeln!(out, "eventflow_queue_depth {queue_depth}");
        let _ = writeln!(
            out,
            "# HELP eventflow_event_streams Event streams open on this server."
        );
        let _ = writeln!(out, "# TYPE eventflow_event_streams gauge");
        let _ = writeln!(
            out,
            "eventflow_event_streams {}",
            self.streams.load(Ordering::Relaxed)
        );
        out
    }
}

/// Counts an open stream until dropped.
pub(crate) struct StreamGuard(Arc<Metrics>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let metrics = Arc::new(Metrics::default());
        metrics.request("GET", "/health", 200, Duration::from_millis(3));
        metrics.run_started("greet");
        metrics.run_finished("greet", "completed");
        metrics.step_attempt("greet", "say \"hi\"", Duration::from_millis(30), false);
        metrics.step_attempt("greet", "say \"hi\"", Duration::from_millis(2), true);
        let runs = BTreeMap::from([("running", 2), ("completed", 1)]);
        let text = metrics.render(&runs, 1);
        assert!(text.contains(
            "eventflow_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1"
        ));
        assert!(text.contains(
            "eventflow_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "eventflow_http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",le=\"0.001\"} 0"
        ));
        assert!(
            text.contains(
                "eventflow_runs_finished_total{workflow=\"greet\",status=\"completed\"} 1"
            )
        );
        let step = "workflow=\"greet\",step=\"say \\\"hi\\\"\"";
        for expected in [
            format!("eventflow_steps_completed_total{{{step}}} 1"),
            format!("eventflow_step_failures_total{{{step}}} 1"),
            format!("eventflow_step_duration_seconds_bucket{{{step},le=\"0.001\"}} 0"),
            format!("eventflow_step_duration_seconds_bucket{{{step},le=\"0.005\"}} 1"),
            format!("eventflow_step_duration_seconds_bucket{{{step},le=\"0.05\"}} 2"),
            format!("eventflow_step_duration_seconds_bucket{{{step},le=\"+Inf\"}} 2"),
            format!("eventflow_step_duration_seconds_sum{{{step}}} 0.032"),
            format!("eventflow_step_duration_seconds_count{{{step}}} 2"),
        ] {
            assert!(text.contains(&expected), "missing `{expected}` in\n{text}");
        }
        assert!(text.contains("eventflow_runs{status=\"running\"} 2"));
        assert!(text.contains("eventflow_queue_depth 1"));
        let guard = metrics.stream_opened();
        assert!(
            metrics
                .render(&runs, 0)
                .contains("eventflow_event_streams 1")
        );
        drop(guard);
    }
}
