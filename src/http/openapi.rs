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

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::config::Role;

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

/// A schema made by the generator of its direction: request bodies as the handlers read
/// them, responses as they are written.
type SchemaFn = fn(&mut SchemaGenerator) -> Value;

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// A bearer token or the session cookie (else 401); with roles, only those and admin
    /// (403 for the others).
    Api(&'static [Role]),
    /// A page: a signed-in session (else 303 to `/login?next=…`); with roles, only those
    /// and admin (a 403 page for the others).
    Page(&'static [Role]),
}

const HTML: &str = "text/html; charset=utf-8";

const ANY: &[Role] = &[];
const QA_OR_SUPERVISOR: &[Role] = &[Role::Qa, Role::Supervisor];
const SUPERVISOR: &[Role] = &[Role::Supervisor];
const AGENT_OR_SUPERVISOR: &[Role] = &[Role::Agent, Role::Supervisor];
const ADMIN: &[Role] = &[Role::Admin];

struct Param {
    name: &'static str,
    place: &'static str,
    description: String,
    schema: Value,
}

struct Reply {
    status: u16,
    description: &'static str,
    content: Vec<(&'static str, Option<SchemaFn>)>,
}

struct Body {
    content_type: &'static str,
    schema: SchemaFn,
    required: bool,
}

/// One method on one path.
pub struct Operation {
    /// Lower case, as OpenAPI writes it.
    pub method: &'static str,
    /// The full path as axum writes it (`/api/calls/{id}`).
    pub path: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: String,
    pub access: Access,
    params: Vec<Param>,
    body: Option<Body>,
    replies: Vec<Reply>,
}

fn operation(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
) -> Operation {
    let params = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| Param {
            name,
            place: "path",
            description: format!("the {name}"),
            schema: json!({ "type": "string" }),
        })
        .collect();
    Operation {
        method,
        path,
        tag,
        summary,
        description: String::new(),
        access: Access::Api(ANY),
        params,
        body: None,
        replies: Vec::new(),
    }
}

fn get(path: &'static str, tag: &'static str, summary: &'static str) -> Operation {
    operation("get", path, tag, summary)
}

fn post(path: &'static str, tag: &'static str, summary: &'static str) -> Operation {
    operation("post", path, tag, summary)
}

fn patch(path: &'static str, tag: &'static str, summary: &'static str) -> Operation {
    operation("patch", path, tag, summary)
}

fn delete(path: &'static str, tag: &'static str, summary: &'static str) -> Operation {
    operation("delete", path, tag, summary)
}

impl Operation {
    fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    fn about(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Describes the path parameter `name`.
    fn path_doc(mut self, name: &str, text: &str) -> Self {
        let param = self
            .params
            .iter_mut()
            .find(|p| p.place == "path" && p.name == name);
        match param {
            Some(param) => param.description = text.to_owned(),
            None => panic!("{} has no path parameter {name}", self.path),
        }
        self
    }

    fn query(mut self, name: &'static str, schema: Value, text: &str) -> Self {
        self.params.push(Param {
            name,
            place: "query",
            description: text.to_owned(),
            schema,
        });
        self
    }

    fn header(mut self, name: &'static str, text: &str) -> Self {
        self.params.push(Param {
            name,
            place: "header",
            description: text.to_owned(),
            schema: json!({ "type": "string" }),
        });
        self
    }

    fn json_body(mut self, schema: SchemaFn) -> Self {
        self.body = Some(Body {
            content_type: "application/json",
            schema,
            required: true,
        });
        self
    }

    /// A JSON body that may be left out (empty).
    fn optional_json_body(mut self, schema: SchemaFn) -> Self {
        self.body = Some(Body {
            content_type: "application/json",
            schema,
            required: false,
        });
        self
    }

    fn form_body(mut self, schema: SchemaFn) -> Self {
        self.body = Some(Body {
            content_type: "application/x-www-form-urlencoded",
            schema,
            required: true,
        });
        self
    }

    /// A response without a body.
    fn reply(mut self, status: u16, text: &'static str) -> Self {
        self.replies.push(Reply {
            status,
            description: text,
            content: Vec::new(),
        });
        self
    }

    /// A response of `content_type` (a schema for JSON, a plain string for text).
    fn content(mut self, status: u16, text: &'static str, content_type: &'static str) -> Self {
        self.replies.push(Reply {
            status,
            description: text,
            content: vec![(content_type, None)],
        });
        self
    }

    fn json(mut self, status: u16, text: &'static str, schema: SchemaFn) -> Self {
        self.replies.push(Reply {
            status,
            description: text,
            content: vec![("application/json", Some(schema))],
        });
        self
    }

    /// One more content type of the last response.
    fn or_content(mut self, content_type: &'static str, schema: Option<SchemaFn>) -> Self {
        self.replies
            .last_mut()
            .expect("or_content after a response")
            .content
            .push((content_type, schema));
        self
    }

    /// An error response, JSON `Error`.
    fn error(self, status: u16, text: &'static str) -> Self {
        self.json(status, text, error_ref)
    }

    /// A page: HTML, 200.
    fn html(self, text: &'static str) -> Self {
        self.content(200, text, HTML)
    }

    /// An HTML error page.
    fn page_error(self, status: u16, text: &'static str) -> Self {
        self.content(status, text, HTML)
    }

    fn id(&self) -> String {
        let mut id = self.method.to_owned();
        for c in self.path.chars() {
            if c.is_ascii_alphanumeric() {
                id.push(c);
            } else if !id.ends_with('_') {
                id.push('_');
            }
        }
        id.trim_end_matches('_').to_owned()
    }

    /// The roles that may call it: those named and admin, or all of them.
    fn roles(&self) -> Vec<&'static str> {
        let named = match self.access {
            Access::Public => return Vec::new(),
            Access::Api(roles) | Access::Page(roles) => roles,
        };
        [Role::Agent, Role::Qa, Role::Supervisor, Role::Admin]
            .into_iter()
            .filter(|r| named.is_empty() || *r == Role::Admin || named.contains(r))
            .map(Role::as_str)
            .collect()
    }

    fn to_json(&self, requests: &mut SchemaGenerator, responses: &mut SchemaGenerator) -> Value {
        let mut op = Map::new();
        op.insert("operationId".into(), json!(self.id()));
        op.insert("summary".into(), json!(self.summary));
        op.insert("tags".into(), json!([self.tag]));
        let roles = self.roles();
        let mut description = self.description.clone();
        if !roles.is_empty() {
            if !description.is_empty() {
                description.push_str("\n\n");
            }
            description.push_str(&format!("Roles: {}.", roles.join(", ")));
            op.insert("x-roles".into(), json!(roles));
        }
        if !description.is_empty() {
            op.insert("description".into(), json!(description));
        }
        match self.access {
            Access::Public => {
                op.insert("security".into(), json!([]));
            }
            Access::Page(_) => {
                op.insert("security".into(), json!([{ "sessionCookie": [] }]));
            }
            // The document's default.
            Access::Api(_) => {}
        }
        if !self.params.is_empty() {
            let params: Vec<Value> = self
                .params
                .iter()
                .map(|p| {
                    json!({
                        "name": p.name,
                        "in": p.place,
                        "required": p.place == "path",
                        "description": p.description,
                        "schema": p.schema,
                    })
                })
                .collect();
            op.insert("parameters".into(), json!(params));
        }
        if let Some(body) = &self.body {
            op.insert(
                "requestBody".into(),
                json!({
                    "required": body.required,
                    "content": { body.content_type: { "schema": (body.schema)(requests) } },
                }),
            );
        }
        let mut replies: BTreeMap<String, Value> = BTreeMap::new();
        for reply in &self.replies {
            let mut out = Map::new();
            out.insert("description".into(), json!(reply.description));
            if !reply.content.is_empty() {
                let mut content = Map::new();
                for (content_type, schema) in &reply.content {
                    let schema = match schema {
                        Some(schema) => schema(responses),
                        None => plain_schema(content_type),
                    };
                    content.insert((*content_type).to_owned(), json!({ "schema": schema }));
                }
                out.insert("content".into(), Value::Object(content));
            }
            replies.insert(reply.status.to_string(), Value::Object(out));
        }
        // What the access rule adds to every operation of its kind.
        let mut add = |status: u16, value: Value| {
            replies.entry(status.to_string()).or_insert(value);
        };
        match self.access {
            Access::Public => {}
            Access::Api(roles) => {
                add(
                    401,
                    json!({
                        "description": "no credentials, or a bad token or session",
                        "content": { "application/json": { "schema": error_ref(responses) } },
                    }),
                );
                if !roles.is_empty() || self.method != "get" {
                    add(
                        403,
                        json!({
                            "description": "the caller's role may not do this, or a change \
                                signed in by cookie lacks X-CSRF-Token",
                            "content": { "application/json": { "schema": error_ref(responses) } },
                        }),
                    );
                }
            }
            Access::Page(_) => add(
                303,
                json!({ "description": "not signed in: to /login?next=<this page>" }),
            ),
        }
        op.insert("responses".into(), json!(replies));
        Value::Object(op)
    }
}

/// The schema of a non-JSON body.
fn plain_schema(content_type: &str) -> Value {
    if content_type.starts_with("text/") || content_type.starts_with("image/svg") {
        json!({ "type": "string" })
    } else {
        json!({ "type": "string", "contentMediaType": content_type })
    }
}

/// The schema of `T` (a `$ref` into `components/schemas` for named types).
fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

fn array_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    json!({ "type": "array", "items": of::<T>(g) })
}

