//! Agent controls against the real binary: pausing an agent (with a reason) or logging it
//! out of a queue keeps SIPp calls to that queue away from it, unpausing and logging in
//! bring it back; ending a wrap-up lets the agent take the next call at once; the JSON of
//! `GET /api/agents` and of every change; errors (404 unknown agent or queue, 400 no
//! reason, 409 no wrap-up to end); roles (an agent-role user may change only itself, qa
//! only reads); every change as an `agent.updated` event (SSE), in the audit log, and the
//! `threering_agents{state}` gauge.
//!
//! The queue rings all its agents at once (ring-all), so the call record's attempts say
//! exactly who was rung. Needs SIPp (see tests/daemon_calls.rs).

mod daemon_common;

#[allow(dead_code)]
#[path = "daemon_events/streams.rs"]
mod streams;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use daemon_common::{
    assert_all_ok, attempts, free_port, http_json, http_request, pretty, reports, timing_shared,
    AgentSpec, Daemon, DaemonSpec, PortBlock, QueueSpec, Sipp, SippRun, THREERING,
};
use serde_json::{json, Value};

/// Agent SIPp runs end with the call; this bounds the wait once the caller is done.
const AGENT_WAIT: Duration = Duration::from_secs(15);

/// Agents 1001 and 1002 at fixed contacts (SIPp on `ports`), both in queue "consult"
/// (ring-all); 1002 also in "sales".
fn two_agents(p1: u16, p2: u16, wrap_up_ms: u64) -> DaemonSpec {
    let mut consult = QueueSpec::consult("ring-all", &["1001", "1002"]).max_wait_ms(8000);
    consult.wrap_up_ms = wrap_up_ms;
    DaemonSpec::new(
        vec![AgentSpec::at("1001", p1), AgentSpec::at("1002", p2)],
        vec![
            consult,
            QueueSpec::named("sales", "4008009999", "ring-all", &["1002"]),
        ],
    )
}

/// `POST path` with the daemon's (admin) token, with a JSON body or none: status, JSON.
fn post(daemon: &Daemon, path: &str, body: Option<Value>) -> (u16, Value) {
    post_as(daemon, &daemon.token, path, body)
}

/// `POST path` with `token`.
fn post_as(daemon: &Daemon, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let resp = match body {
        Some(body) => http_json(
            daemon.http_addr(),
            "POST",
            path,
            Some(token),
            &body.to_string(),
        ),
        None => http_request(daemon.http_addr(), "POST", path, Some(token), &[]),
    }
    .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let json = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {}", resp.text()));
    (resp.status, json)
}

/// `GET path` with `token`: status, JSON.
fn get_as(daemon: &Daemon, token: &str, path: &str) -> (u16, Value) {
    let resp = http_request(daemon.http_addr(), "GET", path, Some(token), &[])
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let json = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", resp.text()));
    (resp.status, json)
}

/// `GET /api/agents` (admin) → the `agents` array.
fn agents(daemon: &Daemon) -> Vec<Value> {
    let (status, json) = daemon.get_json("/api/agents").expect("GET /api/agents");
    assert_eq!(status, 200, "GET /api/agents: {}", pretty(&json));
    json["agents"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no agents array: {}", pretty(&json)))
}

fn agent<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("agent {id} not listed: {}", pretty(&json!(list))))
}

