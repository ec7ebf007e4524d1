//! The OpenAPI document against the running daemon: `GET /api/openapi.json` answers
//! without credentials, and every operation it lists, sent without credentials, with a
//! wrong bearer token or with an unknown session cookie, is refused: 401 under `/api`, a
//! 303 to `/login` for the pages, `/` and `/logout`. The only exceptions are [`PUBLIC`].
//! With the admin token (and a signed-in session for the pages) every documented
//! operation exists: no 404 from a fallback, no 405.
//!
//! The document lists every route of the router (the unit test
//! `http::openapi::tests::every_route_is_documented` holds it to the source), so this
//! walk covers every route.

mod daemon_common;

use daemon_common::{
    free_port, http_request, AgentSpec, Daemon, DaemonSpec, HttpResponse, QueueSpec,
};
use serde_json::{json, Value};

/// The operations that answer without credentials.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/api/login"),
    ("GET", "/api/openapi.json"),
];

/// A well-formed session cookie of no session.
const UNKNOWN_SESSION: &str =
    "threering_session=00000000000000000000000000000000deadbeefdeadbeefdeadbeefdeadbeef";

/// An operation of the document.
struct Op {
    method: String,
    /// The path template, `{…}` filled with `x`.
    path: String,
    template: String,
    has_body: bool,
    /// Its 200 is a stream that does not end.
    stream: bool,
    /// `security: []` in the document.
    public_in_doc: bool,
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let path = template
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let stream = op["responses"]["200"]["content"]
                .as_object()
                .is_some_and(|c| c.contains_key("text/event-stream"));
            ops.push(Op {
                method: method.to_uppercase(),
                path: if path.is_empty() { "/".into() } else { path },
                template: template.clone(),
                has_body: op.get("requestBody").is_some(),
                stream,
                public_in_doc: op["security"] == json!([]),
            });
        }
    }
    ops
}

/// Sends `op` with `headers`, a JSON `{}` body where it takes one.
fn send(daemon: &Daemon, op: &Op, headers: &[(&str, &str)]) -> Result<HttpResponse, String> {
    let body = op.has_body.then_some("{}");
    raw_request(daemon, &op.method, &op.path, headers, body)
}

/// `http_request` with an optional JSON body.
fn raw_request(
    daemon: &Daemon,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpResponse, String> {
    match body {
        None => http_request(daemon.http_addr(), method, path, None, headers),
        Some(body) => {
            // The harness sends a body only with its JSON helper; write it here.
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(daemon.http_addr())
                .map_err(|e| format!("connect: {e}"))?;
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            let mut request = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
                daemon.http_addr()
            );
            for (name, value) in headers {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ));
            request.push_str(body);
            stream
                .write_all(request.as_bytes())
                .map_err(|e| format!("write: {e}"))?;
            let mut raw = Vec::new();
            stream
                .read_to_end(&mut raw)
                .map_err(|e| format!("read: {e}"))?;
            parse(&raw)
        }
    }
}

/// A whole `Connection: close` response (Content-Length framed, as the daemon sends
/// JSON and pages).
fn parse(raw: &[u8]) -> Result<HttpResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header block: {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

fn start() -> Daemon {
    Daemon::start(&DaemonSpec::new(
        vec![AgentSpec::at("1001", free_port())],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    ))
}

fn fetch_document(daemon: &Daemon) -> Value {
    let resp = http_request(daemon.http_addr(), "GET", "/api/openapi.json", None, &[])
        .expect("GET /api/openapi.json");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        resp.headers
    );
    let doc: Value = serde_json::from_slice(&resp.body).expect("the document is JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    doc
}

#[test]
fn every_operation_refuses_requests_without_valid_credentials() {
    let _shared = daemon_common::timing_shared();
    let daemon = start();
    let doc = fetch_document(&daemon);
    let ops = operations(&doc);
    assert!(ops.len() >= 50, "only {} operations", ops.len());
    let public = |op: &Op| {
        PUBLIC
            .iter()
            .any(|(m, p)| *m == op.method && *p == op.template)
    };
    let mut failures = Vec::new();
    for op in &ops {
        let what = format!("{} {}", op.method, op.template);
        if public(op) != op.public_in_doc {
            failures.push(format!(
                "{what}: public in the document: {}, in this test: {}",
                op.public_in_doc,
                public(op)
            ));
        }
        if public(op) {
            match send(&daemon, op, &[]) {
                Ok(resp) if resp.status != 401 && resp.status < 500 => {}
                Ok(resp) => failures.push(format!("{what} (public): {}", resp.status)),
                Err(e) => failures.push(format!("{what} (public): {e}")),
            }
            continue;
        }
        let variants: [(&str, &[(&str, &str)]); 3] = [
            ("no credentials", &[]),
            (
                "a wrong bearer token",
                &[("Authorization", "Bearer not-a-token-of-this-daemon")],
            ),
            ("an unknown session cookie", &[("Cookie", UNKNOWN_SESSION)]),
        ];
        for (how, headers) in variants {
            let resp = match send(&daemon, op, headers) {
                Ok(resp) => resp,
                Err(e) => {
                    failures.push(format!("{what} with {how}: {e}"));
                    continue;
                }
            };
            if op.template.starts_with("/api/") {
                if resp.status != 401 {
                    failures.push(format!(
                        "{what} with {how}: {} (want 401): {}",
                        resp.status,
                        resp.text()
                    ));
                } else if resp.header("www-authenticate").is_none() {
                    failures.push(format!("{what} with {how}: 401 without WWW-Authenticate"));
                }
            } else {
                let location = resp.header("location").unwrap_or_default();
                if resp.status != 303 || !location.starts_with("/login") {
                    failures.push(format!(
                        "{what} with {how}: {} to {location:?} (want 303 to /login)",
                        resp.status
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_documented_operation_exists() {
    let _shared = daemon_common::timing_shared();
    let daemon = start();
    let doc = fetch_document(&daemon);
    // A signed-in session for the pages.
    let (status, user) = daemon
        .send_json(
            "POST",
            "/api/users",
            &json!({ "name": "walker", "role": "admin", "password": "walk-every-route-1" }),
        )
        .expect("POST /api/users");
    assert_eq!(status, 201, "{user}");
    let login = raw_request(
        &daemon,
        "POST",
        "/api/login",
        &[],
        Some(r#"{"name": "walker", "password": "walk-every-route-1"}"#),
    )
    .expect("POST /api/login");
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = login
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            v.split(';')
                .next()
                .filter(|c| c.starts_with("threering_session="))
        })
        .expect("the session cookie")
        .to_owned();
    let bearer = format!("Bearer {}", daemon.token);
    let mut failures = Vec::new();
    for op in operations(&doc) {
        if op.stream {
            continue; // answers 200 and never ends
        }
        let what = format!("{} {}", op.method, op.template);
        let headers: Vec<(&str, &str)> = if op.template.starts_with("/api/") {
            vec![("Authorization", &bearer)]
        } else {
            vec![("Cookie", &cookie)]
        };
        match send(&daemon, &op, &headers) {
            Ok(resp) => {
                let fallback = resp.status == 404
                    && (resp.body.is_empty() || resp.text().contains("API route not found"));
                if fallback || resp.status == 405 || resp.status >= 500 {
                    failures.push(format!("{what}: {} {}", resp.status, resp.text()));
                }
            }
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "documented but not served:\n{}",
        failures.join("\n")
    );
}