/// An object with `properties`, the keys of `required` always there.
fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

fn error_ref(_: &mut SchemaGenerator) -> Value {
    json!({ "$ref": "#/components/schemas/Error" })
}

/// The body of every API error (`ApiError`).
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": { "type": "string", "description": "what went wrong" },
            "problems": {
                "type": "array", "items": { "type": "string" },
                "description": "every problem of a request body, each naming its key (400)",
            },
            "parameter": { "type": "string", "description": "the query parameter at fault (400)" },
            "missing": {
                "type": "array", "items": { "type": "string" },
                "description": "what an incomplete ticket lacks (422)",
            },
            "retry_after": { "type": "integer", "description": "seconds to wait (429)" },
        },
    })
}

// Query parameter schemas.

fn text() -> Value {
    json!({ "type": "string" })
}

/// RFC 3339 or epoch milliseconds.
fn time() -> Value {
    json!({ "anyOf": [
        { "type": "string", "format": "date-time" },
        { "type": "integer", "format": "int64" },
    ] })
}

/// A local date of the pages' forms.
fn date() -> Value {
    json!({ "type": "string", "format": "date" })
}

fn boolean() -> Value {
    json!({ "type": "boolean" })
}

fn limit() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 1000 })
}

fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

// Response bodies the handlers build as JSON objects.

fn health(_: &mut SchemaGenerator) -> Value {
    object(
        &["status"],
        json!({ "status": { "type": "string", "enum": ["ok", "unavailable"] } }),
    )
}

fn any_object(_: &mut SchemaGenerator) -> Value {
    json!({ "type": "object" })
}

fn login_reply(_: &mut SchemaGenerator) -> Value {
    object(
        &["user", "role", "agent_id", "csrf_token", "expires_at"],
        json!({
            "user": { "type": "string" },
            "role": { "type": "string", "enum": ["agent", "qa", "supervisor", "admin"] },
            "agent_id": { "type": ["string", "null"], "description": "for the agent role" },
            "csrf_token": { "type": "string", "description": "send as X-CSRF-Token with changes" },
            "expires_at": { "type": "integer", "description": "epoch ms" },
        }),
    )
}

fn me(_: &mut SchemaGenerator) -> Value {
    object(
        &["user", "role", "agent_id", "auth"],
        json!({
            "user": { "type": "string" },
            "role": { "type": "string", "enum": ["agent", "qa", "supervisor", "admin"] },
            "agent_id": { "type": ["string", "null"] },
            "auth": { "type": "string", "enum": ["session", "token", "config-token"] },
            "token_id": { "type": "integer", "description": "auth token" },
            "csrf_token": { "type": "string", "description": "auth session" },
            "expires_at": { "type": "integer", "description": "auth session: epoch ms" },
        }),
    )
}

fn call_list(g: &mut SchemaGenerator) -> Value {
    object(
        &["calls"],
        json!({ "calls": array_of::<super::calls::CallView>(g) }),
    )
}

fn paused(g: &mut SchemaGenerator) -> Value {
    object(
        &["id", "paused", "paused_spans"],
        json!({
            "id": { "type": "string" },
            "paused": { "type": "boolean" },
            "paused_spans": array_of::<crate::call::record::PausedSpan>(g),
        }),
    )
}

fn survey_started(_: &mut SchemaGenerator) -> Value {
    object(
        &["id", "survey"],
        json!({ "id": { "type": "string" }, "survey": { "const": "started" } }),
    )
}

fn qa_forms(g: &mut SchemaGenerator) -> Value {
    object(
        &["forms"],
        json!({ "forms": array_of::<crate::qa::forms::FormConfig>(g) }),
    )
}

fn qa_overview(g: &mut SchemaGenerator) -> Value {
    use crate::qa::forms::{Annotation, Score};
    object(
        &[
            "call_id",
            "flags",
            "scores",
            "latest_score",
            "annotations",
            "recording_ms",
        ],
        json!({
            "call_id": { "type": "string" },
            "flags": array_of::<crate::qa::flags::Flag>(g),
            "scores": array_of::<Score>(g),
            "latest_score": { "anyOf": [of::<Score>(g), { "type": "null" }] },
            "annotations": array_of::<Annotation>(g),
            "recording_ms": { "type": ["integer", "null"] },
        }),
    )
}

