//! `#[catch_error]` and `#[catch_error(for_steps = ["a", "b"], max_recoveries = 2)]` on a
//! method of a `#[workflow]` impl block: the step is an error handler. Read here into the
//! `eventflow::CatchError` the step is given.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, ExprArray, Lit};

use crate::unknown_option;

/// Whether `attr` is `#[catch_error]` (or `#[catch_error(...)]`).
pub(crate) fn is_catch_error(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "catch_error")
}

/// The `eventflow::CatchError` expression an attribute describes.
pub(crate) fn parse(attr: &syn::Attribute) -> syn::Result<TokenStream> {
    let mut steps: Option<Vec<syn::LitStr>> = None;
    let mut max_recoveries: Option<Expr> = None;
    if !matches!(attr.meta, syn::Meta::Path(_)) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("for_steps") {
                if steps.is_some() {
                    return Err(meta.error("`for_steps` is given twice"));
                }
                let array: ExprArray = meta.value()?.parse()?;
                let mut names = Vec::new();
                for element in &array.elems {
                    match element {
                        Expr::Lit(syn::ExprLit {
                            lit: Lit::Str(name),
                            ..
                        }) if !name.value().is_empty() => names.push(name.clone()),
                        other => {
                            return Err(syn::Error::new_spanned(
                                other,
                                "`for_steps` takes step names: `for_steps = [\"fetch\", \"parse\"]`",
                            ));
                        }
                    }
                }
                if names.is_empty() {
                    return Err(syn::Error::new_spanned(
                        array,
                        "`for_steps` names at least one step; without it, the handler catches every step",
                    ));
                }
                steps = Some(names);
                Ok(())
            } else if meta.path.is_ident("max_recoveries") {
                if max_recoveries.is_some() {
                    return Err(meta.error("`max_recoveries` is given twice"));
                }
                max_recoveries = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error(unknown_option(
                    "catch_error",
                    &meta.path,
                    &["for_steps", "max_recoveries"],
                    "`for_steps = [\"step\", ...]` and `max_recoveries = N`",
                )))
            }
        })?;
    }
    let base = match steps {
        None => quote!(::eventflow::CatchError::any_step()),
        Some(names) => quote!(::eventflow::CatchError::for_steps([#(#names),*])),
    };
    Ok(match max_recoveries {
        None => base,
        Some(max) => {
            let setter = quote_spanned!(max.span()=> max_recoveries);
            quote!(#base.#setter(#max))
        }
    })
}
