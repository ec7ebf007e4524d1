//! Tickets against the real binary and real SIP peers: an inbound SIPp call naming its
//! ticket in `X-Ticket-ID` is linked on arrival; a callback started through the API
//! rings the agent (SIPp), then reaches the SIPp "customer" behind the outbound trunk, is
//! recorded and linked with role `reply`, marks the ticket replied, and the customer's
//! survey score 1 reopens it; a trunk that challenges gets digest credentials; a busy
//! customer ends the callback `not_reached` and the agent is hung up on.

mod daemon_common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use daemon_common::{
    assert_all_ok, free_port, int_field, pretty, reports, str_field, timing_shared, AgentSpec,
    Checks, Daemon, DaemonSpec, PortBlock, QueueSpec, Sipp,
};

/// A daemon with agent 1001 at `agent_port` and, when given, a trunk at `trunk_port`.
fn daemon_with(agent_port: u16, trunk: Option<(u16, &str)>, ports: &Arc<PortBlock>) -> Daemon {
    let mut spec = DaemonSpec::new(
        vec![AgentSpec::at("1001", agent_port)],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    );
    if let Some((port, credentials)) = trunk {
        spec = spec.extra_toml(&format!(
            "[[trunks]]\nname = \"carrier\"\naddress = \"127.0.0.1:{port}\"\n\
             transport = \"udp\"\ncaller_id = \"4008001234\"\n{credentials}\n"
        ));
    }
    Daemon::start_with_ports(&spec, Arc::clone(ports))
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

fn get_ticket(daemon: &Daemon, id: &str) -> Value {
    let (status, ticket) = daemon.get_json(&format!("/api/tickets/{id}")).unwrap();
    assert_eq!(status, 200, "GET /api/tickets/{id}: {}", pretty(&ticket));
    ticket
}

/// The ticket's links as (call_id, role).
fn links(ticket: &Value) -> Vec<(String, String)> {
    ticket["calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|l| {
                    (
                        str_field(l, "call_id").unwrap_or_default().to_owned(),
                        str_field(l, "role").unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls the ticket until `done` holds (bounded); returns the last version.
fn wait_ticket(daemon: &Daemon, id: &str, wait: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let ticket = get_ticket(daemon, id);
        if done(&ticket) || Instant::now() >= deadline {
            return ticket;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// An inbound call from a trusted trunk names its ticket: the ticket shows the call,
/// role `inbound`, while the agent's phone is still ringing; the call record lists the
/// ticket too.
#[test]
fn an_inbound_call_with_x_ticket_id_is_linked_on_arrival() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let daemon = daemon_with(agent_port, None, &ports);
    let ticket = create_ticket(&daemon);
    // The agent rings for 2 s: the link must be there before anyone answers.
    let agent = Sipp::agent("agent 1001", "daemon_uas_answer.xml", agent_port, &ports)
        .pause_ms(2000)
        .spawn();
    let caller = Sipp::caller("daemon_uac_ticket.xml", daemon.sip_addr(), &ports)
        .key("ticket", &ticket)
        .pause_ms(500)
        .spawn();
    let linked = wait_ticket(&daemon, &ticket, Duration::from_millis(1500), |t| {
        !links(t).is_empty()
    });
    let early = links(&linked);
    let caller = caller.wait_at_most(Duration::from_secs(20));
    let agent = agent.wait_at_most(Duration::from_secs(10));
    assert_all_ok(&[&caller, &agent], "a call with X-Ticket-ID");
    assert_eq!(
        early.len(),
        1,
        "the ticket should list the call while it rings: {}\n{}",
        pretty(&linked),
        daemon.report("")
    );
    assert_eq!(early[0].1, "inbound");
    let call = daemon.the_one_call();
    assert_eq!(str_field(&call, "id"), Some(early[0].0.as_str()));
    assert_eq!(call["tickets"], json!([ticket]), "{}", pretty(&call));
    // And the call list filters by ticket.
    let (_, listed) = daemon
        .get_json(&format!("/api/calls?ticket={ticket}"))
        .unwrap();
    assert_eq!(listed["calls"].as_array().map(Vec::len), Some(1));
}

/// The whole reply: the API starts a callback, the agent answers, the customer behind the
/// trunk answers (ring timing measured on that leg), the call is recorded and linked as
/// `reply`, the ticket becomes `replied`; the agent leaves, the customer presses 1 in the
/// survey, and the ticket is reopened with the score as its satisfaction.
#[test]
fn a_callback_reaches_the_customer_is_recorded_and_a_low_score_reopens_the_ticket() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let trunk_port = free_port();
    let daemon = daemon_with(agent_port, Some((trunk_port, "")), &ports);
    let ticket = create_ticket(&daemon);
    let agent = Sipp::agent(
        "agent 1001 (leaves)",
        "daemon_uas_bye.xml",
        agent_port,
        &ports,
    )
    .pause_ms(300)
    .spawn();
    let customer = Sipp::agent("customer", "callback_customer.xml", trunk_port, &ports)
        .pause_ms(400)
        .timeout(Duration::from_secs(45))
        .spawn();
    let (status, started) = daemon
        .send_json(
            "POST",
            &format!("/api/tickets/{ticket}/callback"),
            &json!({ "agent": "1001", "number": "13800138000" }),
        )
        .unwrap();
    assert_eq!(status, 202, "callback: {}", pretty(&started));
    let call_id = str_field(&started, "call_id").expect("call_id").to_owned();
    let customer = customer.wait_at_most(Duration::from_secs(40));
    let agent = agent.wait_at_most(Duration::from_secs(10));
    assert_all_ok(
        &[&customer, &agent],
        "callback: agent answers, customer answers, agent leaves, customer scores 1",
    );
    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.str_eq(&call, "id", &call_id);
    c.str_eq(&call, "direction", "outbound");
    c.str_eq(&call, "outcome", "answered");
    c.str_eq(&call, "agent", "1001");
    c.int_eq(&call, "survey_score", 1);
    // The customer rang ~400 ms (SIPp's pause between its 180 and 200).
    c.int_in(&call, "caller_ring_ms", 300, 3000);
    c.present(&call, "rings");
    c.that(
        call["recording"].is_string(),
        "the callback is recorded (recording URL)",
    );
    c.that(
        call["tickets"] == json!([ticket]),
        format!("the call lists its ticket: {}", call["tickets"]),
    );
    let attempts = daemon_common::attempts(&call);
    c.that(
        attempts.len() == 1 && attempts[0].0 == "1001" && attempts[0].1 == "answered",
        format!("one answered attempt for the agent, got {attempts:?}"),
    );
    c.finish(&call, &reports(&[&customer, &agent]));

    let wav = daemon
        .get(&format!("/api/calls/{call_id}/recording"))
        .unwrap();
    assert_eq!(wav.status, 200);
    assert!(
        wav.body.len() > 44 + 8000,
        "recording of {} bytes",
        wav.body.len()
    );

    let reopened = wait_ticket(&daemon, &ticket, Duration::from_secs(5), |t| {
        t["status"] == "reopened"
    });
    let mut c = Checks::new();
    c.str_eq(&reopened, "status", "reopened");
    c.int_eq(&reopened, "survey_score", 1);
    c.str_eq(&reopened, "survey_call_id", &call_id);
    c.present(&reopened, "replied_at");
    c.that(
        links(&reopened) == vec![(call_id.clone(), "reply".to_owned())],
        format!("linked as reply: {:?}", links(&reopened)),
    );
    let actions: Vec<String> = reopened["history"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter_map(|h| str_field(h, "note").map(str::to_owned))
        .collect();
    c.that(
        actions.iter().any(|n| n.contains("replied"))
            && actions.iter().any(|n| n.contains("satisfaction 1"))
            && actions.iter().any(|n| n.contains("→ reopened")),
        format!("history tells reply, survey and reopening: {actions:?}"),
    );
    c.finish(&reopened, &daemon.report(""));
}

/// A trunk that answers the first INVITE with 401: the daemon sends the configured
/// credentials once, and SIPp verifies them (403 and a failed scenario otherwise).
#[test]
fn a_challenging_trunk_gets_the_configured_digest_credentials() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let trunk_port = free_port();
    let daemon = daemon_with(
        agent_port,
        Some((
            trunk_port,
            "username = \"threering\"\npassword = \"trunk-secret\"",
        )),
        &ports,
    );
    let ticket = create_ticket(&daemon);
    let agent = Sipp::agent("agent 1001", "daemon_uas_answer.xml", agent_port, &ports)
        .pause_ms(200)
        .spawn();
    let customer = Sipp::agent(
        "customer (auth)",
        "callback_customer_auth.xml",
        trunk_port,
        &ports,
    )
    .pause_ms(1000)
    .spawn();
    let (status, started) = daemon
        .send_json(
            "POST",
            &format!("/api/tickets/{ticket}/callback"),
            &json!({ "agent": "1001", "number": "13800138000", "trunk": "carrier" }),
        )
        .unwrap();
    assert_eq!(status, 202, "callback: {}", pretty(&started));
    let customer = customer.wait_at_most(Duration::from_secs(20));
    let agent = agent.wait_at_most(Duration::from_secs(10));
    assert_all_ok(
        &[&customer, &agent],
        "401, credentials, answer, customer hangs up",
    );
    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "answered");
    c.str_eq(&call, "hangup_side", "caller");
    c.finish(&call, &reports(&[&customer, &agent]));
}

/// A busy customer: the agent who answered is hung up on, the call ends `not_reached`,
/// and the ticket stays open (nobody replied).
#[test]
fn a_busy_customer_ends_the_callback_not_reached() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let trunk_port = free_port();
    let daemon = daemon_with(agent_port, Some((trunk_port, "")), &ports);
    let ticket = create_ticket(&daemon);
    let agent = Sipp::agent("agent 1001", "daemon_uas_answer.xml", agent_port, &ports)
        .pause_ms(200)
        .spawn();
    let customer = Sipp::agent(
        "customer (busy)",
        "callback_customer_busy.xml",
        trunk_port,
        &ports,
    )
    .spawn();
    let (status, _) = daemon
        .send_json(
            "POST",
            &format!("/api/tickets/{ticket}/callback"),
            &json!({ "agent": "1001", "number": "13800138000" }),
        )
        .unwrap();
    assert_eq!(status, 202);
    let customer = customer.wait_at_most(Duration::from_secs(15));
    let agent = agent.wait_at_most(Duration::from_secs(15));
    assert_all_ok(&[&customer, &agent], "customer 486; the agent gets BYE");
    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "not_reached");
    c.str_eq(&call, "direction", "outbound");
    c.null(&call, "recording");
    c.finish(&call, &reports(&[&customer, &agent]));
    let after = get_ticket(&daemon, &ticket);
    assert_eq!(after["status"], "open", "{}", pretty(&after));
    assert_eq!(int_field(&after, "survey_score"), None);
}

/// Refusals come back as JSON: an unknown agent (400), no trunk configured (409), a
/// number that is not one (400), an unknown ticket (404).
#[test]
fn callback_refusals_are_clear() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let daemon = daemon_with(agent_port, None, &ports);
    let ticket = create_ticket(&daemon);
    let path = format!("/api/tickets/{ticket}/callback");
    let cases = [
        (
            json!({"agent": "9999", "number": "13800138000"}),
            400,
            "agent",
        ),
        (
            json!({"agent": "1001", "number": "13800138000"}),
            409,
            "trunk",
        ),
        (
            json!({"agent": "1001", "number": "138-oops"}),
            400,
            "number",
        ),
    ];
    for (body, want, word) in cases {
        let (status, answer) = daemon.send_json("POST", &path, &body).unwrap();
        assert_eq!(status, want, "{body}: {}", pretty(&answer));
        let error = str_field(&answer, "error").unwrap_or_default();
        assert!(
            error.contains(word),
            "{body}: error {error:?} should mention {word}"
        );
    }
    let (status, _) = daemon
        .send_json(
            "POST",
            "/api/tickets/T-20000101-0001/callback",
            &json!({"agent": "1001", "number": "1"}),
        )
        .unwrap();
    assert_eq!(status, 404);
    assert!(daemon.calls().unwrap().is_empty(), "no call was started");
}
