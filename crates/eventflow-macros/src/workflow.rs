//! `#[workflow]`: turns the `#[step]` methods of an impl block into a workflow.
//!
//! What can be seen in the syntax (no event parameter, two of them, `&mut self`, a bad option,
//! two steps with one name) is reported here, each error at the offending tokens and saying what
//! to write instead. What only the type checker knows (is this parameter an event? can a step
//! return this type?) is checked by the expansion, with every type spelled at the user's tokens:
//! a qualified path (`<String as StepInput>::accepted_types`) first, which reports a wrong type at
//! that type, worded by the trait's `#[diagnostic::on_unimplemented]`, with no note pointing into
//! generated code; then the helper that builds the step, whose identical obligation at the same
//! span the compiler does not report again. Each wrong type is thus one error, at the type.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Expr, FnArg, GenericParam, ImplItem, ImplItemFn, ItemImpl, LitStr, Path, ReturnType, Type,
};

use crate::{catch_error, graph_check, pretty, qualified_path, respan, unknown_option};

const SHAPE: &str =
    "a step is an `async fn` taking `&self`, optionally `ctx: &Context`, and exactly one event";

#[derive(Default)]
struct StepOptions {
    name: Option<LitStr>,
    /// Each with the option's key, where a value of the wrong type is reported.
    num_workers: Option<(Path, Expr)>,
    retry: Option<(Path, Expr)>,
    timeout: Option<(Path, Expr)>,
    emits: Vec<Path>,
    /// `::eventflow::GraphCheck` variants, spanned at the names written.
    skip_graph_checks: Option<Vec<TokenStream>>,
}

/// How a step method takes the context.
enum ContextParam {
    None,
    ByRef,
    ByValue,
}

struct StepMethod {
    method: syn::Ident,
    options: StepOptions,
    /// The `eventflow::CatchError` of an error handler (`#[catch_error]`).
    catches: Option<TokenStream>,
    context: ContextParam,
    /// Whether the context comes before the event in the method's parameters.
    context_first: bool,
    event_ty: Type,
    return_ty: Type,
}

impl StepMethod {
    /// The step's name and where to report a clash: the `name = "..."` option or the method.
    fn name(&self) -> (String, Span) {
        match &self.options.name {
            Some(name) => (name.value(), name.span()),
            None => (self.method.to_string(), self.method.span()),
        }
    }
}