fn scores(g: &mut SchemaGenerator) -> Value {
    object(
        &["call_id", "scores"],
        json!({
            "call_id": { "type": "string" },
            "scores": array_of::<crate::qa::forms::Score>(g),
        }),
    )
}

fn ticket_list(g: &mut SchemaGenerator) -> Value {
    object(
        &["tickets"],
        json!({ "tickets": array_of::<crate::tickets::ticket::Ticket>(g) }),
    )
}

fn ticket_history(g: &mut SchemaGenerator) -> Value {
    object(
        &["id", "history"],
        json!({
            "id": { "type": "string" },
            "history": array_of::<crate::tickets::HistoryEntry>(g),
        }),
    )
}

fn ticket_calls(g: &mut SchemaGenerator) -> Value {
    object(
        &["id", "calls"],
        json!({
            "id": { "type": "string" },
            "calls": array_of::<crate::tickets::ticket::TicketLink>(g),
        }),
    )
}

fn callback_started(_: &mut SchemaGenerator) -> Value {
    object(
        &["ticket", "call_id", "agent", "number"],
        json!({
            "ticket": { "type": "string" },
            "call_id": { "type": "string" },
            "agent": { "type": "string" },
            "number": { "type": "string" },
        }),
    )
}

fn dead_letters(_: &mut SchemaGenerator) -> Value {
    let letter = object(
        &[
            "id",
            "webhook",
            "event_id",
            "event_type",
            "attempts",
            "last_error",
            "failed_at",
            "event",
        ],
        json!({
            "id": { "type": "integer" },
            "webhook": { "type": "string" },
            "event_id": { "type": "string" },
            "event_type": { "type": "string" },
            "attempts": { "type": "integer" },
            "last_error": { "type": "string" },
            "failed_at": { "type": "integer", "description": "epoch ms" },
            "event": { "description": "the event as it was sent" },
        }),
    );
    object(
        &["dead_letters"],
        json!({ "dead_letters": { "type": "array", "items": letter } }),
    )
}

fn retry_queued(_: &mut SchemaGenerator) -> Value {
    object(
        &["id", "event_id", "queued"],
        json!({
            "id": { "type": "integer" },
            "event_id": { "type": "string" },
            "queued": { "type": "boolean" },
        }),
    )
}

fn agent_list(_: &mut SchemaGenerator) -> Value {
    object(
        &["agents"],
        json!({ "agents": { "type": "array", "items": agent_view() } }),
    )
}

fn agent(_: &mut SchemaGenerator) -> Value {
    agent_view()
}

/// An agent on the board (call control's `AgentView`).
fn agent_view() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": { "type": "string" },
            "name": { "type": "string" },
            "state": {
                "type": "string",
                "enum": ["available", "ringing", "on_call", "wrap_up", "paused", "backoff"],
            },
            "pause_reason": { "type": ["string", "null"] },
            "queues": {
                "type": "array",
                "items": object(
                    &["queue", "logged_in"],
                    json!({ "queue": { "type": "string" }, "logged_in": { "type": "boolean" } }),
                ),
            },
            "registered": { "type": "boolean" },
            "calls_answered": { "type": "integer" },
            "idle_since_ms": { "type": "integer", "description": "epoch ms" },
        },
    })
}

fn pause_body(_: &mut SchemaGenerator) -> Value {
    object(
        &["reason"],
        json!({ "reason": {
            "type": "string",
            "minLength": 1,
            "maxLength": super::agents::MAX_REASON_CHARS,
        } }),
    )
}

fn audit_entries(g: &mut SchemaGenerator) -> Value {
    object(
        &["entries"],
        json!({ "entries": array_of::<crate::users::AuditEntry>(g) }),
    )
}

fn user_list(g: &mut SchemaGenerator) -> Value {
    object(
        &["users"],
        json!({ "users": array_of::<crate::users::User>(g) }),
    )
}

fn token_list(g: &mut SchemaGenerator) -> Value {
    object(
        &["user", "tokens"],
        json!({
            "user": { "type": "string" },
            "tokens": array_of::<crate::users::ApiToken>(g),
        }),
    )
}

fn new_token(_: &mut SchemaGenerator) -> Value {
    object(
        &["id", "user", "label", "created_at", "token"],
        json!({
            "id": { "type": "integer" },
            "user": { "type": "string" },
            "label": { "type": "string" },
            "created_at": { "type": "integer", "description": "epoch ms" },
            "token": { "type": "string", "description": "shown only here" },
        }),
    )
}

/// The score form of the call page: `csrf`, `form`, `item.<key>` (present = passed),
/// `comment`, `reason`.
fn score_form(_: &mut SchemaGenerator) -> Value {
    json!({
        "type": "object",
        "required": ["csrf"],
        "properties": {
            "csrf": { "type": "string" },
            "form": { "type": "string" },
            "comment": { "type": "string" },
            "reason": { "type": "string" },
        },
        "additionalProperties": {
            "type": "string",
            "description": "item.<key>: present when passed",
        },
    })
}

fn annotation_form(_: &mut SchemaGenerator) -> Value {
    object(
        &["csrf", "at_s"],
        json!({
            "csrf": { "type": "string" },
            "at_s": { "type": "string", "description": "seconds from the recording's start" },
            "tag": { "type": "string" },
            "comment": { "type": "string" },
        }),
    )
}

fn call_id_doc(op: Operation) -> Operation {
    op.path_doc("id", "the call's id (`<node>-<date>-<seq>`)")
}

fn ticket_id_doc(op: Operation) -> Operation {
    op.path_doc("id", "the ticket's id (`T-YYYYMMDD-NNNN`)")
}

