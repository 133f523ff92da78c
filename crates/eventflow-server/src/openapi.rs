//! The OpenAPI 3.0 document of the server, written by hand.

use serde_json::{Value, json};

fn path_param(name: &str, description: &str) -> Value {
    json!({"in": "path", "name": name, "required": true, "schema": {"type": "string"},
           "description": description})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema":
        {"$ref": "#/components/schemas/Error"}}}})
}

fn handler(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema":
        {"$ref": "#/components/schemas/Handler"}}}})
}

fn run_operation(summary: &str, waits: bool) -> Value {
    let mut responses = json!({
        "200": handler(if waits { "The run completed" } else { "The run is recorded and started" }),
        "400": error("Malformed JSON, invalid start event, or a non-empty context"),
        "401": error("Missing or wrong bearer token"),
        "404": error("Unknown workflow"),
        "409": error("The run of this handler_id has not finished, or belongs to another workflow"),
        "413": error("Request body too large"),
    });
    if waits {
        responses["500"] = handler("The run failed or was cancelled (the body says why)");
        responses["503"] = error("The server shut down while waiting; the run goes on");
    }
    json!({
        "summary": summary,
        "parameters": [
            path_param("name", "Registered workflow name."),
            {"in": "header", "name": "Idempotency-Key", "required": false, "schema": {"type": "string"},
             "description": "Starting twice with the same key returns the first run."}
        ],
        "requestBody": {"required": false, "content": {"application/json": {"schema":
            {"$ref": "#/components/schemas/RunRequest"}}}},
        "responses": responses,
    })
}

