//! Workflows: a validated set of steps, and how runs of it are started.

mod recovery;
mod validate;

use std::any::TypeId;
use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;
use std::time::Duration;

use fnv::FnvHasher;
use serde_json::{Map, Value};

use crate::error::{ValidationErrors, WorkflowError};
use crate::event::{AnyEvent, Event, EventJson, EventRole, EventType, StartEvent, StepFailedEvent};
use crate::replay::ReplayError;
use crate::step::{GraphCheck, SkippedChecks, Step, StepFn, UnknownGraphCheck};

/// A type whose `#[step]` methods make a workflow; implemented by `#[workflow]`.
///
/// ```
/// use eventflow::prelude::*;
///
/// struct Greeter {
///     greeting: String,
/// }
///
/// #[workflow]
/// impl Greeter {
///     #[step]
///     async fn greet(&self, ev: StartEvent) -> Result<StopEvent> {
///         let name: String = ev.get("name")?;
///         Ok(StopEvent::new(format!("{}, {name}!", self.greeting)))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> anyhow::Result<()> {
/// let workflow = Greeter { greeting: "Hello".into() }.into_workflow()?;
/// let output = workflow.run(json!({"name": "Ada"})).await?;
/// assert_eq!(output.result::<String>()?, "Hello, Ada!");
/// # Ok(())
/// # }
/// ```
pub trait IntoWorkflow: Sized {
    /// A builder holding this value's steps, to add options before building.
    fn workflow_builder(self) -> WorkflowBuilder;

    /// Builds and validates the workflow.
    fn into_workflow(self) -> Result<Workflow, ValidationErrors> {
        self.workflow_builder().build()
    }
}

/// Assembles a workflow from steps; [`build`](Self::build) validates it.
#[derive(Debug)]
pub struct WorkflowBuilder {
    name: String,
    steps: Vec<Step>,
    extra_events: Vec<EventType>,
    skipped_checks: SkippedChecks,
}

impl WorkflowBuilder {
    /// Adds a step.
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// Adds `f` as a step named `name` with default options.
    pub fn add_step<Args, F>(self, name: impl Into<String>, f: F) -> Self
    where
        F: StepFn<Args>,
        F::Input: crate::StepInput,
        F::Return: crate::IntoStepResult,
        F::Future: Send + 'static,
    {
        self.step(Step::new(name, f))
    }

    /// Registers an event type that appears in no step signature: an event a step only waits
    /// for (`Context::wait_for_event`) or only writes to the stream. An event of a registered
    /// type may be sent into a run although no step accepts it (a waiting step takes it, or a
    /// later one: it is kept until then), the server decodes it by name, and a resumed snapshot
    /// gives it back typed. Unregistered stream events come back as JSON under their name.
    pub fn event<E: Event>(mut self) -> Self {
        self.extra_events.push(EventType::of::<E>());
        self
    }

    /// Skips graph checks for every step, by [`GraphCheck`] or by name (`"reachability"`,
    /// `"dead_end"`, `"terminal_event"`, as in the reference); a name that is no check is
    /// reported by [`build`](Self::build) with every other problem. Only these three checks
    /// can be skipped: the others say the workflow cannot run. The graph and its drawing are
    /// unchanged. [`Step::skip_graph_checks`] skips them for one step.
    ///
    /// ```
    /// use eventflow::prelude::*;
    ///
    /// #[derive(Event, Clone, Serialize, Deserialize)]
    /// struct Progress;
    ///
    /// // `Progress` is accepted by no step: the build reports it unless the check is skipped.
    /// let start = || {
    ///     Step::new("start", |ctx: Context, _: StartEvent| async move {
    ///         let _ = ctx.send_event(Progress);
    ///         StopEvent::new(())
    ///     })
    ///     .emits::<Progress>()
    /// };
    /// assert!(Workflow::builder("w").step(start()).build().is_err());
    /// let workflow = Workflow::builder("w")
    ///     .step(start())
    ///     .skip_graph_checks(["terminal_event"])
    ///     .build();
    /// assert!(workflow.is_ok());
    ///
    /// let error = Workflow::builder("w")
    ///     .step(start())
    ///     .skip_graph_checks(["terminal-event"])
    ///     .build()
    ///     .unwrap_err();
    /// assert!(error.to_string().contains("unknown graph check `terminal-event`"));
    /// ```
    pub fn skip_graph_checks<C>(mut self, checks: impl IntoIterator<Item = C>) -> Self
    where
        C: TryInto<GraphCheck>,
        C::Error: Into<UnknownGraphCheck>,
    {
        self.skipped_checks.extend(checks);
        self
    }

