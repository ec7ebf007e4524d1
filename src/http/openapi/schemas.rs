//! Schema helpers, the response bodies the handlers build by hand, and the refinements
//! of the generated request schemas.

use schemars::generate::SchemaGenerator;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::config::Role;

/// The schema of `T` (a `$ref` into `components/schemas` for named types).
pub(super) fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

pub(super) fn array_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    json!({ "type": "array", "items": of::<T>(g) })
}

/// An object with `properties`, the keys of `required` always there.
pub(super) fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

pub(super) fn error_ref(_: &mut SchemaGenerator) -> Value {
    json!({ "$ref": "#/components/schemas/Error" })
}

/// The body of every API error (`ApiError`).
pub(super) fn error_schema() -> Value {
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

pub(super) fn text() -> Value {
    json!({ "type": "string" })
}

/// RFC 3339 or epoch milliseconds.
pub(super) fn time() -> Value {
    json!({ "anyOf": [
        { "type": "string", "format": "date-time" },
        { "type": "integer", "format": "int64" },
    ] })
}

/// A local date of the pages' forms.
pub(super) fn date() -> Value {
    json!({ "type": "string", "format": "date" })
}

pub(super) fn boolean() -> Value {
    json!({ "type": "boolean" })
}

pub(super) fn limit() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": 1000 })
}

pub(super) fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

// Response bodies the handlers build as JSON objects.

pub(super) fn lockouts_list(g: &mut SchemaGenerator) -> Value {
    object(
        &["lockouts"],
        json!({ "lockouts": array_of::<crate::http::security::LockoutView>(g) }),
    )
}

pub(super) fn health(_: &mut SchemaGenerator) -> Value {
    object(
        &["status"],
        json!({
            "status": { "type": "string", "enum": ["ok", "degraded", "unavailable"] },
            "alarms": {
                "type": "array",
                "description": "alarms up now (status degraded): the node still takes calls",
                "items": object(
                    &["name", "detail", "since_ms"],
                    json!({
                        "name": { "type": "string" },
                        "detail": { "type": "string" },
                        "since_ms": { "type": "integer" }
                    }),
                ),
            },
            "store": {
                "description": "while degraded: the database cannot be written, call records queue",
                "type": "object",
                "required": ["up", "queued_records"],
                "properties": {
                    "up": { "type": "boolean" },
                    "queued_records": { "type": "integer", "minimum": 0 },
                    "reason": { "type": ["string", "null"] },
                },
            },
        }),
    )
}

pub(super) fn any_object(_: &mut SchemaGenerator) -> Value {
    json!({ "type": "object" })
}

