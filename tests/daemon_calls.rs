//! End-to-end calls through `threering serve`: SIPp callers → threering → SIPp agents over
//! real loopback sockets, then the call record from `GET /api/calls`.
//!
//! Ring timing (DESIGN.md "Ring timing"), ring-no-answer, busy, abandon, ring-all, who hung
//! up, TCP, and no agent. Every test has its own daemon, ports, temp dir and SIPp
//! processes. Media: each SIPp endpoint plays /usr/share/sip-tester/g711a.pcap after the
//! ACK and names, in its SDP, a port this test binds (see `daemon_uac.xml`), so the packets
//! counted there crossed the daemon's relay.
//!
//! Needs SIPp 3.6 with pcap play (`apt-get install sip-tester`) and root (pcap play writes
//! raw packets); without SIPp these tests fail, on purpose.

mod daemon_common;

use std::sync::Arc;
use std::time::Duration;

use daemon_common::{
    assert_all_ok, attempts, free_port, int_field, pretty, reports, str_field, timing_exclusive,
    timing_shared, AgentSpec, Checks, Daemon, DaemonSpec, PortBlock, QueueSpec, Sipp, SippOutcome,
    Transport, CALLER_NUMBER,
};
use serde_json::Value;

/// Agent SIPp runs end with the call; this bounds the wait once the caller is done.
const AGENT_WAIT: Duration = Duration::from_secs(15);

/// The fields every answered call must have.
fn answered_basics(c: &mut Checks, call: &Value, agent: &str) {
    c.str_eq(call, "outcome", "answered");
    c.str_eq(call, "agent", agent);
    c.str_eq(call, "queue", "consult");
    c.str_eq(call, "direction", "inbound");
    c.present(call, "id");
    c.present(call, "started_at");
    c.present(call, "answered_at");
    c.present(call, "ended_at");
    c.that(
        str_field(call, "caller").is_some_and(|s| s.contains(CALLER_NUMBER)),
        format!("caller: expected it to contain {CALLER_NUMBER:?}"),
    );
}

/// `attempts` as (agent, outcome), in the API's order.
fn attempt_pairs(call: &Value) -> Vec<(String, String)> {
    attempts(call)
        .into_iter()
        .map(|(agent, outcome, _)| (agent, outcome))
        .collect()
}

/// `attempts` are exactly `want`, (agent, outcome) in the API's order.
fn attempts_are(c: &mut Checks, call: &Value, want: &[(&str, &str)]) {
    let got = attempt_pairs(call);
    let shown: Vec<String> = want.iter().map(|(a, o)| format!("{a} {o}")).collect();
    c.that(
        got == pairs(want),
        format!("attempts: expected [{}], got {got:?}", shown.join(", ")),
    );
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, o)| (a.to_string(), o.to_string()))
        .collect()
}

/// ring_ms of `agent`'s attempt.
fn ring_ms_of(call: &Value, agent: &str) -> Option<i64> {
    attempts(call)
        .into_iter()
        .find(|(a, _, _)| a == agent)
        .and_then(|(_, _, ms)| ms)
}

/// Both media directions crossed the daemon: the caller's socket got the agent's audio
/// and the agent's socket got the caller's. g711a.pcap holds 51 packets; half is asked.
fn media_both_ways(c: &mut Checks, caller: &SippOutcome, agent: &SippOutcome) {
    const AT_LEAST: u64 = 25;
    c.that(
        caller.rtp() >= AT_LEAST,
        format!(
            "media agent -> caller: {} RTP packets reached the caller's SDP port (want >= {AT_LEAST})",
            caller.rtp()
        ),
    );
    c.that(
        agent.rtp() >= AT_LEAST,
        format!(
            "media caller -> agent: {} RTP packets reached the agent's SDP port (want >= {AT_LEAST})",
            agent.rtp()
        ),
    );
}

// ---------------------------------------------------------------------------------------
// Ring timing
// ---------------------------------------------------------------------------------------