/// Every operation of the HTTP interface.
pub fn operations() -> Vec<Operation> {
    use super::login::{LoginBody, LoginForm, LogoutForm};
    use super::tickets::{CallbackBody, LinkBody, Note, SurveyBody};
    use super::users::{NewTokenBody, NewUserBody, UserChangeBody};
    use crate::qa::forms::{Annotation, AnnotationInput, Score, ScoreInput};
    use crate::tickets::ticket::{NewTicket, Ticket, TicketUpdate};
    use Access::{Api, Page, Public};

    let ticket_statuses = ["open", "dispatched", "replied", "closed", "reopened"];
    let ticket_kinds = ["consultation", "query", "problem", "complaint", "order"];
    let event_types = crate::events::EVENT_TYPES.join(", ");
    let shift_tables = crate::reports::shift::TABLES;
    let calls_page_query = |op: Operation| {
        op.query("from", date(), "first local day")
            .query("to", date(), "last local day")
            .query("agent", text(), "agent id")
            .query("queue", text(), "queue name")
            .query("ticket", text(), "linked ticket id")
            .query("caller", text(), "caller number")
            .query(
                "min_rings",
                json!({ "type": "integer", "minimum": 1 }),
                "at least this many rings",
            )
            .query(
                "max_survey",
                json!({ "type": "integer", "minimum": 1, "maximum": 5 }),
                "survey score at most",
            )
            .query("violation", boolean(), "answered after the target ring")
            .query("qa", one_of(&["scored", "unscored"]), "QA scored or not")
    };
    let events_query = |op: Operation| {
        op.query("since", text(), "resume after this event id (`NODE-SEQ`)")
            .query("types", text(), "comma-separated event types")
            .header(
                "Last-Event-ID",
                "resume after this event id (wins over since)",
            )
    };

    vec![
        // System.
        get(
            "/healthz",
            "system",
            "Health: 200 once SIP, RTP and HTTP listen",
        )
        .access(Public)
        .json(200, "the daemon takes calls", health)
        .json(503, "starting or draining", health),
        get("/metrics", "system", "Prometheus metrics")
            .access(Public)
            .content(
                200,
                "Prometheus text exposition format 0.0.4",
                "text/plain; version=0.0.4; charset=utf-8",
            ),
        get("/api/openapi.json", "system", "This OpenAPI document")
            .access(Public)
            .json(200, "the OpenAPI 3.1 document", any_object),
        // Signing in.
        get("/", "sign-in", "Who is signed in, with a sign-out button")
            .access(Page(ANY))
            .html("the home page"),
        get("/login", "sign-in", "The sign-in form")
            .access(Public)
            .query(
                "next",
                text(),
                "where to go after signing in (a path on this site)",
            )
            .html("the form; sets the form's CSRF cookie"),
        post("/login", "sign-in", "Sign in with the form")
            .access(Public)
            .about("Double-submit CSRF: the form's csrf field equals the cookie of GET /login.")
            .form_body(of::<LoginForm>)
            .reply(
                303,
                "signed in: to next (or /), with the session cookie threering_session",
            )
            .page_error(400, "the form could not be read")
            .page_error(401, "wrong name or password")
            .page_error(403, "the form expired (CSRF cookie and field differ)")
            .page_error(429, "too many failed logins (Retry-After)"),
        post("/logout", "sign-in", "Sign out")
            .access(Page(ANY))
            .about("Ends the session; needs its CSRF token (form field csrf or X-CSRF-Token).")
            .form_body(of::<LogoutForm>)
            .reply(303, "signed out (or not signed in): to /login")
            .error(403, "the CSRF token is missing or wrong"),
        post("/api/login", "sign-in", "Sign in for scripts")
            .access(Public)
            .about("Content-Type: application/json. Sets the session cookie threering_session.")
            .json_body(of::<LoginBody>)
            .json(200, "signed in", login_reply)
            .error(400, "not JSON, or not {name, password}")
            .error(401, "wrong name or password")
            .error(429, "too many failed logins (Retry-After)"),
        // Calls.
        get("/api/calls", "calls", "Call records, newest first")
            .about("An agent sees only the calls it answered.")
            .query("from", time(), "started at or after (RFC 3339 or epoch ms)")
            .query("to", time(), "started before (RFC 3339 or epoch ms)")
            .query("agent", text(), "answered by this agent")
            .query("queue", text(), "of this queue")
            .query("ticket", text(), "linked to this ticket")
            .query(
                "violation",
                boolean(),
                "true: answered after the target ring",
            )
            .query("limit", limit(), "at most this many")
            .json(200, "the calls", call_list)
            .error(400, "a bad or unknown query parameter")
            .error(403, "an agent asked for another agent's calls"),
        call_id_doc(get("/api/calls/{id}", "calls", "One call record"))
            .json(200, "the call", of::<super::calls::CallView>)
            .error(403, "not one of the agent's calls")
            .error(404, "no such call"),
        call_id_doc(get(
            "/api/calls/{id}/recording",
            "calls",
            "The call's recording (WAV)",
        ))
        .about("Stereo 8 kHz WAV, caller left, agent right. Every playback is audit-logged.")
        .header("Range", "one byte range (bytes=a-b, a-, -n)")
        .content(200, "the whole file", "audio/wav")
        .content(206, "the range asked for", "audio/wav")
        .error(403, "not one of the agent's calls")
        .error(404, "no such call or recording")
        .reply(416, "the range lies outside the file"),
        call_id_doc(post(
            "/api/calls/{id}/recording/pause",
            "calls",
            "Pause a call's recording",
        ))
        .about("The recording is silence from now on (card numbers and the like).")
        .json(200, "paused", paused)
        .error(404, "no such call in progress")
        .error(409, "the call is not recorded")
        .error(503, "call control is not running"),
        call_id_doc(post(
            "/api/calls/{id}/recording/resume",
            "calls",
            "Resume a call's recording",
        ))
        .json(200, "recording again", paused)
        .error(404, "no such call in progress")
        .error(409, "the call is not recorded")
        .error(503, "call control is not running"),
        call_id_doc(post(
            "/api/calls/{id}/survey",
            "calls",
            "Hand the caller to the survey",
        ))
        .about("The agent's leg is ended; the caller hears the survey prompt.")
        .json(200, "the survey started", survey_started)
        .error(404, "no such connected call")
        .error(409, "the survey is not available for this call")
        .error(503, "call control is not running"),
        // QA.
        get("/api/qa/forms", "qa", "The QA scoring forms").json(200, "the forms", qa_forms),
        call_id_doc(get(
            "/api/calls/{id}/qa",
            "qa",
            "A call's flags, scores and annotations",
        ))
        .json(200, "the call's QA", qa_overview)
        .error(403, "not one of the agent's calls")
        .error(404, "no such call"),
        call_id_doc(get(
            "/api/calls/{id}/scores",
            "qa",
            "A call's score versions, oldest first",
        ))
        .json(200, "the scores", scores)
        .error(403, "not one of the agent's calls")
        .error(404, "no such call"),
        call_id_doc(post(
            "/api/calls/{id}/scores",
            "qa",
            "Score a call (a new version)",
        ))
        .access(Api(QA_OR_SUPERVISOR))
        .json_body(of::<ScoreInput>)
        .json(201, "the saved score", of::<Score>)
        .error(400, "unknown form, or items missing or unknown")
        .error(404, "no such call")
        .error(
            409,
            "the call is scored already: a correction needs a reason",
        ),
        call_id_doc(post(
            "/api/calls/{id}/annotations",
            "qa",
            "Annotate a moment of a call",
        ))
        .access(Api(QA_OR_SUPERVISOR))
        .json_body(of::<AnnotationInput>)
        .json(201, "the annotation", of::<Annotation>)
        .error(
            400,
            "at_ms outside the recording, or neither tag nor comment",
        )
        .error(404, "no such call"),
        call_id_doc(get(
            "/api/calls/{id}/waveform.svg",
            "qa",
            "The recording's two channels drawn",
        ))
        .content(200, "the picture", "image/svg+xml; charset=utf-8")
        .error(403, "not one of the agent's calls")
        .error(404, "no such call or recording"),
        call_id_doc(get(
            "/api/calls/{id}/timeline.svg",
            "qa",
            "The call's ring timeline drawn",
        ))
        .content(200, "the picture", "image/svg+xml; charset=utf-8")
        .error(403, "not one of the agent's calls")
        .error(404, "no such call"),
        // Tickets.
        get("/api/tickets", "tickets", "Tickets, earliest due first")
            .query("status", one_of(&ticket_statuses), "in this status")
            .query("kind", one_of(&ticket_kinds), "of this kind")
            .query("area", text(), "business area")
            .query("agent", text(), "assigned agent")
            .query("due_before", time(), "due before (RFC 3339 or epoch ms)")
            .query(
                "overdue",
                boolean(),
                "true: waiting for a reply past the due time",
            )
            .query("from", time(), "accepted at or after")
            .query("to", time(), "accepted before")
            .query("limit", limit(), "at most this many")
            .json(200, "the tickets", ticket_list)
            .error(400, "a bad or unknown query parameter"),
        post("/api/tickets", "tickets", "Open a ticket")
            .about("Only kind is required; what is missing is listed when the ticket is archived.")
            .json_body(of::<NewTicket>)
            .json(201, "the ticket", of::<Ticket>)
            .error(400, "every problem of the body"),
        ticket_id_doc(get(
            "/api/tickets/{id}",
            "tickets",
            "One ticket with its calls and history",
        ))
        .json(200, "the ticket", of::<Ticket>)
        .error(404, "no such ticket"),
        ticket_id_doc(patch(
            "/api/tickets/{id}",
            "tickets",
            "Change a ticket's fields or status",
        ))
        .about("For the form fields, the promise and the no-survey reason, null clears.")
        .json_body(of::<TicketUpdate>)
        .json(200, "the ticket", of::<Ticket>)
        .error(400, "every problem of the body")
        .error(404, "no such ticket")
        .error(
            409,
            "a status move the rules forbid, or the ticket is archived",
        ),
        ticket_id_doc(get(
            "/api/tickets/{id}/history",
            "tickets",
            "A ticket's history",
        ))
        .json(200, "the history", ticket_history)
        .error(404, "no such ticket"),
        ticket_id_doc(post(
            "/api/tickets/{id}/notes",
            "tickets",
            "Add a handling note",
        ))
        .json_body(of::<Note>)
        .json(201, "the ticket", of::<Ticket>)
        .error(400, "an empty note")
        .error(404, "no such ticket")
        .error(409, "the ticket is archived"),
        ticket_id_doc(get(
            "/api/tickets/{id}/calls",
            "tickets",
            "A ticket's linked calls",
        ))
        .json(200, "the links", ticket_calls)
        .error(404, "no such ticket"),
        ticket_id_doc(post(
            "/api/tickets/{id}/calls",
            "tickets",
            "Link a stored call",
        ))
        .about("role: inbound, work-contact or reply.")
        .json_body(of::<LinkBody>)
        .json(201, "the ticket", of::<Ticket>)
        .error(400, "a bad role")
        .error(404, "no such ticket or call")
        .error(409, "the ticket is archived"),
        ticket_id_doc(post(
            "/api/tickets/{id}/survey",
            "tickets",
            "Record a survey result",
        ))
        .about("Either score (1-5) with an optional cause, or no_survey_reason.")
        .json_body(of::<SurveyBody>)
        .json(200, "the ticket", of::<Ticket>)
        .error(400, "neither or both, or a bad score or cause")
        .error(404, "no such ticket")
        .error(409, "the ticket is archived"),
        ticket_id_doc(post(
            "/api/tickets/{id}/callback",
            "tickets",
            "Call the customer back",
        ))
        .about("Rings the agent first, then the number through a trunk.")
        .json_body(of::<CallbackBody>)
        .json(202, "the callback started", callback_started)
        .error(400, "a bad number, unknown agent or trunk")
        .error(403, "the number is not allowed by [callbacks]")
        .error(404, "no such ticket")
        .error(429, "the agent's callbacks for today are used up")
        .error(
            409,
            "no trunk, the agent is busy or unreachable, or the ticket is archived",
        )
        .error(503, "call control is not running or is overloaded"),
        ticket_id_doc(post(
            "/api/tickets/{id}/archive",
            "tickets",
            "Archive a complete ticket",
        ))
        .access(Api(QA_OR_SUPERVISOR))
        .json(201, "the bundle", of::<crate::tickets::archiving::Archived>)
        .error(404, "no such ticket")
        .error(
            409,
            "archived already, being archived, or changed meanwhile",
        )
        .error(422, "incomplete: missing lists every missing item")
        .error(500, "writing the bundle failed"),
        // Reports.
        get(
            "/api/reports/summary",
            "reports",
            "Figures per queue, agent, hour or day",
        )
        .access(Api(QA_OR_SUPERVISOR))
        .query(
            "from",
            time(),
            "calls started at or after (default 24 h before to)",
        )
        .query("to", time(), "calls started before (default now)")
        .query(
            "group",
            one_of(&["none", "queue", "agent", "hour", "day"]),
            "grouping",
        )
        .query(
            "format",
            one_of(&["json", "csv"]),
            "json (default) or a CSV download",
        )
        .json(200, "the summary (rows, totals, rules)", any_object)
        .or_content("text/csv; charset=utf-8; header=present", None)
        .error(400, "a bad or unknown query parameter"),
        get(
            "/api/reports/charts/rings.svg",
            "reports",
            "Histogram of rings to answer",
        )
        .access(Api(QA_OR_SUPERVISOR))
        .query("from", time(), "calls started at or after")
        .query("to", time(), "calls started before")
        .query("queue", text(), "only this queue")
        .query("agent", text(), "only this agent")
        .content(200, "the chart", "image/svg+xml; charset=utf-8")
        .error(400, "a bad or unknown query parameter"),
        get(
            "/api/reports/charts/compliance.svg",
            "reports",
            "Answered within the target",
        )
        .access(Api(QA_OR_SUPERVISOR))
        .query("from", time(), "calls started at or after")
        .query("to", time(), "calls started before")
        .query(
            "by",
            one_of(&["hour", "day"]),
            "per local hour of day or per day",
        )
        .query("queue", text(), "only this queue")
        .content(200, "the chart", "image/svg+xml; charset=utf-8")
        .error(400, "a bad or unknown query parameter"),
        get("/api/reports/shift", "reports", "The shift handover report")
            .access(Api(QA_OR_SUPERVISOR))
            .query("from", time(), "shift start")
            .query("to", time(), "shift end")
            .query(
                "format",
                one_of(&["html", "json", "csv"]),
                "html (default), json or csv",
            )
            .query(
                "table",
                one_of(&shift_tables),
                "with format=csv: which table",
            )
            .page_error(200, "the report")
            .or_content("application/json", Some(any_object))
            .or_content("text/csv; charset=utf-8; header=present", None)
            .error(400, "a bad or unknown query parameter"),
        // Events.
        events_query(get(
            "/api/events",
            "events",
            "The CTI event stream (Server-Sent Events)",
        ))
        .about(format!(
            "Each event: id (the event id), event (its type), data {{id, type, at, data}}. \
                 Event types: {event_types}."
        ))
        .content(200, "the stream (does not end)", "text/event-stream")
        .error(400, "a bad since or types"),
        events_query(get(
            "/api/events/ws",
            "events",
            "The CTI events over a WebSocket",
        ))
        .about(format!(
            "One JSON text message per event. Event types: {event_types}."
        ))
        .reply(101, "switching to the WebSocket")
        .error(400, "a bad since or types, or not a WebSocket upgrade"),
        get(
            "/api/webhooks/dead-letters",
            "events",
            "Webhook deliveries that failed",
        )
        .access(Api(SUPERVISOR))
        .query("webhook", text(), "of this webhook")
        .query(
            "limit",
            json!({ "type": "integer", "minimum": 0 }),
            "at most (default 100)",
        )
        .json(200, "the dead letters, newest first", dead_letters)
        .error(400, "a bad limit"),
        post(
            "/api/webhooks/dead-letters/{id}/retry",
            "events",
            "Send a dead letter again",
        )
        .access(Api(SUPERVISOR))
        .path_doc("id", "the dead letter's number")
        .json(202, "queued again (same event id)", retry_queued)
        .error(404, "no such dead letter")
        .error(409, "its webhook is no longer configured")
        .error(503, "the webhook's queue is full"),
        // Agents.
        get("/api/agents", "agents", "The agents' states")
            .about("The agent role sees only itself.")
            .json(200, "the agents", agent_list)
            .error(503, "call control is not running"),
        post(
            "/api/agents/{id}/queues/{queue}/login",
            "agents",
            "Log an agent into a queue",
        )
        .access(Api(AGENT_OR_SUPERVISOR))
        .about("An agent may change only itself.")
        .json(200, "the agent after the change", agent)
        .error(
            404,
            "unknown agent or queue, or a queue the agent is not in",
        )
        .error(409, "refused by call control")
        .error(503, "call control is not running"),
        post(
            "/api/agents/{id}/queues/{queue}/logout",
            "agents",
            "Log an agent out of a queue",
        )
        .access(Api(AGENT_OR_SUPERVISOR))
        .about("An agent may change only itself.")
        .json(200, "the agent after the change", agent)
        .error(
            404,
            "unknown agent or queue, or a queue the agent is not in",
        )
        .error(409, "refused by call control")
        .error(503, "call control is not running"),
        post(
            "/api/agents/{id}/pause",
            "agents",
            "Pause an agent, with a reason",
        )
        .access(Api(AGENT_OR_SUPERVISOR))
        .about("An agent may change only itself.")
        .json_body(pause_body)
        .json(200, "the agent after the change", agent)
        .error(400, "no reason, or one longer than 200 characters")
        .error(404, "unknown agent")
        .error(409, "refused by call control")
        .error(503, "call control is not running"),
        post("/api/agents/{id}/unpause", "agents", "Unpause an agent")
            .access(Api(AGENT_OR_SUPERVISOR))
            .about("An agent may change only itself.")
            .json(200, "the agent after the change", agent)
            .error(404, "unknown agent")
            .error(409, "refused by call control")
            .error(503, "call control is not running"),
        post(
            "/api/agents/{id}/wrap-up/end",
            "agents",
            "End an agent's wrap-up",
        )
        .access(Api(AGENT_OR_SUPERVISOR))
        .about("An agent may change only itself.")
        .json(200, "the agent after the change", agent)
        .error(404, "unknown agent")
        .error(409, "the agent is not in wrap-up")
        .error(503, "call control is not running"),
        // Users.
        get("/api/me", "users", "Who am I").json(
            200,
            "the caller; a session also gets its CSRF token",
            me,
        ),
        get("/api/audit", "users", "The audit log, newest first")
            .access(Api(ADMIN))
            .query("actor", text(), "who")
            .query("action", text(), "an action, or a family like ticket.*")
            .query("target", text(), "what")
            .query("from", time(), "at or after")
            .query("to", time(), "before")
            .query("limit", limit(), "at most this many")
            .json(200, "the entries", audit_entries)
            .error(400, "a bad or unknown query parameter"),
        get("/api/users", "users", "The users")
            .access(Api(ADMIN))
            .json(200, "the users", user_list),
        post("/api/users", "users", "Add a user")
            .access(Api(ADMIN))
            .json_body(of::<NewUserBody>)
            .json(201, "the user", of::<crate::users::User>)
            .error(400, "every problem of the body")
            .error(409, "the name is taken"),
        patch(
            "/api/users/{name}",
            "users",
            "Change a user's role, agent id, password or state",
        )
        .access(Api(ADMIN))
        .path_doc("name", "the user's name")
        .json_body(of::<UserChangeBody>)
        .json(200, "the user", of::<crate::users::User>)
        .error(400, "every problem of the body")
        .error(404, "no such user"),
        get("/api/users/{name}/tokens", "users", "A user's API tokens")
            .access(Api(ADMIN))
            .about("Also the user themself.")
            .path_doc("name", "the user's name")
            .json(200, "the tokens (never the secrets)", token_list)
            .error(404, "no such user"),
        post("/api/users/{name}/tokens", "users", "Make an API token")
            .access(Api(ADMIN))
            .about("Also the user themself. The token is shown only in this answer.")
            .path_doc("name", "the user's name")
            .optional_json_body(of::<NewTokenBody>)
            .json(201, "the new token", new_token)
            .error(400, "a bad body")
            .error(404, "no such user"),
        delete(
            "/api/users/{name}/tokens/{id}",
            "users",
            "Revoke an API token",
        )
        .access(Api(ADMIN))
        .about("Also the user themself.")
        .path_doc("name", "the user's name")
        .path_doc("id", "the token's number")
        .json(200, "the revoked token", of::<crate::users::ApiToken>)
        .error(404, "no such user or token"),
        // Pages.
        calls_page_query(get("/ui/calls", "pages", "Call search"))
            .access(Page(ANY))
            .html("the search form and the matching calls"),
        call_id_doc(get("/ui/calls/{id}", "pages", "The call page"))
            .about("The recording, waveform, ring timeline, flags, scores and annotations.")
            .access(Page(ANY))
            .html("the call page")
            .page_error(403, "not one of the agent's calls")
            .page_error(404, "no such call"),
        call_id_doc(post(
            "/ui/calls/{id}/score",
            "pages",
            "Score a call (page form)",
        ))
        .access(Page(QA_OR_SUPERVISOR))
        .form_body(score_form)
        .reply(
            303,
            "saved: back to the call page; or not signed in: to /login",
        )
        .page_error(400, "a bad form")
        .content(
            415,
            "not a form (Content-Type)",
            "text/plain; charset=utf-8",
        )
        .page_error(403, "CSRF token missing or wrong, or the role may not")
        .page_error(404, "no such call")
        .page_error(409, "a correction needs a reason"),
        call_id_doc(post(
            "/ui/calls/{id}/annotate",
            "pages",
            "Annotate a call (page form)",
        ))
        .access(Page(QA_OR_SUPERVISOR))
        .form_body(annotation_form)
        .reply(
            303,
            "saved: back to the call page; or not signed in: to /login",
        )
        .page_error(400, "a bad form")
        .content(
            415,
            "not a form (Content-Type)",
            "text/plain; charset=utf-8",
        )
        .page_error(403, "CSRF token missing or wrong, or the role may not")
        .page_error(404, "no such call"),
        get("/ui/dashboard", "pages", "The supervisor dashboard")
            .access(Page(QA_OR_SUPERVISOR))
            .query("from", date(), "first local day (default today)")
            .query("to", date(), "last local day (default today)")
            .html("the dashboard")
            .page_error(403, "the role may not"),
        get("/ui/shift", "pages", "The shift handover report page")
            .access(Page(QA_OR_SUPERVISOR))
            .query(
                "from",
                time(),
                "shift start (RFC 3339, epoch ms or local time)",
            )
            .query("to", time(), "shift end")
            .html("the report")
            .page_error(400, "a bad range")
            .page_error(403, "the role may not"),
        get("/ui/wallboard", "pages", "The live wallboard")
            .access(Page(QA_OR_SUPERVISOR))
            .html("the wallboard (it reads /ui/wallboard/stream)")
            .page_error(403, "the role may not"),
        get(
            "/ui/wallboard/stream",
            "pages",
            "The wallboard's data (Server-Sent Events)",
        )
        .access(Page(QA_OR_SUPERVISOR))
        .about("A snapshot event every second: calls waiting, ringing, talking; the agents.")
        .content(200, "the stream (does not end)", "text/event-stream")
        .page_error(403, "the role may not"),
    ]
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

/// What the handlers check beyond the Rust types of the bodies (text that must be one of
/// a few words, a key optional in the type but required): (schema, property, its schema,
/// required), merged into the generated schemas, so that the document says it and
/// generated requests get past the first check.
fn refinements(g: &mut SchemaGenerator) -> Vec<(&'static str, &'static str, Value, bool)> {
    use crate::tickets::{Complexity, LinkRole, SurveyCause, TicketKind, TicketStatus};
    let nullable = |schema: Value| json!({ "anyOf": [schema, { "type": "null" }] });
    // users::name_problems: letters of any script, digits and . _ - @ (ASCII shown here).
    let name = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": crate::users::MAX_NAME_CHARS,
        "pattern": "^[A-Za-z0-9._@-]+$",
        "description": "letters (any script), digits and . _ - @",
    });
    let password = json!({
        "type": "string",
        "minLength": crate::users::password::MIN_LEN,
        "maxLength": crate::users::password::MAX_LEN,
    });
    vec![
        ("NewTicket", "kind", of::<TicketKind>(g), true),
        (
            "NewTicket",
            "complexity",
            nullable(of::<Complexity>(g)),
            false,
        ),
        (
            "TicketUpdate",
            "status",
            nullable(of::<TicketStatus>(g)),
            false,
        ),
        ("TicketUpdate", "kind", nullable(of::<TicketKind>(g)), false),
        (
            "TicketUpdate",
            "complexity",
            nullable(of::<Complexity>(g)),
            false,
        ),
        ("LinkBody", "role", nullable(of::<LinkRole>(g)), false),
        (
            "SurveyBody",
            "score",
            json!({ "type": ["integer", "null"], "minimum": 1, "maximum": 5 }),
            false,
        ),
        ("SurveyBody", "cause", nullable(of::<SurveyCause>(g)), false),
        (
            "Note",
            "text",
            json!({ "type": "string", "pattern": "\\S" }),
            true,
        ),
        ("NewUserBody", "role", of::<Role>(g), true),
        ("NewUserBody", "name", name.clone(), true),
        ("NewUserBody", "password", password.clone(), true),
        ("NewUserBody", "agent_id", nullable(name.clone()), false),
        ("UserChangeBody", "role", nullable(of::<Role>(g)), false),
        ("UserChangeBody", "agent_id", nullable(name), false),
        ("UserChangeBody", "password", nullable(password), false),
    ]
}

