//! The reports API over a real socket (raw HTTP/1.1): summary figures as JSON and CSV,
//! the SVG charts, the shift handover report as JSON, HTML and CSV, roles and bad
//! parameters; and `threering report shift` against a database filled through the
//! library.

#[path = "tickets_common/mod.rs"]
mod tickets_common;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use threering::call::record::{
    AgentAttempt, AttemptOutcome, CallOutcome, CallRecord, Direction, HangupSide, RecordingMeta,
};
use threering::config::{Config, Role, TokenConfig};
use threering::http::{serve, AppState};
use threering::store::testing::TestDb;
use threering::store::Store;
use threering::tickets::ticket::{NewTicket, TimeInput};
use threering::tickets::Tickets;
use tickets_common::{request, Reply};

const SUPERVISOR: &str = "supervisor-token";
const QA: &str = "qa-token";
const AGENT: &str = "agent-token";
const ADMIN: &str = "admin-token";

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
/// 2025-03-01T00:00:00Z: 08:00 on 1 March at +08:00.
const T0: i64 = 1_740_787_200_000;
/// Local midnight starting and ending 1 March at +08:00.
const DAY_FROM: &str = "2025-03-01T00:00:00%2B08:00";
const DAY_TO: &str = "2025-03-02T00:00:00%2B08:00";

fn token(name: &str, role: Role, text: &str) -> TokenConfig {
    TokenConfig {
        name: name.to_owned(),
        role,
        token_sha256: hex::encode(Sha256::digest(text.as_bytes())),
    }
}

struct Server {
    addr: SocketAddr,
    store: Store,
    tickets: Tickets,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::from_env().await;
        let store = db.open().await;
        let mut config = Config::embedded();
        config.store.recordings = dir.path().join("recordings");
        config.archive.root = dir.path().join("archive");
        let mut state = AppState::new(&config, store.clone());
        state.tokens = vec![
            token("boss", Role::Supervisor, SUPERVISOR),
            token("qa", Role::Qa, QA),
            token("agent-1001", Role::Agent, AGENT),
            token("crm", Role::Admin, ADMIN),
        ];
        state.ready = Arc::new(AtomicBool::new(true));
        let tickets = state.tickets.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, state, stop.clone().cancelled_owned()));
        Server {
            addr,
            store,
            tickets,
            stop,
            task,
            _dir: dir,
            _db: db,
        }
    }

    async fn shut_down(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }

    async fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, Some(SUPERVISOR), None).await
    }

    /// GET as the supervisor, which must answer 200 with JSON.
    async fn json(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        reply.json()
    }
}

fn attempt(agent: &str, outcome: AttemptOutcome, at: i64) -> AgentAttempt {
    AgentAttempt {
        agent: agent.to_owned(),
        invited_at: at,
        ring_started_at: at + 20,
        ended_at: Some(at + 1_000),
        ring_ms: Some(980),
        outcome,
        sip_status: None,
    }
}

/// A call that ended unanswered (`outcome`), in `queue`.
fn unanswered(id: &str, queue: &str, started_at: i64, outcome: CallOutcome) -> CallRecord {
    CallRecord {
        id: id.to_owned(),
        sip_call_id: format!("{id}@pbx.example.com"),
        direction: Direction::Inbound,
        caller: "13800138000".to_owned(),
        callee: "4008001234".to_owned(),
        queue: Some(queue.to_owned()),
        agent: None,
        started_at,
        caller_ringing_at: Some(started_at + 20),
        answered_at: None,
        ended_at: Some(started_at + 40_000),
        caller_ring_ms: Some(30_000),
        rings: None,
        three_ring_ok: None,
        over_limit: None,
        outcome,
        hangup_side: Some(HangupSide::Caller),
        talk_ms: None,
        attempts: Vec::new(),
        recording_path: None,
        recording: RecordingMeta::default(),
        survey_score: None,
        survey_offered: false,
        tickets: Vec::new(),
    }
}

