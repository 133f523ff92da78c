//! `skip_graph_checks(reachability, dead_end)`, in `#[step(...)]` and `#[workflow(...)]`: the
//! checks are known here, so a name that is none is a compile error at that name, and the
//! expansion names `eventflow::GraphCheck` variants, which cannot fail.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::LitStr;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;

use crate::{pretty, unknown_name};

/// Each check's name, as in the reference, with its `eventflow::GraphCheck` variant (this crate
/// cannot name that enum; `tests/ui/pass/options.rs` in `eventflow` expands all three).
const CHECKS: [(&str, &str); 3] = [
    ("reachability", "Reachability"),
    ("dead_end", "DeadEnd"),
    ("terminal_event", "TerminalEvent"),
];

const ALL: &str = "`reachability`, `dead_end` and `terminal_event`";

const SHAPE: &str =
    "`skip_graph_checks` lists checks by name: `skip_graph_checks(reachability, dead_end)`";

/// The checks listed by a `skip_graph_checks(...)` option, as `::eventflow::GraphCheck`
/// variants, each spanned at its name.
pub(crate) fn parse(meta: &ParseNestedMeta) -> syn::Result<Vec<TokenStream>> {
    // Also the reference's spelling, `skip_graph_checks=["reachability"]`: say how it is
    // written here.
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(SHAPE));
    }
    let content;
    let parens = syn::parenthesized!(content in meta.input);
    let mut checks: Vec<(String, TokenStream)> = Vec::new();
    while !content.is_empty() {
        if content.peek(LitStr) {
            let quoted: LitStr = content.parse()?;
            return Err(syn::Error::new(
                quoted.span(),
                format!(
                    "a graph check is named without quotes: `skip_graph_checks({})`",
                    quoted.value()
                ),
            ));
        }
        let path: syn::Path = content.parse()?;
        let written = pretty(&path);
        let Some(&(_, variant)) = CHECKS.iter().find(|(name, _)| *name == written) else {
            let names: Vec<&str> = CHECKS.iter().map(|(name, _)| *name).collect();
            return Err(syn::Error::new_spanned(
                &path,
                unknown_name("graph check", "checks", &path, &names, ALL),
            ));
        };
        if checks.iter().any(|(name, _)| *name == written) {
            return Err(syn::Error::new_spanned(
                &path,
                format!("`{written}` is listed twice"),
            ));
        }
        let variant = syn::Ident::new(variant, path.span());
        checks.push((
            written,
            quote_spanned!(path.span()=> ::eventflow::GraphCheck::#variant),
        ));
        if content.is_empty() {
            break;
        }
        if !content.peek(syn::Token![,]) {
            return Err(content.error(
                "checks are separated by commas: `skip_graph_checks(reachability, dead_end)`",
            ));
        }
        content.parse::<syn::Token![,]>()?;
    }
    if checks.is_empty() {
        return Err(syn::Error::new(
            parens.span.join(),
            format!("`skip_graph_checks` lists at least one check: {ALL}"),
        ));
    }
    Ok(checks.into_iter().map(|(_, check)| check).collect())
}