/// The agent sends 180, waits `ring_ms`, sends 200. Cadence 1000 ms, target 3.
fn ring_timing(ring_ms: i64, rings: i64, three_ring_ok: bool) {
    let _timing = timing_exclusive();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let spec = DaemonSpec::new(
        vec![AgentSpec::at("1001", agent_port)],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    );
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));

    let agent = Sipp::agent("agent 1001", "daemon_uas_answer.xml", agent_port, &ports)
        .pause_ms(ring_ms as u64)
        .spawn();
    let caller = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), &ports)
        .pause_ms(2000)
        .spawn();
    let call_id = caller.call_id().to_string();
    let caller = caller.wait();
    let agent = agent.wait_at_most(AGENT_WAIT);
    assert_all_ok(&[&caller, &agent], "ring timing call");

    let call = daemon.the_one_call();
    eprintln!(
        "ring {ring_ms} ms: record {}\nRTP packets: caller got {}, agent got {}",
        pretty(&call),
        caller.rtp(),
        agent.rtp()
    );
    let mut c = Checks::new();
    answered_basics(&mut c, &call, "1001");
    c.str_eq(&call, "sip_call_id", &call_id);
    c.int_in(&call, "caller_ring_ms", ring_ms - 50, ring_ms + 50);
    c.int_eq(&call, "rings", rings);
    c.bool_eq(&call, "three_ring_ok", three_ring_ok);
    attempts_are(&mut c, &call, &[("1001", "answered")]);
    let attempt_ring = ring_ms_of(&call, "1001");
    c.that(
        attempt_ring.is_some_and(|ms| (ring_ms - 50..=ring_ms + 50).contains(&ms)),
        format!(
            "attempts[0].ring_ms: expected {}..={}, got {attempt_ring:?}",
            ring_ms - 50,
            ring_ms + 50
        ),
    );
    c.str_eq(&call, "hangup_side", "caller");
    c.int_in(&call, "talk_ms", 1500, 4000);
    media_both_ways(&mut c, &caller, &agent);
    c.finish(&call, &reports(&[&caller, &agent]));
}

#[test]
fn ring_2400_ms_at_cadence_1000_is_three_rings_within_target() {
    ring_timing(2400, 3, true);
}

#[test]
fn ring_3100_ms_at_cadence_1000_is_four_rings_and_a_violation() {
    ring_timing(3100, 4, false);
}

// ---------------------------------------------------------------------------------------
// Routing: no answer, busy, ring-all, abandon, no agent
// ---------------------------------------------------------------------------------------

/// An agent's SIPp in a two-agent test: its label, scenario and `-d` pause, if any.
struct AgentPlay<'a> {
    label: &'a str,
    scenario: &'a str,
    pause_ms: Option<u64>,
}

impl<'a> AgentPlay<'a> {
    /// Plays `scenario` as written (no `-d`).
    fn plays(label: &'a str, scenario: &'a str) -> Self {
        AgentPlay {
            label,
            scenario,
            pause_ms: None,
        }
    }

    /// Rings for `ms`, then answers (`daemon_uas_answer.xml`).
    fn answers_after(label: &'a str, ms: u64) -> Self {
        AgentPlay {
            label,
            scenario: "daemon_uas_answer.xml",
            pause_ms: Some(ms),
        }
    }
}

/// Agents 1001 (`first`) and 1002 (`second`) in `queues`, and one caller that talks for
/// 1000 ms once answered; every SIPp run must succeed (`context` for the failure).
/// Returns the call record and the caller's and the agents' runs.
fn call_with_two_agents(
    queues: Vec<QueueSpec>,
    first: AgentPlay,
    second: AgentPlay,
    context: &str,
) -> (Value, SippOutcome, SippOutcome, SippOutcome) {
    let ports = Arc::new(PortBlock::new());
    let (p1, p2) = (free_port(), free_port());
    let spec = DaemonSpec::new(
        vec![AgentSpec::at("1001", p1), AgentSpec::at("1002", p2)],
        queues,
    );
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let spawn = |play: AgentPlay, port: u16| {
        let agent = Sipp::agent(play.label, play.scenario, port, &ports);
        match play.pause_ms {
            Some(ms) => agent.pause_ms(ms).spawn(),
            None => agent.spawn(),
        }
    };
    let a1 = spawn(first, p1);
    let a2 = spawn(second, p2);
    let caller = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), &ports)
        .pause_ms(1000)
        .run();
    let a1 = a1.wait_at_most(AGENT_WAIT);
    let a2 = a2.wait_at_most(AGENT_WAIT);
    assert_all_ok(&[&caller, &a1, &a2], context);
    let call = daemon.the_one_call();
    (call, caller, a1, a2)
}

