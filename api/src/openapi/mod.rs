//! The OpenAPI 3.1 document served at `/api/openapi.json`, written by hand to keep
//! dependencies lean; a test checks it against `filters::API_ROUTES` so the two cannot drift.
//! The image routes are in `images`.

use serde_json::{Value, json};

use crate::models::{DEFAULT_LIMIT, MAX_DESCRIPTION_CHARS, MAX_LIMIT, MAX_NAME_CHARS};

mod images;

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn json_body(schema: &str) -> Value {
    json!({
        "required": true,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn ok(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

/// The errors every authorized route can answer.
fn auth_errors(mut responses: Value) -> Value {
    if let Some(map) = responses.as_object_mut() {
        map.insert(
            "401".into(),
            error("Missing or wrong proxy secret, missing or invalid user"),
        );
        map.insert(
            "403".into(),
            error("Policies deny the request, no route matches, or a browser sent a POST, PATCH or DELETE from another site (`cross_site_request`)"),
        );
        map.insert(
            "503".into(),
            error("Group membership, project data or the database is unavailable"),
        );
    }
    responses
}

fn id_param() -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": "The project's id (lower-case hyphenated UUID)",
        "schema": { "type": "string", "format": "uuid" }
    })
}

/// Builds the document; the header names are the ones this instance reads.
pub fn document(user_header: &str, secret_header: &str) -> Value {
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Image Project Manager API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Projects owned by groups. The reverse proxy authenticates users and sends their email and a shared secret; Cedar policies decide every request. A project the caller may not see answers 404."
        },
        "security": [ { "user": [], "proxySecret": [] } ],
        "paths": {
            "/api/projects": {
                "get": {
                    "operationId": "listProjects",
                    "summary": "Projects in the caller's groups, oldest first, one page at a time",
                    "parameters": [
                        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT } },
                        { "name": "cursor", "in": "query", "description": "`next_cursor` of the previous page, unchanged", "schema": { "type": "string" } },
                        { "name": "group", "in": "query", "description": "Only this group's projects", "schema": { "type": "string" } }
                    ],
                    "responses": auth_errors(json!({
                        "200": ok("One page of projects", "ProjectPage"),
                        "400": error("A bad `limit`, `cursor`, `group` or unknown parameter (named in `field`)")
                    }))
                },
                "post": {
                    "operationId": "createProject",
                    "summary": "Create a project in one of the caller's groups",
                    "requestBody": json_body("CreateProject"),
                    "responses": auth_errors(json!({
                        "201": ok("The new project; `Location` points at it", "Project"),
                        "400": error("The body is not JSON"),
                        "403": error("Policies deny creating projects in this group"),
                        "409": error("The name is already used in the group"),
                        "413": error("The body is too large"),
                        "415": error("The body is not sent as `application/json`"),
                        "422": error("A field is missing, unknown or invalid (named in `field`)")
                    }))
                }
            },
            "/api/projects/{id}": {
                "parameters": [ id_param() ],
                "get": {
                    "operationId": "getProject",
                    "summary": "One project",
                    "responses": auth_errors(json!({
                        "200": ok("The project", "Project"),
                        "400": error("The id is not a UUID"),
                        "404": error("No such project, or one the caller may not see")
                    }))
                },
                "patch": {
                    "operationId": "updateProject",
                    "summary": "Change a project's name or description",
                    "requestBody": json_body("UpdateProject"),
                    "responses": auth_errors(json!({
                        "200": ok("The changed project", "Project"),
                        "400": error("The id is not a UUID, or the body is not JSON"),
                        "404": error("No such project, or one the caller may not see"),
                        "409": error("The name is already used in the group"),
                        "413": error("The body is too large"),
                        "415": error("The body is not sent as `application/json`"),
                        "422": error("A field is unknown or invalid (named in `field`)")
                    }))
                },
                "delete": {
                    "operationId": "deleteProject",
                    "summary": "Delete a project",
                    "responses": auth_errors(json!({
                        "204": { "description": "Deleted" },
                        "400": error("The id is not a UUID"),
                        "404": error("No such project, or one the caller may not see")
                    }))
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "responses": auth_errors(json!({
                        "200": { "description": "The OpenAPI document", "content": { "application/json": {} } }
                    }))
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness: the process answers",
                    "security": [],
                    "responses": { "200": { "description": "Alive" } }
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: the database answers and the policies load",
                    "security": [],
                    "responses": {
                        "200": { "description": "Ready" },
                        "503": { "description": "Not ready; the body says why" }
                    }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "user": { "type": "apiKey", "in": "header", "name": user_header, "description": "The user's email, set by the reverse proxy" },
                "proxySecret": { "type": "apiKey", "in": "header", "name": secret_header, "description": "The secret shared with the reverse proxy" }
            },
            "schemas": {
                "Project": {
                    "type": "object",
                    "required": ["id", "name", "description", "meta_group_id", "created_by", "created_at", "updated_at"],
                    "properties": {
                        "id": { "type": "string", "format": "uuid" },
                        "name": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS },
                        "description": { "type": "string", "maxLength": MAX_DESCRIPTION_CHARS },
                        "meta_group_id": { "type": "string", "description": "The owning group" },
                        "created_by": { "type": "string", "format": "email" },
                        "created_at": { "type": "string", "format": "date-time" },
                        "updated_at": { "type": "string", "format": "date-time" }
                    }
                },
                "ProjectPage": {
                    "type": "object",
                    "required": ["items", "next_cursor"],
                    "properties": {
                        "items": { "type": "array", "items": { "$ref": "#/components/schemas/Project" } },
                        "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last" }
                    }
                },
                "CreateProject": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "meta_group_id"],
                    "properties": {
                        "name": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS },
                        "description": { "type": "string", "maxLength": MAX_DESCRIPTION_CHARS },
                        "meta_group_id": { "type": "string", "description": "A group the caller may create projects in" }
                    }
                },
                "UpdateProject": {
                    "type": "object",
                    "additionalProperties": false,
                    "minProperties": 1,
                    "properties": {
                        "name": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS },
                        "description": { "type": "string", "maxLength": MAX_DESCRIPTION_CHARS }
                    }
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "reason"],
                    "properties": {
                        "error": { "type": "string", "description": "The kind: unauthenticated, forbidden, not_found, bad_request, …" },
                        "reason": { "type": "string", "description": "Stable and machine-readable" },
                        "field": { "type": "string", "description": "The input at fault" },
                        "message": { "type": "string" }
                    }
                }
            }
        }
    });
    images::add_images(&mut doc);
    add_me(&mut doc);
    doc
}