pub(crate) fn expand(args: TokenStream, mut item: ItemImpl) -> syn::Result<TokenStream> {
    let mut workflow_name: Option<LitStr> = None;
    let mut skip_graph_checks: Option<Vec<TokenStream>> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            if workflow_name.is_some() {
                return Err(meta.error("`name` is given twice"));
            }
            workflow_name = Some(non_empty(meta.value()?.parse()?, "a workflow name")?);
            Ok(())
        } else if meta.path.is_ident("skip_graph_checks") {
            if skip_graph_checks.is_some() {
                return Err(meta.error("`skip_graph_checks` is given twice"));
            }
            skip_graph_checks = Some(graph_check::parse(&meta)?);
            Ok(())
        } else {
            Err(meta.error(unknown_option(
                "workflow",
                &meta.path,
                &["name", "skip_graph_checks"],
                "`name = \"...\"` and `skip_graph_checks(reachability, dead_end, terminal_event)`",
            )))
        }
    });
    syn::parse::Parser::parse2(parser, args)?;

    if let Some((_, path, _)) = &item.trait_ {
        return Err(syn::Error::new_spanned(
            path,
            "`#[workflow]` goes on an inherent impl block (`impl MyWorkflow { ... }`), not a trait impl",
        ));
    }

    let mut steps = Vec::new();
    let mut errors = Errors::default();
    for impl_item in &mut item.items {
        let ImplItem::Fn(function) = impl_item else {
            continue;
        };
        let step_attr = take_attr(&mut function.attrs, is_step_attr);
        let catch_attr = take_attr(&mut function.attrs, catch_error::is_catch_error);
        if step_attr.is_none() && catch_attr.is_none() {
            continue;
        }
        let catches = catch_attr.as_ref().map(catch_error::parse).transpose();
        match (parse_step(step_attr.as_ref(), function), catches) {
            (Ok(mut step), Ok(catches)) => {
                step.catches = catches;
                steps.push(step);
            }
            (Err(error), Ok(_)) | (Ok(_), Err(error)) => errors.push(error),
            (Err(a), Err(b)) => {
                errors.push(a);
                errors.push(b);
            }
        }
    }
    let mut seen = HashSet::new();
    for step in &steps {
        let (name, span) = step.name();
        if !seen.insert(name.clone()) {
            errors.push(syn::Error::new(
                span,
                format!(
                    "two steps of this workflow are named `{name}`; give one another name with `#[step(name = \"...\")]`"
                ),
            ));
        }
    }
    errors.finish()?;
    if steps.is_empty() {
        return Err(syn::Error::new_spanned(
            &item.self_ty,
            "a `#[workflow]` impl block needs at least one `#[step]` method",
        ));
    }

    let self_ty = &item.self_ty;
    let name = match workflow_name {
        Some(name) => name.value(),
        None => type_name(self_ty),
    };
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    // The steps of a run share the instance across tasks. Stated as one bound of the impl, rather
    // than left to each step's closure, a workflow type that is not `Send + Sync + 'static` is one
    // error, at the type, instead of several per step; and a generic workflow needs it only of the
    // type arguments it is used with.
    let shared = quote_spanned! {self_ty.span()=>
        #self_ty: ::std::marker::Send + ::std::marker::Sync + 'static
    };
    let where_clause = match where_clause {
        Some(clause) => {
            let predicates = clause.predicates.iter();
            quote!(where #(#predicates,)* #shared)
        }
        None => quote!(where #shared),
    };
    let step_exprs = steps.iter().map(step_expr);
    // Makes a step of a method: `Event` is its event parameter's type and `Return` its return
    // type, both spelled at the user's tokens by each call. Located at `#[workflow]` but resolved
    // like the user's code, so that the note a failed bound adds ("required by a bound in
    // `__eventflow_step`") points at the attribute without an "originates in a macro" aside.
    let helper = quote! {
        fn __eventflow_step<Event, Return, Fut, F>(name: &'static str, f: F) -> ::eventflow::Step
        where
            Event: ::eventflow::StepInput,
            Return: ::eventflow::IntoStepResult,
            Fut: ::std::future::Future<Output = Return> + ::std::marker::Send + 'static,
            F: ::std::ops::Fn(::eventflow::Context, Event) -> Fut
                + ::std::marker::Send
                + ::std::marker::Sync
                + 'static,
        {
            ::eventflow::Step::new(name, f)
        }
    };
    let helper = respan(helper, Span::call_site().resolved_at(item.impl_token.span));
    let workflow_skips = skip_graph_checks.map(|checks| quote!(.skip_graph_checks([#(#checks),*])));

    Ok(quote! {
        #item

        impl #impl_generics ::eventflow::IntoWorkflow for #self_ty #where_clause {
            fn workflow_builder(self) -> ::eventflow::WorkflowBuilder {
                #helper

                let this = ::std::sync::Arc::new(self);
                ::eventflow::Workflow::builder(#name)
                    #(.step(#step_exprs))*
                    #workflow_skips
            }
        }
    })
}

/// Gathers several errors so that one expansion reports all of them.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Removes the first attribute `is` picks from `attrs`.
fn take_attr(
    attrs: &mut Vec<syn::Attribute>,
    is: fn(&syn::Attribute) -> bool,
) -> Option<syn::Attribute> {
    let position = attrs.iter().position(is)?;
    Some(attrs.remove(position))
}

fn is_step_attr(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "step")
}

fn type_name(ty: &Type) -> String {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .map_or_else(|| pretty(ty), |s| s.ident.to_string()),
        _ => pretty(ty),
    }
}

fn non_empty(name: LitStr, what: &str) -> syn::Result<LitStr> {
    if name.value().trim().is_empty() {
        return Err(syn::Error::new_spanned(
            name,
            format!("{what} cannot be empty"),
        ));
    }
    Ok(name)
}

/// How `ty` takes the context, if it is `Context`, `&Context` or `&mut Context` (by the last
/// segment of its path), with the reference, if any.
fn context_param(ty: &Type) -> Option<(ContextParam, Option<&syn::TypeReference>)> {
    let (inner, reference) = match ty {
        Type::Reference(reference) => (&*reference.elem, Some(reference)),
        other => (other, None),
    };
    let Type::Path(path) = inner else { return None };
    if path.qself.is_some() || path.path.segments.last()?.ident != "Context" {
        return None;
    }
    let kind = if reference.is_some() {
        ContextParam::ByRef
    } else {
        ContextParam::ByValue
    };
    Some((kind, reference))
}

/// A step method: `attr` is its `#[step(...)]`, absent on a handler marked `#[catch_error]`
/// only.
fn parse_step(attr: Option<&syn::Attribute>, function: &ImplItemFn) -> syn::Result<StepMethod> {
    let options = match attr {
        Some(attr) => parse_options(attr),
        None => Ok(StepOptions::default()),
    };
    let signature = parse_signature(function);
    // Report a bad option and a bad signature together.
    let (options, (context, context_first, event_ty, return_ty)) = match (options, signature) {
        (Ok(options), Ok(signature)) => (options, signature),
        (Err(mut a), Err(b)) => {
            a.combine(b);
            return Err(a);
        }
        (Err(error), _) | (_, Err(error)) => return Err(error),
    };
    Ok(StepMethod {
        method: function.sig.ident.clone(),
        options,
        catches: None,
        context,
        context_first,
        event_ty,
        return_ty,
    })
}

type Signature = (ContextParam, bool, Type, Type);

fn parse_signature(function: &ImplItemFn) -> syn::Result<Signature> {
    let sig = &function.sig;
    let method = &sig.ident;
    let params = sig.paren_token.span.join();
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            format!("step `{method}` must be an `async fn`: write `async fn {method}`"),
        ));
    }
    if let Some(unsafety) = sig.unsafety {
        return Err(syn::Error::new_spanned(
            unsafety,
            format!("step `{method}` cannot be an `unsafe fn`"),
        ));
    }
    if let Some(param) = sig
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, GenericParam::Lifetime(_)))
    {
        return Err(syn::Error::new_spanned(
            param,
            format!(
                "step `{method}` cannot be generic;\n\
                 the event types it accepts and returns are read from its signature when the workflow is built: to accept several event types, take one `#[derive(EventUnion)]` enum of them"
            ),
        ));
    }

    let mut inputs = sig.inputs.iter();
    let typed_params = || {
        sig.inputs
            .iter()
            .filter(|input| matches!(input, FnArg::Typed(_)))
            .map(pretty)
            .collect::<Vec<_>>()
    };
    match inputs.next() {
        Some(FnArg::Receiver(receiver)) => {
            let shared_ref = matches!(&*receiver.ty, Type::Reference(r) if r.mutability.is_none());
            if !shared_ref {
                let written = pretty(receiver);
                let why = if matches!(&*receiver.ty, Type::Reference(_)) {
                    "the steps of a run execute concurrently and share the workflow: keep state that changes in the run's context (`ctx.set`, `ctx.edit_state`) or behind a `Mutex` field"
                } else {
                    "the steps of a run execute concurrently and share the workflow"
                };
                return Err(syn::Error::new_spanned(
                    receiver,
                    format!("step `{method}` must take `&self`, not `{written}`;\n{why}"),
                ));
            }
        }
        Some(FnArg::Typed(first)) => {
            return Err(syn::Error::new_spanned(
                first,
                format!(
                    "step `{method}` must take `&self` first;\nwrite `async fn {method}(&self, {})`",
                    typed_params().join(", ")
                ),
            ));
        }
        None => {
            return Err(syn::Error::new(
                params,
                format!(
                    "step `{method}` takes no parameters;\n{SHAPE}: `async fn {method}(&self, ev: StartEvent)`"
                ),
            ));
        }
    }

    let mut context = ContextParam::None;
    let mut context_first = false;
    let mut events: Vec<&syn::PatType> = Vec::new();
    for input in inputs {
        let FnArg::Typed(param) = input else { continue };
        match context_param(&param.ty) {
            Some((_, Some(reference))) if reference.mutability.is_some() => {
                return Err(syn::Error::new_spanned(
                    &param.ty,
                    format!(
                        "step `{method}` must take the context as `&Context` (or `Context`), not `&mut Context`;\n\
                         the steps of a run share it, and its methods take `&self`"
                    ),
                ));
            }
            Some((kind, _)) => {
                if !matches!(context, ContextParam::None) {
                    return Err(syn::Error::new_spanned(
                        param,
                        format!("step `{method}` takes the context twice; take it once"),
                    ));
                }
                context_first = events.is_empty();
                context = kind;
            }
            None => events.push(param),
        }
    }
    let event = match events.as_slice() {
        [] => {
            return Err(syn::Error::new(
                params,
                format!(
                    "step `{method}` has no event parameter;\n{SHAPE}: `async fn {method}({}, ev: StartEvent)`",
                    std::iter::once("&self".to_owned())
                        .chain(typed_params())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        [event] => *event,
        [first, second, ..] => {
            // `enum CombineInput { StartEvent(StartEvent), Answer(Answer) }`, from the types.
            let variant = |p: &syn::PatType| match &*p.ty {
                Type::Path(path) if path.qself.is_none() => {
                    path.path.segments.last().map(|s| s.ident.to_string())
                }
                _ => None,
            };
            let variants = match (variant(first), variant(second)) {
                (Some(a), Some(b)) if a != b => {
                    format!("{a}({}), {b}({})", pretty(&first.ty), pretty(&second.ty))
                }
                _ => format!("A({}), B({})", pretty(&first.ty), pretty(&second.ty)),
            };
            let union = format!("{}Input", upper_camel(&method.to_string()));
            return Err(syn::Error::new_spanned(
                second,
                format!(
                    "step `{method}` takes two events, `{}` and `{}`, but a step accepts exactly one;\n\
                     to accept either of them, take one enum of both: `#[derive(EventUnion)] enum {union} {{ {variants} }}`;\n\
                     to go on once both have arrived, take that enum and gather them with `ctx.collect_events_of`",
                    pretty(*first),
                    pretty(*second),
                ),
            ));
        }
    };
    let event_ty = &*event.ty;
    match event_ty {
        Type::Reference(reference) => {
            let owned = &reference.elem;
            return Err(syn::Error::new_spanned(
                event_ty,
                format!(
                    "step `{method}` must take its event by value: write `{}: {}`",
                    pretty(&event.pat),
                    pretty(owned)
                ),
            ));
        }
        Type::ImplTrait(_) => {
            return Err(syn::Error::new_spanned(
                event_ty,
                format!(
                    "step `{method}` must name its event type: the workflow routes events by it; take a `#[derive(EventUnion)]` enum to accept several event types"
                ),
            ));
        }
        _ => {}
    }
    let return_ty = match &sig.output {
        ReturnType::Default => syn::parse_quote_spanned!(sig.paren_token.span.close()=> ()),
        ReturnType::Type(_, ty) => {
            if let Type::ImplTrait(_) = &**ty {
                return Err(syn::Error::new_spanned(
                    ty,
                    format!(
                        "step `{method}` must name its return type: the workflow's graph is read from it"
                    ),
                ));
            }
            (**ty).clone()
        }
    };
    Ok((context, context_first, event_ty.clone(), return_ty))
}

fn parse_options(attr: &syn::Attribute) -> syn::Result<StepOptions> {
    let mut options = StepOptions::default();
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return Ok(options);
    }
    let mut emits_given = false;
    attr.parse_nested_meta(|meta| {
        let once = |given: bool| {
            if given {
                let key = pretty(&meta.path);
                Err(meta.error(format!("`{key}` is given twice")))
            } else {
                Ok(())
            }
        };
        if meta.path.is_ident("name") {
            once(options.name.is_some())?;
            options.name = Some(non_empty(meta.value()?.parse()?, "a step name")?);
        } else if meta.path.is_ident("num_workers") {
            once(options.num_workers.is_some())?;
            let expr: Expr = meta.value()?.parse()?;
            if let Expr::Lit(syn::ExprLit { lit, .. }) = &expr {
                let syn::Lit::Int(int) = lit else {
                    return Err(syn::Error::new_spanned(
                        lit,
                        "`num_workers` takes a number: `num_workers = 2`",
                    ));
                };
                if int.base10_parse::<usize>()? == 0 {
                    return Err(syn::Error::new_spanned(
                        int,
                        "`num_workers` must be at least 1: it is how many invocations of the step may run at once",
                    ));
                }
            }
            options.num_workers = Some((meta.path.clone(), expr));
        } else if meta.path.is_ident("retry") {
            once(options.retry.is_some())?;
            let expr: Expr = meta.value()?.parse()?;
            if let Expr::Lit(lit) = &expr {
                return Err(syn::Error::new_spanned(
                    lit,
                    "`retry` takes a `RetryPolicy`: `retry = RetryPolicy::fixed(Duration::from_millis(100)).max_attempts(3)`",
                ));
            }
            options.retry = Some((meta.path.clone(), expr));
        } else if meta.path.is_ident("timeout") {
            once(options.timeout.is_some())?;
            let expr: Expr = meta.value()?.parse()?;
            if let Expr::Lit(lit) = &expr {
                return Err(syn::Error::new_spanned(
                    lit,
                    "`timeout` takes a `Duration`: `timeout = Duration::from_secs(30)`",
                ));
            }
            options.timeout = Some((meta.path.clone(), expr));
        } else if meta.path.is_ident("emits") {
            once(emits_given)?;
            emits_given = true;
            meta.parse_nested_meta(|inner| {
                if !inner.input.is_empty() && !inner.input.peek(syn::Token![,]) {
                    return Err(inner.error(
                        "`emits` lists event types: `emits(EventA, EventB)`",
                    ));
                }
                options.emits.push(inner.path);
                Ok(())
            })?;
        } else if meta.path.is_ident("skip_graph_checks") {
            once(options.skip_graph_checks.is_some())?;
            options.skip_graph_checks = Some(graph_check::parse(&meta)?);
        } else {
            return Err(meta.error(unknown_option(
                "step",
                &meta.path,
                &["num_workers", "retry", "timeout", "emits", "skip_graph_checks", "name"],
                "`num_workers = N`, `retry = <RetryPolicy>`, `timeout = <Duration>`, `emits(EventA, EventB)`, `skip_graph_checks(reachability, dead_end, terminal_event)` and `name = \"...\"`",
            )));
        }
        Ok(())
    })?;
    Ok(options)
}

/// The `Step` a method becomes: a closure holding the instance that calls the method, passed to
/// a helper whose bounds check the event and return types at the user's tokens.
fn step_expr(step: &StepMethod) -> TokenStream {
    let method = &step.method;
    let name = step
        .options
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&method.to_string(), method.span()));
    let event_ty = &step.event_ty;
    let return_ty = &step.return_ty;
    let ctx = format_ident!("__eventflow_ctx");
    let ev = format_ident!("__eventflow_event");
    let ctx_arg = match step.context {
        ContextParam::None => None,
        ContextParam::ByRef => Some(quote!(&#ctx)),
        ContextParam::ByValue => Some(quote!(#ctx)),
    };
    let ctx_param = match step.context {
        ContextParam::None => quote!(_),
        _ => quote!(#ctx),
    };
    let args = match (ctx_arg, step.context_first) {
        (None, _) => quote!(#ev),
        (Some(ctx_arg), true) => quote!(#ctx_arg, #ev),
        (Some(ctx_arg), false) => quote!(#ev, #ctx_arg),
    };
    let body = quote_spanned! {method.span()=>
        move |#ctx_param: ::eventflow::Context, #ev: #event_ty| {
            let this = ::std::sync::Arc::clone(&this);
            async move { Self::#method(&this, #args).await }
        }
    };
    // Each option becomes a builder call named at the option's key, so a value of the wrong
    // type is reported at the value, with "arguments to this method are incorrect" at the key.
    let options = [
        ("num_workers", &step.options.num_workers),
        ("retry", &step.options.retry),
        ("timeout", &step.options.timeout),
    ]
    .into_iter()
    .filter_map(|(setter, option)| {
        let (key, value) = option.as_ref()?;
        let setter = syn::Ident::new(setter, key.span());
        Some(quote!(.#setter(#value)))
    });
    let emits = step
        .options
        .emits
        .iter()
        .map(|path| quote_spanned!(path.span()=> .emits::<#path>()));
    let skips = step
        .options
        .skip_graph_checks
        .as_ref()
        .map(|checks| quote!(.skip_graph_checks([#(#checks),*])));
    let catches = step
        .catches
        .as_ref()
        .map(|catches| quote!(.catch_error(#catches)));
    let emits_checks = step.options.emits.iter().map(|path| {
        qualified_path(
            &syn::parse_quote!(#path),
            quote!(::eventflow::Event > ::NAME),
        )
    });
    // Qualified paths report a type that misses the trait without pointing into the expansion;
    // the helper's identical obligation at the same span is then not reported again.
    let input_check = qualified_path(event_ty, quote!(::eventflow::StepInput > ::accepted_types));
    let return_check = qualified_path(
        return_ty,
        quote!(::eventflow::IntoStepResult > ::into_step_result),
    );
    // Spanned at the method's name: a step whose future is not `Send` is reported there.
    let call = quote_spanned! {method.span()=>
        __eventflow_step::<#event_ty, #return_ty, _, _>(#name, #body)
    };
    quote! {{
        let _ = #input_check;
        let _ = #return_check;
        #(let _ = #emits_checks;)*
        let this = ::std::sync::Arc::clone(&this);
        #call
            #(#options)*
            #(#emits)*
            #skips
            #catches
    }}
}

/// `snake_case` to `UpperCamelCase`, for a name suggested in a message.
fn upper_camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}
