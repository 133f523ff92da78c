//! Procedural macros for eventflow: `#[derive(Event)]`, `#[derive(EventUnion)]`, `#[workflow]`
//! and `#[step]`. Use them through `eventflow` (`use eventflow::prelude::*`), which re-exports
//! them next to the traits they implement:
//!
//! ```
//! use eventflow::prelude::*;
//!
//! #[derive(Event, Clone, Serialize, Deserialize)]
//! struct Greeting {
//!     text: String,
//! }
//!
//! struct Greeter;
//!
//! #[workflow]
//! impl Greeter {
//!     #[step]
//!     async fn greet(&self, ev: StartEvent) -> Result<Greeting> {
//!         Ok(Greeting { text: format!("Hello, {}!", ev.get::<String>("name")?) })
//!     }
//!
//!     #[step]
//!     async fn finish(&self, ev: Greeting) -> StopEvent {
//!         StopEvent::new(ev.text)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let output = Greeter.into_workflow()?.run(json!({"name": "Ada"})).await?;
//! assert_eq!(output.result::<String>()?, "Hello, Ada!");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod catch_error;
mod event;
mod graph_check;
mod workflow;

use proc_macro::TokenStream;
use quote::ToTokens;

/// Derives `eventflow::Event` for a serde type.
///
/// Options, in `#[event(...)]`, each at most once:
/// - `name = "..."`: the stable name; the type's name by default.
/// - `schema = <expr>`: the JSON Schema of the event's value, an expression of type
///   `serde_json::Value` (`schema = json!({...})`), for an event whose schema `schemars` cannot
///   derive (fields known only at run time). Without it, the schema is the one `JsonSchema`
///   derives, if the type derives it, and none otherwise.
/// - one role: `start` (a typed start event), `stop` (a typed stop event, the run's result),
///   `external` (sent from outside the run, need not be produced by a step), `outbound` (for the
///   outside, published on the stream, need not be accepted by a step), `terminal` (the
///   events the engine publishes last when a run fails, times out or is cancelled; a workflow
///   ends its own runs with a `stop` event) or `internal` (about the run's machinery, like the
///   engine's `StepStateChanged`: hidden from streams that do not ask for internal events).
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event::derive_event(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives a union of events for an enum whose variants each hold one event: a step can accept
/// it (a step that accepts `StartEvent` or `RefineEvent`) or return it (branching).
///
/// Also derives `From<E>` for each variant's event, so `Ok(FactualEvent { .. }.into())` works.
#[proc_macro_derive(EventUnion)]
pub fn derive_event_union(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    event::derive_event_union(input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Makes a workflow of an `impl` block: each `#[step]` method becomes a step, and the type gets
/// `eventflow::IntoWorkflow`.
///
/// A step is an `async fn` taking `&self`, optionally the context (`ctx: &Context` or
/// `ctx: Context`), and exactly one event; it returns an event, `Option<E>`, `Vec<E>`, a union
/// of events, `()`, or a `Result` of one of those. Options, in `#[step(...)]`:
/// `num_workers = N`, `retry = <RetryPolicy>`, `timeout = <Duration>`, `emits(A, B)` (events it
/// sends with `ctx.send_event`), `skip_graph_checks(reachability, dead_end, terminal_event)`
/// (graph checks that do not apply to this step; see `eventflow::GraphCheck`) and
/// `name = "..."`. The workflow's name is the type's name unless given as
/// `#[workflow(name = "...")]`; `#[workflow(skip_graph_checks(..))]` skips checks for every step.
/// A check name that is none of the three is a compile error.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let input = syn::parse_macro_input!(input as syn::ItemImpl);
    workflow::expand(args, input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Marks a method of a `#[workflow]` impl block as an error handler (it is a step too, with
/// `#[step(...)]` for its options if any): `#[catch_error]` catches every step no other handler
/// names, `#[catch_error(for_steps = ["fetch", "parse"], max_recoveries = 2)]` the steps named.
/// The method takes a `StepFailedEvent`; see `eventflow::Step::catch_error`.
///
/// `#[workflow]` consumes its `#[catch_error]` attributes, so this one only runs where there
/// is no `#[workflow]` around, and says so.
#[proc_macro_attribute]
pub fn catch_error(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_workflow("catch_error", input)
}

/// Marks a method of a `#[workflow]` impl block as a step; see [`macro@workflow`].
///
/// `#[workflow]` consumes its `#[step]` attributes, so this one only runs where there is no
/// `#[workflow]` around, and says so.
#[proc_macro_attribute]
pub fn step(_args: TokenStream, input: TokenStream) -> TokenStream {
    outside_workflow("step", input)
}

/// The error of an attribute that only works inside `#[workflow]`, with the item kept.
fn outside_workflow(attribute: &str, input: TokenStream) -> TokenStream {
    let input = proc_macro2::TokenStream::from(input);
    // At the attribute, but resolved like the user's tokens: the error then reads as the user's
    // mistake rather than as something "originating in the attribute macro `step`".
    let span = match input.clone().into_iter().next() {
        Some(first) => proc_macro2::Span::call_site().resolved_at(first.span()),
        None => proc_macro2::Span::call_site(),
    };
    let error = syn::Error::new(
        span,
        format!(
            "`#[{attribute}]` only works on methods of an `impl` block marked `#[workflow]`: add `#[workflow]` above the `impl`"
        ),
    )
    .into_compile_error();
    quote::quote!(#error #input).into()
}

/// Renders tokens the way a person writes them (`Vec<Answer>`, not `Vec < Answer >`), for
/// messages.
pub(crate) fn pretty(tokens: &impl ToTokens) -> String {
    let mut text = tokens.to_token_stream().to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" : ", ": "),
        (" < ", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        ("& ", "&"),
        (" (", "("),
        ("( ", "("),
        (" )", ")"),
    ] {
        text = text.replace(from, to);
    }
    text
}

/// `<ty as rest`, spanned over the whole of `ty` (first token to last), so that an error about
/// the expression is reported at exactly the span the user wrote the type at.
pub(crate) fn qualified_path(
    ty: &syn::Type,
    rest: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let tokens = ty.to_token_stream();
    let mut spans = tokens.into_iter().map(|token| token.span());
    let first = spans.next().unwrap_or_else(proc_macro2::Span::call_site);
    let last = spans.last().unwrap_or(first);
    let open = quote::quote_spanned!(first=> <);
    let rest = respan(quote::quote!(as #rest), last);
    quote::quote!(#open #ty #rest)
}

/// `tokens`, every one of them spanned at `span`.
pub(crate) fn respan(
    tokens: proc_macro2::TokenStream,
    span: proc_macro2::Span,
) -> proc_macro2::TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = proc_macro2::TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// The message for an unknown option `path` of `what` (`"step"`, ...), with a suggestion when
/// it looks like a misspelling of one of `known`.
pub(crate) fn unknown_option(what: &str, path: &syn::Path, known: &[&str], all: &str) -> String {
    unknown_name(&format!("{what} option"), "options", path, known, all)
}

/// The message for a name `path` that is none of `known` (`kind` says what it should have
/// been, `kinds` the plural), with a suggestion when it looks like a misspelling of one.
pub(crate) fn unknown_name(
    kind: &str,
    kinds: &str,
    path: &syn::Path,
    known: &[&str],
    all: &str,
) -> String {
    let written = pretty(path);
    let close = known
        .iter()
        .map(|k| (distance(&written.to_lowercase(), k), k))
        .filter(|(d, k)| *d <= k.len() / 3 + 1 || k.contains(written.as_str()))
        .min_by_key(|(d, _)| *d);
    let hint = close.map_or_else(String::new, |(_, k)| format!("; did you mean `{k}`?"));
    format!("unknown {kind} `{written}`{hint}\nthe {kinds} are {all}")
}

/// The edit distance between `a` and `b`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(current)
            };
            previous = current;
        }
    }
    row[b.len()]
}