pub(super) fn login_reply(_: &mut SchemaGenerator) -> Value {
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

pub(super) fn me(_: &mut SchemaGenerator) -> Value {
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

pub(super) fn call_list(g: &mut SchemaGenerator) -> Value {
    object(
        &["calls"],
        json!({ "calls": array_of::<crate::http::calls::CallView>(g) }),
    )
}

pub(super) fn paused(g: &mut SchemaGenerator) -> Value {
    object(
        &["id", "paused", "paused_spans"],
        json!({
            "id": { "type": "string" },
            "paused": { "type": "boolean" },
            "paused_spans": array_of::<crate::call::record::PausedSpan>(g),
        }),
    )
}

pub(super) fn survey_started(_: &mut SchemaGenerator) -> Value {
    object(
        &["id", "survey"],
        json!({ "id": { "type": "string" }, "survey": { "const": "started" } }),
    )
}

pub(super) fn qa_forms(g: &mut SchemaGenerator) -> Value {
    object(
        &["forms"],
        json!({ "forms": array_of::<crate::qa::forms::FormConfig>(g) }),
    )
}

pub(super) fn qa_overview(g: &mut SchemaGenerator) -> Value {
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

pub(super) fn scores(g: &mut SchemaGenerator) -> Value {
    object(
        &["call_id", "scores"],
        json!({
            "call_id": { "type": "string" },
            "scores": array_of::<crate::qa::forms::Score>(g),
        }),
    )
}

pub(super) fn ticket_list(g: &mut SchemaGenerator) -> Value {
    object(
        &["tickets"],
        json!({ "tickets": array_of::<crate::tickets::ticket::Ticket>(g) }),
    )
}

pub(super) fn ticket_history(g: &mut SchemaGenerator) -> Value {
    object(
        &["id", "history"],
        json!({
            "id": { "type": "string" },
            "history": array_of::<crate::tickets::HistoryEntry>(g),
        }),
    )
}

pub(super) fn ticket_calls(g: &mut SchemaGenerator) -> Value {
    object(
        &["id", "calls"],
        json!({
            "id": { "type": "string" },
            "calls": array_of::<crate::tickets::ticket::TicketLink>(g),
        }),
    )
}

pub(super) fn callback_started(_: &mut SchemaGenerator) -> Value {
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

pub(super) fn dead_letters(_: &mut SchemaGenerator) -> Value {
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

pub(super) fn retry_queued(_: &mut SchemaGenerator) -> Value {
    object(
        &["id", "event_id", "queued"],
        json!({
            "id": { "type": "integer" },
            "event_id": { "type": "string" },
            "queued": { "type": "boolean" },
        }),
    )
}

pub(super) fn agent_list(_: &mut SchemaGenerator) -> Value {
    object(
        &["agents"],
        json!({ "agents": { "type": "array", "items": agent_view() } }),
    )
}

pub(super) fn agent(_: &mut SchemaGenerator) -> Value {
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

pub(super) fn pause_body(_: &mut SchemaGenerator) -> Value {
    object(
        &["reason"],
        json!({ "reason": {
            "type": "string",
            "minLength": 1,
            "maxLength": crate::http::agents::MAX_REASON_CHARS,
        } }),
    )
}

pub(super) fn audit_entries(g: &mut SchemaGenerator) -> Value {
    object(
        &["entries"],
        json!({ "entries": array_of::<crate::users::AuditEntry>(g) }),
    )
}

pub(super) fn user_list(g: &mut SchemaGenerator) -> Value {
    object(
        &["users"],
        json!({ "users": array_of::<crate::users::User>(g) }),
    )
}

pub(super) fn token_list(g: &mut SchemaGenerator) -> Value {
    object(
        &["user", "tokens"],
        json!({
            "user": { "type": "string" },
            "tokens": array_of::<crate::users::ApiToken>(g),
        }),
    )
}

pub(super) fn new_token(_: &mut SchemaGenerator) -> Value {
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
pub(super) fn score_form(_: &mut SchemaGenerator) -> Value {
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

pub(super) fn annotation_form(_: &mut SchemaGenerator) -> Value {
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

/// What the handlers check beyond the Rust types of the bodies (text that must be one of
/// a few words, a key optional in the type but required): (schema, property, its schema,
/// required), merged into the generated schemas, so that the document says it and
/// generated requests get past the first check.
pub(super) fn refinements(
    g: &mut SchemaGenerator,
) -> Vec<(&'static str, &'static str, Value, bool)> {
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
pub(super) fn refine(
    schemas: &mut Map<String, Value>,
    refinements: Vec<(&str, &str, Value, bool)>,
) {
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

/// `GET /api/live`: call control's `Snapshot`, merged over the nodes.
pub(super) fn live_snapshot(_: &mut SchemaGenerator) -> Value {
    let nullable_int = json!({ "type": ["integer", "null"] });
    let call = object(
        &[
            "id",
            "node",
            "queue",
            "caller",
            "direction",
            "phase",
            "started_at",
            "waited_ms",
            "ring_ms",
            "rings",
            "ringing",
            "agent",
        ],
        json!({
            "id": { "type": "string" },
            "node": { "type": "string", "description": "the node that has the call" },
            "queue": { "type": "string" },
            "caller": { "type": "string" },
            "direction": { "type": "string", "enum": ["inbound", "outbound"] },
            "phase": {
                "type": "string",
                "enum": ["waiting", "ringing", "dialing", "connected", "survey", "ended"],
            },
            "started_at": { "type": "integer", "description": "epoch ms" },
            "waited_ms": { "type": "integer" },
            "ring_ms": nullable_int,
            "rings": nullable_int,
            "ringing": { "type": "array", "items": { "type": "string" } },
            "agent": { "type": ["string", "null"] },
        }),
    );
    let agent = object(
        &[
            "id",
            "name",
            "state",
            "pause_reason",
            "registered",
            "calls_answered",
        ],
        json!({
            "id": { "type": "string" },
            "name": { "type": "string" },
            "state": {
                "type": "string",
                "enum": ["available", "ringing", "on_call", "wrap_up", "paused", "backoff"],
            },
            "pause_reason": { "type": ["string", "null"] },
            "registered": { "type": "boolean" },
            "calls_answered": { "type": "integer", "minimum": 0 },
        }),
    );
    object(
        &[
            "at",
            "node",
            "nodes",
            "cadence_ms",
            "target",
            "limit",
            "calls",
            "agents",
        ],
        json!({
            "at": { "type": "integer", "description": "epoch ms" },
            "node": { "type": "string", "description": "the node that answered" },
            "nodes": {
                "type": "array",
                "items": { "type": "string" },
                "description": "the nodes merged in, this one first",
            },
            "cadence_ms": { "type": "integer" },
            "target": { "type": "integer" },
            "limit": { "type": "integer" },
            "calls": { "type": "array", "items": call },
            "agents": { "type": "array", "items": agent },
        }),
    )
}