/// Polls `GET /api/agents` until agent `id`'s state is `state` (up to 5 s).
fn wait_state(daemon: &Daemon, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = agents(daemon);
        let a = agent(&list, id).clone();
        if a["state"] == state {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "agent {id} not {state} within 5 s: {}",
            pretty(&a)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Spawns agent `label`'s SIPp on `port`: `answers_after` Some(ms) rings that long then
/// answers; None rings until cancelled.
fn agent_sipp(label: &str, port: u16, answers_after: Option<u64>, ports: &PortBlock) -> SippRun {
    match answers_after {
        Some(ms) => Sipp::agent(label, "daemon_uas_answer.xml", port, ports)
            .pause_ms(ms)
            .spawn(),
        None => Sipp::agent(label, "daemon_uas_noanswer.xml", port, ports).spawn(),
    }
}

/// One SIPp call to queue "consult" with these agent runs; every run must succeed.
/// Returns the call's record, found by the caller's Call-ID.
fn call(daemon: &Daemon, ports: &PortBlock, agents: Vec<SippRun>, context: &str) -> Value {
    let caller = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), ports).pause_ms(500);
    let caller = caller.spawn();
    let call_id = caller.call_id().to_owned();
    let caller = caller.wait();
    let agents: Vec<_> = agents
        .into_iter()
        .map(|a| a.wait_at_most(AGENT_WAIT))
        .collect();
    let mut runs = vec![&caller];
    runs.extend(agents.iter());
    assert_all_ok(&runs, context);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = daemon.calls().expect("GET /api/calls");
        let found = calls
            .iter()
            .find(|c| c["sip_call_id"] == call_id.as_str() && !c["ended_at"].is_null());
        if let Some(found) = found {
            return found.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{context}: call {call_id} not ended in GET /api/calls: {}\n{}",
            pretty(&json!(calls)),
            reports(&runs)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The call's attempts as sorted "agent outcome" strings.
fn rung(call: &Value) -> Vec<String> {
    let mut list: Vec<String> = attempts(call)
        .into_iter()
        .map(|(agent, outcome, _)| format!("{agent} {outcome}"))
        .collect();
    list.sort();
    list
}

/// `threering user add NAME --role ROLE` against the daemon's config (password on
/// stdin), then `threering user token NAME`: the user's API token.
fn user_token(daemon: &Daemon, name: &str, role: &str) -> String {
    let mut child = Command::new(THREERING)
        .args(["user", "add", name, "--role", role, "--config"])
        .arg(&daemon.config_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("threering user add");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"agent-controls-password-1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(THREERING)
        .args(["user", "token", name, "--config"])
        .arg(&daemon.config_path)
        .stdin(Stdio::null())
        .output()
        .expect("threering user token");
    assert!(
        out.status.success(),
        "user token {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(token.len(), 64, "user token {name}: {token:?}");
    token
}

/// The value of `threering_agents{state="STATE"}` in `/metrics`, if present.
fn agents_gauge(daemon: &Daemon, state: &str) -> Option<f64> {
    let text = daemon.get("/metrics").expect("GET /metrics").text();
    let prefix = format!("threering_agents{{state=\"{state}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn pause_and_queue_logout_keep_calls_away_from_an_agent_until_undone() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let (p1, p2) = (free_port(), free_port());
    let daemon = Daemon::start_with_ports(&two_agents(p1, p2, 0), Arc::clone(&ports));

    // The board as it starts: every agent logged in to every queue it is in.
    let list = agents(&daemon);
    let ids: Vec<&Value> = list.iter().map(|a| &a["id"]).collect();
    assert_eq!(
        ids,
        [&json!("1001"), &json!("1002")],
        "{}",
        pretty(&json!(list))
    );
    let first = agent(&list, "1001");
    assert_eq!(first["name"], "Agent 1001");
    assert_eq!(first["state"], "available");
    assert_eq!(first["pause_reason"], Value::Null);
    assert_eq!(
        first["queues"],
        json!([{ "queue": "consult", "logged_in": true }])
    );
    assert_eq!(first["registered"], true, "fixed contact: reachable");
    assert_eq!(first["calls_answered"], 0);
    assert!(
        first["idle_since_ms"]
            .as_i64()
            .is_some_and(|ms| ms > 1_600_000_000_000),
        "idle_since_ms: {}",
        pretty(first)
    );
    assert_eq!(
        agent(&list, "1002")["queues"],
        json!([
            { "queue": "consult", "logged_in": true },
            { "queue": "sales", "logged_in": true }
        ])
    );

    let mut events = streams::sse(
        daemon.http_addr(),
        &daemon.token,
        "/api/events?types=agent.updated",
        None,
    );

    // Paused: a call to the queue rings 1002 only.
    let (status, paused) = post(
        &daemon,
        "/api/agents/1001/pause",
        Some(json!({ "reason": "lunch" })),
    );
    assert_eq!(status, 200, "{}", pretty(&paused));
    assert_eq!(paused["id"], "1001");
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["pause_reason"], "lunch");
    assert_eq!(agent(&agents(&daemon), "1001")["state"], "paused");
    let record = call(
        &daemon,
        &ports,
        vec![agent_sipp("agent 1002", p2, Some(300), &ports)],
        "1001 paused: 1002 alone is rung and answers",
    );
    assert_eq!(rung(&record), ["1002 answered"], "{}", pretty(&record));

    // Unpaused: both are rung again (1001 answers, 1002 is cancelled).
    let (status, unpaused) = post(&daemon, "/api/agents/1001/unpause", None);
    assert_eq!(status, 200, "{}", pretty(&unpaused));
    assert_eq!(unpaused["state"], "available");
    assert_eq!(unpaused["pause_reason"], Value::Null);
    let record = call(
        &daemon,
        &ports,
        vec![
            agent_sipp("agent 1001", p1, Some(300), &ports),
            agent_sipp("agent 1002 (rings until cancelled)", p2, None, &ports),
        ],
        "1001 unpaused: both rung, 1001 answers, 1002 gets a CANCEL",
    );
    assert_eq!(
        rung(&record),
        ["1001 answered", "1002 cancelled"],
        "{}",
        pretty(&record)
    );

    // Logged out of the queue: not rung for it (and not paused).
    let (status, out) = post(&daemon, "/api/agents/1001/queues/consult/logout", None);
    assert_eq!(status, 200, "{}", pretty(&out));
    assert_eq!(
        out["queues"],
        json!([{ "queue": "consult", "logged_in": false }])
    );
    assert_eq!(out["state"], "available");
    let record = call(
        &daemon,
        &ports,
        vec![agent_sipp("agent 1002", p2, Some(300), &ports)],
        "1001 logged out of consult: 1002 alone is rung",
    );
    assert_eq!(rung(&record), ["1002 answered"], "{}", pretty(&record));

    let (status, back) = post(&daemon, "/api/agents/1001/queues/consult/login", None);
    assert_eq!(status, 200, "{}", pretty(&back));
    assert_eq!(
        back["queues"],
        json!([{ "queue": "consult", "logged_in": true }])
    );
    let list = agents(&daemon);
    assert_eq!(agent(&list, "1001")["calls_answered"], 1);
    assert_eq!(agent(&list, "1002")["calls_answered"], 2);

    // Each change was an agent.updated event, in order.
    let got = events.wait_until(Duration::from_secs(5), |frames| frames.len() >= 4);
    let told: Vec<(String, String, String)> = got
        .iter()
        .map(|f| {
            let d = &f.data["data"];
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
            (s("agent"), s("action"), s("by"))
        })
        .collect();
    let want: Vec<(String, String, String)> = ["pause", "unpause", "logout", "login"]
        .iter()
        .map(|a| ("1001".to_owned(), a.to_string(), "test".to_owned()))
        .collect();
    assert_eq!(told, want, "{got:#?}");
    assert!(got
        .iter()
        .all(|f| f.event.as_deref() == Some("agent.updated")));
    assert_eq!(got[0].data["data"]["pause_reason"], "lunch");
    assert_eq!(got[0].data["data"]["state"], "paused");
    drop(events);

    // And in the audit log.
    let (status, audit) = daemon
        .get_json("/api/audit?action=agent.*")
        .expect("GET /api/audit");
    assert_eq!(status, 200, "{}", pretty(&audit));
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    let mut actions: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("action"), s("target"), s("detail"))
        })
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            ("agent.login".into(), "1001".into(), "queue consult".into()),
            ("agent.logout".into(), "1001".into(), "queue consult".into()),
            ("agent.pause".into(), "1001".into(), "reason: lunch".into()),
            ("agent.unpause".into(), "1001".into(), String::new()),
        ],
        "{}",
        pretty(&audit)
    );

    // The gauge follows the board (set on call control's 200 ms tick).
    let deadline = Instant::now() + Duration::from_secs(3);
    while agents_gauge(&daemon, "available") != Some(2.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agents_gauge(&daemon, "available"), Some(2.0));
    assert_eq!(agents_gauge(&daemon, "paused"), Some(0.0));
}