/// `GET /api/me` and its schema.
fn add_me(doc: &mut Value) {
    let paths = json!({
        "/api/me": {
            "get": {
                "operationId": "getMe",
                "summary": "Who the caller is: the email and groups the proxy and the group source give, and the groups the policies let them create projects in",
                "responses": auth_errors(json!({ "200": ok("The caller", "Me") }))
            }
        }
    });
    let schemas = json!({
        "Me": {
            "type": "object",
            "required": ["email", "groups", "create_groups"],
            "properties": {
                "email": { "type": "string", "format": "email" },
                "groups": { "type": "array", "items": { "type": "string" } },
                "create_groups": { "type": "array", "items": { "type": "string" }, "description": "The caller's groups in which policies allow creating a project" }
            }
        }
    });
    merge(doc, paths, schemas);
}

/// Adds `paths` and `schemas` to the document's.
fn merge(doc: &mut Value, paths: Value, schemas: Value) {
    for (section, extra) in [("paths", paths), ("components/schemas", schemas)] {
        let target = section
            .split('/')
            .try_fold(&mut *doc, |v, k| v.get_mut(k))
            .and_then(Value::as_object_mut);
        if let (Some(target), Value::Object(extra)) = (target, extra) {
            target.extend(extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::API_ROUTES;

    #[test]
    fn describes_exactly_the_served_routes() {
        let doc = document("x-user-email", "x-proxy-secret");
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        let mut described = Vec::new();
        for (path, item) in &paths {
            for method in ["get", "post", "patch", "delete", "put"] {
                if item.get(method).is_some() {
                    described.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        let mut served: Vec<(String, String)> = API_ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        described.sort();
        served.sort();
        assert_eq!(described, served);
    }
}
