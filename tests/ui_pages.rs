//! The pages without a browser, over a real socket: every page sends an unsigned
//! visitor to the login form (and back afterwards), agents get 403 on the supervisor
//! pages, the dashboard shows the figures per queue, agent, hour and day, and the forms
//! refuse a missing CSRF token.

#[path = "tickets_common/mod.rs"]
mod tickets_common;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use threering::config::{Config, Role};
use threering::http::{serve, AppState};
use threering::store::testing::TestDb;
use tickets_common::{call_record, Reply};

const PASSWORD: &str = "page-test-password";
/// 2026-11-23T10:00:00+08:00 and the day after.
const MON: i64 = 1_795_399_200_000;
const DAY: i64 = 86_400_000;

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::from_env().await;
    let store = db.open().await;
    let config = Config::embedded();
    let state = AppState::new(&config, store.clone());
    for (name, role) in [("boss", Role::Supervisor), ("1001", Role::Agent)] {
        state
            .users
            .create_user(name, role, None, PASSWORD)
            .await
            .unwrap();
    }
    for (i, at) in [MON, MON + DAY].into_iter().enumerate() {
        let mut call = call_record(&format!("n1-p-{i}"), at, None, vec![]);
        call.agent = Some("1001".into());
        store.save_call(&call).await.unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, state, stop.clone().cancelled_owned()));
    Server {
        addr,
        stop,
        _dir: dir,
        _db: db,
    }
}

/// Signs in over `POST /api/login`; the session cookie.
async fn sign_in(server: &Server, name: &str) -> String {
    let body = format!(r#"{{"name":"{name}","password":"{PASSWORD}"}}"#);
    let reply = send(
        server,
        "POST",
        "/api/login",
        None,
        Some(&body),
        "application/json",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let cookie = reply
        .headers
        .iter()
        .find(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with("threering_session="))
        .map(|(_, v)| v.split(';').next().unwrap().to_owned())
        .expect("a session cookie");
    cookie
}

async fn send(
    server: &Server,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<&str>,
    content_type: &str,
) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        server.addr
    );
    if let Some(cookie) = cookie {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or(""));
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    tickets_common::parse_reply(&raw)
}

#[tokio::test]
async fn unsigned_visitors_go_to_the_login_form_and_come_back() {
    let server = start().await;
    for path in [
        "/ui/calls",
        "/ui/calls/n1-p-0",
        "/ui/dashboard?from=2026-11-23",
        "/ui/wallboard",
        "/ui/shift",
    ] {
        let reply = send(&server, "GET", path, None, None, "").await;
        assert_eq!(reply.status, 303, "{path}");
        let location = reply.header("location").unwrap();
        assert!(
            location.starts_with("/login?next=/ui/"),
            "{path}: {location}"
        );
    }
    // A form post without a session is refused the same way.
    let reply = send(
        &server,
        "POST",
        "/ui/calls/n1-p-0/score",
        None,
        Some("x=1"),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(reply.status, 303);
    server.stop.cancel();
}

#[tokio::test]
async fn the_dashboard_has_queues_agents_hours_and_days_and_agents_are_kept_out() {
    let server = start().await;
    let boss = sign_in(&server, "boss").await;
    let page = send(
        &server,
        "GET",
        "/ui/dashboard?from=2026-11-23&to=2026-11-24",
        Some(&boss),
        None,
        "",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    for id in [
        r#"id="queues""#,
        r#"id="agents""#,
        r#"id="hours""#,
        r#"id="days""#,
    ] {
        assert!(page.body.contains(id), "{id} missing");
    }
    assert!(page.body.contains(r#"data-agent="1001""#));
    assert!(page.body.contains("2026-11-24"), "a row per day");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"),
        "{csp}"
    );
    let agent = sign_in(&server, "1001").await;
    for path in ["/ui/dashboard", "/ui/wallboard", "/ui/shift"] {
        let reply = send(&server, "GET", path, Some(&agent), None, "").await;
        assert_eq!(reply.status, 403, "{path}");
    }
    // The agent's own call search lists its own calls.
    let list = send(&server, "GET", "/ui/calls", Some(&agent), None, "").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body.matches("class=\"call-link\"").count(), 2);
    server.stop.cancel();
}

#[tokio::test]
async fn forms_need_the_sessions_csrf_token() {
    let server = start().await;
    let boss = sign_in(&server, "boss").await;
    let reply = send(
        &server,
        "POST",
        "/ui/calls/n1-p-0/score",
        Some(&boss),
        Some("csrf=wrong&item.greeting=1"),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.body.contains("CSRF"));
    server.stop.cancel();
}
