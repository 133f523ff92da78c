//! `#[derive(Event)]` and `#[derive(EventUnion)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, LitStr};

pub(crate) fn derive_event(input: DeriveInput) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "an event type cannot be generic: its name must be stable; define one type per event",
        ));
    }
    let ident = &input.ident;
    let mut name = ident.to_string();
    let mut role: Option<(&str, proc_macro2::Span)> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        attr.parse_nested_meta(|meta| {
            let found = ["start", "stop", "external", "outbound"]
                .into_iter()
                .find(|r| meta.path.is_ident(r));
            if meta.path.is_ident("name") {
                let value: LitStr = meta.value()?.parse()?;
                if value.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(value, "an event name cannot be empty"));
                }
                name = value.value();
                Ok(())
            } else if let Some(found) = found {
                if let Some((previous, _)) = role {
                    return Err(meta.error(format!(
                        "an event has one role; it is already `{previous}`"
                    )));
                }
                role = Some((found, meta.path.get_ident().map_or_else(proc_macro2::Span::call_site, |i| i.span())));
                Ok(())
            } else {
                Err(meta.error(
                    "unknown event option; expected `name = \"...\"`, `start`, `stop`, `external` or `outbound`",
                ))
            }
        })?;
    }
    let role = match role.map(|(r, _)| r) {
        None => quote!(Plain),
        Some("start") => quote!(Start),
        Some("stop") => quote!(Stop),
        Some("external") => quote!(External),
        Some(_) => quote!(Outbound),
    };
    Ok(quote! {
        impl ::eventflow::Event for #ident {
            const NAME: &'static str = #name;
            const ROLE: ::eventflow::EventRole = ::eventflow::EventRole::#role;
        }
    })
}

pub(crate) fn derive_event_union(input: DeriveInput) -> syn::Result<TokenStream> {
    let ident = &input.ident;
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            ident,
            "`EventUnion` is derived for an enum whose variants each hold one event: `enum Next { Refine(RefineEvent), Done(StopEvent) }`",
        ));
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "an event union cannot be generic",
        ));
    }
    if data.variants.is_empty() {
        return Err(syn::Error::new_spanned(
            ident,
            "an event union needs at least one variant",
        ));
    }
    let mut variants = Vec::new();
    let mut types = Vec::new();
    for variant in &data.variants {
        let ty = match &variant.fields {
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => &fields.unnamed[0].ty,
            _ => {
                return Err(syn::Error::new_spanned(
                    variant,
                    "each variant of an event union holds exactly one event: `Variant(SomeEvent)`",
                ));
            }
        };
        let rendered = quote!(#ty).to_string();
        if types
            .iter()
            .any(|(_, seen): &(&syn::Type, String)| *seen == rendered)
        {
            return Err(syn::Error::new_spanned(
                ty,
                "this event type already has a variant; each event type appears once in a union",
            ));
        }
        types.push((ty, rendered));
        variants.push(&variant.ident);
    }
    let tys: Vec<&syn::Type> = types.iter().map(|(ty, _)| *ty).collect();
    Ok(quote! {
        impl ::eventflow::StepInput for #ident {
            fn accepted_types() -> ::std::vec::Vec<::eventflow::EventType> {
                ::std::vec![#(::eventflow::EventType::of::<#tys>()),*]
            }

            fn from_event(
                event: ::eventflow::AnyEvent,
            ) -> ::std::result::Result<Self, ::eventflow::AnyEvent> {
                #(
                    let event = match event.downcast::<#tys>() {
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
                ::std::vec![#(::eventflow::EventType::of::<#tys>()),*]
            }

            fn into_events(self, out: &mut ::std::vec::Vec<::eventflow::AnyEvent>) {
                match self {
                    #( #ident::#variants(inner) => out.push(::eventflow::AnyEvent::new(inner)), )*
                }
            }
        }

        #(
            impl ::std::convert::From<#tys> for #ident {
                fn from(event: #tys) -> Self {
                    #ident::#variants(event)
                }
            }
        )*
    })
}
