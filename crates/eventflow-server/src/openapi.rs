//! The OpenAPI document's frame: its info, and the bearer-token security every route but
//! `/health` requires. The operations come from the `#[utoipa::path]` of each route's handler
//! (collected by the route table, `routes::api`), the schemas from `eventflow_api`'s types.

use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi as _};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "eventflow server",
        description = "Durable eventflow workflow runs behind the llama-agents-server 0.8 API. See API.md for the contract and where eventflow extends it."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct Document;

/// Declares the `bearer` scheme the document's `security` names.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The document before the routes add their operations and schemas.
pub(crate) fn base() -> OpenApi {
    Document::openapi()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::routes::api;

    /// The generated document, as served.
    fn document() -> Value {
        serde_json::to_value(api().into_openapi()).unwrap()
    }

    #[test]
    fn every_operation_has_responses_and_the_bodies_have_schemas() {
        let document = document();
        let paths = document["paths"].as_object().unwrap();
        let operations = paths
            .iter()
            .flat_map(|(path, item)| item.as_object().unwrap().values().map(move |op| (path, op)));
        // Which routes there are is `tests/api.rs`'s; here, what each documents.
        for (path, operation) in operations {
            assert!(
                operation["responses"]["200"].is_object(),
                "{path}: {operation}"
            );
        }
        let schemas = &document["components"]["schemas"];
        for name in [
            "Handler",
            "HandlerList",
            "EventEnvelope",
            "RunRequest",
            "SendEventRequest",
            "WorkflowGraph",
            "GraphNode",
            "ErrorBody",
            "RunStatus",
            "HandlerStatus",
        ] {
            assert!(schemas[name].is_object(), "no schema {name}");
        }
        let handler = &schemas["Handler"];
        for field in [
            "handler_id",
            "status",
            "result",
            "eventflow_status",
            "last_sequence",
        ] {
            assert!(handler["properties"][field].is_object(), "Handler.{field}");
        }
        // `extra` and `seq` are the reader's, not the wire's.
        assert!(handler["properties"]["extra"].is_null());
        assert!(schemas["EventEnvelope"]["properties"]["seq"].is_null());
        assert_eq!(
            document["paths"]["/workflows/{name}/run"]["post"]["responses"]["200"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/Handler"
        );
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(
            document["paths"]["/results/{handler_id}"]["get"]["deprecated"],
            true
        );
    }
}
