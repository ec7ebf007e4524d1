//! [`Operation`], one method on one path, and the builder methods the table is
//! written with.

use std::collections::BTreeMap;

use schemars::generate::SchemaGenerator;
use serde_json::{json, Map, Value};

use super::schemas::error_ref;
use crate::config::Role;

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

pub(super) const ANY: &[Role] = &[];
pub(super) const QA_OR_SUPERVISOR: &[Role] = &[Role::Qa, Role::Supervisor];
pub(super) const SUPERVISOR: &[Role] = &[Role::Supervisor];
pub(super) const AGENT_OR_SUPERVISOR: &[Role] = &[Role::Agent, Role::Supervisor];
pub(super) const ADMIN: &[Role] = &[Role::Admin];

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

pub(super) fn get(path: &'static str, tag: &'static str, summary: &'static str) -> Operation {
    operation("get", path, tag, summary)
}

pub(super) fn post(path: &'static str, tag: &'static str, summary: &'static str) -> Operation {
    operation("post", path, tag, summary)
}

pub(super) fn patch(path: &'static str, tag: &'static str, summary: &'static str) -> Operation {
    operation("patch", path, tag, summary)
}

pub(super) fn delete(path: &'static str, tag: &'static str, summary: &'static str) -> Operation {
    operation("delete", path, tag, summary)
}

impl Operation {
    pub(super) fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    pub(super) fn about(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Describes the path parameter `name`.
    pub(super) fn path_doc(mut self, name: &str, text: &str) -> Self {
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

    pub(super) fn query(mut self, name: &'static str, schema: Value, text: &str) -> Self {
        self.params.push(Param {
            name,
            place: "query",
            description: text.to_owned(),
            schema,
        });
        self
    }

    pub(super) fn header(mut self, name: &'static str, text: &str) -> Self {
        self.params.push(Param {
            name,
            place: "header",
            description: text.to_owned(),
            schema: json!({ "type": "string" }),
        });
        self
    }

    pub(super) fn json_body(mut self, schema: SchemaFn) -> Self {
        self.body = Some(Body {
            content_type: "application/json",
            schema,
            required: true,
        });
        self
    }

    /// A JSON body that may be left out (empty).
    pub(super) fn optional_json_body(mut self, schema: SchemaFn) -> Self {
        self.body = Some(Body {
            content_type: "application/json",
            schema,
            required: false,
        });
        self
    }

    pub(super) fn form_body(mut self, schema: SchemaFn) -> Self {
        self.body = Some(Body {
            content_type: "application/x-www-form-urlencoded",
            schema,
            required: true,
        });
        self
    }

    /// A response without a body.
    pub(super) fn reply(mut self, status: u16, text: &'static str) -> Self {
        self.replies.push(Reply {
            status,
            description: text,
            content: Vec::new(),
        });
        self
    }

    /// A response of `content_type` (a schema for JSON, a plain string for text).
    pub(super) fn content(
        mut self,
        status: u16,
        text: &'static str,
        content_type: &'static str,
    ) -> Self {
        self.replies.push(Reply {
            status,
            description: text,
            content: vec![(content_type, None)],
        });
        self
    }

    pub(super) fn json(mut self, status: u16, text: &'static str, schema: SchemaFn) -> Self {
        self.replies.push(Reply {
            status,
            description: text,
            content: vec![("application/json", Some(schema))],
        });
        self
    }

    /// One more content type of the last response.
    pub(super) fn or_content(
        mut self,
        content_type: &'static str,
        schema: Option<SchemaFn>,
    ) -> Self {
        self.replies
            .last_mut()
            .expect("or_content after a response")
            .content
            .push((content_type, schema));
        self
    }

    /// An error response, JSON `Error`.
    pub(super) fn error(self, status: u16, text: &'static str) -> Self {
        self.json(status, text, error_ref)
    }

    /// A page: HTML, 200.
    pub(super) fn html(self, text: &'static str) -> Self {
        self.content(200, text, HTML)
    }

    /// An HTML error page.
    pub(super) fn page_error(self, status: u16, text: &'static str) -> Self {
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

    pub(super) fn to_json(
        &self,
        requests: &mut SchemaGenerator,
        responses: &mut SchemaGenerator,
    ) -> Value {
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
