//! Web security over a real socket, route by route from the OpenAPI document:
//!
//! - **No IDOR**: an agent signed in as 1001 sends every documented operation that names
//!   a call, an agent or a user at agent 1002's call, agent 1002 and another user. Reads
//!   get 403 or 404 and never a byte of the other call; changes are refused and leave the
//!   other call's QA, survey and recording untouched. The same reads of one's own call
//!   answer 200 (so the walk can fail).
//! - **No path traversal**: call ids and ticket ids made of `..`, encoded slashes and
//!   absolute paths, and a stored recording path pointing outside the recordings root,
//!   never serve a file outside it.
//! - **Output escaped**: a caller number, an annotation and a search term carrying markup
//!   come back escaped on the pages.
//! - **Headers**: every page and API answer carries nosniff, frame denial and a referrer
//!   policy; pages a content security policy and `no-store`.

#[path = "users_common/mod.rs"]
mod users_common;

use serde_json::{json, Value};

use users_common::{add_user, bearer, call, install, send, sign_in, start, Reply, CONFIG_TOKEN};

/// Markup that must never come back raw.
const PAYLOAD: &str = "<script>alert('x')</script><img src=x onerror=alert(1)>";

fn admin() -> Vec<(&'static str, String)> {
    vec![("Authorization", bearer(CONFIG_TOKEN))]
}

async fn admin_get(addr: std::net::SocketAddr, path: &str) -> Reply {
    let headers = admin();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    send(addr, "GET", path, &headers, None).await
}

/// Every documented operation: (method, path template).
async fn operations(addr: std::net::SocketAddr) -> Vec<(String, String)> {
    let doc = send(addr, "GET", "/api/openapi.json", &[], None)
        .await
        .json();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            ops.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    ops
}

/// The template filled so that it names someone else's thing, or None when the route
/// names nothing owned by one agent or user.
fn someone_elses(template: &str) -> Option<String> {
    let owned = template.starts_with("/api/calls/{id}")
        || template.starts_with("/ui/calls/{id}")
        || template.starts_with("/api/agents/{id}")
        || template.starts_with("/api/users/{name}");
    owned.then(|| {
        template
            .replace("/calls/{id}", "/calls/n1-bob")
            .replace("/agents/{id}", "/agents/1002")
            .replace("{queue}", "consult")
            .replace("{name}", "wang")
            .replace("{id}", "1")
    })
}

#[tokio::test]
async fn an_agent_reaches_nothing_of_another_agent_through_any_route() {
    let install = install();
    add_user(&install, "zhou", "agent", Some("1001"), "agent-password-1");
    add_user(&install, "wang", "agent", Some("1002"), "agent-password-2");
    let server = start(&install, true).await;
    let zhou = sign_in(server.addr, "zhou", "agent-password-1").await;
    let bob_before = admin_get(server.addr, "/api/calls/n1-bob").await.json();
    let bob_scores_before = admin_get(server.addr, "/api/calls/n1-bob/scores")
        .await
        .text();

    let mut walked = 0;
    let mut wrong = Vec::new();
    for (method, template) in operations(server.addr).await {
        let Some(path) = someone_elses(&template) else {
            continue;
        };
        if path.ends_with("/stream") {
            continue;
        }
        walked += 1;
        let reply = if method == "GET" {
            zhou.get(server.addr, &path).await
        } else {
            let body = json!({
                "score": 1, "cause": "agent", "answers": {}, "form": "default",
                "at_ms": 0, "tag": "x", "comment": "x", "reason": "x",
                "role": "supervisor", "password": "xxxxxxxxxxxx", "label": "x"
            });
            zhou.send(server.addr, &method, &path, &body).await
        };
        let refused = matches!(reply.status, 403 | 404)
            || (method != "GET" && (400..500).contains(&reply.status));
        let leaked = reply.body.windows(7).any(|w| w == b"n1-bob@")
            || reply.text().contains("\"1002\"") && method == "GET";
        if !refused || leaked {
            wrong.push(format!(
                "{method} {path} as agent 1001: {} {}",
                reply.status,
                reply.text().chars().take(200).collect::<String>()
            ));
        }
    }
    eprintln!("walked {walked} operations naming another agent's things");
    assert!(walked >= 20, "only {walked} owned routes were walked");
    assert!(
        wrong.is_empty(),
        "reached another agent's things:\n{}",
        wrong.join("\n")
    );

    // Nothing of bob's call changed.
    let bob_after = admin_get(server.addr, "/api/calls/n1-bob").await.json();
    assert_eq!(
        bob_before, bob_after,
        "agent 1001 changed agent 1002's call"
    );
    let bob_scores_after = admin_get(server.addr, "/api/calls/n1-bob/scores")
        .await
        .text();
    assert_eq!(bob_scores_before, bob_scores_after);

    // The control: one's own call is readable the same way.
    for path in [
        "/api/calls/n1-alice",
        "/api/calls/n1-alice/recording",
        // (the seeded recordings are not WAVs: no waveform to draw)
        "/api/calls/n1-alice/timeline.svg",
        "/ui/calls/n1-alice",
    ] {
        let reply = zhou.get(server.addr, path).await;
        assert!(
            reply.status == 200 || reply.status == 206,
            "{path} of one's own call: {} {}",
            reply.status,
            reply.text()
        );
    }
    server.shut_down().await;
}