    /// Validates the steps and builds the workflow, reporting every problem found at once.
    pub fn build(self) -> Result<Workflow, ValidationErrors> {
        let spec = WorkflowSpec::new(
            self.name,
            self.steps,
            self.extra_events,
            &self.skipped_checks,
        )?;
        Ok(Workflow {
            spec: Arc::new(spec),
            timeout: None,
            verbose: false,
            internal_events: false,
            run_slots: None,
        })
    }
}

/// The validated, immutable part of a workflow that every run shares.
pub(crate) struct WorkflowSpec {
    pub(crate) name: String,
    pub(crate) steps: Vec<Step>,
    /// The error handler of each step, by index (`#[catch_error]`).
    pub(crate) recovered_by: Vec<Option<usize>>,
    /// The steps' names, by index (the context state keys its collect buffers by them).
    step_names: Vec<String>,
    /// The event types in step signatures: the routing table's and the graph's.
    pub(crate) events: Vec<EventType>,
    /// Every event type a snapshot may hold, by name: those above, the registered ones and the
    /// built-in events.
    decodable: HashMap<&'static str, EventType>,
    event_index: HashMap<TypeId, usize>,
    /// For each event type (by index), the steps that accept it.
    pub(crate) consumers: Vec<Vec<usize>>,
    pub(crate) start: EventType,
    /// The types registered with `WorkflowBuilder::event`, which may be sent without a
    /// consumer (for a waiting step).
    registered: Vec<EventType>,
    /// Whether some step accepts an event from outside, so an idle run may still be woken.
    pub(crate) accepts_external: bool,
    pub(crate) fingerprint: String,
}

impl WorkflowSpec {
    fn new(
        name: String,
        steps: Vec<Step>,
        extra_events: Vec<EventType>,
        skipped_checks: &SkippedChecks,
    ) -> Result<Self, ValidationErrors> {
        let problems = validate::validate(&steps, skipped_checks);
        if !problems.is_empty() {
            return Err(ValidationErrors::new(name, problems));
        }
        let mut events: Vec<EventType> = Vec::new();
        let mut event_index = HashMap::new();
        let mut note = |ty: EventType, events: &mut Vec<EventType>| {
            *event_index.entry(ty.type_id()).or_insert_with(|| {
                events.push(ty);
                events.len() - 1
            })
        };
        for step in &steps {
            for ty in step.accepts.iter().chain(&step.emits) {
                note(*ty, &mut events);
            }
        }
        // The terminal and internal events, and the failures handed to error handlers, are
        // left out: only the engine makes them, so a client may not send one (a workflow with
        // a handler knows `StepFailedEvent` through the handler's signature).
        let builtins = crate::event::builtins().into_iter().filter(|ty| {
            !matches!(ty.role(), EventRole::Terminal | EventRole::Internal)
                && ty.name() != StepFailedEvent::NAME
        });
        let decodable = events
            .iter()
            .chain(&extra_events)
            .copied()
            .chain(builtins)
            .map(|ty| (ty.name(), ty))
            .collect();
        let mut consumers = vec![Vec::new(); events.len()];
        for (index, step) in steps.iter().enumerate() {
            for ty in &step.accepts {
                consumers[event_index[&ty.type_id()]].push(index);
            }
        }
        let start = *events
            .iter()
            .find(|ty| ty.role() == EventRole::Start)
            .expect("validation guarantees a start event");
        let accepts_external = steps.iter().any(|step| {
            step.accepts
                .iter()
                .any(|ty| ty.role() == EventRole::External)
        });
        let fingerprint = fingerprint(&name, &steps);
        let (recovered_by, _) = recovery::plan(&steps);
        Ok(WorkflowSpec {
            recovered_by,
            registered: extra_events.clone(),
            name,
            step_names: steps.iter().map(|step| step.name.clone()).collect(),
            steps,
            events,
            decodable,
            event_index,
            consumers,
            start,
            accepts_external,
            fingerprint,
        })
    }