/// Two agents in list order under round-robin: the first call of a fresh daemon goes to
/// 1001 first. `first` is 1001's scenario; 1002 answers after 300 ms.
fn second_agent_answers(
    first: &str,
    ring_timeout_ms: u64,
) -> (Value, SippOutcome, SippOutcome, SippOutcome) {
    call_with_two_agents(
        vec![QueueSpec::consult("round-robin", &["1001", "1002"]).ring_timeout_ms(ring_timeout_ms)],
        AgentPlay::plays("agent 1001", first),
        AgentPlay::answers_after("agent 1002", 300),
        "",
    )
}

#[test]
fn ring_no_answer_moves_to_the_next_agent() {
    let _shared = timing_shared();
    let (call, caller, a1, a2) = second_agent_answers("daemon_uas_noanswer.xml", 1000);
    let mut c = Checks::new();
    answered_basics(&mut c, &call, "1002");
    attempts_are(
        &mut c,
        &call,
        &[("1001", "no-answer"), ("1002", "answered")],
    );
    let first = ring_ms_of(&call, "1001");
    c.that(
        first.is_some_and(|ms| (800..=1500).contains(&ms)),
        format!("1001's ring_ms: expected about ring_timeout_ms = 1000, got {first:?}"),
    );
    c.finish(&call, &reports(&[&caller, &a1, &a2]));
}

#[test]
fn busy_agent_moves_to_the_next_agent() {
    let _shared = timing_shared();
    let (call, caller, a1, a2) = second_agent_answers("daemon_uas_busy.xml", 15_000);
    let mut c = Checks::new();
    answered_basics(&mut c, &call, "1002");
    attempts_are(&mut c, &call, &[("1001", "busy"), ("1002", "answered")]);
    c.finish(&call, &reports(&[&caller, &a1, &a2]));
}

#[test]
fn caller_abandons_while_the_agent_rings() {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let spec = DaemonSpec::new(
        vec![AgentSpec::at("1001", agent_port)],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    );
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    // The agent's run only succeeds if a CANCEL reaches it.
    let agent = Sipp::agent("agent 1001", "daemon_uas_noanswer.xml", agent_port, &ports).spawn();
    let caller = Sipp::caller("daemon_uac_cancel.xml", daemon.sip_addr(), &ports)
        .pause_ms(1000)
        .run();
    let agent = agent.wait_at_most(AGENT_WAIT);
    assert_all_ok(
        &[&caller, &agent],
        "caller: INVITE, 180, CANCEL after 1 s, expects 200 + 487; agent: expects the CANCEL",
    );

    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "abandoned");
    c.str_eq(&call, "hangup_side", "caller");
    c.str_eq(&call, "queue", "consult");
    c.null(&call, "answered_at");
    c.present(&call, "ended_at");
    attempts_are(&mut c, &call, &[("1001", "cancelled")]);
    let rang = ring_ms_of(&call, "1001");
    c.that(
        rang.is_some_and(|ms| (800..=1600).contains(&ms)),
        format!("1001's ring_ms: expected about the caller's 1000 ms, got {rang:?}"),
    );
    c.finish(&call, &reports(&[&caller, &agent]));
}

#[test]
fn ring_all_rings_both_agents_and_cancels_the_one_that_did_not_answer() {
    let _shared = timing_shared();
    let (call, caller, a1, a2) = call_with_two_agents(
        vec![QueueSpec::consult("ring-all", &["1001", "1002"])],
        AgentPlay::answers_after("agent 1001 (answers after 500 ms)", 500),
        AgentPlay::plays(
            "agent 1002 (rings until cancelled)",
            "daemon_uas_noanswer.xml",
        ),
        "both agents must get the INVITE; 1002 must get a CANCEL when 1001 answers",
    );
    let mut c = Checks::new();
    answered_basics(&mut c, &call, "1001");
    let mut got = attempt_pairs(&call);
    got.sort();
    c.that(
        got == pairs(&[("1001", "answered"), ("1002", "cancelled")]),
        format!("attempts: expected {{1001 answered, 1002 cancelled}}, got {got:?}"),
    );
    let answered = ring_ms_of(&call, "1001");
    c.that(
        answered.is_some_and(|ms| (400..=700).contains(&ms)),
        format!("1001's ring_ms: expected about 500, got {answered:?}"),
    );
    c.finish(&call, &reports(&[&caller, &a1, &a2]));
}