#[test]
fn agent_controls_answer_errors_and_respect_roles() {
    let _shared = timing_shared();
    let (p1, p2) = (free_port(), free_port());
    let daemon = Daemon::start(&two_agents(p1, p2, 0));
    let lunch = || Some(json!({ "reason": "lunch" }));

    let expect = |(status, body): (u16, Value), want: u16, says: &str| {
        assert_eq!(status, want, "{}", pretty(&body));
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "error {error:?} should say {says:?}");
    };
    expect(
        post(&daemon, "/api/agents/9999/pause", lunch()),
        404,
        "9999",
    );
    expect(post(&daemon, "/api/agents/9999/unpause", None), 404, "9999");
    expect(
        post(&daemon, "/api/agents/9999/wrap-up/end", None),
        404,
        "9999",
    );
    expect(
        post(&daemon, "/api/agents/1001/queues/nope/login", None),
        404,
        "queue \"nope\"",
    );
    expect(
        post(&daemon, "/api/agents/1001/queues/sales/login", None),
        404,
        "not configured",
    );
    expect(post(&daemon, "/api/agents/1001/pause", None), 400, "reason");
    expect(
        post(&daemon, "/api/agents/1001/pause", Some(json!({}))),
        400,
        "reason",
    );
    expect(
        post(
            &daemon,
            "/api/agents/1001/pause",
            Some(json!({ "reason": "  " })),
        ),
        400,
        "reason",
    );
    expect(
        post(
            &daemon,
            "/api/agents/1001/pause",
            Some(json!({ "reason": "x".repeat(201) })),
        ),
        400,
        "200",
    );
    expect(
        post(&daemon, "/api/agents/1001/wrap-up/end", None),
        409,
        "wrap-up",
    );
    assert_eq!(agent(&agents(&daemon), "1001")["state"], "available");

    // An agent-role user (agent id = its name) changes itself only and sees only itself.
    let own = user_token(&daemon, "1001", "agent");
    let (status, mine) = get_as(&daemon, &own, "/api/agents");
    assert_eq!(status, 200, "{}", pretty(&mine));
    let ids: Vec<&Value> = mine["agents"]
        .as_array()
        .map(|a| a.iter().map(|x| &x["id"]).collect())
        .unwrap_or_default();
    assert_eq!(ids, [&json!("1001")], "{}", pretty(&mine));
    let (status, paused) = post_as(
        &daemon,
        &own,
        "/api/agents/1001/pause",
        Some(json!({ "reason": "coffee" })),
    );
    assert_eq!(status, 200, "{}", pretty(&paused));
    assert_eq!(paused["pause_reason"], "coffee");
    expect(
        post_as(&daemon, &own, "/api/agents/1002/pause", lunch()),
        403,
        "only itself",
    );
    expect(
        post_as(&daemon, &own, "/api/agents/1002/queues/sales/logout", None),
        403,
        "only itself",
    );
    assert_eq!(agent(&agents(&daemon), "1002")["state"], "available");
    let (status, _) = post_as(&daemon, &own, "/api/agents/1001/unpause", None);
    assert_eq!(status, 200);

    // qa reads, never changes.
    let qa = user_token(&daemon, "qa1", "qa");
    let (status, all) = get_as(&daemon, &qa, "/api/agents");
    assert_eq!(status, 200, "{}", pretty(&all));
    assert_eq!(all["agents"].as_array().map(Vec::len), Some(2));
    expect(
        post_as(&daemon, &qa, "/api/agents/1001/pause", lunch()),
        403,
        "role",
    );
    // A supervisor changes anyone.
    let boss = user_token(&daemon, "boss", "supervisor");
    let (status, out) = post_as(&daemon, &boss, "/api/agents/1002/queues/sales/logout", None);
    assert_eq!(status, 200, "{}", pretty(&out));
    assert_eq!(
        out["queues"][1],
        json!({ "queue": "sales", "logged_in": false })
    );
}