#[tokio::test]
async fn no_route_serves_a_file_outside_its_root() {
    let install = install();
    let server = start(&install, true).await;
    // A record whose stored path climbs out of the recordings root (a tampered or
    // corrupt row): never followed.
    let mut tampered = call("n1-tampered", "1001", Some("../../../../../../etc/passwd"));
    tampered.recording_path = Some("../../../../../../etc/passwd".to_owned());
    server.store.save_call(&tampered).await.unwrap();
    let mut absolute = call("n1-absolute", "1001", None);
    absolute.recording_path = Some("/etc/passwd".to_owned());
    server.store.save_call(&absolute).await.unwrap();

    let tries = [
        "/api/calls/n1-tampered/recording",
        "/api/calls/n1-absolute/recording",
        "/api/calls/..%2F..%2F..%2Fetc%2Fpasswd/recording",
        "/api/calls/%2e%2e/recording",
        "/api/calls/..%252F..%252Fetc%252Fpasswd/recording",
        "/api/calls/%2Fetc%2Fpasswd/recording",
        "/api/calls/n1-alice/../../../../etc/passwd",
        "/api/calls/n1-tampered/waveform.svg",
        "/ui/calls/n1-tampered",
    ];
    for path in tries {
        let reply = admin_get(server.addr, path).await;
        assert!(
            !reply.text().contains("root:x:0:0"),
            "{path} served /etc/passwd"
        );
        assert!(
            reply.status < 500,
            "{path}: {} {}",
            reply.status,
            reply.text()
        );
    }
    for path in [
        "/api/calls/n1-tampered/recording",
        "/api/calls/n1-absolute/recording",
    ] {
        let reply = admin_get(server.addr, path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
    }
    // Ticket ids that try to climb out of the archive root.
    let headers = admin();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for id in ["..%2F..%2Fetc", "%2e%2e", "T-20260101-0001%2F..%2F..%2Fx"] {
        let reply = send(
            server.addr,
            "POST",
            &format!("/api/tickets/{id}/archive"),
            &headers,
            Some(("application/json", "{}")),
        )
        .await;
        assert!(
            matches!(reply.status, 400 | 404),
            "archive {id}: {} {}",
            reply.status,
            reply.text()
        );
    }
    server.shut_down().await;
}

#[tokio::test]
async fn markup_from_callers_and_users_comes_back_escaped() {
    let install = install();
    add_user(&install, "qa1", "qa", None, "qa-password-123");
    let server = start(&install, true).await;
    let mut hostile = call("n1-hostile", "1001", None);
    hostile.caller = PAYLOAD.to_owned();
    hostile.callee = PAYLOAD.to_owned();
    server.store.save_call(&hostile).await.unwrap();
    let qa = sign_in(server.addr, "qa1", "qa-password-123").await;
    let reply = qa
        .send(
            server.addr,
            "POST",
            "/api/calls/n1-alice/annotations",
            &json!({ "at_ms": 1000, "tag": "other", "comment": PAYLOAD }),
        )
        .await;
    assert!(
        reply.status < 300,
        "annotate: {} {}",
        reply.status,
        reply.text()
    );

    let search = format!(
        "/ui/calls?ticket={}",
        "%3Cscript%3Ealert(%27x%27)%3C%2Fscript%3E"
    );
    for path in [
        "/ui/calls",
        "/ui/calls/n1-hostile",
        "/ui/calls/n1-alice",
        &search,
    ] {
        let reply = qa.get(server.addr, path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        let page = reply.text();
        assert!(
            !page.contains("<script>alert"),
            "{path} echoes a raw script"
        );
        assert!(!page.contains("<img src=x"), "{path} echoes a raw img tag");
    }
    let page = qa.get(server.addr, "/ui/calls/n1-hostile").await.text();
    assert!(
        page.contains("&lt;script&gt;"),
        "the caller is not shown escaped"
    );
    let page = qa.get(server.addr, "/ui/calls/n1-alice").await.text();
    assert!(
        page.contains("&lt;img src=x"),
        "the annotation is not shown escaped"
    );
    // JSON stays JSON: the API returns the text as data, typed as JSON.
    let api = admin_get(server.addr, "/api/calls/n1-hostile").await;
    assert!(api
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(api.json()["caller"], Value::String(PAYLOAD.to_owned()));
    server.shut_down().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let install = install();
    add_user(&install, "boss", "supervisor", None, "boss-password-12");
    let server = start(&install, true).await;
    let boss = sign_in(server.addr, "boss", "boss-password-12").await;
    let mut missing = Vec::new();
    for (method, template) in operations(server.addr).await {
        if method != "GET" || template.contains('{') || template.ends_with("/stream") {
            continue;
        }
        if template == "/api/events" || template == "/api/events/ws" {
            continue;
        }
        let reply = boss.get(server.addr, &template).await;
        let mut want = vec![
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "same-origin"),
        ];
        let html = reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html"));
        if html {
            want.push(("content-security-policy", "frame-ancestors 'none'"));
            want.push(("cache-control", "no-store"));
        }
        for (name, value) in want {
            if !reply.header(name).is_some_and(|v| v.contains(value)) {
                missing.push(format!(
                    "GET {template} ({}): {name} {:?}",
                    reply.status,
                    reply.header(name)
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "headers missing:\n{}",
        missing.join("\n")
    );
    server.shut_down().await;
}