/// Agent 1001 alone in `queue`, playing `scenario` for every call the daemon makes to it
/// (up to 20), never takes the call: the caller must get its 480 (`daemon_uac_480.xml`).
/// Returns the daemon, the caller's run and the agent's (killed once the caller is done).
fn caller_gets_480(
    queue: QueueSpec,
    label: &str,
    scenario: &str,
) -> (Daemon, SippOutcome, SippOutcome) {
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let spec = DaemonSpec::new(vec![AgentSpec::at("1001", agent_port)], vec![queue]);
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let agent = Sipp::agent(label, scenario, agent_port, &ports)
        .calls(20)
        .spawn();
    let caller = Sipp::caller("daemon_uac_480.xml", daemon.sip_addr(), &ports).run();
    let agent = agent.kill();
    assert_all_ok(&[&caller], &agent.report);
    (daemon, caller, agent)
}

#[test]
fn no_agent_answering_gives_the_caller_480_after_max_wait() {
    let _shared = timing_shared();
    // Rings without answering every time it is called (until cancelled), however often
    // the daemon tries it again within max_wait_ms.
    let (daemon, caller, agent) = caller_gets_480(
        QueueSpec::consult("longest-idle", &["1001"])
            .ring_timeout_ms(1000)
            .max_wait_ms(3000),
        "agent 1001 (never answers)",
        "daemon_uas_noanswer.xml",
    );
    assert!(
        caller.elapsed >= Duration::from_millis(2500),
        "the 480 came after {:?}, before max_wait_ms = 3000\n{}",
        caller.elapsed,
        caller.report
    );

    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "no_agent");
    c.str_eq(&call, "queue", "consult");
    c.null(&call, "answered_at");
    let list = attempt_pairs(&call);
    c.that(
        !list.is_empty()
            && list
                .iter()
                .all(|(a, o)| a == "1001" && (o == "no-answer" || o == "cancelled")),
        format!(
            "attempts: expected only 1001 no-answer (or cancelled at max_wait_ms), got {list:?}"
        ),
    );
    c.finish(&call, &reports(&[&caller, &agent]));
}

/// A lone agent that answers busy every time is not re-rung in a loop: it rests for
/// `retry_ms` between attempts, and the caller gets 480 after `max_wait_ms`.
#[test]
fn a_busy_agent_is_retried_only_after_retry_ms() {
    let _shared = timing_shared();
    let (daemon, caller, agent) = caller_gets_480(
        QueueSpec::consult("longest-idle", &["1001"])
            .max_wait_ms(3000)
            .retry_ms(1000),
        "agent 1001 (always busy)",
        "daemon_uas_busy.xml",
    );
    let call = daemon.the_one_call();
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "no_agent");
    let list = attempt_pairs(&call);
    // Busy at 0 s, then at about 1 s and 2 s: three attempts (four at most with timing slack).
    c.that(
        (2..=4).contains(&list.len()) && list.iter().all(|(a, o)| a == "1001" && o == "busy"),
        format!("attempts: expected 2-4 busy attempts of 1001, got {list:?}"),
    );
    c.finish(&call, &reports(&[&caller, &agent]));
}

/// After `max_wait_ms` in a queue whose agent never answers, the call overflows to the
/// queue named by `overflow` and its agent takes it; the record names the new queue.
#[test]
fn max_wait_overflows_to_the_next_queue() {
    let _shared = timing_shared();
    let (call, caller, a1, a2) = call_with_two_agents(
        vec![
            QueueSpec::consult("longest-idle", &["1001"])
                .max_wait_ms(1500)
                .overflow("complaints"),
            QueueSpec::named("complaints", "4008005678", "longest-idle", &["1002"]),
        ],
        AgentPlay::plays("agent 1001 (never answers)", "daemon_uas_noanswer.xml"),
        AgentPlay::answers_after("agent 1002", 300),
        "consult (1001 never answers) overflows to complaints (1002)",
    );
    let mut c = Checks::new();
    c.str_eq(&call, "outcome", "answered");
    c.str_eq(&call, "agent", "1002");
    c.str_eq(&call, "queue", "complaints");
    attempts_are(
        &mut c,
        &call,
        &[("1001", "cancelled"), ("1002", "answered")],
    );
    // The caller heard ringing from 1001's first ring through the overflow to 1002's answer.
    let ring = int_field(&call, "caller_ring_ms");
    c.that(
        ring.is_some_and(|ms| (1700..=2500).contains(&ms)),
        format!("caller_ring_ms: expected about 1500 + 300 ms, got {ring:?}"),
    );
    c.finish(&call, &reports(&[&caller, &a1, &a2]));
}

