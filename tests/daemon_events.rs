//! The CTI event stream against the real binary: a SIPp call answered after 2.2 s (cadence
//! 1 s: three rings) is told to a webhook (signed, ids increasing), to SSE clients (with
//! a type filter, and resumed with Last-Event-ID) and to a WebSocket client; a webhook
//! that fails gets the same event again with backoff until it answers 2xx; one that
//! always fails ends in the dead letters, from where a retry delivers it.
//!
//! Webhook receivers, the SSE reader and the WebSocket client are the test's own, over
//! plain sockets on 127.0.0.1 (`daemon_events/`).

mod daemon_common;

#[path = "daemon_events/receiver.rs"]
mod receiver;
#[path = "daemon_events/streams.rs"]
mod streams;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use daemon_common::{
    assert_all_ok, free_port, pretty, reports, str_field, timing_exclusive, timing_shared,
    AgentSpec, Daemon, DaemonSpec, PortBlock, QueueSpec, Sipp,
};
use receiver::{Received, Receiver};
use streams::SseFrame;

const SECRET: &str = "whsec-test-2f9c";

/// `[[webhooks]]` for `url`, with more keys (`extra`) as TOML lines.
fn webhook_toml(name: &str, url: &str, extra: &str) -> String {
    format!("[[webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n{extra}\n")
}

/// The sequence number of an event id `<node>-<seq>`.
fn seq(id: &str) -> u64 {
    id.rsplit_once('-')
        .and_then(|(_, s)| s.parse().ok())
        .unwrap_or_else(|| panic!("not an event id: {id:?}"))
}

/// Checks a delivery's signature the way a receiver would: HMAC-SHA256 of
/// `"<timestamp>.<body>"` under the shared secret.
fn signature_ok(r: &Received) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(r.header("x-threering-timestamp").as_bytes());
    mac.update(b".");
    mac.update(r.body.as_bytes());
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    r.header("x-threering-signature") == want
}

fn types_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| str_field(e, "type").unwrap_or("?").to_owned())
        .collect()
}

fn ids_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| str_field(e, "id").unwrap_or("?").to_owned())
        .collect()
}

fn has_type(events: &[Value], kind: &str) -> bool {
    events.iter().any(|e| str_field(e, "type") == Some(kind))
}

fn sse_events(frames: &[SseFrame]) -> Vec<Value> {
    frames.iter().map(|f| f.data.clone()).collect()
}

/// The test's view of one call's events: every check, then one panic listing failures.
struct Expect {
    failures: Vec<String>,
}

