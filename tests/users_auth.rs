//! Users, sign-in, roles and the audit log, over a real socket (raw HTTP/1.1) and with the
//! real `threering user` command: password hashes, the session cookie and its CSRF
//! token, the login form, the login rate limit, disabled users, per-user tokens, the
//! agent role's own calls, and the audit trail of recording playbacks and logins.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use threering::call::record::{
    AgentAttempt, AttemptOutcome, CallOutcome, CallRecord, Direction, HangupSide,
};
use threering::config::Config;
use threering::http::{router, serve, AppState};
use threering::store::Store;

/// The config token of the embedded default (an admin).
const CONFIG_TOKEN: &str = "dev-token-change-me";
const T0: i64 = 1_764_000_000_000;
/// Bytes of the test recordings.
const WAV_LEN: usize = 4_000;

/// A temporary installation: config file, database, recordings.
struct Install {
    _dir: tempfile::TempDir,
    config_path: PathBuf,
    config: Config,
}

fn install() -> Install {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("threering.db");
    let text = Config::EMBEDDED
        .replace(
            "database = \"sqlite://threering.db\"",
            &format!("database = \"sqlite://{}\"", db.display()),
        )
        .replace(
            "recordings = \"recordings\"",
            &format!(
                "recordings = \"{}\"",
                dir.path().join("recordings").display()
            ),
        )
        .replace(
            "root = \"archive\"",
            &format!("root = \"{}\"", dir.path().join("archive").display()),
        );
    let config = Config::from_toml(&text).unwrap();
    assert!(config
        .store
        .database
        .contains(&*dir.path().to_string_lossy()));
    let config_path = dir.path().join("threering.toml");
    std::fs::write(&config_path, text).unwrap();
    Install {
        _dir: dir,
        config_path,
        config,
    }
}

