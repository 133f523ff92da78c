//! `#[derive(Event)]` and `#[derive(EventUnion)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr};

use crate::qualified_path;

pub(crate) fn derive_event(input: DeriveInput) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "an event type cannot be generic: its name must be stable; define one type per event",
        ));
    }
    let ident = &input.ident;
    let mut name: Option<String> = None;
    let mut role: Option<&str> = None;
    let mut schema: Option<syn::Expr> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        attr.parse_nested_meta(|meta| {
            let found = ROLES.into_iter().find(|r| meta.path.is_ident(r));
            if meta.path.is_ident("name") {
                if name.is_some() {
                    return Err(meta.error("`name` is given twice; keep one"));
                }
                let value: LitStr = meta.value()?.parse()?;
                if value.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(value, "an event name cannot be empty"));
                }
                name = Some(value.value());
                Ok(())
            } else if meta.path.is_ident("schema") {
                if schema.is_some() {
                    return Err(meta.error("`schema` is given twice; keep one"));
                }
                if !meta.input.peek(syn::Token![=]) {
                    return Err(meta.error(
                        "`schema` takes the event's JSON Schema: `schema = json!({ \"type\": \"object\" })`",
                    ));
                }
                schema = Some(meta.value()?.parse()?);
                Ok(())
            } else if let Some(found) = found {
                if let Some(previous) = role {
                    return Err(meta.error(format!(
                        "an event has at most one role, and this one is already `{previous}`; keep one of `start`, `stop`, `external`, `outbound`, `terminal` and `internal`"
                    )));
                }
                role = Some(found);
                Ok(())
            } else {
                Err(meta.error(crate::unknown_option(
                    "event",
                    &meta.path,
                    &["name", "schema", "start", "stop", "external", "outbound", "terminal", "internal"],
                    "`name = \"...\"`, `schema = <JSON Schema>` and one role: `start`, `stop`, `external`, `outbound`, `terminal` or `internal`",
                )))
            }
        })?;
    }
    let name = name.unwrap_or_else(|| ident.to_string());
    let role = match role {
        None => quote!(Plain),
        Some("start") => quote!(Start),
        Some("stop") => quote!(Stop),
        Some("external") => quote!(External),
        Some("outbound") => quote!(Outbound),
        Some("terminal") => quote!(Terminal),
        Some(_) => quote!(Internal),
    };
    let schema = match schema {
        // The expression keeps its own spans, so a value of the wrong type is reported there.
        Some(schema) => quote! {
            let schema: ::eventflow::__private::serde_json::Value = #schema;
            ::core::option::Option::Some(schema)
        },
        None => quote! {
            #[allow(unused_imports)]
            use ::eventflow::__private::{ViaJsonSchema as _, WithoutSchema as _};
            (&&::eventflow::__private::Probe::<Self>::new()).schema()
        },
    };
    Ok(quote! {
        impl ::eventflow::Event for #ident {
            const NAME: &'static str = #name;
            const ROLE: ::eventflow::EventRole = ::eventflow::EventRole::#role;

            fn schema() -> ::core::option::Option<::eventflow::__private::serde_json::Value> {
                #schema
            }
        }
    })
}

/// The roles `#[event(...)]` accepts, one per event type.
const ROLES: [&str; 6] = [
    "start", "stop", "external", "outbound", "terminal", "internal",
];

