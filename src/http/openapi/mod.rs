//! The OpenAPI 3.1 document of the whole HTTP interface, built from code and served at
//! `GET /api/openapi.json` without credentials (it describes the API, it holds no data).
//!
//! [`operations`] is the table: one entry per method and route of [`super::router`] (the
//! `/api` routes, `/healthz`, `/metrics`, signing in and out, and the `/ui` pages as
//! `text/html`), each with its summary, tag, who may call it, its path and query
//! parameters, its request body and its responses. Request bodies and the main response
//! bodies are the handlers' own types, described by their `schemars::JsonSchema` derives,
//! so a field added or renamed there changes the document by itself. The unit test
//! `every_route_is_documented` reads the `.route(...)` calls of `src/http/mod.rs` and
//! `src/http/ui/mod.rs` and fails when they and the table differ: a route added without
//! its entry here fails the tests.

mod builder;
mod operations;
mod schemas;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{json, Map, Value};

pub use operations::operations;
use schemas::{error_schema, refine, refinements};

/// `GET /api/openapi.json`: the document (built once).
pub async fn serve() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(|| document().to_string());
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body.as_str(),
    )
        .into_response()
}

/// The generators: request bodies as they are read, responses as they are written;
/// named types go to `components/schemas`.
fn generators() -> (SchemaGenerator, SchemaGenerator) {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    (
        settings.clone().for_deserialize().into_generator(),
        settings.for_serialize().into_generator(),
    )
}

/// OpenAPI links, what one response gives later requests (schemathesis follows them):
/// (method, path, status, the path it leads to, its parameters). Every operation on that
/// path or below it gets the link.
type Link = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const LINKS: &[Link] = &[
    (
        "post",
        "/api/tickets",
        "201",
        "/api/tickets/{id}",
        &[("id", "$response.body#/id")],
    ),
    (
        "post",
        "/api/users",
        "201",
        "/api/users/{name}",
        &[("name", "$response.body#/name")],
    ),
    (
        "post",
        "/api/users/{name}/tokens",
        "201",
        "/api/users/{name}/tokens/{id}",
        &[("name", "$request.path.name"), ("id", "$response.body#/id")],
    ),
];

fn add_links(paths: &mut BTreeMap<&str, Map<String, Value>>) {
    for (method, path, status, target, params) in LINKS {
        let mut links = Map::new();
        for (to_path, item) in paths.iter() {
            if *to_path != *target && !to_path.starts_with(&format!("{target}/")) {
                continue;
            }
            for op in item.values() {
                let id = op["operationId"].as_str().expect("operationId");
                let parameters: Map<String, Value> = params
                    .iter()
                    .filter(|(name, _)| to_path.contains(&format!("{{{name}}}")))
                    .map(|(name, expr)| ((*name).to_owned(), json!(expr)))
                    .collect();
                links.insert(
                    id.to_owned(),
                    json!({ "operationId": id, "parameters": parameters }),
                );
            }
        }
        let reply = paths
            .get_mut(path)
            .and_then(|item| item.get_mut(*method))
            .and_then(|op| op["responses"].get_mut(*status))
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("link from {method} {path} {status}: no such response"));
        reply.insert("links".into(), Value::Object(links));
    }
}

/// The whole document.
pub fn document() -> Value {
    let (mut requests, mut responses) = generators();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for op in operations() {
        let item = paths.entry(op.path).or_default();
        item.insert(
            op.method.to_owned(),
            op.to_json(&mut requests, &mut responses),
        );
    }
    add_links(&mut paths);
    let refinements = refinements(&mut requests);
    let mut schemas = requests.take_definitions(true);
    refine(&mut schemas, refinements);
    for (name, schema) in responses.take_definitions(true) {
        match schemas.get(&name) {
            // Same name, another schema: the test `schema_names_do_not_clash` says which.
            Some(existing) if *existing != schema => {
                tracing::warn!(%name, "OpenAPI: two schemas of one name; the request's kept");
            }
            _ => {
                schemas.insert(name, schema);
            }
        }
    }
    schemas.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "threering",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP interface of threering, a SIP call-center daemon: call \
                records, recordings, QA, tickets, reports, CTI events, agents, users and \
                the pages. Everything under /api but /api/login and /api/openapi.json needs \
                a bearer token or the session cookie (401 without); a change signed in by \
                cookie also needs X-CSRF-Token. Times are epoch ms unless said otherwise; \
                errors are JSON {\"error\": ...}.",
        },
        "tags": [
            { "name": "system", "description": "health, metrics, this document" },
            { "name": "sign-in", "description": "sessions for people and scripts" },
            { "name": "calls", "description": "call records, recordings, surveys" },
            { "name": "qa", "description": "flags, scores and annotations" },
            { "name": "tickets", "description": "work orders, links, callbacks, archive" },
            { "name": "reports", "description": "supervisor statistics and charts" },
            { "name": "events", "description": "the CTI event stream and webhook dead letters" },
            { "name": "agents", "description": "agents' states and controls" },
            { "name": "users", "description": "users, tokens and the audit log" },
            { "name": "security", "description": "SIP digest lockouts" },
            { "name": "pages", "description": "server-rendered pages for people (text/html)" },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a [[http.tokens]] token or a user's API token",
                },
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": super::auth::SESSION_COOKIE,
                    "description": "the session of /login or POST /api/login",
                },
            },
        },
        "security": [{ "bearerAuth": [] }, { "sessionCookie": [] }],
    })
}

#[cfg(test)]
mod tests;