/// A hold re-INVITE from the caller reaches the agent with its SDP (a=sendonly) anchored
/// on the daemon, and the agent's answer (a=recvonly) reaches the caller; the scenarios
/// fail if either direction attribute is missing.
#[test]
fn hold_reinvite_passes_through_both_legs() {
    answered_call(CALLER_HOLDS_THEN_HANGS_UP, Transport::Udp, Transport::Udp);
}

// ---------------------------------------------------------------------------------------
// Who hangs up
// ---------------------------------------------------------------------------------------

/// How a one-agent call ends: who hangs up, and the caller's and the agent's scenarios
/// that make it so (both talk for about 1500 ms).
struct Ending {
    side: &'static str,
    caller: &'static str,
    agent: &'static str,
}

/// The caller sends the BYE.
const CALLER_HANGS_UP: Ending = Ending {
    side: "caller",
    caller: "daemon_uac.xml",
    agent: "daemon_uas_answer.xml",
};

/// The agent sends the BYE.
const AGENT_HANGS_UP: Ending = Ending {
    side: "agent",
    caller: "daemon_uac_wait_bye.xml",
    agent: "daemon_uas_bye.xml",
};

/// The caller puts the call on hold (re-INVITE, a=sendonly), then sends the BYE.
const CALLER_HOLDS_THEN_HANGS_UP: Ending = Ending {
    side: "caller",
    caller: "daemon_uac_reinvite.xml",
    agent: "daemon_uas_reinvite.xml",
};

/// One call from a caller over `caller` to agent 1001 over `agent` (a TCP agent gets a
/// TCP contact), who answers after 300 ms. The call must end answered by 1001 and hung up
/// as `ending` says, with media both ways.
fn answered_call(ending: Ending, caller: Transport, agent: Transport) {
    let _shared = timing_shared();
    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let agent_spec = match agent {
        Transport::Tcp => AgentSpec::at_tcp("1001", agent_port),
        Transport::Udp => AgentSpec::at("1001", agent_port),
    };
    let spec = DaemonSpec::new(
        vec![agent_spec],
        vec![QueueSpec::consult("longest-idle", &["1001"])],
    );
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    let agent_run = Sipp::agent("agent 1001", ending.agent, agent_port, &ports)
        .transport(agent)
        .pause_ms(300)
        .spawn();
    let caller_run = Sipp::caller(ending.caller, daemon.sip_addr(), &ports)
        .transport(caller)
        .pause_ms(1500)
        .run();
    let agent_run = agent_run.wait_at_most(AGENT_WAIT);
    assert_all_ok(
        &[&caller_run, &agent_run],
        &format!("caller over {caller:?}, agent over {}", agent.via()),
    );
    let call = daemon.the_one_call();

    let mut c = Checks::new();
    answered_basics(&mut c, &call, "1001");
    c.str_eq(&call, "hangup_side", ending.side);
    // The talk lasts about 1500 ms in both scenarios.
    c.int_in(&call, "talk_ms", 1000, 4000);
    media_both_ways(&mut c, &caller_run, &agent_run);
    c.finish(&call, &reports(&[&caller_run, &agent_run]));
}

#[test]
fn agent_hangs_up_first() {
    answered_call(AGENT_HANGS_UP, Transport::Udp, Transport::Udp);
}

#[test]
fn caller_hangs_up_first() {
    answered_call(CALLER_HANGS_UP, Transport::Udp, Transport::Udp);
}

// ---------------------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------------------

#[test]
fn tcp_caller_call_is_answered_and_the_caller_hangs_up() {
    answered_call(CALLER_HANGS_UP, Transport::Tcp, Transport::Udp);
}

#[test]
fn tcp_caller_gets_the_bye_when_the_agent_hangs_up() {
    answered_call(AGENT_HANGS_UP, Transport::Tcp, Transport::Udp);
}

#[test]
fn agent_with_a_tcp_contact_is_called_over_tcp() {
    answered_call(CALLER_HANGS_UP, Transport::Udp, Transport::Tcp);
}
