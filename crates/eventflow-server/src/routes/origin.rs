//! Cross-site writes: a request that changes something (`POST`, `PUT`, `PATCH`, `DELETE`) sent
//! by a web page of another site is refused, unless the configuration allows that site.
//!
//! Without CORS headers a browser keeps a foreign page from *reading* answers, but it still
//! sends the page's "simple" requests — a form post, a `fetch` with `mode: "no-cors"` and a
//! `text/plain` body — so any site a user visits could start and cancel runs on a local server.
//! Browsers name the page's origin in `Origin` on every cross-origin write (and programs such as
//! the Python client or curl send none), so the header is the tell: no `Origin`, the server's
//! own origin, or an origin the CORS configuration allows, passes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Cors;
use crate::error::ApiError;

/// Refuses a write from a page of a site the configuration does not allow.
pub(super) async fn refuse_cross_site(
    State(cors): State<Arc<Cors>>,
    request: Request,
    next: Next,
) -> Response {
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if writes && let Err(error) = check(&cors, request.headers(), request.uri()) {
        return error.into_response();
    }
    next.run(request).await
}

fn check(cors: &Cors, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let allowed = match cors {
        Cors::AnyOrigin => true,
        Cors::Origins(origins) => origins.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        Cors::Disabled => false,
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| uri.authority().map(|authority| authority.as_str()));
    if allowed || host.is_some_and(|host| same_origin(origin, host)) {
        return Ok(());
    }
    Err(ApiError::CrossSite(format!(
        "Cross-site request refused: a page of {origin:?} may not change this server; \
         allow its site with `--cors-origin ORIGIN` (ServerConfig::cors)"
    )))
}

/// Whether `origin` (`scheme://host[:port]`) names the server reached as `host`: the same
/// name and port (the scheme's default port when none is written).
fn same_origin(origin: &str, host: &str) -> bool {
    let Ok(origin) = origin.parse::<Uri>() else {
        return false;
    };
    let (Some(scheme), Some(authority)) = (origin.scheme_str(), origin.authority()) else {
        return false;
    };
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let Ok(host) = host.parse::<Uri>() else {
        return false;
    };
    let Some(reached) = host.authority() else {
        return false;
    };
    authority.host().eq_ignore_ascii_case(reached.host())
        && authority.port_u16().unwrap_or(default_port)
            == reached.port_u16().unwrap_or(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn writes_from_other_sites_are_refused_unless_allowed() {
        let uri = Uri::from_static("/workflows/w/run");
        let host = "127.0.0.1:8080";
        let check = |cors: &Cors, origin| check(cors, &headers(origin, host), &uri).is_ok();
        // Programs send no Origin; the server's own pages send its origin.
        assert!(check(&Cors::Disabled, None));
        assert!(check(&Cors::Disabled, Some("http://127.0.0.1:8080")));
        assert!(!check(&Cors::Disabled, Some("http://127.0.0.1:9090")));
        // The scheme is not compared: behind a TLS proxy the server does not know its own.
        assert!(check(&Cors::Disabled, Some("https://127.0.0.1:8080")));
        assert!(!check(&Cors::Disabled, Some("https://evil.example")));
        assert!(!check(&Cors::Disabled, Some("null")));
        let listed = Cors::Origins(vec!["https://app.example".into()]);
        assert!(check(&listed, Some("https://app.example")));
        assert!(!check(&listed, Some("https://evil.example")));
        assert!(check(&Cors::AnyOrigin, Some("https://evil.example")));
    }

    #[test]
    fn default_ports_are_the_same_origin() {
        assert!(same_origin("http://localhost", "localhost:80"));
        assert!(same_origin("https://Example.COM", "example.com:443"));
        assert!(!same_origin("http://localhost", "localhost:8080"));
    }
}