impl Expect {
    fn that(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    fn finish(self, context: &str) {
        if !self.failures.is_empty() {
            panic!(
                "{} check(s) failed:\n  {}\n{context}",
                self.failures.len(),
                self.failures.join("\n  ")
            );
        }
    }
}

/// The events of one call, as a webhook, SSE or WebSocket saw them: offered, ringing
/// with rings 1, 2, (3), answered with 3 rings, ended; ids increasing.
fn check_call_events(e: &mut Expect, who: &str, events: &[Value]) {
    let types = types_of(events);
    e.that(
        types.first().map(String::as_str) == Some("call.offered"),
        format!("{who}: the first event should be call.offered: {types:?}"),
    );
    let tail: Vec<&str> = types.iter().rev().take(2).map(String::as_str).collect();
    e.that(
        tail == ["call.ended", "call.answered"],
        format!("{who}: the last two should be call.answered, call.ended: {types:?}"),
    );
    let ids = ids_of(events);
    e.that(
        ids.windows(2).all(|w| seq(&w[0]) < seq(&w[1])),
        format!("{who}: event ids should increase: {ids:?}"),
    );
    let rings: Vec<i64> = events
        .iter()
        .filter(|v| str_field(v, "type") == Some("call.ringing"))
        .map(|v| v["data"]["rings"].as_i64().unwrap_or(-1))
        .collect();
    e.that(
        rings.first() == Some(&1)
            && rings.windows(2).all(|w| w[1] == w[0] + 1)
            && (2..=3).contains(rings.last().unwrap_or(&0)),
        format!("{who}: call.ringing rings should count 1, 2 (, 3): {rings:?}"),
    );
    if let Some(answered) = events
        .iter()
        .find(|v| str_field(v, "type") == Some("call.answered"))
    {
        let d = &answered["data"];
        e.that(
            d["rings"] == 3 && d["three_ring_ok"] == true && d["target"] == 3,
            format!("{who}: call.answered should have rings 3 within target 3: {d}"),
        );
        e.that(
            d["agent"] == "1001" && d["queue"] == "consult" && d["direction"] == "inbound",
            format!("{who}: call.answered agent/queue/direction: {d}"),
        );
        let ms = d["caller_ring_ms"].as_i64().unwrap_or(0);
        e.that(
            (2150..=2350).contains(&ms),
            format!("{who}: call.answered caller_ring_ms {ms}, expected about 2200"),
        );
    }
    if let Some(ended) = events
        .iter()
        .find(|v| str_field(v, "type") == Some("call.ended"))
    {
        let d = &ended["data"];
        e.that(
            d["outcome"] == "answered" && d["hangup_side"] == "caller" && d["rings"] == 3,
            format!("{who}: call.ended outcome/hangup_side/rings: {d}"),
        );
        let talk = d["talk_ms"].as_i64().unwrap_or(0);
        e.that(
            (700..=3000).contains(&talk),
            format!("{who}: call.ended talk_ms {talk}, expected about 1000"),
        );
        e.that(
            d["recorded"] == true,
            format!("{who}: call.ended should say the call was recorded: {d}"),
        );
    }
}

/// (a), (c), (d): one call, told to a webhook, two SSE clients (all types, and
/// answered+ended only), a WebSocket client; then SSE resumed with Last-Event-ID and the
/// WebSocket with `?since=`.
#[test]
fn a_call_is_told_to_webhooks_sse_and_websocket_with_its_rings() {
    let _timing = timing_exclusive();
    let hook = Receiver::always(200);
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let spec = DaemonSpec::new(
        vec![AgentSpec::at("1001", agent_port)],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    )
    .extra_toml(&webhook_toml("crm", &hook.url(), "retry_base_ms = 100"));
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let http = daemon.http_addr();

    let mut sse_all = streams::sse(http, &daemon.token, "/api/events", None);
    let mut sse_some = streams::sse(
        http,
        &daemon.token,
        "/api/events?types=call.answered,call.ended",
        None,
    );
    let mut ws = streams::websocket(http, &daemon.token, "/api/events/ws");
    assert!(
        sse_all
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{}",
        sse_all.head
    );

    let agent = Sipp::agent("agent 1001", "daemon_uas_answer.xml", agent_port, &ports)
        .pause_ms(2200)
        .spawn();
    let caller = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), &ports)
        .pause_ms(1000)
        .spawn();
    let sip_call_id = caller.call_id().to_owned();
    let caller = caller.wait();
    let agent = agent.wait_at_most(Duration::from_secs(15));
    assert_all_ok(&[&caller, &agent], "the call told to integrators");

    let wait = Duration::from_secs(10);
    let ended = |events: &[Value]| has_type(events, "call.ended");
    let delivered = hook.wait_until(wait, |r| {
        r.iter()
            .any(|r| r.header("x-threering-event") == "call.ended")
    });
    let sse_frames = sse_all.wait_until(wait, |f| ended(&sse_events(f))).to_vec();
    let some_frames = sse_some
        .wait_until(wait, |f| ended(&sse_events(f)))
        .to_vec();
    let ws_events = ws.wait_until(wait, ended).to_vec();

    let hook_events: Vec<Value> = delivered.iter().map(|r| r.json.clone()).collect();
    let sse_all_events = sse_events(&sse_frames);
    let context = format!(
        "webhook got:\n{}\nSSE got:\n{}\nWebSocket got:\n{}\n{}\n{}",
        pretty(&json!(hook_events)),
        pretty(&json!(sse_all_events)),
        pretty(&json!(ws_events)),
        reports(&[&caller, &agent]),
        daemon.report("the daemon")
    );
    eprintln!("webhook got:\n{}", pretty(&json!(hook_events)));
    let mut e = Expect { failures: vec![] };

    // The webhook: every delivery signed, its headers matching its body, answered 200 once.
    check_call_events(&mut e, "webhook", &hook_events);
    for r in &delivered {
        e.that(signature_ok(r), format!("bad signature on {}", r.body));
        e.that(
            r.header("x-threering-event-id") == str_field(&r.json, "id").unwrap_or("-")
                && r.header("x-threering-event") == str_field(&r.json, "type").unwrap_or("-")
                && r.header("content-type") == "application/json"
                && r.path == "/cti/events",
            format!("headers do not match the body: {:?} {}", r.headers, r.body),
        );
        let ts: i64 = r.header("x-threering-timestamp").parse().unwrap_or(0);
        let now = chrono::Utc::now().timestamp();
        e.that(
            (now - 60..=now + 1).contains(&ts),
            format!("X-Threering-Timestamp {ts} is not epoch seconds of now ({now})"),
        );
    }
    let offered = hook_events.first().cloned().unwrap_or(Value::Null);
    let call_id = offered["data"]["call_id"].as_str().unwrap_or("").to_owned();
    e.that(
        offered["data"]["sip_call_id"] == sip_call_id.as_str()
            && offered["data"]["queue"] == "consult"
            && offered["data"]["direction"] == "inbound"
            && offered["data"]["callee"] == "4008001234",
        format!("call.offered data: {}", offered["data"]),
    );
    e.that(
        hook_events
            .iter()
            .all(|v| v["data"]["call_id"] == call_id.as_str()),
        "every event names the call",
    );
    let calls = daemon.calls().unwrap_or_default();
    e.that(
        calls.first().and_then(|c| str_field(c, "id")) == Some(call_id.as_str()),
        format!("the events' call_id {call_id:?} is not the stored call"),
    );

    // SSE: the same events, ids and types on the id:/event: lines too.
    check_call_events(&mut e, "SSE", &sse_all_events);
    e.that(
        ids_of(&sse_all_events) == ids_of(&hook_events),
        "SSE and the webhook saw different events",
    );
    for f in &sse_frames {
        e.that(
            f.id.as_deref() == str_field(&f.data, "id")
                && f.event.as_deref() == str_field(&f.data, "type"),
            format!("SSE id:/event: lines differ from the data: {f:?}"),
        );
    }
    e.that(
        types_of(&sse_events(&some_frames)) == ["call.answered", "call.ended"],
        format!(
            "SSE ?types=call.answered,call.ended got {:?}",
            types_of(&sse_events(&some_frames))
        ),
    );

    // WebSocket: the same events as JSON messages.
    check_call_events(&mut e, "WebSocket", &ws_events);
    e.that(
        ids_of(&ws_events) == ids_of(&hook_events),
        "the WebSocket and the webhook saw different events",
    );

    // Resume: after call.offered, everything that followed, from the replay ring.
    let offered_id = str_field(&offered, "id").unwrap_or("none").to_owned();
    let later: Vec<String> = ids_of(&hook_events).into_iter().skip(1).collect();
    let last = later.last().cloned().unwrap_or_default();
    let mut resumed = streams::sse(http, &daemon.token, "/api/events", Some(&offered_id));
    let resumed_ids = ids_of(&sse_events(resumed.wait_until(wait, |f| {
        f.iter().any(|f| f.id.as_deref() == Some(last.as_str()))
    })));
    e.that(
        resumed_ids == later,
        format!("SSE resumed with Last-Event-ID {offered_id}: got {resumed_ids:?}, want {later:?}"),
    );
    let mut ws_resumed = streams::websocket(
        http,
        &daemon.token,
        &format!("/api/events/ws?since={offered_id}&types=call.ringing"),
    );
    let ringing_ids: Vec<String> = hook_events
        .iter()
        .filter(|v| str_field(v, "type") == Some("call.ringing"))
        .map(|v| str_field(v, "id").unwrap_or("?").to_owned())
        .collect();
    let ws_resumed_ids =
        ids_of(ws_resumed.wait_until(Duration::from_secs(3), |v| v.len() >= ringing_ids.len()));
    e.that(
        ws_resumed_ids == ringing_ids,
        format!("WebSocket ?since={offered_id}&types=call.ringing: got {ws_resumed_ids:?}, want {ringing_ids:?}"),
    );

    // Open streams do not hold up a stop: SIGTERM with no calls ends at once.
    let mut daemon = daemon;
    let stopped = daemon.terminate(Duration::from_secs(10));
    e.that(
        stopped.is_some_and(|(status, took)| status.success() && took < Duration::from_secs(5)),
        format!("SIGTERM with event streams open: {stopped:?}"),
    );
    e.finish(&context);
}

