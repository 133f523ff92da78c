//! Verbose mode: a line on stdout when each step of a run starts and finishes, and the run's
//! result, for workflows built with [`Workflow::verbose`](crate::Workflow::verbose).
//!
//! The run's executor only emits `tracing` events (`step started`, `step finished`, `step
//! failed`, `run finished`, `run failed`, inside the `workflow_run` and `step` spans); this
//! module's [`VerboseLayer`] turns those of verbose runs into lines. A process without a
//! `tracing` subscriber gets one for its verbose runs alone ([`run_dispatch`]); a process with
//! one adds the layer to it, unfiltered, to see the lines:
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! let subscriber = tracing_subscriber::registry().with(eventflow::VerboseLayer::new());
//! # drop(subscriber);
//! ```

use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::Instrument as _;
use tracing::field::{Field, Visit};
use tracing::instrument::WithSubscriber as _;
use tracing::span::{Attributes, Id};
use tracing::subscriber::NoSubscriber;
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// The name of a run's span, whose `verbose` field marks the runs to print.
pub(crate) const RUN_SPAN: &str = "workflow_run";

/// The name of a step invocation's span.
pub(crate) const STEP_SPAN: &str = "step";

/// A [`tracing_subscriber::Layer`] that prints the steps and the result of verbose runs
/// (workflows built with [`Workflow::verbose`](crate::Workflow::verbose)) to stdout, one line
/// each, prefixed with the run id's first 8 characters:
///
/// ```text
/// [0b7e23c1] step `first` started on StartEvent (attempt 1)
/// [0b7e23c1] step `first` finished in 1.2ms -> Middle
/// [0b7e23c1] run finished: StopEvent({"result":42})
/// ```
///
/// It needs the steps' `debug` events: add it beside, not under, a level filter.
#[derive(Debug, Default)]
pub struct VerboseLayer {
    _private: (),
}

impl VerboseLayer {
    /// The layer.
    pub fn new() -> Self {
        VerboseLayer::default()
    }
}

/// The dispatcher a verbose run's tasks run under, so its lines print on any thread: one with
/// the layer when the process has no subscriber (no setup needed), else the current one (which
/// may be a parent run's, for a child run, or a scoped one). `None` for other runs.
pub(crate) fn run_dispatch(verbose: bool) -> Option<Dispatch> {
    if !verbose {
        return None;
    }
    Some(tracing::dispatcher::get_default(|current| {
        if current.is::<NoSubscriber>() {
            Dispatch::new(tracing_subscriber::registry().with(VerboseLayer::new()))
        } else {
            current.clone()
        }
    }))
}

/// A run's span: `workflow_run{workflow, run_id, ...}`, and `verbose = true` for a verbose run
/// only (other runs' log lines do not carry the field).
pub(crate) fn run_span(span: tracing::Span, verbose: bool) -> tracing::Span {
    if verbose {
        span.record("verbose", true);
    }
    span
}

/// A run, as its span recorded it.
struct RunSpan {
    short_id: String,
    /// Recorded on verbose runs only (see [`run_span`]), after the span is made.
    verbose: bool,
}

/// A step invocation, as its span recorded it.
struct StepInvocation {
    step: String,
    event: String,
    attempt: String,
}

impl<S> Layer<S> for VerboseLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let name = attrs.metadata().name();
        if name != RUN_SPAN && name != STEP_SPAN {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if name == RUN_SPAN {
            let short_id = fields.get("run_id").chars().take(8).collect();
            span.extensions_mut().insert(RunSpan {
                short_id,
                verbose: fields.verbose,
            });
        } else {
            span.extensions_mut().insert(StepInvocation {
                step: fields.get("step"),
                event: fields.get("event"),
                attempt: fields.get("attempt"),
            });
        }
    }

    fn on_record(&self, id: &Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(run) = span.extensions_mut().get_mut::<RunSpan>() {
            run.verbose |= fields.verbose;
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let mut run = None;
        let mut step = None;
        for span in scope {
            let extensions = span.extensions();
            if let Some(found) = extensions.get::<RunSpan>().filter(|run| run.verbose) {
                run = Some(found.short_id.clone());
            }
            if step.is_none() {
                step = extensions
                    .get::<StepInvocation>()
                    .map(|s| (s.step.clone(), s.event.clone(), s.attempt.clone()));
            }
        }
        let Some(run) = run else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let text = match (fields.get("message").as_str(), step) {
            ("step started", Some((step, event, attempt))) => {
                format!("step `{step}` started on {event} (attempt {attempt})")
            }
            ("step finished", Some((step, _, _))) => format!(
                "step `{step}` finished in {} -> {}",
                fields.get("elapsed"),
                fields.get("emitted")
            ),
            ("step failed", Some((step, _, attempt))) => format!(
                "step `{step}` failed on attempt {attempt}: {}",
                fields.get("error")
            ),
            ("run finished", _) => format!("run finished: {}", fields.get("result")),
            ("run failed", _) => format!("run failed: {}", fields.get("error")),
            _ => return,
        };
        // A closed stdout loses the line, as `println!` would have panicked on it.
        let _ = writeln!(std::io::stdout().lock(), "[{run}] {text}");
    }
}

/// The fields of a span or an event, as text.
#[derive(Default)]
struct Fields {
    values: Vec<(&'static str, String)>,
    verbose: bool,
}

impl Fields {
    fn get(&self, name: &str) -> String {
        self.values
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    }
}

impl Visit for Fields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "verbose" {
            self.verbose = value;
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.values.push((field.name(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        // Durations print to a tenth of their unit (`1.2ms`); other values as they are.
        let _ = if field.name() == "elapsed" {
            write!(text, "{value:.1?}")
        } else {
            write!(text, "{value:?}")
        };
        self.values.push((field.name(), text));
    }
}

/// Spawns `task` in the span `span` makes, both under `dispatch` when the run has one (see
/// [`run_dispatch`]), so that a verbose run's loop and steps report to it on any thread.
pub(crate) fn spawn_in_span<F>(
    dispatch: Option<&Dispatch>,
    span: impl FnOnce() -> tracing::Span,
    task: F,
) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match dispatch {
        None => tokio::spawn(task.instrument(span())),
        Some(dispatch) => {
            let span = tracing::dispatcher::with_default(dispatch, span);
            tokio::spawn(task.instrument(span).with_subscriber(dispatch.clone()))
        }
    }
}
