//! The HTTP API over a real socket, spoken as raw HTTP/1.1: auth, the call JSON contract,
//! filters, errors, health and metrics.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use threering::call::record::{
    AgentAttempt, AttemptOutcome, CallOutcome, CallRecord, Direction, HangupSide,
};
use threering::config::{RingsConfig, Role, TokenConfig};
use threering::http::{serve, AppState};
use threering::store::testing::TestDb;

const TOKEN: &str = "test-token-1";
/// 2025-03-01T08:30:00.125Z.
const T0: i64 = 1_740_817_800_125;

struct Server {
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

impl Server {
    async fn shut_down(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn answered() -> CallRecord {
    CallRecord {
        id: "n1-answered".to_owned(),
        sip_call_id: "abc123@pbx.example.com".to_owned(),
        direction: Direction::Inbound,
        caller: "13800138000".to_owned(),
        callee: "4008001234".to_owned(),
        queue: Some("consult".to_owned()),
        agent: Some("1002".to_owned()),
        started_at: T0,
        caller_ringing_at: Some(T0 + 50),
        answered_at: Some(T0 + 50 + 16_200),
        ended_at: Some(T0 + 50 + 16_200 + 61_000),
        caller_ring_ms: Some(16_200),
        rings: Some(4),
        three_ring_ok: Some(false),
        over_limit: Some(false),
        outcome: CallOutcome::Answered,
        hangup_side: Some(HangupSide::Agent),
        talk_ms: Some(61_000),
        attempts: vec![
            AgentAttempt {
                agent: "1001".to_owned(),
                invited_at: T0 + 60,
                ring_started_at: T0 + 80,
                ended_at: Some(T0 + 15_080),
                ring_ms: Some(15_000),
                outcome: AttemptOutcome::NoAnswer,
                sip_status: Some(487),
            },
            AgentAttempt {
                agent: "1002".to_owned(),
                invited_at: T0 + 15_090,
                ring_started_at: T0 + 15_100,
                ended_at: Some(T0 + 16_250),
                ring_ms: Some(1_150),
                outcome: AttemptOutcome::Answered,
                sip_status: Some(200),
            },
        ],
        recording_path: Some("2025/03/01/n1-answered.wav".to_owned()),
        survey_score: Some(4),
        survey_offered: false,
        recording: Default::default(),
        tickets: vec!["WO-2025-0042".to_owned()],
    }
}

fn abandoned() -> CallRecord {
    CallRecord {
        id: "n1-abandoned".to_owned(),
        sip_call_id: "def456@pbx.example.com".to_owned(),
        direction: Direction::Inbound,
        caller: "13900139000".to_owned(),
        callee: "4008001234".to_owned(),
        queue: Some("consult".to_owned()),
        agent: None,
        started_at: T0 + 3_600_000,
        caller_ringing_at: Some(T0 + 3_600_040),
        answered_at: None,
        ended_at: Some(T0 + 3_608_000),
        caller_ring_ms: Some(7_960),
        rings: None,
        three_ring_ok: None,
        over_limit: None,
        outcome: CallOutcome::Abandoned,
        hangup_side: Some(HangupSide::Caller),
        talk_ms: None,
        attempts: vec![AgentAttempt {
            agent: "1001".to_owned(),
            invited_at: T0 + 3_600_045,
            ring_started_at: T0 + 3_600_060,
            ended_at: Some(T0 + 3_608_000),
            ring_ms: Some(7_940),
            outcome: AttemptOutcome::Cancelled,
            sip_status: None,
        }],
        recording_path: None,
        survey_score: None,
        survey_offered: false,
        recording: Default::default(),
        tickets: vec![],
    }
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::from_env().await;
    let store = db.open().await;
    store.save_call(&answered()).await.unwrap();
    store.save_call(&abandoned()).await.unwrap();
    let ready = Arc::new(AtomicBool::new(false));
    let mut config = threering::config::Config::embedded();
    config.store.recordings = dir.path().join("recordings");
    config.archive.root = dir.path().join("archive");
    let mut state = AppState::new(&config, store);
    state.tokens = vec![TokenConfig {
        name: "crm".to_owned(),
        role: Role::Admin,
        token_sha256: hex::encode(Sha256::digest(TOKEN.as_bytes())),
    }];
    state.ready = ready.clone();
    state.rings = RingsConfig::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    let task = tokio::spawn(serve(listener, state, shutdown));
    Server {
        addr,
        ready,
        stop,
        task,
        _dir: dir,
        _db: db,
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One GET over a fresh connection, with `Connection: close` so the reply ends at EOF.
async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

#[tokio::test]
async fn the_api_refuses_requests_without_a_good_token() {
    let server = start().await;
    for token in [None, Some("wrong-token"), Some("")] {
        for path in ["/api/calls", "/api/calls/n1-answered", "/api/nowhere"] {
            let reply = get(server.addr, path, token).await;
            assert_eq!(reply.status, 401, "{path} with {token:?}");
            assert!(
                reply
                    .header("www-authenticate")
                    .unwrap()
                    .starts_with("Bearer"),
                "{:?}",
                reply.headers
            );
            assert!(reply.json()["error"].is_string());
        }
    }
    server.shut_down().await;
}

#[tokio::test]
async fn a_call_is_served_with_the_contract_fields() {
    let server = start().await;
    let reply = get(server.addr, "/api/calls/n1-answered", Some(TOKEN)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let call = reply.json();
    assert_eq!(call["id"], "n1-answered");
    assert_eq!(call["sip_call_id"], "abc123@pbx.example.com");
    assert_eq!(call["direction"], "inbound");
    assert_eq!(call["caller"], "13800138000");
    assert_eq!(call["agent"], "1002");
    assert_eq!(call["queue"], "consult");
    assert_eq!(call["started_at"], "2025-03-01T08:30:00.125Z");
    assert_eq!(call["answered_at"], "2025-03-01T08:30:16.375Z");
    assert_eq!(call["ended_at"], "2025-03-01T08:31:17.375Z");
    assert_eq!(call["caller_ring_ms"], 16_200);
    assert_eq!(call["rings"], 4);
    assert_eq!(call["three_ring_ok"], false);
    assert_eq!(call["hangup_side"], "agent");
    assert_eq!(call["talk_ms"], 61_000);
    assert_eq!(call["recording"], "/api/calls/n1-answered/recording");
    assert_eq!(call["survey_score"], 4);
    assert_eq!(call["tickets"], serde_json::json!(["WO-2025-0042"]));
    assert_eq!(call["outcome"], "answered");
    let attempts = call["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["agent"], "1001");
    assert_eq!(attempts[0]["ring_ms"], 15_000);
    assert_eq!(attempts[0]["outcome"], "no-answer");
    assert_eq!(attempts[0]["sip_status"], 487);
    assert_eq!(attempts[1]["agent"], "1002");
    assert_eq!(attempts[1]["ring_ms"], 1_150);
    assert_eq!(attempts[1]["outcome"], "answered");

    let reply = get(server.addr, "/api/calls/n1-abandoned", Some(TOKEN)).await;
    let call = reply.json();
    assert_eq!(call["agent"], Value::Null);
    assert_eq!(call["answered_at"], Value::Null);
    assert_eq!(call["rings"], Value::Null);
    assert_eq!(call["three_ring_ok"], Value::Null);
    assert_eq!(call["recording"], Value::Null);
    assert_eq!(call["survey_score"], Value::Null);
    assert_eq!(call["hangup_side"], "caller");
    assert_eq!(call["tickets"], serde_json::json!([]));
    assert_eq!(call["outcome"], "abandoned");
    server.shut_down().await;
}

fn listed_ids(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_list_is_newest_first_and_filters() {
    let server = start().await;
    let list = |query: &'static str| {
        let addr = server.addr;
        async move { listed_ids(&get(addr, &format!("/api/calls{query}"), Some(TOKEN)).await) }
    };
    assert_eq!(list("").await, ["n1-abandoned", "n1-answered"]);
    let full = get(server.addr, "/api/calls", Some(TOKEN)).await.json();
    assert_eq!(full["calls"][1]["attempts"][1]["agent"], "1002");
    assert_eq!(list("?agent=1002").await, ["n1-answered"]);
    assert_eq!(list("?agent=1001").await, Vec::<String>::new());
    assert_eq!(list("?queue=consult").await.len(), 2);
    assert_eq!(list("?queue=complaints").await.len(), 0);
    assert_eq!(list("?ticket=WO-2025-0042").await, ["n1-answered"]);
    assert_eq!(list("?violation=true").await, ["n1-answered"]);
    assert_eq!(list("?violation=false").await.len(), 0);
    assert_eq!(list("?limit=1").await, ["n1-abandoned"]);
    // 09:00 UTC as RFC 3339 and as epoch ms: only the abandoned call (09:30) is later.
    assert_eq!(list("?from=2025-03-01T09:00:00Z").await, ["n1-abandoned"]);
    assert_eq!(
        list("?from=2025-03-01T17:00:00%2B08:00").await,
        ["n1-abandoned"]
    );
    assert_eq!(list("?to=1740819600000").await, ["n1-answered"]);
    assert_eq!(
        list("?from=2025-03-01T08:00:00Z&to=2025-03-01T09:00:00Z&agent=1002&violation=true").await,
        ["n1-answered"]
    );
    assert_eq!(
        list("?agent=&queue=").await.len(),
        2,
        "empty values are no filter"
    );
    server.shut_down().await;
}

#[tokio::test]
async fn errors_are_json_and_name_what_is_wrong() {
    let server = start().await;
    let reply = get(server.addr, "/api/calls/no-such-call", Some(TOKEN)).await;
    assert_eq!(reply.status, 404);
    assert!(reply.json()["error"]
        .as_str()
        .unwrap()
        .contains("no-such-call"));

    for (query, param) in [
        ("from=yesterday", "from"),
        ("to=2025-13-01T00:00:00Z", "to"),
        ("violation=maybe", "violation"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("agnet=1001", "agnet"),
    ] {
        let reply = get(server.addr, &format!("/api/calls?{query}"), Some(TOKEN)).await;
        assert_eq!(reply.status, 400, "{query}");
        let error = reply.json();
        assert_eq!(error["parameter"], param, "{query}");
        assert!(error["error"].as_str().unwrap().contains(param), "{error}");
    }

    let reply = get(server.addr, "/api/unknown", Some(TOKEN)).await;
    assert_eq!(reply.status, 404);
    assert!(reply.json()["error"].is_string());
    server.shut_down().await;
}

#[tokio::test]
async fn healthz_follows_readiness_without_auth() {
    let server = start().await;
    let reply = get(server.addr, "/healthz", None).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["status"], "unavailable");
    server.ready.store(true, Ordering::Release);
    let reply = get(server.addr, "/healthz", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "ok");
    server.shut_down().await;
}

#[tokio::test]
async fn metrics_show_the_contract_names_without_auth() {
    let server = start().await;
    threering::metrics::call_ended("consult", "answered");
    threering::metrics::agent_answered("consult", "1002", 16.2, true);
    threering::metrics::agent_answered("consult", "1001", 2.5, false);
    threering::metrics::active_calls(3);
    threering::metrics::sip_parse_errors();

    let reply = get(server.addr, "/metrics", None).await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = &reply.body;
    for expected in [
        "threering_ring_to_answer_seconds_bucket{queue=\"consult\",agent=\"1002\",le=\"20\"} 1",
        "threering_ring_to_answer_seconds_bucket{queue=\"consult\",agent=\"1002\",le=\"15\"} 0",
        "threering_ring_to_answer_seconds_count{queue=\"consult\",agent=\"1001\"} 1",
        "threering_calls_total{queue=\"consult\",outcome=\"answered\"}",
        "threering_three_ring_violations_total{queue=\"consult\",agent=\"1002\"} 1",
        "threering_active_calls 3",
        "threering_sip_parse_errors_total",
        "# HELP threering_ring_to_answer_seconds",
        "# TYPE threering_ring_to_answer_seconds histogram",
    ] {
        assert!(text.contains(expected), "no {expected:?} in\n{text}");
    }
    assert!(
        !text.contains("threering_three_ring_violations_total{queue=\"consult\",agent=\"1001\"}")
    );
    server.shut_down().await;
}
