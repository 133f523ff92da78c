//! The routes, the request-body extractor and the cross-cutting layers.

mod events;
mod handlers;
mod workflows;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use eventflow::store::{RunRecord, RunStatus};
use serde_json::{Value, json};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::config::Cors;
use crate::envelope;
use crate::error::ApiError;
use crate::server::AppState;
use crate::time::iso8601;

pub(crate) type AppRef = Arc<AppState>;

/// Every route: method and path (as in the OpenAPI document).
pub const ROUTES: [(&str, &str); 15] = [
    ("GET", "/health"),
    ("GET", "/workflows"),
    ("POST", "/workflows/{name}/run"),
    ("POST", "/workflows/{name}/run-nowait"),
    ("GET", "/workflows/{name}/schema"),
    ("GET", "/workflows/{name}/events"),
    ("GET", "/workflows/{name}/representation"),
    ("GET", "/handlers"),
    ("GET", "/handlers/{handler_id}"),
    ("POST", "/handlers/{handler_id}/cancel"),
    ("GET", "/results/{handler_id}"),
    ("GET", "/events/{handler_id}"),
    ("POST", "/events/{handler_id}"),
    ("GET", "/openapi.json"),
    ("GET", "/metrics"),
];

pub(crate) fn router(state: AppRef) -> Router {
    let routes = Router::new()
        .route("/health", get(workflows::health))
        .route("/workflows", get(workflows::list))
        .route("/workflows/{name}/run", post(workflows::run))
        .route("/workflows/{name}/run-nowait", post(workflows::run_nowait))
        .route("/workflows/{name}/schema", get(workflows::schema))
        .route("/workflows/{name}/events", get(workflows::events))
        .route(
            "/workflows/{name}/representation",
            get(workflows::representation),
        )
        .route("/handlers", get(handlers::list))
        .route("/handlers/{handler_id}", get(handlers::get))
        .route("/handlers/{handler_id}/cancel", post(handlers::cancel))
        .route("/results/{handler_id}", get(handlers::result))
        .route(
            "/events/{handler_id}",
            get(events::stream).post(events::send),
        )
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), measure))
        .fallback(not_found);
    let mut app = routes
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
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
        Cors::Permissive => Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::mirror_request())
                .allow_methods(tower_http::cors::AllowMethods::mirror_request())
                .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
                .allow_credentials(true)
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
        let presented = given
            .strip_prefix("Bearer ")
            .or_else(|| given.strip_prefix("bearer "))
            .unwrap_or("");
        if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
            return ApiError::Unauthorized("Invalid bearer token").into_response();
        }
    }
    next.run(request).await
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &byte) in b.iter().enumerate() {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
    }
    diff == 0
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

async fn openapi() -> axum::Json<Value> {
    axum::Json(crate::openapi::document())
}

async fn metrics(State(state): State<AppRef>) -> Result<Response, ApiError> {
    let runs = state
        .engine
        .store()
        .list_runs(&eventflow::store::RunFilter::default())
        .await?;
    let mut by_status = std::collections::BTreeMap::new();
    for status in [
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Parked,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ] {
        by_status.insert(status.as_str(), 0u64);
    }
    let mut queue_depth = 0;
    for run in &runs {
        *by_status.entry(run.status.as_str()).or_default() += 1;
        if run.status == RunStatus::Running && run.owner.is_none() {
            queue_depth += 1;
        }
    }
    let text = state.metrics.render(&by_status, queue_depth);
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

/// The status llama-agents clients know: `waiting` and `parked` runs are `running`.
pub(crate) fn public_status(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running | RunStatus::Waiting | RunStatus::Parked => "running",
        RunStatus::Completed => "completed",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
    }
}

/// A run as `HandlerData`.
pub(crate) fn handler_data(record: &RunRecord) -> Value {
    let terminal = record.status.is_terminal();
    json!({
        "handler_id": record.run_id,
        "workflow_name": record.workflow.name,
        "run_id": record.run_id,
        "error": record.error,
        "result": record.result.as_ref().and_then(envelope::outgoing_value),
        "result_unreadable": false,
        "status": public_status(record.status),
        "started_at": iso8601(record.created_at_ms),
        "updated_at": iso8601(record.updated_at_ms),
        "completed_at": terminal.then(|| iso8601(record.updated_at_ms)),
        "eventflow_status": record.status.as_str(),
        "last_sequence": record.last_event_seq,
    })
}

/// The run with this handler id, or 404.
pub(crate) async fn load_run(state: &AppState, handler_id: &str) -> Result<RunRecord, ApiError> {
    state
        .engine
        .store()
        .get_run(handler_id)
        .await?
        .ok_or_else(|| ApiError::HandlerNotFound {
            handler_id: handler_id.to_owned(),
        })
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
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"secrett", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
    }

    #[test]
    fn repeated_query_keys_are_kept() {
        let pairs = query_pairs(Some("status=running&status=failed&sse=False&x=%20a"));
        assert_eq!(pairs.len(), 4);
        assert!(!query_flag(&pairs, "sse", true));
        assert!(query_flag(&pairs, "missing", true));
        assert_eq!(query_value(&pairs, "x"), Some(" a"));
    }
}
