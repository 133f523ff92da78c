//! Procedural macros for eventflow. Use them through `eventflow` (`use eventflow::prelude::*`),
//! which re-exports them next to the traits they implement.

#![warn(missing_docs)]

mod event;
mod workflow;

use proc_macro::TokenStream;

/// Derives `eventflow::Event` for a serde type.
///
/// Options, in `#[event(...)]`: `name = "..."` (the stable name; the type's name by default) and
/// one role: `start` (a typed start event), `stop` (a typed stop event, the run's result),
/// `external` (sent from outside the run, need not be produced by a step) or `outbound` (for the
/// outside, published on the stream, need not be accepted by a step).
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
/// sends with `ctx.send_event`) and `name = "..."`. The workflow's name is the type's name unless
/// given as `#[workflow(name = "...")]`.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let input = syn::parse_macro_input!(input as syn::ItemImpl);
    workflow::expand(args, input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Marks a method of a `#[workflow]` impl block as a step; see [`macro@workflow`].
#[proc_macro_attribute]
pub fn step(_args: TokenStream, input: TokenStream) -> TokenStream {
    let input = proc_macro2::TokenStream::from(input);
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "`#[step]` only works on methods inside an `impl` block marked `#[workflow]`",
    )
    .into_compile_error();
    quote::quote!(#error #input).into()
}
