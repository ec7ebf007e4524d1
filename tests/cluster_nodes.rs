//! Two threering nodes on one PostgreSQL database (README "Scaling out"), called
//! directly (the Kamailio in front is `tests/cluster_kamailio.rs`): what one node learns
//! of an agent, the other knows too.
//! - An agent whose phone registered on node A (it has no fixed contact) is rung by node
//!   B at the contact it registered.
//! - A pause made through node A's API holds on node B, which then routes no call to that
//!   agent; an unpause made on B holds on A.
//! - `GET /api/live` on node A shows node B's call in progress, and the agent B has on
//!   the call as `on_call`.
//!
//! Each check is first seen to be false (B does not know the registration before the
//! REGISTER, nor the pause before it is made), so the test fails if sharing breaks.
//!
//! Needs SIPp, `psql` and the PostgreSQL server (`THREERING_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`); each test gets a fresh database.

mod daemon_common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use daemon_common::{
    assert_all_ok, free_port, registered_phone, reports, timing_shared, AgentSpec, Checks, Daemon,
    DaemonSpec, PgDatabase, PortBlock, QueueSpec, Sipp,
};
use serde_json::{json, Value};

/// How long a change made on one node may take to show on the other (they read each
/// other's every second).
const SHARED_WITHIN: Duration = Duration::from_secs(6);

fn node(spec: &DaemonSpec, db: &PgDatabase, id: &str) -> Daemon {
    let spec = spec
        .clone()
        .database(&db.url())
        .daemon_toml(&format!("node_id = \"{id}\""));
    Daemon::start_with_ports(&spec, Arc::new(PortBlock::new()))
}