/// Output of one `threering` run.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `threering ARGS --config <the install's file>` with `stdin` piped in.
fn cli(install: &Install, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_threering"))
        .args(args)
        .arg("--config")
        .arg(&install.config_path)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `threering user add NAME --role ROLE [--agent-id ID]` with `password` on stdin.
fn add_user(install: &Install, name: &str, role: &str, agent_id: Option<&str>, password: &str) {
    let mut args = vec!["user", "add", name, "--role", role];
    if let Some(id) = agent_id {
        args.extend(["--agent-id", id]);
    }
    let run = cli(install, &args, &format!("{password}\n"));
    assert!(run.ok, "user add {name}: {}", run.stderr);
    assert!(
        run.stdout.contains(&format!("user {name} created")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(password), "the password is not echoed");
}

fn call(id: &str, agent: &str, recording: Option<&str>) -> CallRecord {
    CallRecord {
        id: id.to_owned(),
        sip_call_id: format!("{id}@pbx.example.com"),
        direction: Direction::Inbound,
        caller: "13800138000".to_owned(),
        callee: "4008001234".to_owned(),
        queue: Some("consult".to_owned()),
        agent: Some(agent.to_owned()),
        started_at: T0,
        caller_ringing_at: Some(T0 + 50),
        answered_at: Some(T0 + 5_050),
        ended_at: Some(T0 + 65_050),
        caller_ring_ms: Some(5_000),
        rings: Some(2),
        three_ring_ok: Some(true),
        over_limit: Some(false),
        outcome: CallOutcome::Answered,
        hangup_side: Some(HangupSide::Caller),
        talk_ms: Some(60_000),
        attempts: vec![AgentAttempt {
            agent: agent.to_owned(),
            invited_at: T0 + 60,
            ring_started_at: T0 + 80,
            ended_at: Some(T0 + 5_050),
            ring_ms: Some(4_970),
            outcome: AttemptOutcome::Answered,
            sip_status: Some(200),
        }],
        recording_path: recording.map(str::to_owned),
        recording: Default::default(),
        survey_score: None,
        tickets: vec![],
    }
}

/// Calls `n1-alice` (agent 1001) and `n1-bob` (agent 1002), each with a recording.
async fn seed_calls(store: &Store, recordings: &Path) {
    for (id, agent) in [("n1-alice", "1001"), ("n1-bob", "1002")] {
        let relative = format!("2025/11/24/{id}.wav");
        let path = recordings.join(&relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes: Vec<u8> = (0..WAV_LEN).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, bytes).unwrap();
        store
            .save_call(&call(id, agent, Some(&relative)))
            .await
            .unwrap();
    }
}

struct Server {
    addr: SocketAddr,
    store: Store,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn shut_down(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// The API over the install's database, as the daemon serves it (with the peer address
/// known), or with the bare router (no connect info) when `connect_info` is false.
async fn start(install: &Install, connect_info: bool) -> Server {
    let store = Store::open(&install.config.store.database).await.unwrap();
    seed_calls(&store, &install.config.store.recordings).await;
    let state = AppState::new(&install.config, store.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    let task = if connect_info {
        tokio::spawn(serve(listener, state, shutdown))
    } else {
        tokio::spawn(async move {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(shutdown)
                .await
        })
    };
    Server {
        addr,
        store,
        stop,
        task,
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// The `name=value` of a Set-Cookie for `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_owned())
    }
}

/// One request over a fresh connection (`Connection: close`, so the reply ends at EOF).
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    match body {
        Some((content_type, body)) => request.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => request.push_str("Content-Length: 0\r\n\r\n"),
    }
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut body = raw[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = std::str::from_utf8(&rest[..line_end]).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        let data = &rest[line_end + 2..];
        body.extend_from_slice(&data[..size]);
        rest = &data[size + 2..];
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A signed-in browser: its cookie header value and the session's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Session {
    async fn get(&self, addr: SocketAddr, path: &str) -> Reply {
        send(addr, "GET", path, &[("Cookie", &self.cookie)], None).await
    }

    /// A JSON request with the cookie and the CSRF header.
    async fn send(&self, addr: SocketAddr, method: &str, path: &str, body: &Value) -> Reply {
        let body = body.to_string();
        send(
            addr,
            method,
            path,
            &[("Cookie", &self.cookie), ("X-CSRF-Token", &self.csrf)],
            Some(("application/json", &body)),
        )
        .await
    }
}

async fn api_login(addr: SocketAddr, name: &str, password: &str) -> Reply {
    let body = json!({ "name": name, "password": password }).to_string();
    send(
        addr,
        "POST",
        "/api/login",
        &[],
        Some(("application/json", &body)),
    )
    .await
}

async fn sign_in(addr: SocketAddr, name: &str, password: &str) -> Session {
    let reply = api_login(addr, name, password).await;
    assert_eq!(reply.status, 200, "login {name}: {}", reply.text());
    Session {
        cookie: reply.cookie("threering_session").expect("session cookie"),
        csrf: reply.json()["csrf_token"].as_str().unwrap().to_owned(),
    }
}

async fn audit(addr: SocketAddr, query: &str) -> Vec<Value> {
    let reply = send(
        addr,
        "GET",
        &format!("/api/audit?{query}"),
        &[("Authorization", &bearer(CONFIG_TOKEN))],
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["entries"].as_array().unwrap().clone()
}

fn ids(calls: &Value) -> Vec<&str> {
    calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}

#[test]
fn the_auth_section_has_defaults_and_its_problems_name_their_keys() {
    let config = Config::embedded();
    assert_eq!(config.auth.session_ttl_minutes, 480);
    assert_eq!(config.auth.login_attempts_per_minute, 10);
    assert!(!config.auth.cookie_secure);

    let bad = Config::EMBEDDED
        .replace("session_ttl_minutes = 480", "session_ttl_minutes = 0")
        .replace(
            "login_attempts_per_minute = 10",
            "login_attempts_per_minute = 0",
        );
    let problems = match Config::from_toml(&bad) {
        Err(threering::config::ConfigError::Invalid { problems }) => problems,
        other => panic!("{other:?}"),
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["auth.session_ttl_minutes", "auth.login_attempts_per_minute"]
    );
    let typo = Config::EMBEDDED.replace("cookie_secure = false", "cookie_secur = false");
    assert!(Config::from_toml(&typo)
        .unwrap_err()
        .to_string()
        .contains("cookie_secur"));
}

#[tokio::test]
async fn a_user_added_by_the_cli_signs_in_with_a_cookie_that_needs_csrf_for_changes() {
    let install = install();
    add_user(&install, "wang", "qa", None, "qa-password-1");
    let server = start(&install, true).await;

    // The stored hash is an Argon2 PHC string, not the password.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE name = 'wang'")
        .fetch_one(server.store.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
    assert!(!hash.contains("qa-password-1"));

    let reply = api_login(server.addr, "wang", "qa-password-1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let me = reply.json();
    assert_eq!(me["user"], "wang");
    assert_eq!(me["role"], "qa");
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(csrf.len(), 64);
    let set_cookie = reply
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("threering_session="))
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "cookie_secure is off");
    let session = Session {
        cookie: reply.cookie("threering_session").unwrap(),
        csrf,
    };

    // A cookie GET works; /api/me tells the CSRF token.
    let reply = session.get(server.addr, "/api/calls").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(ids(&reply.json()).len(), 2, "qa sees every call");
    let reply = session.get(server.addr, "/api/me").await;
    assert_eq!(reply.json()["auth"], "session");
    assert_eq!(reply.json()["csrf_token"], session.csrf.as_str());

    // A cookie POST without the CSRF header is refused; with it, it is done.
    let body = json!({ "kind": "order" }).to_string();
    let reply = send(
        server.addr,
        "POST",
        "/api/tickets",
        &[("Cookie", &session.cookie)],
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(reply.json()["error"]
        .as_str()
        .unwrap()
        .contains("X-CSRF-Token"));
    let reply = send(
        server.addr,
        "POST",
        "/api/tickets",
        &[
            ("Cookie", &session.cookie),
            ("X-CSRF-Token", "0".repeat(64).as_str()),
        ],
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(reply.status, 403, "a wrong token is no token");
    let reply = session
        .send(
            server.addr,
            "POST",
            "/api/tickets",
            &json!({ "kind": "order" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let ticket = reply.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.json()["created_by"], "wang");

    // The login and the ticket are in the audit log, with the peer address.
    let entries = audit(server.addr, "actor=wang").await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["ticket.create", "login.ok"]);
    assert_eq!(entries[0]["target"], ticket.as_str());
    assert_eq!(entries[0]["role"], "qa");
    assert_eq!(entries[1]["source_ip"], "127.0.0.1");
    server.shut_down().await;
}

#[tokio::test]
async fn the_cli_refuses_an_empty_password_and_can_generate_one() {
    let install = install();
    let run = cli(&install, &["user", "add", "li", "--role", "agent"], "\n");
    assert!(!run.ok);
    assert!(run.stderr.contains("no password"), "{}", run.stderr);
    let run = cli(
        &install,
        &["user", "add", "li", "--role", "chief"],
        "pw-pw-pw-pw\n",
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("--role"), "{}", run.stderr);

    let run = cli(
        &install,
        &[
            "user",
            "add",
            "li",
            "--role",
            "agent",
            "--generate-password",
        ],
        "",
    );
    assert!(run.ok, "{}", run.stderr);
    let password = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("the generated password is printed")
        .to_owned();
    let run = cli(
        &install,
        &["user", "add", "li", "--role", "agent"],
        "pw-pw-pw-pw\n",
    );
    assert!(!run.ok, "a second li");
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    let run = cli(&install, &["user", "list"], "");
    assert!(run.ok);
    let line = run.stdout.lines().find(|l| l.starts_with("li ")).unwrap();
    assert!(line.contains("agent") && line.contains("active"), "{line}");

    let server = start(&install, true).await;
    let me = api_login(server.addr, "li", &password).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(
        me.json()["agent_id"],
        "li",
        "the agent id defaults to the name"
    );
    server.shut_down().await;
}

#[tokio::test]
async fn the_login_form_signs_in_and_out() {
    let install = install();
    add_user(&install, "zhao", "supervisor", None, "sup-password");
    let server = start(&install, true).await;
    let addr = server.addr;

    let page = send(addr, "GET", "/login?next=/api/me", &[], None).await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let html = page.text();
    assert!(
        html.contains("用户名") && html.contains("Password"),
        "{html}"
    );
    assert!(!html.contains("<script"), "no JavaScript needed");
    let form_cookie = page.cookie("threering_login_csrf").unwrap();
    let form_csrf = form_cookie.split_once('=').unwrap().1.to_owned();
    assert!(html.contains(&format!("name=\"csrf\" value=\"{form_csrf}\"")));
    assert!(html.contains("name=\"next\" value=\"/api/me\""));

    let post = |body: String, cookie: Option<String>| async move {
        let headers: Vec<(&str, &str)> = match &cookie {
            Some(c) => vec![("Cookie", c.as_str())],
            None => vec![],
        };
        send(
            addr,
            "POST",
            "/login",
            &headers,
            Some(("application/x-www-form-urlencoded", &body)),
        )
        .await
    };
    let form = |password: &str, next: &str| {
        format!("name=zhao&password={password}&csrf={form_csrf}&next={next}")
    };

    // Without the form's cookie (a post from another site): refused.
    let reply = post(form("sup-password", "%2Fapi%2Fme"), None).await;
    assert_eq!(reply.status, 403);
    assert!(reply.cookie("threering_session").is_none());

    // A wrong password: 401 page.
    let reply = post(form("nope", "%2Fapi%2Fme"), Some(form_cookie.clone())).await;
    assert_eq!(reply.status, 401);
    assert!(reply
        .text()
        .contains("用户名或密码错误 / wrong name or password"));
    assert!(reply.cookie("threering_session").is_none());

    // Right: 303 to next, with the session cookie.
    let reply = post(
        form("sup-password", "%2Fapi%2Fme"),
        Some(form_cookie.clone()),
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/api/me"));
    let cookie = reply.cookie("threering_session").unwrap();
    let me = send(addr, "GET", "/api/me", &[("Cookie", &cookie)], None).await;
    assert_eq!(me.json()["user"], "zhao");
    let csrf = me.json()["csrf_token"].as_str().unwrap().to_owned();

    // next elsewhere: home instead.
    let reply = post(
        form("sup-password", "https%3A%2F%2Fevil.example%2F"),
        Some(form_cookie.clone()),
    )
    .await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("location"), Some("/"));
    let other = reply.cookie("threering_session").unwrap();
    let home = send(addr, "GET", "/", &[("Cookie", &other)], None).await;
    assert_eq!(home.status, 200);
    assert!(home.text().contains("zhao"));
    assert_eq!(send(addr, "GET", "/", &[], None).await.status, 303);

    // Logging out needs the session's CSRF token.
    let reply = send(
        addr,
        "POST",
        "/logout",
        &[("Cookie", &cookie)],
        Some(("application/x-www-form-urlencoded", "csrf=wrong")),
    )
    .await;
    assert_eq!(reply.status, 403);
    let reply = send(
        addr,
        "POST",
        "/logout",
        &[("Cookie", &cookie)],
        Some(("application/x-www-form-urlencoded", &format!("csrf={csrf}"))),
    )
    .await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("location"), Some("/login"));
    assert!(reply
        .all("set-cookie")
        .iter()
        .any(|c| c.starts_with("threering_session=;") && c.contains("Max-Age=0")));
    let me = send(addr, "GET", "/api/me", &[("Cookie", &cookie)], None).await;
    assert_eq!(me.status, 401, "the session is over");
    // The other browser's session goes on.
    let me = send(addr, "GET", "/api/me", &[("Cookie", &other)], None).await;
    assert_eq!(me.status, 200);

    let actions: Vec<String> = audit(addr, "actor=zhao")
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["logout", "login.ok", "login.ok", "login.failed"]);
    server.shut_down().await;
}

#[tokio::test]
async fn wrong_passwords_are_401_and_the_eleventh_failure_in_a_minute_is_429() {
    let install = install();
    add_user(&install, "sun", "qa", None, "right-password");
    let server = start(&install, true).await;
    for attempt in 1..=10 {
        let reply = api_login(server.addr, "sun", "wrong-password").await;
        assert_eq!(reply.status, 401, "attempt {attempt}: {}", reply.text());
        assert_eq!(reply.json()["error"], "wrong name or password");
        assert!(reply.cookie("threering_session").is_none());
    }
    let reply = api_login(server.addr, "sun", "wrong-password").await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Even the right password waits: no password is checked meanwhile.
    let reply = api_login(server.addr, "sun", "right-password").await;
    assert_eq!(reply.status, 429);
    // The form says so too.
    let page = send(server.addr, "GET", "/login", &[], None).await;
    let cookie = page.cookie("threering_login_csrf").unwrap();
    let csrf = cookie.split_once('=').unwrap().1.to_owned();
    let reply = send(
        server.addr,
        "POST",
        "/login",
        &[("Cookie", &cookie)],
        Some((
            "application/x-www-form-urlencoded",
            &format!("name=sun&password=right-password&csrf={csrf}"),
        )),
    )
    .await;
    assert_eq!(reply.status, 429);
    assert!(reply.header("retry-after").is_some());
    // Unknown names from the same address are refused as well (per source IP).
    assert_eq!(api_login(server.addr, "nobody", "x").await.status, 429);

    let failed = audit(server.addr, "action=login.failed").await;
    assert_eq!(failed.len(), 10, "every failure that was checked is logged");
    assert!(failed.iter().all(|e| e["actor"] == "sun"));
    server.shut_down().await;
}

#[tokio::test]
async fn disabled_users_and_revoked_tokens_get_401() {
    let install = install();
    add_user(&install, "zhou", "agent", Some("1001"), "agent-password");
    let server = start(&install, true).await;
    let session = sign_in(server.addr, "zhou", "agent-password").await;

    // A token of one's own, made while signed in.
    let reply = session
        .send(
            server.addr,
            "POST",
            "/api/users/zhou/tokens",
            &json!({ "label": "softphone" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    let token_id = reply.json()["id"].as_i64().unwrap();
    let with_token = |token: String| async move {
        send(
            server.addr,
            "GET",
            "/api/me",
            &[("Authorization", &bearer(&token))],
            None,
        )
        .await
    };
    let me = with_token(token.clone()).await;
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["user"], "zhou");
    assert_eq!(me.json()["auth"], "token");
    assert_eq!(me.json()["agent_id"], "1001");
    assert!(me.json().get("csrf_token").is_none());
    // The token list never shows the token.
    let listed = session.get(server.addr, "/api/users/zhou/tokens").await;
    assert_eq!(listed.status, 200);
    assert!(!listed.text().contains(&token));

    // Disabled by the CLI: password, cookie and token all stop working.
    let run = cli(&install, &["user", "disable", "zhou"], "");
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(session.get(server.addr, "/api/me").await.status, 401);
    assert_eq!(with_token(token.clone()).await.status, 401);
    let reply = api_login(server.addr, "zhou", "agent-password").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"], "wrong name or password");

    // Enabled again: the token works; revoked, it does not.
    assert!(cli(&install, &["user", "enable", "zhou"], "").ok);
    assert_eq!(with_token(token.clone()).await.status, 200);
    let reply = send(
        server.addr,
        "DELETE",
        &format!("/api/users/zhou/tokens/{token_id}"),
        &[("Authorization", &bearer(&token))],
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["revoked"], true);
    let me = with_token(token.clone()).await;
    assert_eq!(me.status, 401);
    assert!(me.header("www-authenticate").unwrap().starts_with("Bearer"));

    // A token from the CLI works the same way.
    let run = cli(&install, &["user", "token", "zhou", "--label", "crm"], "");
    assert!(run.ok, "{}", run.stderr);
    let cli_token = run.stdout.trim().to_owned();
    assert_eq!(cli_token.len(), 64);
    assert_eq!(with_token(cli_token).await.status, 200);
    server.shut_down().await;
}

#[tokio::test]
async fn an_agent_sees_only_its_own_calls_and_recordings() {
    let install = install();
    add_user(&install, "wu", "agent", Some("1001"), "agent-password");
    let server = start(&install, true).await;
    let wu = sign_in(server.addr, "wu", "agent-password").await;

    let list = wu.get(server.addr, "/api/calls").await;
    assert_eq!(list.status, 200, "{}", list.text());
    assert_eq!(ids(&list.json()), ["n1-alice"]);
    assert_eq!(
        ids(&wu.get(server.addr, "/api/calls?agent=1001").await.json()),
        ["n1-alice"]
    );
    let reply = wu.get(server.addr, "/api/calls?agent=1002").await;
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"].is_string());

    assert_eq!(wu.get(server.addr, "/api/calls/n1-alice").await.status, 200);
    let reply = wu.get(server.addr, "/api/calls/n1-bob").await;
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"].as_str().unwrap().contains("n1-bob"));
    let reply = wu.get(server.addr, "/api/calls/n1-bob/recording").await;
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"].is_string());
    let reply = wu.get(server.addr, "/api/calls/n1-alice/recording").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), WAV_LEN);

    // Not another agent's recording to pause; one's own gets as far as call control
    // (not running here).
    for action in ["pause", "resume"] {
        let reply = wu
            .send(
                server.addr,
                "POST",
                &format!("/api/calls/n1-bob/recording/{action}"),
                &json!({}),
            )
            .await;
        assert_eq!(reply.status, 403, "{action}: {}", reply.text());
        let reply = wu
            .send(
                server.addr,
                "POST",
                &format!("/api/calls/n1-alice/recording/{action}"),
                &json!({}),
            )
            .await;
        assert_eq!(reply.status, 503, "{action}: {}", reply.text());
    }
    // Agents do not read the audit log or manage users.
    assert_eq!(wu.get(server.addr, "/api/audit").await.status, 403);
    assert_eq!(wu.get(server.addr, "/api/users").await.status, 403);

    // The config token (admin) sees everything, as before.
    let all = send(
        server.addr,
        "GET",
        "/api/calls",
        &[("Authorization", &bearer(CONFIG_TOKEN))],
        None,
    )
    .await;
    assert_eq!(ids(&all.json()).len(), 2);
    server.shut_down().await;
}

#[tokio::test]
async fn every_recording_get_is_audited_and_only_admins_read_the_audit_log() {
    let install = install();
    add_user(&install, "qian", "qa", None, "qa-password-2");
    let server = start(&install, true).await;
    let qian = sign_in(server.addr, "qian", "qa-password-2").await;

    let full = qian.get(server.addr, "/api/calls/n1-bob/recording").await;
    assert_eq!(full.status, 200);
    let ranged = send(
        server.addr,
        "GET",
        "/api/calls/n1-bob/recording",
        &[("Cookie", &qian.cookie), ("Range", "bytes=100-199")],
        None,
    )
    .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body.len(), 100);
    let by_token = send(
        server.addr,
        "GET",
        "/api/calls/n1-alice/recording",
        &[
            ("Authorization", &bearer(CONFIG_TOKEN)),
            ("Range", "bytes=-10"),
        ],
        None,
    )
    .await;
    assert_eq!(by_token.status, 206);

    let entries = audit(server.addr, "action=recording.play").await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    let newest_first: Vec<(&str, &str, Option<&str>)> = entries
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                e["detail"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        newest_first,
        [
            ("dev", "n1-alice", Some("bytes=-10")),
            ("qian", "n1-bob", Some("bytes=100-199")),
            ("qian", "n1-bob", None),
        ]
    );
    assert!(entries.iter().all(|e| e["source_ip"] == "127.0.0.1"));
    assert!(entries[0]["seq"].as_i64() > entries[1]["seq"].as_i64());
    assert_eq!(entries[1]["role"], "qa");

    // Filters.
    assert_eq!(
        audit(server.addr, "actor=qian&action=recording.play")
            .await
            .len(),
        2
    );
    assert_eq!(audit(server.addr, "target=n1-alice").await.len(), 1);
    assert_eq!(
        audit(server.addr, "action=recording.*&limit=1").await.len(),
        1
    );
    assert_eq!(
        audit(
            server.addr,
            "action=recording.play&from=2100-01-01T00:00:00Z"
        )
        .await
        .len(),
        0
    );
    let reply = send(
        server.addr,
        "GET",
        "/api/audit?actr=qian",
        &[("Authorization", &bearer(CONFIG_TOKEN))],
        None,
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["parameter"], "actr");

    // A non-admin may not read it.
    let reply = qian.get(server.addr, "/api/audit").await;
    assert_eq!(reply.status, 403);
    assert!(reply.json()["error"].is_string());
    server.shut_down().await;
}

#[tokio::test]
async fn unauthenticated_api_requests_are_401() {
    let install = install();
    let server = start(&install, true).await;
    let bogus_cookie = format!("threering_session={}", "ab".repeat(32));
    for path in [
        "/api/calls",
        "/api/calls/n1-alice/recording",
        "/api/me",
        "/api/audit",
        "/api/users",
        "/api/tickets",
        "/api/nowhere",
    ] {
        for headers in [
            vec![],
            vec![("Cookie", bogus_cookie.as_str())],
            vec![("Cookie", "threering_session=")],
            vec![("Authorization", "Bearer not-a-token")],
        ] {
            let reply = send(server.addr, "GET", path, &headers, None).await;
            assert_eq!(reply.status, 401, "{path} {headers:?}");
            assert!(reply.json()["error"].is_string());
            assert!(reply.header("www-authenticate").is_some());
        }
    }
    // POST /api/login is the one way in, and takes no credentials.
    let reply = api_login(server.addr, "nobody", "nothing-at-all").await;
    assert_eq!(reply.status, 401);
    let reply = send(
        server.addr,
        "POST",
        "/api/login",
        &[],
        Some(("application/json", "{\"name\": 1}")),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["problems"].is_array());
    let body = json!({ "name": "nobody", "password": "nothing-at-all" }).to_string();
    let reply = send(
        server.addr,
        "POST",
        "/api/login",
        &[],
        Some(("text/plain", &body)),
    )
    .await;
    assert_eq!(
        reply.status, 400,
        "JSON only (no cross-site text/plain forms)"
    );
    // Nothing was audited as played.
    assert!(audit(server.addr, "action=recording.play").await.is_empty());
    server.shut_down().await;
}

#[tokio::test]
async fn admins_manage_users_and_tokens_over_the_api() {
    let install = install();
    add_user(&install, "root", "admin", None, "admin-password");
    let server = start(&install, true).await;
    let addr = server.addr;
    let root = sign_in(addr, "root", "admin-password").await;

    let reply = root
        .send(
            addr,
            "POST",
            "/api/users",
            &json!({ "name": "zheng", "role": "agent", "password": "agent-pass-3", "agent_id": "1002" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({
            "name": "zheng", "role": "agent", "agent_id": "1002", "disabled": false,
            "created_at": reply.json()["created_at"],
        })
    );
    let again = root
        .send(
            addr,
            "POST",
            "/api/users",
            &json!({ "name": "zheng", "role": "qa", "password": "agent-pass-3" }),
        )
        .await;
    assert_eq!(again.status, 409);
    let bad = root
        .send(
            addr,
            "POST",
            "/api/users",
            &json!({ "name": "a b", "role": "boss", "password": "x" }),
        )
        .await;
    assert_eq!(bad.status, 400);
    let bad = root
        .send(
            addr,
            "POST",
            "/api/users",
            &json!({ "name": "a b", "role": "qa", "password": "x" }),
        )
        .await;
    assert_eq!(bad.status, 400);
    // The name, the agent id (the name, by default) and the password.
    assert_eq!(bad.json()["problems"].as_array().unwrap().len(), 3);

    let users = root.get(addr, "/api/users").await.json();
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root", "zheng"]);
    assert!(!root.get(addr, "/api/users").await.text().contains("argon2"));

    // The new agent signs in and sees agent 1002's call only.
    let zheng = sign_in(addr, "zheng", "agent-pass-3").await;
    assert_eq!(ids(&zheng.get(addr, "/api/calls").await.json()), ["n1-bob"]);
    // It may not make users, nor tokens for others; the admin may.
    let reply = zheng
        .send(
            addr,
            "POST",
            "/api/users",
            &json!({ "name": "x", "role": "admin", "password": "whatever-1" }),
        )
        .await;
    assert_eq!(reply.status, 403);
    let reply = zheng
        .send(
            addr,
            "POST",
            "/api/users/root/tokens",
            &json!({ "label": "x" }),
        )
        .await;
    assert_eq!(reply.status, 403);
    let reply = root
        .send(
            addr,
            "POST",
            "/api/users/zheng/tokens",
            &json!({ "label": "desk" }),
        )
        .await;
    assert_eq!(reply.status, 201);
    let token_id = reply.json()["id"].as_i64().unwrap();
    let reply = zheng
        .send(
            addr,
            "DELETE",
            &format!("/api/users/root/tokens/{token_id}"),
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, 403);
    let reply = root
        .send(addr, "DELETE", "/api/users/zheng/tokens/999", &json!({}))
        .await;
    assert_eq!(reply.status, 404);
    assert!(reply.json()["error"].is_string());

    // PATCH: a new password signs the user out; disabled, it cannot sign in.
    let reply = root
        .send(
            addr,
            "PATCH",
            "/api/users/zheng",
            &json!({ "password": "new-pass-44" }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(zheng.get(addr, "/api/me").await.status, 401);
    let zheng = sign_in(addr, "zheng", "new-pass-44").await;
    let reply = root
        .send(
            addr,
            "PATCH",
            "/api/users/zheng",
            &json!({ "disabled": true }),
        )
        .await;
    assert_eq!(reply.json()["disabled"], true);
    assert_eq!(zheng.get(addr, "/api/me").await.status, 401);
    assert_eq!(api_login(addr, "zheng", "new-pass-44").await.status, 401);

    let actions: Vec<String> = audit(addr, "actor=root")
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "user.update",
            "user.update",
            "token.create",
            "user.create",
            "login.ok"
        ]
    );
    server.shut_down().await;
}

#[tokio::test]
async fn ticket_changes_through_the_api_are_audited() {
    let install = install();
    let server = start(&install, true).await;
    let admin = [("Authorization", bearer(CONFIG_TOKEN))];
    let headers: Vec<(&str, &str)> = admin.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let post = |path: String, body: Value| {
        let headers = headers.clone();
        async move {
            let body = body.to_string();
            send(
                server.addr,
                "POST",
                &path,
                &headers,
                Some(("application/json", &body)),
            )
            .await
        }
    };
    let reply = post(
        "/api/tickets".into(),
        json!({ "kind": "order", "customer": "张三" }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let body = json!({ "phone": "13800138000", "area": "华东" }).to_string();
    let reply = send(
        server.addr,
        "PATCH",
        &format!("/api/tickets/{id}"),
        &headers,
        Some(("application/json", &body)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = post(
        format!("/api/tickets/{id}/notes"),
        json!({ "text": "已联系" }),
    )
    .await;
    assert_eq!(reply.status, 201);
    let reply = post(
        format!("/api/tickets/{id}/calls"),
        json!({ "call_id": "n1-alice", "role": "work-contact" }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let reply = post(format!("/api/tickets/{id}/survey"), json!({ "score": 5 })).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Refused changes are not logged as changes.
    let reply = post(format!("/api/tickets/{id}/survey"), json!({})).await;
    assert_eq!(reply.status, 400);

    let entries = audit(server.addr, "action=ticket.*").await;
    let got: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("ticket.survey", id.as_str()),
            ("ticket.link", id.as_str()),
            ("ticket.note", id.as_str()),
            ("ticket.update", id.as_str()),
            ("ticket.create", id.as_str()),
        ]
    );
    assert_eq!(entries[0]["detail"], "score 5");
    assert_eq!(entries[1]["detail"], "call n1-alice as work-contact");
    assert_eq!(entries[3]["detail"], "area, phone");
    assert!(entries
        .iter()
        .all(|e| e["actor"] == "dev" && e["role"] == "admin"));
    server.shut_down().await;
}

#[tokio::test]
async fn without_connect_info_the_router_still_signs_in_and_audits() {
    let install = install();
    add_user(&install, "feng", "qa", None, "qa-password-3");
    let server = start(&install, false).await;
    let feng = sign_in(server.addr, "feng", "qa-password-3").await;
    let reply = feng.get(server.addr, "/api/calls/n1-alice/recording").await;
    assert_eq!(reply.status, 200);
    let entries = audit(server.addr, "actor=feng").await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["action"], "recording.play");
    assert!(entries.iter().all(|e| e["source_ip"].is_null()));
    server.shut_down().await;
}
