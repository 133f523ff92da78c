//! `#[workflow]`: turns the `#[step]` methods of an impl block into a workflow.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ImplItem, ImplItemFn, ItemImpl, LitStr, Pat, Path, ReturnType, Type};

struct StepOptions {
    name: Option<LitStr>,
    num_workers: Option<Expr>,
    retry: Option<Expr>,
    timeout: Option<Expr>,
    emits: Vec<Path>,
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
    context: ContextParam,
    /// Whether the context comes before the event in the method's parameters.
    context_first: bool,
    event_ty: Type,
    return_ty: Type,
}

pub(crate) fn expand(args: TokenStream, mut item: ItemImpl) -> syn::Result<TokenStream> {
    let mut workflow_name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            workflow_name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown workflow option; expected `name = \"...\"`"))
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
    let mut errors: Option<syn::Error> = None;
    for impl_item in &mut item.items {
        let ImplItem::Fn(function) = impl_item else {
            continue;
        };
        let Some(position) = function.attrs.iter().position(is_step_attr) else {
            continue;
        };
        let attr = function.attrs.remove(position);
        match parse_step(&attr, function) {
            Ok(step) => steps.push(step),
            Err(error) => match &mut errors {
                Some(errors) => errors.combine(error),
                None => errors = Some(error),
            },
        }
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
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
    let step_exprs = steps.iter().map(step_expr);
    let checks = steps.iter().map(|step| {
        let check = format_ident!("__eventflow_check_{}", step.method);
        let event_ty = &step.event_ty;
        let return_ty = &step.return_ty;
        let input = quote_spanned!(event_ty.span()=> ::eventflow::__private::assert_step_input::<#event_ty>(););
        let output = quote_spanned!(return_ty.span()=> ::eventflow::__private::assert_step_return::<#return_ty>(););
        quote! {
            #[doc(hidden)]
            #[allow(dead_code, non_snake_case)]
            fn #check() {
                #input
                #output
            }
        }
    });

    Ok(quote! {
        #item

        impl #impl_generics #self_ty #where_clause {
            #(#checks)*
        }

        impl #impl_generics ::eventflow::IntoWorkflow for #self_ty #where_clause {
            fn workflow_builder(self) -> ::eventflow::WorkflowBuilder {
                let this = ::std::sync::Arc::new(self);
                ::eventflow::Workflow::builder(#name)
                    #(.step(#step_exprs))*
            }
        }
    })
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
            .map_or_else(|| quote!(#ty).to_string(), |s| s.ident.to_string()),
        _ => quote!(#ty).to_string(),
    }
}

fn is_context(ty: &Type) -> Option<ContextParam> {
    let (inner, by_ref) = match ty {
        Type::Reference(reference) if reference.mutability.is_none() => (&*reference.elem, true),
        other => (other, false),
    };
    let Type::Path(path) = inner else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Context" {
        return None;
    }
    Some(if by_ref {
        ContextParam::ByRef
    } else {
        ContextParam::ByValue
    })
}

fn parse_step(attr: &syn::Attribute, function: &ImplItemFn) -> syn::Result<StepMethod> {
    let options = parse_options(attr)?;
    let sig = &function.sig;
    let method = sig.ident.clone();
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            format!("step `{method}` must be an `async fn`"),
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            format!(
                "step `{method}` cannot be generic: its event types must be known when the workflow is built"
            ),
        ));
    }
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(receiver))
            if receiver.reference.is_some() && receiver.mutability.is_none() => {}
        Some(other) => {
            return Err(syn::Error::new_spanned(
                other,
                format!(
                    "step `{method}` must take `&self` first: steps of one run execute concurrently and share the instance"
                ),
            ));
        }
        None => {
            return Err(syn::Error::new_spanned(
                &sig.inputs,
                format!(
                    "step `{method}` must take `&self`, optionally `ctx: &Context`, and one event"
                ),
            ));
        }
    }

    let mut context = ContextParam::None;
    let mut context_first = false;
    let mut events: Vec<&syn::PatType> = Vec::new();
    for input in inputs {
        let FnArg::Typed(param) = input else { continue };
        if !matches!(&*param.pat, Pat::Ident(_) | Pat::Wild(_)) {
            return Err(syn::Error::new_spanned(
                &param.pat,
                "step parameters must be plain names (`ev: MyEvent`), not patterns",
            ));
        }
        match is_context(&param.ty) {
            Some(kind) => {
                if !matches!(context, ContextParam::None) {
                    return Err(syn::Error::new_spanned(
                        param,
                        format!("step `{method}` takes the context twice"),
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
            return Err(syn::Error::new_spanned(
                &sig.inputs,
                format!(
                    "step `{method}` has no event parameter: a step takes `&self`, optionally `ctx: &Context`, and exactly one event, e.g. `ev: StartEvent`"
                ),
            ));
        }
        [event] => *event,
        [first, second, ..] => {
            let describe = |p: &syn::PatType| {
                let (pat, ty) = (&p.pat, &p.ty);
                quote!(#pat: #ty).to_string()
            };
            return Err(syn::Error::new_spanned(
                second,
                format!(
                    "step `{method}` takes two event parameters (`{}` and `{}`); a step accepts exactly one event. To accept several event types, take one enum of them: `#[derive(EventUnion)] enum Input {{ A(A), B(B) }}`; to wait for several events, use `ctx.collect_events`",
                    describe(first),
                    describe(second)
                ),
            ));
        }
    };
    let return_ty = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    Ok(StepMethod {
        method,
        options,
        context,
        context_first,
        event_ty: (*event.ty).clone(),
        return_ty,
    })
}

fn parse_options(attr: &syn::Attribute) -> syn::Result<StepOptions> {
    let mut options = StepOptions {
        name: None,
        num_workers: None,
        retry: None,
        timeout: None,
        emits: Vec::new(),
    };
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return Ok(options);
    }
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("name") {
            options.name = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("num_workers") {
            let value = meta.value()?;
            let expr: Expr = value.parse()?;
            if let Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(int), .. }) = &expr
                && int.base10_parse::<usize>()? == 0
            {
                return Err(syn::Error::new_spanned(int, "`num_workers` must be at least 1"));
            }
            options.num_workers = Some(expr);
        } else if meta.path.is_ident("retry") {
            options.retry = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("timeout") {
            options.timeout = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("emits") {
            meta.parse_nested_meta(|inner| {
                options.emits.push(inner.path);
                Ok(())
            })?;
        } else {
            return Err(meta.error(
                "unknown step option; expected `num_workers = N`, `retry = <RetryPolicy>`, `timeout = <Duration>`, `emits(EventA, EventB)` or `name = \"...\"`",
            ));
        }
        Ok(())
    })?;
    Ok(options)
}

/// The `Step` a method becomes: a closure holding the instance that calls the method.
fn step_expr(step: &StepMethod) -> TokenStream {
    let method = &step.method;
    let name = step
        .options
        .name
        .clone()
        .unwrap_or_else(|| LitStr::new(&method.to_string(), Span::call_site()));
    let event_ty = &step.event_ty;
    let return_ty = &step.return_ty;
    let ctx = format_ident!("__eventflow_ctx");
    let ev = format_ident!("__eventflow_event");
    let ctx_arg = match step.context {
        ContextParam::None => None,
        ContextParam::ByRef => Some(quote!(&#ctx)),
        ContextParam::ByValue => Some(quote!(#ctx)),
    };
    let args = match (ctx_arg, step.context_first) {
        (None, _) => quote!(#ev),
        (Some(ctx_arg), true) => quote!(#ctx_arg, #ev),
        (Some(ctx_arg), false) => quote!(#ev, #ctx_arg),
    };
    let params = match step.context {
        ContextParam::None => quote!(#ev: #event_ty),
        _ => quote!(#ctx: ::eventflow::Context, #ev: #event_ty),
    };
    // Spanned at the return type, so a type that is not a step result is reported there.
    let convert = quote_spanned! {return_ty.span()=>
        <#return_ty as ::eventflow::IntoStepResult>::into_step_result(this.#method(#args).await)
    };
    let num_workers = step.options.num_workers.iter();
    let retry = step.options.retry.iter();
    let timeout = step.options.timeout.iter();
    let emits = step.options.emits.iter();
    quote! {{
        let this = ::std::sync::Arc::clone(&this);
        ::eventflow::Step::new(#name, move |#params| {
            let this = ::std::sync::Arc::clone(&this);
            async move { #convert }
        })
        #(.num_workers(#num_workers))*
        #(.retry(#retry))*
        #(.timeout(#timeout))*
        #(.emits::<#emits>())*
    }}
}