pub(crate) fn derive_event_union(input: DeriveInput) -> syn::Result<TokenStream> {
    let ident = &input.ident;
    let data = match &input.data {
        Data::Enum(data) => data,
        Data::Struct(data) => {
            let struct_token = data.struct_token;
            return Err(not_an_enum(quote!(#struct_token #ident)));
        }
        Data::Union(data) => {
            let union_token = data.union_token;
            return Err(not_an_enum(quote!(#union_token #ident)));
        }
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "an event union cannot be generic: the event types it holds must be known when the workflow is built",
        ));
    }
    if data.variants.is_empty() {
        return Err(syn::Error::new_spanned(
            ident,
            "an event union needs at least one variant: `enum Next { Refine(RefineEvent), Done(StopEvent) }`",
        ));
    }
    let mut variants: Vec<&syn::Ident> = Vec::new();
    let mut types: Vec<(&syn::Type, String)> = Vec::new();
    for variant in &data.variants {
        let name = &variant.ident;
        let ty = match &variant.fields {
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => &fields.unnamed[0].ty,
            fields => {
                let suggestion = match fields {
                    Fields::Named(named) if named.named.len() == 1 => {
                        let ty = &named.named[0].ty;
                        crate::pretty(&quote!(#name(#ty)))
                    }
                    _ => format!("{name}(SomeEvent)"),
                };
                return Err(syn::Error::new_spanned(
                    variant,
                    format!(
                        "each variant of an event union holds exactly one event, as a tuple variant: write `{suggestion}`"
                    ),
                ));
            }
        };
        let rendered = quote!(#ty).to_string();
        if let Some(first) = types.iter().position(|(_, seen)| *seen == rendered) {
            return Err(syn::Error::new_spanned(
                ty,
                format!(
                    "variant `{}` already holds this event type; each event type appears once in a union, since an event is routed by its type",
                    variants[first]
                ),
            ));
        }
        types.push((ty, rendered));
        variants.push(name);
    }
    // Every use of a variant's type as an event goes through `__member::<T>()`, spelled at the
    // variant's type: a variant that is not an event is then one error, at that type, however
    // many places use it (the compiler prints identical errors once).
    let members: Vec<TokenStream> = types
        .iter()
        .map(|(ty, _)| quote_spanned!(ty.span()=> __member::<#ty>()))
        .collect();
    let tys: Vec<&syn::Type> = types.iter().map(|(ty, _)| *ty).collect();
    // Within one function the compiler reports an unmet bound once per span; the qualified path
    // comes first, so the error it gives (no note pointing into the expansion) is the one shown.
    let checks: Vec<TokenStream> = tys
        .iter()
        .map(|ty| {
            let path = qualified_path(ty, quote!(::eventflow::Event > ::NAME));
            quote!(let _ = #path;)
        })
        .collect();
    Ok(quote! {
        const _: () = {
            #[allow(clippy::type_complexity)]
            fn __member<E: ::eventflow::Event>() -> (
                fn() -> ::eventflow::EventType,
                fn(::eventflow::AnyEvent) -> ::std::result::Result<E, ::eventflow::AnyEvent>,
                fn(E) -> ::eventflow::AnyEvent,
            ) {
                (
                    ::eventflow::EventType::of::<E>,
                    ::eventflow::AnyEvent::downcast::<E>,
                    ::eventflow::AnyEvent::new::<E>,
                )
            }

            impl ::eventflow::StepInput for #ident {
                fn accepted_types() -> ::std::vec::Vec<::eventflow::EventType> {
                    #(#checks)*
                    ::std::vec![#((#members.0)()),*]
                }

                fn from_event(
                    event: ::eventflow::AnyEvent,
                ) -> ::std::result::Result<Self, ::eventflow::AnyEvent> {
                    #(#checks)*
                    #(
                        let event = match (#members.1)(event) {
                            ::std::result::Result::Ok(inner) => {
                                return ::std::result::Result::Ok(#ident::#variants(inner));
                            }
                            ::std::result::Result::Err(event) => event,
                        };
                    )*
                    ::std::result::Result::Err(event)
                }
            }

            impl ::eventflow::StepOutput for #ident {
                fn emitted_types() -> ::std::vec::Vec<::eventflow::EventType> {
                    #(#checks)*
                    ::std::vec![#((#members.0)()),*]
                }

                fn into_events(self, out: &mut ::std::vec::Vec<::eventflow::AnyEvent>) {
                    #(#checks)*
                    match self {
                        #( #ident::#variants(inner) => out.push((#members.2)(inner)), )*
                    }
                }
            }
        };

        #(
            impl ::std::convert::From<#tys> for #ident {
                fn from(event: #tys) -> Self {
                    #ident::#variants(event)
                }
            }
        )*
    })
}

fn not_an_enum(tokens: TokenStream) -> syn::Error {
    syn::Error::new_spanned(
        tokens,
        "`EventUnion` is derived for an enum whose variants each hold one event: `enum Next { Refine(RefineEvent), Done(StopEvent) }`",
    )
}