    /// The index of an event type in [`Self::events`].
    pub(crate) fn event_index(&self, type_id: TypeId) -> Option<usize> {
        self.event_index.get(&type_id).copied()
    }

    /// Whether `ty` was registered with `WorkflowBuilder::event`.
    pub(crate) fn is_registered(&self, ty: EventType) -> bool {
        self.registered.contains(&ty)
    }

    /// The steps' names, by index.
    pub(crate) fn step_names(&self) -> &[String] {
        &self.step_names
    }

    pub(crate) fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|step| step.name == name)
    }

    /// The event type with this name, among those a snapshot may hold.
    pub(crate) fn event_by_name(&self, name: &str) -> Option<EventType> {
        self.decodable.get(name).copied()
    }

    /// The index of the step a recording names.
    pub(crate) fn step_named(&self, name: &str) -> Result<usize, ReplayError> {
        self.step_index(name)
            .ok_or_else(|| ReplayError::UnknownStep(name.to_owned()))
    }

    /// The event type a recording names.
    pub(crate) fn event_named(&self, name: &str) -> Result<EventType, ReplayError> {
        self.event_by_name(name)
            .ok_or_else(|| ReplayError::UnknownEvent(name.to_owned()))
    }

    /// A recorded event that the reducer will route: it must be of one of the workflow's types.
    pub(crate) fn decode_event(&self, json: EventJson) -> Result<AnyEvent, ReplayError> {
        let ty = self.event_named(&json.name)?;
        ty.decode(json.value).map_err(|source| ReplayError::Decode {
            name: json.name,
            source,
        })
    }

    /// An event the run published, read back for its stream: one of the workflow's types when
    /// it decodes as one, otherwise the JSON under its name. Published events need not be of
    /// the workflow's types (steps may write anything to the stream), and readers of a stream
    /// already saw them, so one that no longer decodes is shown as it was rather than failing
    /// the run.
    pub(crate) fn decode_published(&self, json: EventJson) -> AnyEvent {
        match self.event_by_name(&json.name) {
            Some(ty) => ty
                .decode(json.value.clone())
                .unwrap_or_else(|_| AnyEvent::opaque(json)),
            None => AnyEvent::opaque(json),
        }
    }

    pub(crate) fn consumers_of(&self, type_id: TypeId) -> &[usize] {
        match self.event_index(type_id) {
            Some(index) => &self.consumers[index],
            None => &[],
        }
    }
}

/// A stable digest of a workflow's shape: step names and the names of the event types each
/// accepts and emits. Snapshots record it so a run is never resumed on a different graph.
fn fingerprint(name: &str, steps: &[Step]) -> String {
    // FNV-1a: stable across builds and platforms, unlike std's hasher. Each name ends with
    // 0xff (no UTF-8 byte), so `ab`,`c` and `a`,`bc` differ.
    let mut hasher = FnvHasher::default();
    let mut feed = |text: &str| {
        hasher.write(text.as_bytes());
        hasher.write_u8(0xff);
    };
    feed(name);
    let mut sorted: Vec<&Step> = steps.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for step in sorted {
        feed(&step.name);
        for ty in &step.accepts {
            feed(ty.name());
        }
        feed("->");
        for ty in &step.emits {
            feed(ty.name());
        }
    }
    format!("{:016x}", hasher.finish())
}

