//! The OpenAPI 3.1 document, generated from the route table at request time, so it lists
//! exactly the routes the router serves.

use crate::routes::{Route, table};
use axum::Json;
use rampart_core::access::Access;
use serde_json::{Map, Value, json};

pub async fn serve() -> Json<Value> {
    Json(document())
}

fn parameters(route: &Route) -> Vec<Value> {
    let mut params = Vec::new();
    for segment in route.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            params.push(json!({
                "name": name, "in": "path", "required": true, "schema": { "type": "string" }
            }));
        }
    }
    for name in route.query {
        params.push(json!({
            "name": name, "in": "query", "required": false, "schema": { "type": "string" }
        }));
    }
    params
}

fn operation_id(route: &Route) -> String {
    let mut id = route.method.as_str().to_lowercase();
    // Pages and assets share names with API routes (`/sessions`): keep their ids apart.
    if route.tag == "portal" {
        id.push_str("Portal");
    }
    for part in route.path.split(['/', '-', '.']) {
        let part = part.trim_start_matches('{').trim_end_matches('}');
        if part.is_empty() || part == "api" || part == "v1" {
            continue;
        }
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            id.extend(first.to_uppercase());
            id.push_str(chars.as_str());
        }
    }
    id
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn operation(route: &Route) -> Value {
    let mut responses = Map::new();
    let success = if route.success == 204 {
        json!({ "description": "done" })
    } else {
        json!({
            "description": "success",
            "content": { route.produces: { "schema": {} } }
        })
    };
    responses.insert(route.success.to_string(), success);
    responses.insert("400".into(), error_response("invalid request"));
    if route.access != Access::Public {
        responses.insert("401".into(), error_response("not authenticated"));
        responses.insert(
            "403".into(),
            error_response("role, token scope or CSRF token insufficient"),
        );
    } else if route.path.ends_with("/login") {
        responses.insert(
            "401".into(),
            error_response("login failed (one answer for every reason)"),
        );
    }
    if route.path.contains('{') {
        responses.insert("404".into(), error_response("not found, or not yours"));
    }
    let mut op = Map::new();
    let base = json!({
        "operationId": operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": parameters(route),
        "responses": responses,
        "x-rampart-access": route.access,
    });
    if let Value::Object(fields) = base {
        op.extend(fields);
    }
    if let Some(fields) = route.body {
        let properties: Map<String, Value> = fields
            .iter()
            .map(|field| ((*field).to_owned(), json!({})))
            .collect();
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": { "application/json": { "schema": {
                    "type": "object", "properties": properties, "additionalProperties": false
                } } }
            }),
        );
    }
    let security = if route.access == Access::Public {
        json!([])
    } else {
        json!([{ "session": [] }, { "token": [] }])
    };
    op.insert("security".into(), security);
    Value::Object(op)
}

/// The document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in table() {
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        if let Some(map) = entry.as_object_mut() {
            map.insert(route.method.as_str().to_lowercase(), operation(&route));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Rampart API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Rampart's REST API. Log in with POST /api/v1/login (a cookie plus \
                an X-CSRF-Token header on every change) or use an API token \
                (Authorization: Bearer ...). Errors are {\"error\": {\"code\", \"message\"}}.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
        },
        "servers": [{ "url": "/" }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE_NAME },
                "token": { "type": "http", "scheme": "bearer" }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": { "type": "string" },
                                "message": { "type": "string" }
                            }
                        }
                    }
                }
            }
        }
    })
}