/// A call answered by `agent` after `ring_ms` (rings and flags as call control sets
/// them at the 5 s cadence, target 3, limit 5), talking `talk_ms`.
fn answered(
    id: &str,
    queue: &str,
    agent: &str,
    started_at: i64,
    ring_ms: i64,
    talk_ms: i64,
) -> CallRecord {
    let rings = ring_ms / 5000 + 1;
    let mut call = unanswered(id, queue, started_at, CallOutcome::Answered);
    call.agent = Some(agent.to_owned());
    call.answered_at = Some(started_at + 20 + ring_ms);
    call.ended_at = Some(started_at + 20 + ring_ms + talk_ms);
    call.caller_ring_ms = Some(ring_ms);
    call.rings = Some(rings);
    call.three_ring_ok = Some(rings <= 3);
    call.over_limit = Some(rings > 5);
    call.talk_ms = Some(talk_ms);
    call.attempts = vec![attempt(agent, AttemptOutcome::Answered, started_at + 20)];
    call
}

const COMPLAINTS: &str = "投诉,专线";

/// Calls of 1 March (local): six inbound calls in two queues, and two that never count
/// (a callback, a call the next day).
async fn save_day(store: &Store) {
    // 08:10 local, ring 1, survey 5.
    let mut c1 = answered("c1", "consult", "1001", T0 + 10 * MINUTE, 4_000, 60_000);
    c1.survey_score = Some(5);
    // 09:05: 1001 does not answer, 1002 answers on ring 4 and hands over to the
    // survey (score 2: low).
    let mut c2 = answered(
        "c2",
        "consult",
        "1002",
        T0 + HOUR + 5 * MINUTE,
        16_000,
        120_000,
    );
    c2.attempts.insert(
        0,
        attempt("1001", AttemptOutcome::NoAnswer, T0 + HOUR + 5 * MINUTE),
    );
    c2.hangup_side = Some(HangupSide::Agent);
    c2.survey_score = Some(2);
    // 09:20: abandoned while 1001 rang.
    let mut c3 = unanswered(
        "c3",
        "consult",
        T0 + HOUR + 20 * MINUTE,
        CallOutcome::Abandoned,
    );
    c3.attempts = vec![attempt(
        "1001",
        AttemptOutcome::Cancelled,
        T0 + HOUR + 20 * MINUTE,
    )];
    // 10:00: ring 7, over the limit; the agent hangs up first.
    let mut c4 = answered("c4", "consult", "1001", T0 + 2 * HOUR, 31_000, 90_000);
    c4.hangup_side = Some(HangupSide::Agent);
    // 07:00: the complaints line, ring 2.
    let c5 = answered("c5", COMPLAINTS, "1002", T0 - HOUR, 9_000, 30_000);
    // 11:00: nobody free.
    let c6 = unanswered("c6", COMPLAINTS, T0 + 3 * HOUR, CallOutcome::NoAgent);
    // Never counted: a callback, and a call on 2 March.
    let mut callback = answered("cb", "consult", "1001", T0 + 4 * HOUR, 40_000, 10_000);
    callback.direction = Direction::Outbound;
    let next_day = answered("c7", "consult", "1001", T0 + 16 * HOUR, 1_000, 10_000);
    for call in [c1, c2, c3, c4, c5, c6, callback, next_day] {
        store.save_call(&call).await.unwrap();
    }
}