/// (b): a receiver that answers 500 twice, then 200, gets the same event (same id, same
/// body) three times, with growing waits between the attempts; no dead letter is left.
#[test]
fn a_failing_webhook_gets_the_same_event_again_until_it_answers_2xx() {
    let _shared = timing_shared();
    let hook = Receiver::start(Box::new(|earlier| if earlier < 2 { 500 } else { 200 }));
    let spec = DaemonSpec::new(vec![], vec![]).extra_toml(&webhook_toml(
        "crm",
        &hook.url(),
        "events = [\"ticket.updated\"]\nretry_base_ms = 200\nmax_attempts = 5",
    ));
    let daemon = Daemon::start(&spec);
    let ticket = create_ticket(&daemon);

    let got = hook.wait_until(Duration::from_secs(10), |r| r.len() >= 3);
    std::thread::sleep(Duration::from_millis(500)); // nothing more should come
    let got_after = hook.received();
    let context = format!(
        "received: {:#?}\n{}",
        got_after
            .iter()
            .map(|r| (r.status, r.headers.clone(), r.body.clone()))
            .collect::<Vec<_>>(),
        daemon.report("the daemon")
    );
    assert_eq!(got.len(), 3, "expected 3 deliveries\n{context}");
    assert_eq!(got_after.len(), 3, "a fourth delivery came\n{context}");
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200], "{context}");
    let id = got[0].header("x-threering-event-id").to_owned();
    for (n, r) in got.iter().enumerate() {
        assert_eq!(r.header("x-threering-event-id"), id, "{context}");
        assert_eq!(
            r.body, got[0].body,
            "the body changed between attempts\n{context}"
        );
        assert_eq!(
            r.header("x-threering-attempt"),
            (n + 1).to_string(),
            "{context}"
        );
        assert!(
            signature_ok(r),
            "bad signature on attempt {}\n{context}",
            n + 1
        );
    }
    let data = &got[0].json["data"];
    assert_eq!(data["ticket_id"], ticket.as_str(), "{context}");
    assert_eq!(data["action"], "created", "{context}");
    assert_eq!(data["status"], "open", "{context}");
    // Backoff: ~200 ms, then ~400 ms (±20 %).
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(
        gap1 >= Duration::from_millis(150) && gap2 >= Duration::from_millis(300) && gap2 > gap1,
        "waits between attempts {gap1:?}, {gap2:?}\n{context}"
    );
    let (status, letters) = daemon.get_json("/api/webhooks/dead-letters").unwrap();
    assert_eq!(status, 200);
    assert_eq!(letters["dead_letters"], json!([]), "{context}");
}