/// A validated workflow, ready to run any number of times, concurrently.
///
/// Cloning is cheap. Build one with `#[workflow]` and [`IntoWorkflow::into_workflow`], or with
/// [`Workflow::builder`].
#[derive(Clone)]
pub struct Workflow {
    pub(crate) spec: Arc<WorkflowSpec>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) verbose: bool,
    pub(crate) internal_events: bool,
    /// The bound set by `num_concurrent_runs`, and its permits, shared by clones.
    pub(crate) run_slots: Option<RunSlots>,
}

/// How many runs of a workflow may execute at once in this process.
#[derive(Clone)]
pub(crate) struct RunSlots {
    pub(crate) limit: usize,
    /// The in-memory runs' permits; the durable engine counts the runs it drives instead.
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
}

impl Workflow {
    /// A builder for a workflow named `name`, for steps assembled at run time.
    ///
    /// ```
    /// use eventflow::prelude::*;
    ///
    /// #[derive(Event, Clone, Serialize, Deserialize)]
    /// struct Doubled { value: i64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let workflow = Workflow::builder("double")
    ///     .add_step("double", |ev: StartEvent| async move {
    ///         Ok::<_, EventFieldError>(Doubled { value: ev.get::<i64>("x")? * 2 })
    ///     })
    ///     .add_step("finish", |ev: Doubled| async move { StopEvent::new(ev.value) })
    ///     .build()?;
    /// let output = workflow.run(json!({"x": 21})).await?;
    /// assert_eq!(output.result::<i64>()?, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(name: impl Into<String>) -> WorkflowBuilder {
        WorkflowBuilder {
            name: name.into(),
            steps: Vec::new(),
            extra_events: Vec::new(),
            skipped_checks: SkippedChecks::default(),
        }
    }

    /// Fails every run that takes longer than `timeout` with [`WorkflowError::Timeout`]. Runs
    /// have no timeout unless set.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Prints a line when each step of a run starts and finishes, and the run's result, through
    /// [`VerboseLayer`](crate::VerboseLayer): in a process without a `tracing` subscriber the
    /// lines print with no setup; a process that has one adds the layer to it.
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Publishes the engine's internal events ([`StepStateChanged`](crate::StepStateChanged),
    /// [`WorkflowIdleEvent`](crate::WorkflowIdleEvent), [`UnhandledEvent`](crate::UnhandledEvent))
    /// from the start of every run: what a debugger needs to show which steps run. They cost
    /// an event per step start and end, and durable runs store them; off by default, when an
    /// in-memory run records them only from the first call of
    /// [`stream_events_internal`](crate::WorkflowHandler::stream_events_internal).
    /// [`stream_events`](crate::WorkflowHandler::stream_events) never shows them.
    ///
    /// ```
    /// use eventflow::prelude::*;
    /// use eventflow::{StepState, StepStateChanged};
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let workflow = Workflow::builder("echo")
    ///     .add_step("echo", |ev: StartEvent| async move {
    ///         Ok::<_, EventFieldError>(StopEvent::new(ev.get::<String>("say")?))
    ///     })
    ///     .build()?
    ///     .internal_events(true);
    /// let handler = workflow.run(json!({"say": "hi"}));
    /// let mut states = Vec::new();
    /// let mut events = handler.stream_events_internal();
    /// while let Some(event) = events.next().await {
    ///     if let Some(changed) = event.downcast_ref::<StepStateChanged>() {
    ///         states.push((changed.name.clone(), changed.step_state));
    ///     }
    /// }
    /// assert_eq!(states, [("echo".to_owned(), StepState::Running), ("echo".to_owned(), StepState::NotRunning)]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn internal_events(mut self, on: bool) -> Self {
        self.internal_events = on;
        self
    }

    /// Lets at most `limit` runs of this workflow (this value and its clones) execute at once
    /// in this process; more runs wait for a slot, in the order they were started, and are not
    /// refused. A waiting run is queued: [`WorkflowHandler::is_queued`](crate::WorkflowHandler::is_queued)
    /// in memory, and, for a durable engine, a run no worker holds, which the server reports
    /// as `queued`. Its timeout counts from when it gets a slot; cancelling it works while it
    /// waits. A run waiting for a human in `wait_for_event` still holds its slot in memory; a
    /// durable run released while it waits does not. Unbounded unless set; `limit` 0 is taken
    /// as 1.
    ///
    /// ```
    /// use eventflow::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> anyhow::Result<()> {
    /// let workflow = Workflow::builder("one_at_a_time")
    ///     .add_step("work", |_: StartEvent| async { StopEvent::new("done") })
    ///     .build()?
    ///     .num_concurrent_runs(1);
    /// let first = workflow.run(json!({}));
    /// let second = workflow.run(json!({}));
    /// assert_eq!(first.await?.result::<String>()?, "done");
    /// assert_eq!(second.await?.result::<String>()?, "done");
    /// # Ok(())
    /// # }
    /// ```
    pub fn num_concurrent_runs(mut self, limit: usize) -> Self {
        let limit = limit.max(1);
        self.run_slots = Some(RunSlots {
            limit,
            permits: Arc::new(tokio::sync::Semaphore::new(limit)),
        });
        self
    }

    /// The bound set with [`num_concurrent_runs`](Self::num_concurrent_runs), if any.
    pub fn concurrent_runs_limit(&self) -> Option<usize> {
        self.run_slots.as_ref().map(|slots| slots.limit)
    }

    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The workflow's steps.
    pub fn steps(&self) -> &[Step] {
        &self.spec.steps
    }

    /// The event types of the workflow's step signatures and `emits` declarations: the events
    /// of its graph. [`known_event_types`](Self::known_event_types) adds registered and built-in
    /// ones.
    pub fn event_types(&self) -> &[EventType] {
        &self.spec.events
    }

    /// The event type that starts a run.
    pub fn start_event(&self) -> EventType {
        self.spec.start
    }

    /// A digest of the workflow's steps and event types; equal for equal shapes.
    pub fn fingerprint(&self) -> &str {
        &self.spec.fingerprint
    }

    /// Every event type a run of this workflow can decode by name, sorted by name: the types in
    /// step signatures, the types registered with `WorkflowBuilder::event`, and the built-in
    /// events. What a server accepts from clients and lists.
    pub fn known_event_types(&self) -> Vec<EventType> {
        let mut types: Vec<EventType> = self.spec.decodable.values().copied().collect();
        types.sort_by_key(|ty| ty.name());
        types
    }

    /// The event type named `name` among [`known_event_types`](Self::known_event_types).
    pub fn event_type(&self, name: &str) -> Option<EventType> {
        self.spec.event_by_name(name)
    }
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.spec.name)
            .field("steps", &self.spec.steps)
            .field("timeout", &self.timeout)
            .field("verbose", &self.verbose)
            .field("internal_events", &self.internal_events)
            .field("num_concurrent_runs", &self.concurrent_runs_limit())
            .finish()
    }
}

/// What a run can be started with: keyword arguments as JSON, a [`StartEvent`], or a typed
/// start event.
pub trait StartInput {
    /// Converts into the start event.
    fn into_start_event(self) -> Result<AnyEvent, WorkflowError>;
}

impl<E: Event> StartInput for E {
    fn into_start_event(self) -> Result<AnyEvent, WorkflowError> {
        Ok(AnyEvent::new(self))
    }
}

impl StartInput for Value {
    fn into_start_event(self) -> Result<AnyEvent, WorkflowError> {
        StartEvent::from_json(self)
            .map(AnyEvent::new)
            .map_err(|value| WorkflowError::InvalidStart {
                expected: StartEvent::NAME,
                found: format!("JSON that is not an object: {value}"),
            })
    }
}

/// An event already type-erased (decoded from JSON with [`EventType::decode`], say); the run
/// checks it is the workflow's start event.
impl StartInput for AnyEvent {
    fn into_start_event(self) -> Result<AnyEvent, WorkflowError> {
        Ok(self)
    }
}

impl StartInput for Map<String, Value> {
    fn into_start_event(self) -> Result<AnyEvent, WorkflowError> {
        Ok(AnyEvent::new(StartEvent::from(self)))
    }
}