fn f(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[tokio::test]
async fn summary_figures_per_queue_agent_hour_and_day() {
    let server = Server::start().await;
    save_day(&server.store).await;

    let body = server
        .json(&format!(
            "/api/reports/summary?from={DAY_FROM}&to={DAY_TO}&group=queue"
        ))
        .await;
    assert_eq!(body["group"], "queue");
    assert_eq!(body["from"], "2025-03-01T00:00:00+08:00");
    assert_eq!(body["to"], "2025-03-02T00:00:00+08:00");
    assert_eq!(body["from_ms"], T0 - 8 * HOUR);
    assert_eq!(body["rules"]["target"], 3);
    assert_eq!(body["rules"]["service_level_ms"], 15_000);
    assert_eq!(body["rules"]["utc_offset"], "+08:00");
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{body}");
    let consult = &rows[0];
    assert_eq!(consult["key"], "consult");
    assert_eq!(consult["offered"], 4);
    assert_eq!(consult["answered"], 3);
    assert_eq!(consult["abandoned"], 1);
    assert_eq!(consult["no_agent"], 0);
    assert_eq!(consult["answered_within_target"], 1);
    assert_eq!(f(&consult["pct_within_target"]), 33.33);
    assert_eq!(consult["over_limit"], 1);
    assert_eq!(f(&consult["pct_over_limit"]), 33.33);
    assert_eq!(f(&consult["avg_rings"]), 4.0);
    assert_eq!(consult["p90_rings"], 7);
    assert_eq!(consult["asa_ms"], 17_000);
    assert_eq!(consult["answered_within_sl"], 1);
    assert_eq!(f(&consult["service_level"]), 25.0);
    assert_eq!(consult["ring_no_answers"], 1);
    // c4; c2's hang-up was the hand-off to the survey.
    assert_eq!(consult["agent_hangups"], 1);
    assert_eq!(consult["talk_ms_total"], 270_000);
    assert_eq!(consult["avg_talk_ms"], 90_000);
    assert_eq!(consult["survey_count"], 2);
    assert_eq!(f(&consult["survey_avg"]), 3.5);
    assert_eq!(consult["low_surveys"], 1);
    let complaints = &rows[1];
    assert_eq!(complaints["key"], COMPLAINTS);
    assert_eq!(complaints["offered"], 2);
    assert_eq!(complaints["answered"], 1);
    assert_eq!(complaints["no_agent"], 1);
    assert_eq!(f(&complaints["pct_within_target"]), 100.0);
    assert_eq!(complaints["asa_ms"], 9_000);
    assert_eq!(f(&complaints["service_level"]), 50.0);
    assert_eq!(complaints["survey_avg"], Value::Null);

    let totals = &body["totals"];
    assert_eq!(totals["key"], Value::Null);
    assert_eq!(totals["offered"], 6);
    assert_eq!(totals["answered"], 4);
    assert_eq!(f(&totals["pct_within_target"]), 50.0);
    assert_eq!(f(&totals["avg_rings"]), 3.5);
    // Rings 1, 2, 4, 7: rank ⌈3.6⌉ = 4.
    assert_eq!(totals["p90_rings"], 7);
    assert_eq!(totals["asa_ms"], 15_000);
    assert_eq!(f(&totals["service_level"]), 33.33);

    let body = server
        .json(&format!(
            "/api/reports/summary?from={DAY_FROM}&to={DAY_TO}&group=agent"
        ))
        .await;
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{body}");
    let (a1, a2) = (&rows[0], &rows[1]);
    assert_eq!(a1["key"], "1001");
    assert_eq!(a1["name"], "Wang Fang");
    // Rung in c1, c2 (no answer), c3 (abandoned), c4.
    assert_eq!(a1["offered"], 4);
    assert_eq!(a1["answered"], 2);
    assert_eq!(a1["abandoned"], 1);
    assert_eq!(a1["ring_no_answers"], 1);
    assert_eq!(a1["asa_ms"], 17_500);
    assert_eq!(f(&a1["service_level"]), 25.0);
    assert_eq!(a1["agent_hangups"], 1);
    assert_eq!(a2["key"], "1002");
    assert_eq!(a2["name"], "Li Na");
    assert_eq!(a2["offered"], 2);
    assert_eq!(a2["answered"], 2);
    assert_eq!(f(&a2["pct_within_target"]), 50.0);
    assert_eq!(a2["asa_ms"], 12_500);
    assert_eq!(a2["low_surveys"], 1);
    // Totals stay per call.
    assert_eq!(body["totals"]["offered"], 6);

    // Hours are local (+08:00): UTC 23:00, 00:10, 01:05, 01:20, 02:00, 03:00.
    let body = server
        .json(&format!(
            "/api/reports/summary?from={DAY_FROM}&to={DAY_TO}&group=hour"
        ))
        .await;
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 24);
    let offered: Vec<(String, i64)> = rows
        .iter()
        .filter(|r| r["offered"].as_i64().unwrap() > 0)
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["offered"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, i64)> = [("07", 1), ("08", 1), ("09", 2), ("10", 1), ("11", 1)]
        .iter()
        .map(|(h, n)| (h.to_string(), *n))
        .collect();
    assert_eq!(offered, expected);
    assert_eq!(f(&rows[9]["pct_within_target"]), 0.0);
    assert_eq!(rows[12]["pct_within_target"], Value::Null);

    let body = server
        .json(&format!(
            "/api/reports/summary?from={DAY_FROM}&to={DAY_TO}&group=day"
        ))
        .await;
    assert_eq!(body["rows"].as_array().unwrap().len(), 1);
    assert_eq!(body["rows"][0]["key"], "2025-03-01");
    assert_eq!(body["rows"][0]["offered"], 6);

    // Epoch ms work too, and `none` is the default grouping.
    let body = server
        .json(&format!(
            "/api/reports/summary?from={}&to={}",
            T0 - 8 * HOUR,
            T0 + 16 * HOUR
        ))
        .await;
    assert_eq!(body["group"], "none");
    assert_eq!(body["rows"].as_array().unwrap().len(), 1);
    assert_eq!(body["rows"][0]["offered"], 6);
    // Without from/to: the last 24 hours, which hold none of these calls.
    let body = server.json("/api/reports/summary").await;
    assert_eq!(body["totals"]["offered"], 0);
    server.shut_down().await;
}