/// (e): a receiver that always fails: after max_attempts the event is a dead letter
/// (listed with its attempts and error); a retry once the receiver is healthy delivers
/// the same event id and removes it.
#[test]
fn a_webhook_that_always_fails_ends_in_the_dead_letters_and_a_retry_delivers_it() {
    let _shared = timing_shared();
    let answer = Arc::new(AtomicU16::new(500));
    let status = answer.clone();
    let hook = Receiver::start(Box::new(move |_| status.load(Ordering::SeqCst)));
    let spec = DaemonSpec::new(vec![], vec![]).extra_toml(&webhook_toml(
        "erp",
        &hook.url(),
        "events = [\"ticket.updated\"]\nretry_base_ms = 50\nmax_attempts = 3\ntimeout_ms = 1000",
    ));
    let daemon = Daemon::start(&spec);
    let ticket = create_ticket(&daemon);

    let letters = wait_dead_letters(&daemon, |l| !l.is_empty());
    let got = hook.received();
    let context = format!(
        "dead letters: {}\nreceived: {:#?}\n{}",
        pretty(&json!(letters)),
        got.iter()
            .map(|r| (r.status, r.body.clone()))
            .collect::<Vec<_>>(),
        daemon.report("the daemon")
    );
    assert_eq!(letters.len(), 1, "{context}");
    assert_eq!(got.len(), 3, "max_attempts = 3\n{context}");
    let letter = &letters[0];
    let event_id = got[0].header("x-threering-event-id").to_owned();
    assert_eq!(letter["webhook"], "erp", "{context}");
    assert_eq!(letter["event_id"], event_id.as_str(), "{context}");
    assert_eq!(letter["event_type"], "ticket.updated", "{context}");
    assert_eq!(letter["attempts"], 3, "{context}");
    assert_eq!(letter["last_error"], "HTTP 500", "{context}");
    assert_eq!(letter["event"], got[0].json, "{context}");
    assert_eq!(letter["event"]["data"]["ticket_id"], ticket.as_str());

    // Unknown ids are 404; then a retry to a receiver that now answers 200.
    let resp = daemon
        .post("/api/webhooks/dead-letters/999999/retry")
        .unwrap();
    assert_eq!(resp.status, 404, "{}", resp.text());
    answer.store(204, Ordering::SeqCst);
    let id = letter["id"].as_i64().expect("dead letter id");
    let resp = daemon
        .post(&format!("/api/webhooks/dead-letters/{id}/retry"))
        .unwrap();
    assert_eq!(resp.status, 202, "retry: {}\n{context}", resp.text());
    let got = hook.wait_until(Duration::from_secs(5), |r| r.len() >= 4);
    assert_eq!(got.len(), 4, "{context}");
    assert_eq!(got[3].header("x-threering-event-id"), event_id);
    assert_eq!(got[3].body, got[0].body);
    assert!(signature_ok(&got[3]));
    let letters = wait_dead_letters(&daemon, |l| l.is_empty());
    assert!(
        letters.is_empty(),
        "delivered, yet still listed: {letters:?}"
    );
}

