//! The routes, the request-body extractor and the cross-cutting layers.

mod auth;
mod events;
mod handlers;
mod hosts;
mod origin;
mod workflows;

pub(crate) use hosts::{HostPolicy, split_host};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Path, Request, State,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use eventflow::store::{RunFilter, RunRecord, RunStatus};
use eventflow_api::Handler;
use serde_json::Value;
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

/// The router with every layer. `bound` is the address the server listens on, when it serves
/// itself: the DNS-rebinding guard needs to know whether it is loopback.
pub(crate) fn router(state: AppRef, bound: Option<SocketAddr>) -> Router {
    let hosts = Arc::new(HostPolicy::new(&state.config, bound));
    let (routes, document) = api().split_for_parts();
    let document = OpenApiJson(Bytes::from(
        document
            .to_json()
            .expect("an OpenAPI document built from types serializes"),
    ));
    let routes = routes
        .layer(Extension(document))
        .route_layer(middleware::from_fn_with_state(state.clone(), measure))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let mut app = routes
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::new(state.config.cors.clone()),
            origin::refuse_cross_site,
        ))
        .layer(middleware::from_fn_with_state(hosts, hosts::guard_host))
        .layer(middleware::from_fn(hosts::require_host))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // Debug formatting: the method and path come from the client, and a path may
                // hold raw bytes beyond ASCII (hyper passes them), e.g. U+0085, a line break
                // to some log readers.
                tracing::info_span!(
                    "request",
                    method = ?request.method(),
                    path = ?request.uri().path(),
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

/// Counts and times requests by matched route.
async fn measure(State(state): State<AppRef>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
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

/// The `method` label of a request's metrics: the methods the API serves, and `OTHER` for the
/// rest — a series per method a client makes up would let it grow the metrics without bound.
fn method_label(method: &Method) -> String {
    match *method {
        Method::GET | Method::POST | Method::HEAD | Method::OPTIONS => method.to_string(),
        _ => "OTHER".to_owned(),
    }
}

/// A path that exists, with a method it does not serve: 405 `{"detail"}` (axum adds `Allow`).
async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    }
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

/// A path parameter (a workflow name, a handler id), percent-decoded. One that is not UTF-8
/// once decoded is a 400 `{"detail"}` like every other refusal (axum's own answer is text).
pub(crate) struct PathParam(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParam(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}

/// The request's `Idempotency-Key`: `None` when absent or empty; 400 when it is not visible
/// ASCII (ignoring it would start or deliver twice what the client meant once). Its length
/// and characters are checked by the engine, as for run ids.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    match headers.get("idempotency-key").map(HeaderValue::to_str) {
        None => Ok(None),
        Some(Ok("")) => Ok(None),
        Some(Ok(key)) => Ok(Some(key)),
        Some(Err(_)) => Err(ApiError::BadRequest(
            "Invalid Idempotency-Key: it is not visible ASCII".to_owned(),
        )),
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
