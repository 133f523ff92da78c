//! The bearer-token check: every route but `/health` and CORS preflights, when a token is
//! configured.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppRef;
use crate::error::ApiError;

/// Checks the bearer token, when one is configured; `/health` and CORS preflights are open.
pub(super) async fn authenticate(
    State(state): State<AppRef>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.config.auth_token
        && request.uri().path() != "/health"
        && request.method() != Method::OPTIONS
    {
        let presented = match bearer_token(request.headers()) {
            Ok(presented) => presented,
            Err(why) => return ApiError::Unauthorized(why).into_response(),
        };
        if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
            return ApiError::Unauthorized("Invalid bearer token").into_response();
        }
    }
    next.run(request).await
}

/// The token of the request's `Authorization: Bearer <token>` header, or why there is none
/// (the message of the 401).
///
/// RFC 9110 §11: the scheme is case-insensitive (`bearer`, `BEARER`), one or more spaces
/// separate it from the token; the token is compared as given. A header that is not visible
/// ASCII, is sent twice, or has no token is malformed rather than merely wrong, and says so.
fn bearer_token(headers: &HeaderMap) -> Result<&str, &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err("Missing bearer token: send `Authorization: Bearer <token>`");
    };
    if values.next().is_some() {
        return Err(
            "Malformed Authorization header: it is sent more than once; send one \
             `Authorization: Bearer <token>`",
        );
    }
    let Ok(value) = value.to_str() else {
        return Err(
            "Malformed Authorization header: it is not visible ASCII; send \
             `Authorization: Bearer <token>`",
        );
    };
    let malformed = "Malformed Authorization header: expected `Bearer <token>`";
    let Some((scheme, token)) = value.split_once(' ') else {
        return Err(malformed);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("Unsupported authorization scheme: send `Authorization: Bearer <token>`");
    }
    match token.trim_start_matches(' ') {
        "" => Err(malformed),
        token => Ok(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn token_of(values: &[&[u8]]) -> Result<String, &'static str> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        bearer_token(&headers).map(str::to_owned)
    }

    #[test]
    fn the_scheme_is_matched_in_any_case() {
        for value in [
            &b"Bearer x"[..],
            b"bearer x",
            b"BEARER x",
            b"bEaReR x",
            b"Bearer   x",
        ] {
            assert_eq!(token_of(&[value]).as_deref(), Ok("x"), "{value:?}");
        }
        // The token is taken as given: comparing it is the caller's job.
        assert_eq!(token_of(&[b"Bearer X y"]).as_deref(), Ok("X y"));
    }

    #[test]
    fn malformed_headers_say_so() {
        let reason = |values: &[&[u8]]| token_of(values).unwrap_err();
        assert!(reason(&[]).starts_with("Missing bearer token"));
        for value in [&b"Bearer"[..], b"Bearer ", b"", b"x", b"Bearer\tx"] {
            assert!(
                reason(&[value]).starts_with("Malformed Authorization header: expected"),
                "{value:?}"
            );
        }
        assert!(reason(&[b"Bearer \xe9"]).contains("not visible ASCII"));
        assert!(reason(&[b"Bearer x", b"Bearer x"]).contains("more than once"));
        assert!(reason(&[b"Basic eDp5"]).starts_with("Unsupported authorization scheme"));
    }
}