#[test]
fn ending_a_wrap_up_lets_the_agent_take_the_next_call_at_once() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let (p1, p2) = (free_port(), free_port());
    let mut spec = two_agents(p1, p2, 60_000);
    spec.queues[0].agents = vec!["1001".into()];
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));

    let record = call(
        &daemon,
        &ports,
        vec![agent_sipp("agent 1001", p1, Some(200), &ports)],
        "first call",
    );
    assert_eq!(rung(&record), ["1001 answered"], "{}", pretty(&record));
    let wrapping = wait_state(&daemon, "1001", "wrap_up");
    // In wrap-up, idle_since_ms is the wrap-up's end, about 60 s ahead.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        wrapping["idle_since_ms"]
            .as_i64()
            .is_some_and(|ms| ms > now_ms + 30_000),
        "idle_since_ms should be the wrap-up's end: {}",
        pretty(&wrapping)
    );

    let (status, ended) = post(&daemon, "/api/agents/1001/wrap-up/end", None);
    assert_eq!(status, 200, "{}", pretty(&ended));
    assert_eq!(ended["state"], "available");
    let (status, again) = post(&daemon, "/api/agents/1001/wrap-up/end", None);
    assert_eq!(status, 409, "{}", pretty(&again));

    // Without the early end the caller would wait out the 60 s wrap-up (and get 480 at
    // max_wait_ms = 8 s).
    let record = call(
        &daemon,
        &ports,
        vec![agent_sipp("agent 1001", p1, Some(200), &ports)],
        "second call, right after the wrap-up was ended",
    );
    assert_eq!(rung(&record), ["1001 answered"], "{}", pretty(&record));
    assert_eq!(agent(&agents(&daemon), "1001")["calls_answered"], 2);
}