/// Agent `id` as `daemon`'s `GET /api/agents` shows it.
fn agent(daemon: &Daemon, id: &str) -> Value {
    let (status, body) = daemon.get_json("/api/agents").expect("GET /api/agents");
    assert_eq!(status, 200, "GET /api/agents: {body}");
    body["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["id"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("agent {id} is not in GET /api/agents: {body}"))
}

/// Waits until `check` holds for agent `id` on `daemon`; panics with `what` and the last
/// view after [`SHARED_WITHIN`].
fn wait_agent(daemon: &Daemon, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SHARED_WITHIN;
    loop {
        let view = agent(daemon, id);
        if check(&view) {
            return view;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: not seen within {SHARED_WITHIN:?}; agent {id} there: {view}\n{}",
                daemon.report("")
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_agent_registered_on_one_node_is_rung_by_the_other() {
    let _shared = timing_shared();
    let db = PgDatabase::create();
    let spec = DaemonSpec::new(
        vec![AgentSpec::registering("1001", "pw1001")],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    );
    let node_a = node(&spec, &db, "na");
    let node_b = node(&spec, &db, "nb");
    assert_eq!(
        agent(&node_b, "1001")["registered"],
        false,
        "before any REGISTER, agent 1001 (no fixed contact) cannot be reachable on node B"
    );

    // The phone registers on node A only, then takes (out of call) the INVITE sent to
    // its Contact, whoever sends it.
    let agent_port = free_port();
    let ports = PortBlock::new();
    let phone = registered_phone(
        "agent 1001 (registers on node A, then takes the call)",
        node_a.sip_addr(),
        &ports,
        agent_port,
    );
    wait_agent(
        &node_b,
        "1001",
        "node B learning that agent 1001 registered on node A",
        |a| a["registered"] == true,
    );

    // The call goes to node B.
    let caller = Sipp::caller("daemon_uac.xml", node_b.sip_addr(), &ports)
        .pause_ms(1000)
        .run();
    let phone = phone.wait_at_most(Duration::from_secs(20));
    assert_all_ok(
        &[&caller, &phone],
        "node B must ring agent 1001 at the contact it registered on node A",
    );
    let invite_line = phone
        .messages
        .lines()
        .find(|l| l.starts_with("INVITE "))
        .unwrap_or("")
        .to_string();
    let call = node_b.the_one_call();
    let mut c = Checks::new();
    c.that(
        invite_line.contains(&format!("127.0.0.1:{agent_port}")),
        format!("the phone should get node B's INVITE at its Contact; got {invite_line:?}"),
    );
    c.str_eq(&call, "outcome", "answered");
    c.str_eq(&call, "agent", "1001");
    c.that(
        call["id"].as_str().is_some_and(|id| id.starts_with("nb-")),
        format!("the call should be node B's: {}", call["id"]),
    );
    c.finish(&call, &reports(&[&caller, &phone]));
}

#[test]
fn pauses_and_the_live_board_are_shared_by_the_nodes() {
    let _shared = timing_shared();
    let db = PgDatabase::create();
    let agent_port = free_port();
    let spec = DaemonSpec::new(
        vec![
            AgentSpec::at("2001", agent_port),
            AgentSpec::at("2002", agent_port),
        ],
        vec![QueueSpec::consult("longest-idle", &["2001", "2002"])],
    );
    let node_a = node(&spec, &db, "na");
    let node_b = node(&spec, &db, "nb");
    assert_eq!(agent(&node_b, "2001")["state"], "available");

    // Paused on node A: node B sees the pause.
    let (status, body) = node_a
        .send_json(
            "POST",
            "/api/agents/2001/pause",
            &json!({ "reason": "lunch" }),
        )
        .expect("pause on node A");
    assert_eq!(status, 200, "pause 2001 on node A: {body}");
    wait_agent(&node_b, "2001", "node B applying node A's pause", |a| {
        a["state"] == "paused" && a["pause_reason"] == "lunch"
    });

    // A call on node B goes to 2002, the one agent not paused, and lasts 6 s.
    let ports = PortBlock::new();
    let phones = Sipp::agent(
        "agents 2001 and 2002",
        "daemon_uas_answer.xml",
        agent_port,
        &ports,
    )
    .calls(1)
    .pause_ms(200)
    .timeout(Duration::from_secs(30))
    .spawn();
    let caller = Sipp::caller("daemon_uac.xml", node_b.sip_addr(), &ports)
        .pause_ms(6000)
        .timeout(Duration::from_secs(30))
        .spawn();

    // Meanwhile node A's live board has node B's call, and 2002 on it.
    let deadline = Instant::now() + SHARED_WITHIN;
    let live = loop {
        let (status, live) = node_a.get_json("/api/live").expect("GET /api/live");
        assert_eq!(status, 200, "GET /api/live on node A: {live}");
        let connected = live["calls"].as_array().is_some_and(|calls| {
            calls
                .iter()
                .any(|c| c["node"] == "nb" && c["phase"] == "connected" && c["agent"] == "2002")
        });
        let on_call = live["agents"]
            .as_array()
            .and_then(|agents| agents.iter().find(|a| a["id"] == "2002"))
            .is_some_and(|a| a["state"] == "on_call");
        if connected && on_call {
            break live;
        }
        if Instant::now() >= deadline {
            panic!(
                "node A's /api/live did not show node B's call with agent 2002 on it within \
                 {SHARED_WITHIN:?}: {live}\n{}",
                node_b.report("")
            );
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(live["node"], "na");
    assert_eq!(live["nodes"], json!(["na", "nb"]), "nodes merged: {live}");

    // Unpaused on node B: node A sees it.
    let (status, body) = node_b
        .send_json("POST", "/api/agents/2001/unpause", &json!({}))
        .expect("unpause on node B");
    assert_eq!(status, 200, "unpause 2001 on node B: {body}");
    wait_agent(&node_a, "2001", "node A applying node B's unpause", |a| {
        a["state"] == "available"
    });

    let caller = caller.wait();
    let phones = phones.wait();
    assert_all_ok(&[&caller, &phones], "the call on node B must be answered");
    let call = node_b.the_one_call();
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "answered");
    c.str_eq(&call, "agent", "2002");
    c.finish(&call, &reports(&[&caller, &phones]));
}
