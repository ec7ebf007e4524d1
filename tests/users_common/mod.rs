//! Helpers shared by the user and sign-in tests (`users_auth`, `users_access`): a
//! temporary installation (config file, database, recordings), the real `threering user`
//! command, two seeded calls with recordings, the API served over the installation, raw
//! HTTP/1.1 requests with any headers, and signed-in sessions (cookie and CSRF token).
//! Included with `#[path]`; each test binary uses a different subset.
#![allow(dead_code)]

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
use threering::store::testing::{backend_from_env, TestDb};
use threering::store::Store;

/// The config token of the embedded default (an admin).
pub const CONFIG_TOKEN: &str = "dev-token-change-me";
pub const T0: i64 = 1_764_000_000_000;
/// Bytes of the test recordings.
pub const WAV_LEN: usize = 4_000;

/// A temporary installation: config file, database, recordings.
pub struct Install {
    _dir: tempfile::TempDir,
    _db: TestDb,
    pub config_path: PathBuf,
    pub config: Config,
}

pub fn install() -> Install {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new_blocking(backend_from_env());
    let text = Config::EMBEDDED
        .replace(
            "database = \"sqlite://threering.db\"",
            &format!("database = {:?}", db.url),
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
    assert_eq!(config.store.database, db.url);
    let config_path = dir.path().join("threering.toml");
    std::fs::write(&config_path, text).unwrap();
    Install {
        _dir: dir,
        _db: db,
        config_path,
        config,
    }
}

/// Output of one `threering` run.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `threering ARGS --config <the install's file>` with `stdin` piped in.
pub fn cli(install: &Install, args: &[&str], stdin: &str) -> Run {
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
pub fn add_user(install: &Install, name: &str, role: &str, agent_id: Option<&str>, password: &str) {
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

pub fn call(id: &str, agent: &str, recording: Option<&str>) -> CallRecord {
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
        survey_offered: false,
        tickets: vec![],
    }
}

/// Calls `n1-alice` (agent 1001) and `n1-bob` (agent 1002), each with a recording.
pub async fn seed_calls(store: &Store, recordings: &Path) {
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

pub struct Server {
    pub addr: SocketAddr,
    pub store: Store,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn shut_down(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// The API over the install's database, as the daemon serves it (with the peer address
/// known), or with the bare router (no connect info) when `connect_info` is false.
pub async fn start(install: &Install, connect_info: bool) -> Server {
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

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// The `name=value` of a Set-Cookie for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_owned())
    }
}

/// One request over a fresh connection (`Connection: close`, so the reply ends at EOF).
pub async fn send(
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

pub fn parse_reply(raw: &[u8]) -> Reply {
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

pub fn dechunk(mut rest: &[u8]) -> Vec<u8> {
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

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A signed-in browser: its cookie header value and the session's CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Reply {
        send(addr, "GET", path, &[("Cookie", &self.cookie)], None).await
    }

    /// A JSON request with the cookie and the CSRF header.
    pub async fn send(&self, addr: SocketAddr, method: &str, path: &str, body: &Value) -> Reply {
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

pub async fn api_login(addr: SocketAddr, name: &str, password: &str) -> Reply {
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

pub async fn sign_in(addr: SocketAddr, name: &str, password: &str) -> Session {
    let reply = api_login(addr, name, password).await;
    assert_eq!(reply.status, 200, "login {name}: {}", reply.text());
    Session {
        cookie: reply.cookie("threering_session").expect("session cookie"),
        csrf: reply.json()["csrf_token"].as_str().unwrap().to_owned(),
    }
}

pub async fn audit(addr: SocketAddr, query: &str) -> Vec<Value> {
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

pub fn ids(calls: &Value) -> Vec<&str> {
    calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}