fn wait_dead_letters(daemon: &Daemon, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = daemon.get_json("/api/webhooks/dead-letters").unwrap();
        assert_eq!(status, 200, "{}", pretty(&body));
        let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
        if done(&letters) || std::time::Instant::now() >= deadline {
            return letters;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create_ticket(daemon: &Daemon) -> String {
    let (status, ticket) = daemon
        .send_json(
            "POST",
            "/api/tickets",
            &json!({
                "kind": "consultation",
                "customer": "张伟",
                "phone": "13800138000",
                "area": "华南",
                "inquiry_type": "运送时效",
                "waybill": "SF1234567890",
                "content": "货物何时到达深圳?",
            }),
        )
        .unwrap();
    assert_eq!(status, 201, "POST /api/tickets: {}", pretty(&ticket));
    str_field(&ticket, "id").expect("ticket id").to_owned()
}

/// survey.completed: the agent hangs up, the caller scores 2 by SIP INFO; the webhook
/// (subscribed to survey.completed and call.ended only) gets the score, then the end.
#[test]
fn a_surveyed_call_tells_survey_completed_with_the_score() {
    let _shared = timing_shared();
    let hook = Receiver::always(200);
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let spec = DaemonSpec::new(
        vec![AgentSpec::at("1001", agent_port)],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    )
    .extra_toml(&webhook_toml(
        "qa",
        &hook.url(),
        "events = [\"survey.completed\", \"call.ended\"]",
    ));
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let agent = Sipp::agent(
        "agent 1001 (leaves)",
        "daemon_uas_bye.xml",
        agent_port,
        &ports,
    )
    .pause_ms(300)
    .spawn();
    let caller = Sipp::caller("daemon_uac_survey_info.xml", daemon.sip_addr(), &ports)
        .pause_ms(3000)
        .timeout(Duration::from_secs(45))
        .run();
    let agent = agent.wait_at_most(Duration::from_secs(15));
    assert_all_ok(&[&caller, &agent], "a surveyed call");
    let got = hook.wait_until(Duration::from_secs(10), |r| r.len() >= 2);
    let events: Vec<Value> = got.iter().map(|r| r.json.clone()).collect();
    let context = format!("webhook got:\n{}", pretty(&json!(events)));
    assert_eq!(
        types_of(&events),
        ["survey.completed", "call.ended"],
        "{context}"
    );
    let survey = &events[0]["data"];
    assert_eq!(survey["score"], 2, "{context}");
    assert_eq!(survey["result"], "scored", "{context}");
    assert_eq!(survey["agent"], "1001", "{context}");
    let ended = &events[1]["data"];
    assert_eq!(ended["survey_score"], 2, "{context}");
    assert_eq!(ended["hangup_side"], "agent", "{context}");
    assert_eq!(ended["call_id"], survey["call_id"], "{context}");
    assert!(got.iter().all(signature_ok), "{context}");
}
