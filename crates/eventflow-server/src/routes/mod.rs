//! The routes, the request-body extractor and the cross-cutting layers.

mod events;
mod handlers;
mod workflows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use eventflow::store::{RunFilter, RunRecord, RunStatus};
use eventflow_api::Handler;
use serde_json::Value;
use subtle::ConstantTimeEq;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Cors;
use crate::envelope;
use crate::error::ApiError;
use crate::server::AppState;
use crate::time::iso8601;

pub(crate) type AppRef = Arc<AppState>;

/// The route table: each route's path, method and OpenAPI operation come from the
/// `#[utoipa::path]` of its handler, so the router and `/openapi.json` cannot disagree.
pub(crate) fn api() -> OpenApiRouter<AppRef> {
    // `/results` is deprecated in the reference; `#[deprecated]` marks it so in the document.
    #[allow(deprecated)]
    let results = routes!(handlers::result);
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(workflows::health))
        .routes(routes!(workflows::list))
        .routes(routes!(workflows::run))
        .routes(routes!(workflows::run_nowait))
        .routes(routes!(workflows::schema))
        .routes(routes!(workflows::events))
        .routes(routes!(workflows::representation))
        .routes(routes!(handlers::list))
        .routes(routes!(handlers::get))
        .routes(routes!(handlers::cancel))
        .routes(results)
        .routes(routes!(events::stream, events::send))
        .routes(routes!(openapi))
        .routes(routes!(metrics))
}

/// The OpenAPI document, serialized once when the router is built.
#[derive(Clone)]
struct OpenApiJson(Bytes);

pub(crate) fn router(state: AppRef) -> Router {
    let (routes, document) = api().split_for_parts();
    let document = OpenApiJson(Bytes::from(
        document
            .to_json()
            .expect("an OpenAPI document built from types serializes"),
    ));
    let routes = routes
        .layer(Extension(document))
        .route_layer(middleware::from_fn_with_state(state.clone(), measure))
        .fallback(not_found);
    let mut app = routes
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn(require_host))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    run_id = tracing::field::Empty,
                    workflow = tracing::field::Empty,
                )
            }),
        );
    if let Some(cors) = cors_layer(&state.config.cors) {
        app = app.layer(cors);
    }
    app.with_state(state)
}

fn cors_layer(cors: &Cors) -> Option<CorsLayer> {
    match cors {
        Cors::Disabled => None,
        // Never with credentials: a browser then sends no cookies, and the caller must hold
        // the bearer token itself.
        Cors::AnyOrigin => Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::any())
                .allow_methods(tower_http::cors::AllowMethods::mirror_request())
                .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
                .max_age(Duration::from_secs(600)),
        ),
        Cors::Origins(origins) => {
            let origins: Vec<HeaderValue> = origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok())
                .collect();
            Some(
                CorsLayer::new()
                    .allow_origin(origins)
                    .allow_methods(tower_http::cors::AllowMethods::mirror_request())
                    .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
                    .allow_credentials(true)
                    .max_age(Duration::from_secs(600)),
            )
        }
    }
}

/// Records the run id (and workflow) in the request's span, for structured logs.
pub(crate) fn log_run(run_id: &str, workflow: &str) {
    let span = tracing::Span::current();
    span.record("run_id", run_id);
    span.record("workflow", workflow);
}

/// Refuses an HTTP/1.1 request that names no host (RFC 9112 §3.2 makes `Host` mandatory;
/// hyper lets it through). HTTP/2 carries the host in the request's URI instead.
async fn require_host(request: Request, next: Next) -> Response {
    if request.version() == axum::http::Version::HTTP_11
        && !request.headers().contains_key(header::HOST)
    {
        return ApiError::BadRequest("The request names no host: send a `Host` header".into())
            .into_response();
    }
    next.run(request).await
}

/// Checks the bearer token, when one is configured; `/health` and CORS preflights are open.
async fn authenticate(State(state): State<AppRef>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.config.auth_token
        && request.uri().path() != "/health"
        && request.method() != Method::OPTIONS
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let Some(given) = given else {
            return ApiError::Unauthorized(
                "Missing bearer token: send `Authorization: Bearer <token>`",
            )
            .into_response();
        };
        // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
        let presented = match given.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => "",
        };
        if !bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
            return ApiError::Unauthorized("Invalid bearer token").into_response();
        }
    }
    next.run(request).await
}