#[tokio::test]
async fn summaries_download_as_csv() {
    let server = Server::start().await;
    save_day(&server.store).await;
    let reply = server
        .get(&format!(
            "/api/reports/summary?from={DAY_FROM}&to={DAY_TO}&group=queue&format=csv"
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/csv; charset=utf-8"));
    let disposition = reply.header("content-disposition").unwrap();
    assert!(disposition.starts_with("attachment; filename=\"threering-summary-queue-"));
    assert!(disposition.ends_with(".csv\""));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let csv = reply
        .body
        .strip_prefix('\u{feff}')
        .expect("UTF-8 BOM first");
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "queue,offered,answered,abandoned,no_agent,failed,answered_within_target,\
         pct_within_target,over_limit,pct_over_limit,avg_rings,p90_rings,asa_ms,\
         answered_within_sl,service_level,ring_no_answers,agent_hangups,talk_ms_total,\
         avg_talk_ms,survey_count,survey_avg,low_surveys"
    );
    assert_eq!(
        lines[1],
        "consult,4,3,1,0,0,1,33.33,1,33.33,4,7,17000,1,25,1,1,270000,90000,2,3.5,1"
    );
    // The queue name with a comma is quoted; Chinese stays as it is.
    assert_eq!(
        lines[2],
        "\"投诉,专线\",2,1,0,1,0,1,100,0,0,2,2,9000,1,50,0,0,30000,30000,0,,0"
    );
    assert!(lines[3].starts_with("total,6,4,1,1,0,2,50,1,25,3.5,7,15000,2,33.33,"));
    assert_eq!(lines[4], "");
    assert_eq!(lines.len(), 5);

    let reply = server
        .get(&format!(
            "/api/reports/summary?from={DAY_FROM}&to={DAY_TO}&group=agent&format=csv"
        ))
        .await;
    assert_eq!(reply.status, 200);
    let lines: Vec<&str> = reply.body.trim_start_matches('\u{feff}').lines().collect();
    assert!(lines[0].starts_with("agent,name,offered,"));
    assert!(lines[1].starts_with("1001,Wang Fang,4,2,1,"));
    assert!(lines[2].starts_with("1002,Li Na,2,2,0,"));
    server.shut_down().await;
}

/// The numbers of the `<g class="bar" data-…>` elements of a chart, by attribute.
fn bar_data(svg: &str, attribute: &str) -> Vec<String> {
    svg.split("<g class=\"bar\"")
        .skip(1)
        .map(|bar| {
            let start = bar.find(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
            let end = bar[start..].find('"').unwrap() + start;
            bar[start..end].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn charts_are_svg_with_their_numbers() {
    let server = Server::start().await;
    save_day(&server.store).await;
    let reply = server
        .get(&format!(
            "/api/reports/charts/rings.svg?from={DAY_FROM}&to={DAY_TO}"
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("image/svg+xml; charset=utf-8")
    );
    let svg = &reply.body;
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>"));
    assert!(svg.contains("<title"));
    assert_eq!(bar_data(svg, "data-rings"), ["1", "2", "3", "4", "5", "6+"]);
    // c1 ring 1, c5 ring 2, c2 ring 4, c4 ring 7.
    assert_eq!(bar_data(svg, "data-calls"), ["1", "1", "0", "1", "0", "1"]);
    assert!(svg.contains("目标 target ≤ 3"));

    let reply = server
        .get(&format!(
            "/api/reports/charts/rings.svg?from={DAY_FROM}&to={DAY_TO}&agent=1002"
        ))
        .await;
    assert_eq!(
        bar_data(&reply.body, "data-calls"),
        ["0", "1", "0", "1", "0", "0"]
    );
    let reply = server
        .get(&format!(
            "/api/reports/charts/rings.svg?from={DAY_FROM}&to={DAY_TO}&queue=consult"
        ))
        .await;
    assert_eq!(
        bar_data(&reply.body, "data-calls"),
        ["1", "0", "0", "1", "0", "1"]
    );

    let reply = server
        .get(&format!(
            "/api/reports/charts/compliance.svg?from={DAY_FROM}&to={DAY_TO}&by=hour"
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("image/svg+xml; charset=utf-8")
    );
    let keys = bar_data(&reply.body, "data-key");
    assert_eq!(keys.len(), 24);
    assert_eq!(keys[7], "07");
    let pcts = bar_data(&reply.body, "data-pct");
    assert_eq!(&pcts[7..11], ["100", "100", "0", "0"]);
    assert_eq!(pcts[12], "");

    let reply = server
        .get(&format!(
            "/api/reports/charts/compliance.svg?from={DAY_FROM}&to=2025-03-03T00:00:00%2B08:00&by=day"
        ))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        bar_data(&reply.body, "data-key"),
        ["2025-03-01", "2025-03-02"]
    );
    assert_eq!(bar_data(&reply.body, "data-pct"), ["50", "100"]);
    server.shut_down().await;
}

/// A new ticket through the library; the ticket's id.
async fn new_ticket(
    tickets: &Tickets,
    kind: &str,
    customer: &str,
    promised: Option<i64>,
) -> String {
    let input = NewTicket {
        kind: Some(kind.to_owned()),
        customer: Some(customer.to_owned()),
        phone: Some("13800138000".to_owned()),
        area: Some("华东".to_owned()),
        inquiry_type: Some("查单".to_owned()),
        content: Some("包裹三天未更新物流信息".to_owned()),
        promised_callback_at: promised.map(TimeInput::Millis),
        ..NewTicket::default()
    };
    tickets.create(&input, "test").await.unwrap().id
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The ids of a list of the shift report's JSON.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

struct Shift {
    overdue: String,
    complaint: String,
    low: String,
}

/// A shift around now: calls of the last hours and three tickets (one overdue, one
/// complaint, one with a low survey result).
async fn fill_shift(store: &Store, tickets: &Tickets, survey: impl AsyncFnOnce(&str)) -> Shift {
    let now = now_ms();
    // Ring 1, survey 1 (low), the daemon died while recording it.
    let mut s1 = answered("s1", "consult", "1001", now - 2 * HOUR, 2_000, 60_000);
    s1.survey_score = Some(1);
    s1.recording.interrupted = true;
    s1.recording_path = Some("2026/11/24/s1.wav".to_owned());
    // Ring 6: over the limit.
    let s2 = answered("s2", "consult", "1002", now - HOUR, 27_000, 60_000);
    // A callback that did not reach the customer, and a failed inbound call.
    let mut s3 = unanswered("s3", "consult", now - 30 * MINUTE, CallOutcome::NotReached);
    s3.direction = Direction::Outbound;
    s3.callee = "13900000000".to_owned();
    let s4 = unanswered("s4", "consult", now - 20 * MINUTE, CallOutcome::Failed);
    for call in [s1, s2, s3, s4] {
        store.save_call(&call).await.unwrap();
    }
    let overdue = new_ticket(tickets, "consultation", "李四", Some(now - MINUTE)).await;
    let complaint = new_ticket(tickets, "complaint", "王五", None).await;
    let low = new_ticket(tickets, "query", "赵六", None).await;
    survey(&low).await;
    Shift {
        overdue,
        complaint,
        low,
    }
}

#[tokio::test]
async fn the_shift_report_as_json_html_and_csv() {
    let server = Server::start().await;
    let addr = server.addr;
    let shift = fill_shift(&server.store, &server.tickets, async |id: &str| {
        let reply = request(
            addr,
            "POST",
            &format!("/api/tickets/{id}/survey"),
            Some(ADMIN),
            Some(&json!({"score": 1, "cause": "company"}).to_string()),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    })
    .await;
    let (from, to) = (now_ms() - 8 * HOUR, now_ms() + HOUR);
    let query = format!("from={from}&to={to}");

    let report = server
        .json(&format!("/api/reports/shift?{query}&format=json"))
        .await;
    let calls = &report["calls"];
    assert_eq!(calls["offered"], 3, "{report}");
    assert_eq!(calls["answered"], 2);
    assert_eq!(calls["failed"], 1);
    assert_eq!(f(&calls["pct_within_target"]), 50.0);
    assert_eq!(calls["over_limit"], 1);
    assert_eq!(ids(&report["over_limit_calls"]), ["s2"]);
    assert_eq!(report["by_hour"].as_array().unwrap().len(), 24);
    assert_eq!(report["rings"]["counts"], json!([1, 0, 0, 0, 0, 1]));
    let tickets = &report["tickets"];
    assert_eq!(tickets["opened"], 3);
    assert_eq!(tickets["opened_by_kind"]["complaint"], 1);
    assert_eq!(tickets["opened_by_inquiry_type"]["查单"], 3);
    assert_eq!(tickets["complaints_opened"], 1);
    assert_eq!(tickets["overdue"], 1);
    assert!(tickets["open"].as_i64().unwrap() >= 2);
    assert_eq!(ids(&report["complaints"]), [shift.complaint.as_str()]);
    let overdue = &report["overdue_tickets"];
    assert_eq!(ids(overdue), [shift.overdue.as_str()]);
    assert_eq!(overdue[0]["kind"], "consultation");
    assert_eq!(overdue[0]["customer"], "李四");
    assert!(overdue[0]["due_at"].as_str().unwrap().ends_with("+08:00"));
    assert_eq!(overdue[0]["overdue"], true);
    assert_eq!(ids(&report["low_surveys"]["calls"]), ["s1"]);
    assert_eq!(ids(&report["low_surveys"]["tickets"]), [shift.low.as_str()]);
    assert_eq!(report["low_surveys"]["tickets"][0]["survey_score"], 1);
    assert_eq!(ids(&report["incidents"]["interrupted_recordings"]), ["s1"]);
    assert_eq!(ids(&report["incidents"]["failed_calls"]), ["s3", "s4"]);
    assert_eq!(
        report["incidents"]["failed_calls"][0]["outcome"],
        "not_reached"
    );

    // HTML is the default.
    let reply = server.get(&format!("/api/reports/shift?{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = &reply.body;
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(!html.to_ascii_lowercase().contains("<script"));
    assert!(html.contains("@media print"));
    for text in [
        "交接班报告",
        "Shift handover report",
        "通话概况",
        "超时工单",
        "Overdue tickets",
        "低满意度通话",
        "突发事件",
        shift.overdue.as_str(),
        shift.low.as_str(),
        shift.complaint.as_str(),
        "李四",
        "s1",
        "s3",
        "not_reached",
    ] {
        assert!(html.contains(text), "{text} missing from the page");
    }
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.trim_end().ends_with("</html>"));

    let reply = server
        .get(&format!(
            "/api/reports/shift?{query}&format=csv&table=overdue"
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .header("content-disposition")
        .unwrap()
        .contains("threering-shift-overdue-"));
    let csv = reply.body.strip_prefix('\u{feff}').unwrap();
    assert!(csv.starts_with("ticket_id,kind,status,created_at,due_at,customer,"));
    assert!(csv.contains(&format!("{},咨询 consultation,", shift.overdue)));
    assert!(csv.contains("李四"));
    server.shut_down().await;
}

#[tokio::test]
async fn roles_and_bad_parameters() {
    let server = Server::start().await;
    let routes = [
        "/api/reports/summary",
        "/api/reports/summary?format=csv",
        "/api/reports/charts/rings.svg",
        "/api/reports/charts/compliance.svg",
        "/api/reports/shift",
        "/api/reports/shift?format=json",
    ];
    for path in routes {
        let reply = request(server.addr, "GET", path, Some(AGENT), None).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        assert!(reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("supervisor"));
        let reply = request(server.addr, "GET", path, None, None).await;
        assert_eq!(reply.status, 401, "{path}");
        for token in [SUPERVISOR, QA, ADMIN] {
            let reply = request(server.addr, "GET", path, Some(token), None).await;
            assert_eq!(reply.status, 200, "{path} with {token}: {}", reply.body);
        }
    }
    let bad = [
        ("/api/reports/summary?group=team", "group"),
        ("/api/reports/summary?format=xml", "format"),
        ("/api/reports/summary?from=yesterday", "from"),
        ("/api/reports/summary?from=2000&to=1000", "to"),
        ("/api/reports/summary?from=0&to=99999999999", "from"),
        ("/api/reports/summary?groop=queue", "groop"),
        ("/api/reports/charts/compliance.svg?by=week", "by"),
        ("/api/reports/charts/rings.svg?by=day", "by"),
        ("/api/reports/shift?format=pdf", "format"),
        ("/api/reports/shift?format=csv&table=everything", "table"),
        ("/api/reports/shift?table=overdue", "table"),
    ];
    for (path, param) in bad {
        let reply = server.get(path).await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.body);
        let body = reply.json();
        assert_eq!(body["parameter"], param, "{path}: {body}");
        assert!(body["error"].is_string());
    }
    server.shut_down().await;
}

/// `threering report shift --config F` over a database filled through the library.
#[tokio::test]
async fn the_report_shift_command_prints_text_html_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::from_env().await;
    let config_text = Config::EMBEDDED.replace(
        "database = \"sqlite://threering.db\"",
        &format!("database = {:?}", db.url),
    );
    assert_ne!(config_text, Config::EMBEDDED);
    let config_file = dir.path().join("threering.toml");
    std::fs::write(&config_file, &config_text).unwrap();
    let config = Config::load(&config_file).unwrap();
    let store = Store::open(&config.store.database).await.unwrap();
    let tickets = Tickets::new(
        store.clone(),
        threering::tickets::ticket::Rules::from_config(&config),
    );
    let shift = fill_shift(&store, &tickets, async |id: &str| {
        tickets
            .change(id, |_, ticket, now| {
                ticket.survey_score = Some(1);
                ticket.survey_at = Some(now);
                Ok(vec![threering::tickets::HistoryEntry::new(
                    now, "test", "survey", "score 1",
                )])
            })
            .await
            .unwrap();
    })
    .await;
    store.close().await;

    let from = (chrono::Utc::now() - chrono::Duration::hours(8)).to_rfc3339();
    let to = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let run = |format: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_threering"));
        command
            .args(["report", "shift", "--config"])
            .arg(&config_file)
            .args(["--from", &from, "--to", &to])
            .current_dir(dir.path())
            .env("RUST_BACKTRACE", "0");
        if let Some(format) = format {
            command.args(["--format", format]);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{format:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    let text = run(None);
    for needle in [
        "交接班报告 Shift handover report",
        "== 通话概况 Calls ==",
        "三声内接听率 three-ring compliance",
        "50% (1 / 2)",
        "== 超时工单 Overdue tickets ==",
        shift.overdue.as_str(),
        "李四",
        shift.low.as_str(),
        "s1",
        "s2",
        "s4",
        "recording interrupted",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }

    let json: Value = serde_json::from_str(&run(Some("json"))).unwrap();
    assert_eq!(json["calls"]["offered"], 3);
    assert_eq!(ids(&json["overdue_tickets"]), [shift.overdue.as_str()]);
    assert_eq!(ids(&json["low_surveys"]["tickets"]), [shift.low.as_str()]);
    assert_eq!(ids(&json["low_surveys"]["calls"]), ["s1"]);

    let html = run(Some("html"));
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.contains(&shift.overdue));

    // A time the command cannot read is an error naming the option.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_threering"))
        .args(["report", "shift", "--config"])
        .arg(&config_file)
        .args(["--from", "yesterday"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--from"));
}