/// The document served at `/openapi.json`.
pub(crate) fn document() -> Value {
    let name = path_param("name", "Registered workflow name.");
    let handler_id = path_param("handler_id", "Handler id (= run id).");
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "eventflow server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Durable eventflow workflow runs behind the llama-agents-server 0.8 API. See API.md for the contract and where eventflow extends it."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
                "EventEnvelopeWithMetadata": {
                    "type": "object",
                    "properties": {
                        "value": {"type": "object"},
                        "types": {"type": "array", "items": {"type": "string"}, "nullable": true},
                        "type": {"type": "string", "description": "The event type's stable name."},
                        "qualified_name": {"type": "string", "nullable": true}
                    },
                    "required": ["value", "type"]
                },
                "EventEnvelope": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "value": {"type": "object"},
                        "qualified_name": {"type": "string", "nullable": true}
                    },
                    "additionalProperties": true
                },
                "Handler": {
                    "type": "object",
                    "properties": {
                        "handler_id": {"type": "string"},
                        "workflow_name": {"type": "string"},
                        "run_id": {"type": "string", "nullable": true},
                        "status": {"type": "string", "enum": ["running", "completed", "failed", "cancelled"]},
                        "eventflow_status": {"type": "string", "enum": ["running", "waiting", "parked", "completed", "failed", "cancelled"]},
                        "started_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time", "nullable": true},
                        "completed_at": {"type": "string", "format": "date-time", "nullable": true},
                        "error": {"type": "string", "nullable": true},
                        "result": {"allOf": [{"$ref": "#/components/schemas/EventEnvelopeWithMetadata"}], "nullable": true},
                        "result_unreadable": {"type": "boolean"},
                        "last_sequence": {"type": "integer", "minimum": 0},
                        "after_sequence": {"type": "integer", "minimum": 0, "description": "run-nowait only: the run's events come after this sequence (0 for a new handler; for a finished handler started again, the sequence its previous run ended at)."}
                    },
                    "required": ["handler_id", "workflow_name", "status", "started_at"]
                },
                "HandlersList": {
                    "type": "object",
                    "properties": {"handlers": {"type": "array", "items": {"$ref": "#/components/schemas/Handler"}}},
                    "required": ["handlers"]
                },
                "RunRequest": {
                    "type": "object",
                    "properties": {
                        "start_event": {"description": "The start event: bare fields, or an EventEnvelope, or a JSON string of either."},
                        "kwargs": {"type": "object", "description": "StartEvent keyword arguments."},
                        "handler_id": {"type": "string", "description": "The run id to use. A new id starts a run under it; the id of a finished run starts that run again with the context state it left; the id of a run that has not finished is a 409."},
                        "context": {"type": "object", "description": "Must be empty: not supported."}
                    }
                }
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/health": {"get": {
                "summary": "Health check", "security": [],
                "responses": {
                    "200": {"description": "Healthy", "content": {"application/json": {"schema":
                        {"type": "object", "properties": {"status": {"type": "string", "enum": ["healthy"]}}}}}},
                    "503": {"description": "Unhealthy: the store cannot be read, or shutting down"}
                }
            }},
            "/workflows": {"get": {
                "summary": "List workflows",
                "responses": {"200": {"description": "Registered workflow names", "content": {"application/json": {"schema":
                    {"type": "object", "properties": {"workflows": {"type": "array", "items": {"type": "string"}}}, "required": ["workflows"]}}}}}
            }},
            "/workflows/{name}/run": {"post": run_operation("Run a workflow and wait for its result", true)},
            "/workflows/{name}/run-nowait": {"post": run_operation("Start a workflow run", false)},
            "/workflows/{name}/schema": {"get": {
                "summary": "JSON Schemas of the start and stop events",
                "parameters": [name.clone()],
                "responses": {
                    "200": {"description": "Schemas under start and stop", "content": {"application/json": {"schema":
                        {"type": "object", "properties": {"start": {"type": "object"}, "stop": {"type": "object"}}, "required": ["start", "stop"]}}}},
                    "404": error("Unknown workflow")
                }
            }},
            "/workflows/{name}/events": {"get": {
                "summary": "JSON Schemas of the workflow's event types",
                "parameters": [name.clone()],
                "responses": {
                    "200": {"description": "One schema per event type", "content": {"application/json": {"schema":
                        {"type": "object", "properties": {"events": {"type": "array", "items": {"type": "object"}}}, "required": ["events"]}}}},
                    "404": error("Unknown workflow")
                }
            }},
            "/workflows/{name}/representation": {"get": {
                "summary": "The workflow as a graph of steps and events",
                "parameters": [name],
                "responses": {
                    "200": {"description": "The graph", "content": {"application/json": {"schema":
                        {"type": "object", "properties": {"graph": {"type": "object"}}, "required": ["graph"]}}}},
                    "404": error("Unknown workflow")
                }
            }},
            "/handlers": {"get": {
                "summary": "List handlers (runs)",
                "parameters": [
                    {"in": "query", "name": "status", "required": false, "style": "form", "explode": true,
                     "schema": {"type": "array", "items": {"type": "string", "enum": ["running", "completed", "failed", "cancelled", "waiting", "parked"]}}},
                    {"in": "query", "name": "workflow_name", "required": false, "style": "form", "explode": true,
                     "schema": {"type": "array", "items": {"type": "string"}}}
                ],
                "responses": {
                    "200": {"description": "Handlers, oldest first", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HandlersList"}}}},
                    "400": error("Unknown status value")
                }
            }},
            "/handlers/{handler_id}": {"get": {
                "summary": "A handler (run)",
                "parameters": [handler_id.clone()],
                "responses": {
                    "200": handler("Completed"),
                    "202": handler("Still running"),
                    "404": error("Unknown handler"),
                    "500": handler("Failed or cancelled")
                }
            }},
            "/handlers/{handler_id}/cancel": {"post": {
                "summary": "Cancel a run, or delete it with purge=true",
                "parameters": [handler_id.clone(),
                    {"in": "query", "name": "purge", "required": false, "schema": {"type": "boolean", "default": false}}],
                "responses": {
                    "200": {"description": "Cancelled (idempotent) or deleted", "content": {"application/json": {"schema":
                        {"type": "object", "properties": {"status": {"type": "string", "enum": ["cancelled", "deleted"]}, "run_status": {"type": "string"}}, "required": ["status"]}}}},
                    "404": error("Unknown handler"),
                    "409": error("The run already completed or failed")
                }
            }},
            "/results/{handler_id}": {"get": {
                "summary": "A handler with its bare result (deprecated: use /handlers/{handler_id})",
                "deprecated": true,
                "parameters": [handler_id.clone()],
                "responses": {
                    "200": {"description": "Completed"},
                    "202": {"description": "Still running"},
                    "404": error("Unknown handler"),
                    "500": {"description": "Failed or cancelled"}
                }
            }},
            "/events/{handler_id}": {
                "get": {
                    "summary": "Stream a run's events (SSE, or NDJSON with sse=false)",
                    "parameters": [handler_id.clone(),
                        {"in": "query", "name": "sse", "required": false, "schema": {"type": "boolean", "default": true}},
                        {"in": "query", "name": "after_sequence", "required": false,
                         "schema": {"oneOf": [{"type": "integer"}, {"type": "string", "enum": ["now"]}]},
                         "description": "Events after this sequence (0: every run of the handler); default and negative values: the events of the handler's current run; \"now\": only new events."},
                        {"in": "query", "name": "include_internal", "required": false, "schema": {"type": "boolean", "default": false}},
                        {"in": "query", "name": "include_qualified_name", "required": false, "schema": {"type": "boolean", "default": true}},
                        {"in": "header", "name": "Last-Event-ID", "required": false, "schema": {"type": "string"},
                         "description": "SSE resume: overrides after_sequence."}],
                    "responses": {
                        "200": {"description": "The stream; closes after the run's last event", "content": {
                            "text/event-stream": {"schema": {"type": "string", "description": "id: <seq>\\ndata: <EventEnvelopeWithMetadata>\\n\\n; `: heartbeat` comments while idle"}},
                            "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/EventEnvelopeWithMetadata"}}}},
                        "204": {"description": "The run has finished and no event is after the cursor"},
                        "400": error("Invalid after_sequence"),
                        "404": error("Unknown handler")
                    }
                },
                "post": {
                    "summary": "Send an event to a run",
                    "parameters": [handler_id,
                        {"in": "header", "name": "Idempotency-Key", "required": false, "schema": {"type": "string"},
                         "description": "Message id: the same key is delivered once."}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {
                            "event": {"oneOf": [{"$ref": "#/components/schemas/EventEnvelope"}, {"type": "string"}]},
                            "step": {"type": "string"}
                        },
                        "required": ["event"]}}}},
                    "responses": {
                        "200": {"description": "Queued for the run", "content": {"application/json": {"schema":
                            {"type": "object", "properties": {"status": {"type": "string", "enum": ["sent"]}, "duplicate": {"type": "boolean"}}, "required": ["status"]}}}},
                        "400": error("Malformed JSON, missing event, unknown event type, invalid fields, or unknown step"),
                        "404": error("Unknown handler"),
                        "409": error("The run has finished"),
                        "413": error("Request body too large")
                    }
                }
            },
            "/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.0 document"}}
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}
            }}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::document;
    use crate::routes::ROUTES;

    #[test]
    fn every_route_is_documented() {
        let document = document();
        for (method, path) in ROUTES {
            let operation = &document["paths"][path][method.to_lowercase()];
            assert!(operation.is_object(), "{method} {path} is not documented");
        }
        let documented: usize = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|operations| operations.as_object().unwrap().len())
            .sum();
        assert_eq!(documented, ROUTES.len());
    }
}