/// Applies [`refinements`] to the generated `schemas`.
fn refine(schemas: &mut Map<String, Value>, refinements: Vec<(&str, &str, Value, bool)>) {
    for (name, property, schema, required) in refinements {
        let Some(Value::Object(object)) = schemas.get_mut(name) else {
            panic!("refinement of {name}: no such schema");
        };
        let Some(Value::Object(old)) = object
            .get_mut("properties")
            .and_then(|p| p.get_mut(property))
        else {
            panic!("refinement of {name}: no property {property}");
        };
        let Value::Object(mut new) = schema else {
            panic!("refinement of {name}.{property}: not an object");
        };
        if let Some(text) = old.get("description") {
            new.insert("description".into(), text.clone());
        }
        *old = new;
        if required {
            if let Value::Array(list) = object.entry("required").or_insert_with(|| json!([])) {
                if !list.iter().any(|v| v == property) {
                    list.push(json!(property));
                }
            }
        }
    }
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
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    /// `text` without `//` comments (string literals kept whole).
    fn strip_comments(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars().peekable();
        let mut in_string = false;
        while let Some(c) = chars.next() {
            if in_string {
                out.push(c);
                if c == '\\' {
                    out.extend(chars.next());
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
                out.push(c);
            } else if c == '/' && chars.peek() == Some(&'/') {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The body of the function whose signature starts with `signature`.
    fn function_body(text: &str, signature: &str) -> String {
        let start = text
            .find(signature)
            .unwrap_or_else(|| panic!("{signature} not found"));
        let open = start + text[start..].find('{').expect("function body");
        let close = matching(text, open);
        text[open + 1..close].to_owned()
    }

    /// The index of the bracket closing the one at `open` (`(` or `{`), strings skipped.
    fn matching(text: &str, open: usize) -> usize {
        let bytes = text.as_bytes();
        let (up, down) = match bytes[open] {
            b'(' => (b'(', b')'),
            b'{' => (b'{', b'}'),
            other => panic!("not a bracket: {}", char::from(other)),
        };
        let mut depth = 0;
        let mut in_string = false;
        let mut i = open;
        while i < bytes.len() {
            let b = bytes[i];
            if in_string {
                if b == b'\\' {
                    i += 1;
                } else if b == b'"' {
                    in_string = false;
                }
            } else if b == b'"' {
                in_string = true;
            } else if b == up {
                depth += 1;
            } else if b == down {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            i += 1;
        }
        panic!("unbalanced brackets")
    }

    /// The first string literal of `text`.
    fn first_string(text: &str) -> String {
        let start = text.find('"').expect("a string literal") + 1;
        let end = start + text[start..].find('"').expect("its end");
        text[start..end].to_owned()
    }

    /// (METHOD, path) of every `.route("path", get(..).post(..))` in `text`.
    fn routes(text: &str, prefix: &str) -> BTreeSet<(String, String)> {
        const METHODS: [&str; 7] = ["get", "post", "patch", "put", "delete", "head", "options"];
        let mut found = BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find(".route(") {
            let open = at + ".route".len();
            let close = matching(rest, open);
            let args = &rest[open + 1..close];
            let path = first_string(args);
            let handlers = &args[args.find(',').expect("a handler") + 1..];
            let mut methods = 0;
            for (i, _) in handlers.match_indices('(') {
                let before = &handlers[..i];
                let word_start = before
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(0, |p| p + 1);
                let word = &before[word_start..];
                if METHODS.contains(&word) {
                    let full = if path == "/" && !prefix.is_empty() {
                        prefix.to_owned()
                    } else {
                        format!("{prefix}{path}")
                    };
                    found.insert((word.to_uppercase(), full));
                    methods += 1;
                }
            }
            assert!(methods > 0, "no method found in .route({args})");
            rest = &rest[close..];
        }
        found
    }

    /// The statement `let name = ...;` in `body`, and where it is.
    fn let_statement(body: &str, name: &str) -> (usize, usize) {
        let start = body
            .find(&format!("let {name} = "))
            .unwrap_or_else(|| panic!("no `let {name} = ` for a nested router"));
        let mut depth = 0i32;
        for (i, c) in body[start..].char_indices() {
            match c {
                '(' | '{' | '[' => depth += 1,
                ')' | '}' | ']' => depth -= 1,
                ';' if depth == 0 => return (start, start + i + 1),
                _ => {}
            }
        }
        panic!("`let {name}` does not end")
    }

    /// Every route `router()` registers, read from the source.
    fn routes_in_source() -> BTreeSet<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let read = |file: &str| {
            strip_comments(
                &std::fs::read_to_string(dir.join(file))
                    .unwrap_or_else(|e| panic!("read src/http/{file}: {e}")),
            )
        };
        let router = function_body(&read("mod.rs"), "pub fn router(");
        let ui = function_body(&read("ui/mod.rs"), "pub fn routes(");
        for unknown in [".merge(", ".nest_service(", ".route_service("] {
            assert!(
                !router.contains(unknown) && !ui.contains(unknown),
                "router() uses {unknown}: teach this test (and the OpenAPI table) about it"
            );
        }
        assert!(
            !ui.contains(".nest("),
            "ui::routes nests a router: teach this test"
        );
        let mut found = BTreeSet::new();
        let mut outer = router.clone();
        let mut rest = router.as_str();
        while let Some(at) = rest.find(".nest(") {
            let open = at + ".nest".len();
            let close = matching(rest, open);
            let args = &rest[open + 1..close];
            let prefix = first_string(args);
            let target = args[args.find(',').expect("nest target") + 1..].trim();
            if target.starts_with("ui::routes(") {
                found.extend(routes(&ui, &prefix));
            } else if target
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                let (start, end) = let_statement(&router, target);
                found.extend(routes(&router[start..end], &prefix));
                outer = outer.replace(&router[start..end], "");
            } else {
                panic!(".nest({args}): teach this test about this kind of router");
            }
            rest = &rest[close..];
        }
        found.extend(routes(&outer, ""));
        found
    }

    #[test]
    fn the_route_reader_reads_routes() {
        let text = r#"
            let api = Router::new()
                .route("/a", get(x::get).post(x::post))
                .route("/a/{id}", axum::routing::patch(x::patch))
                .layer(y);
            Router::new().route("/", get(home)).nest("/api", api)
        "#;
        let (start, end) = let_statement(text, "api");
        let api: Vec<_> = routes(&text[start..end], "/api").into_iter().collect();
        assert_eq!(
            api,
            [
                ("GET".to_owned(), "/api/a".to_owned()),
                ("PATCH".to_owned(), "/api/a/{id}".to_owned()),
                ("POST".to_owned(), "/api/a".to_owned()),
            ]
        );
        assert_eq!(strip_comments("a // b\n\"//c\" // d"), "a \n\"//c\" ");
    }

    #[test]
    fn every_route_is_documented() {
        let in_source = routes_in_source();
        assert!(in_source.len() > 40, "too few routes read: {in_source:?}");
        let mut documented = BTreeSet::new();
        for op in operations() {
            let key = (op.method.to_uppercase(), op.path.to_owned());
            assert!(
                documented.insert(key.clone()),
                "{key:?} is documented twice"
            );
        }
        let undocumented: Vec<_> = in_source.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&in_source).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "routes without an entry in src/http/openapi.rs operations(): {undocumented:?}\n\
             entries without a route in router(): {unknown:?}"
        );
    }

    /// Every `$ref` of `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(target)) => out.push(target),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_consistent() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("$ref {target} outside components/schemas"));
            assert!(schemas.contains_key(name), "$ref {target} has no schema");
        }
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                let in_path: BTreeSet<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                assert_eq!(declared, in_path, "{method} {path}");
                assert!(
                    !op["responses"].as_object().unwrap().is_empty(),
                    "{method} {path}: no responses"
                );
            }
        }
        // The request bodies are the handlers' own types.
        for name in [
            "NewTicket",
            "TicketUpdate",
            "ScoreInput",
            "AnnotationInput",
            "LoginBody",
        ] {
            assert!(schemas.contains_key(name), "{name} missing");
        }
        let new_ticket = &schemas["NewTicket"];
        assert_eq!(new_ticket["additionalProperties"], false);
        assert!(new_ticket["properties"]["promised_callback_at"].is_object());
        // Refined: kind is required and one of the kinds.
        assert!(new_ticket["required"]
            .as_array()
            .unwrap()
            .contains(&json!("kind")));
        assert_eq!(
            new_ticket["properties"]["kind"]["$ref"],
            "#/components/schemas/TicketKind"
        );
        // Linked: a new ticket's id leads to its operations.
        let links = &doc["paths"]["/api/tickets"]["post"]["responses"]["201"]["links"];
        assert_eq!(
            links["patch_api_tickets_id"]["parameters"]["id"],
            "$response.body#/id"
        );
        assert!(links["post_api_tickets_id_archive"].is_object());
    }

    #[test]
    fn schema_names_do_not_clash() {
        let (mut requests, mut responses) = generators();
        for op in operations() {
            op.to_json(&mut requests, &mut responses);
        }
        let requests = requests.take_definitions(true);
        for (name, schema) in responses.take_definitions(true) {
            if let Some(other) = requests.get(&name) {
                assert_eq!(
                    other, &schema,
                    "{name}: request and response schemas differ"
                );
            }
        }
    }

    #[test]
    fn public_operations_are_few() {
        let public: BTreeSet<String> = operations()
            .into_iter()
            .filter(|op| op.access == Access::Public)
            .map(|op| format!("{} {}", op.method.to_uppercase(), op.path))
            .collect();
        let expected: BTreeSet<String> = [
            "GET /healthz",
            "GET /metrics",
            "GET /api/openapi.json",
            "GET /login",
            "POST /login",
            "POST /api/login",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(public, expected);
    }
}