/// Counts and times requests by matched route.
async fn measure(State(state): State<AppRef>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "No route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI document of every route", content_type = "application/json"))
)]
async fn openapi(Extension(OpenApiJson(document)): Extension<OpenApiJson>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document).into_response()
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Text exposition format", body = String, content_type = "text/plain"))
)]
async fn metrics(State(state): State<AppRef>) -> Result<Response, ApiError> {
    let counts = state.engine.count_runs(&RunFilter::default()).await?;
    // Every status, so a status without runs is a 0 rather than a missing series.
    let by_status = [
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Parked,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ]
    .into_iter()
    .map(|status| {
        let count = counts.by_status.get(&status).copied().unwrap_or(0);
        (status.as_str(), count)
    })
    .collect();
    let text = state.metrics.render(&by_status, counts.queued);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// A JSON request body: `None` when the body is empty. Bodies over the limit are 413,
/// malformed JSON is 400 — both as `{"detail"}`.
pub(crate) struct JsonBody(pub(crate) Option<Value>);

impl FromRequest<AppRef> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppRef) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        limit: state.config.body_limit,
                    }
                } else {
                    ApiError::BadRequest(format!("Cannot read the request body: {rejection}"))
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(None));
        }
        serde_json::from_slice(&bytes)
            .map(|value| JsonBody(Some(value)))
            .map_err(|error| ApiError::InvalidJson(error.to_string()))
    }
}

/// A run's status on the wire.
pub(crate) fn wire_status(status: RunStatus) -> eventflow_api::RunStatus {
    match status {
        RunStatus::Running => eventflow_api::RunStatus::Running,
        RunStatus::Waiting => eventflow_api::RunStatus::Waiting,
        RunStatus::Parked => eventflow_api::RunStatus::Parked,
        RunStatus::Completed => eventflow_api::RunStatus::Completed,
        RunStatus::Failed => eventflow_api::RunStatus::Failed,
        RunStatus::Cancelled => eventflow_api::RunStatus::Cancelled,
    }
}

/// A run as `HandlerData`.
pub(crate) fn handler_data(record: &RunRecord) -> Handler {
    let status = match wire_status(record.status) {
        eventflow_api::RunStatus::Running if record.owner.is_none() => {
            eventflow_api::RunStatus::Queued
        }
        status => status,
    };
    let updated_at = iso8601(record.updated_at_ms);
    Handler {
        handler_id: record.run_id.clone(),
        workflow_name: record.workflow.name.clone(),
        run_id: Some(record.run_id.clone()),
        status: status.public(),
        result: record.result.as_ref().and_then(envelope::outgoing_value),
        result_unreadable: false,
        error: record.error.clone(),
        started_at: Some(iso8601(record.created_at_ms)),
        completed_at: record.status.is_terminal().then(|| updated_at.clone()),
        updated_at: Some(updated_at),
        eventflow_status: Some(status),
        last_sequence: Some(record.last_event_seq),
        after_sequence: None,
        extra: Default::default(),
    }
}

/// The run with this handler id, or 404.
pub(crate) async fn load_run(state: &AppState, handler_id: &str) -> Result<RunRecord, ApiError> {
    state
        .engine
        .record(handler_id)
        .await
        .map_err(|error| ApiError::from_engine(error, handler_id))
}

/// The query string's pairs, in order, with repeated keys kept.
pub(crate) fn query_pairs(request_query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(request_query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `true` only for the value `true` (any case), as the reference parses booleans.
pub(crate) fn query_flag(pairs: &[(String, String)], key: &str, default: bool) -> bool {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map_or(default, |(_, value)| value.eq_ignore_ascii_case("true"))
}

/// The last value of a query parameter.
pub(crate) fn query_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_query_keys_are_kept() {
        let pairs = query_pairs(Some("status=running&status=failed&sse=False&x=%20a"));
        assert_eq!(pairs.len(), 4);
        assert!(!query_flag(&pairs, "sse", true));
        assert!(query_flag(&pairs, "missing", true));
        assert_eq!(query_value(&pairs, "x"), Some(" a"));
    }
}
