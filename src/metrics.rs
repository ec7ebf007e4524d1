//! Prometheus metrics: one small named function per thing measured, so call control says
//! `metrics::agent_answered(queue, agent, secs, late)` and never spells a metric name or
//! label by hand. The names and labels of the first three are a contract (DESIGN.md):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `threering_ring_to_answer_seconds` | histogram (real buckets) | `queue`, `agent` |
//! | `threering_calls_total` | counter | `queue`, `outcome` |
//! | `threering_three_ring_violations_total` | counter | `queue`, `agent` |
//! | `threering_active_calls` | gauge | — |
//! | `threering_sip_parse_errors_total` | counter | — |
//! | `threering_sip_rejected_total` | counter | `reason` |
//! | `threering_sip_dropped_total` | counter | `reason` |
//! | `threering_agents` | gauge | `state` |
//! | `threering_sip_auth_failures_total` | counter | — |
//! | `threering_sip_auth_lockouts_total` | counter | `kind` (`source`, `user`) |
//! | `threering_sip_auth_lockouts_active` | gauge | `kind` |
//! | `threering_store_up` | gauge (1/0) | — |
//! | `threering_store_queued_records` | gauge | — |
//! | `threering_media_packets_relayed_total` | counter | — |
//!
//! The recorder is built here and rendered by the HTTP server at `/metrics`; no exporter
//! of its own listens anywhere.

use std::sync::OnceLock;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const RING_TO_ANSWER: &str = "threering_ring_to_answer_seconds";
const CALLS: &str = "threering_calls_total";
const VIOLATIONS: &str = "threering_three_ring_violations_total";
const ACTIVE_CALLS: &str = "threering_active_calls";
const SIP_PARSE_ERRORS: &str = "threering_sip_parse_errors_total";
const SIP_REJECTED: &str = "threering_sip_rejected_total";
const SIP_DROPPED: &str = "threering_sip_dropped_total";
const RECORDING_FAILURES: &str = "threering_recording_failures_total";
const TICKETS_OVERDUE: &str = "threering_tickets_overdue";
const AGENTS: &str = "threering_agents";
const ALARM: &str = "threering_alarm";
const TASKS: &str = "threering_tokio_alive_tasks";
const SIP_AUTH_FAILURES: &str = "threering_sip_auth_failures_total";
const SIP_AUTH_LOCKOUTS: &str = "threering_sip_auth_lockouts_total";
const SIP_AUTH_LOCKOUTS_ACTIVE: &str = "threering_sip_auth_lockouts_active";
const STORE_UP: &str = "threering_store_up";
const STORE_QUEUED: &str = "threering_store_queued_records";
const MEDIA_RELAYED: &str = "threering_media_packets_relayed_total";

/// Bucket bounds in seconds. Dense below 30 s because that is where the rule lives: with
/// the 5 s cadence, ring 3 ends at 15 s and ring 5 at 25 s; sparse above, up to the
/// longest ring timeouts anyone configures.
const RING_TO_ANSWER_BUCKETS: &[f64] = &[
    1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0, 90.0, 120.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Builds the recorder, installs it as the process-wide recorder and returns the handle
/// that renders `/metrics`. Calling it again returns the same handle, so every test in
/// one process can call it.
///
/// The handle's owner should call `run_upkeep` now and then (the HTTP server does) so
/// histogram samples do not pile up between scrapes.
pub fn install() -> PrometheusHandle {
    HANDLE.get_or_init(build_and_install).clone()
}

fn build_and_install() -> PrometheusHandle {
    let builder = PrometheusBuilder::new();
    let builder = match builder.set_buckets_for_metric(
        Matcher::Full(RING_TO_ANSWER.to_owned()),
        RING_TO_ANSWER_BUCKETS,
    ) {
        Ok(builder) => builder,
        // Only fails for an empty bucket list, which the constant is not.
        Err(e) => unreachable!("ring-to-answer buckets rejected: {e}"),
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        // Someone else installed a recorder first: our handle will render nothing, but
        // the daemon keeps running rather than failing over metrics.
        tracing::warn!(error = %e, "a metrics recorder was already installed; /metrics will be empty");
    }
    describe();
    handle
}

fn describe() {
    describe_histogram!(
        RING_TO_ANSWER,
        metrics::Unit::Seconds,
        "Ring-to-answer time of answered agent attempts, from the first ring to the agent's 200 OK"
    );
    describe_counter!(
        CALLS,
        "Calls that ended, by queue and outcome (answered, abandoned, no_agent, rejected, failed)"
    );
    describe_counter!(
        VIOLATIONS,
        "Answered calls that took more rings than the three-ring target, by queue and answering agent"
    );
    describe_gauge!(ACTIVE_CALLS, "Calls in progress (ringing or talking)");
    describe_gauge!(
        TICKETS_OVERDUE,
        "Tickets past their due time and still waiting for a reply, by kind (as of the scrape)"
    );
    describe_counter!(
        RECORDING_FAILURES,
        "Answered calls whose recording could not be started or was cut short by a write error (the call went on unrecorded)"
    );
    describe_counter!(
        MEDIA_RELAYED,
        "RTP and RTCP datagrams relayed from one leg of a call to the other (as of the scrape)"
    );
    describe_gauge!(
        TASKS,
        "Tokio tasks alive in the daemon's runtimes, the async one and the media threads' (as of the scrape; flat under steady load)"
    );
    describe_gauge!(
        ALARM,
        "1 while an alarm is up (see /healthz), by name; 0 once cleared"
    );
    describe_gauge!(
        AGENTS,
        "Agents by state (available, ringing, on_call, wrap_up, paused, backoff)"
    );
    describe_counter!(
        SIP_PARSE_ERRORS,
        "SIP messages that could not be parsed (answered 400 or dropped)"
    );
    describe_counter!(
        SIP_AUTH_FAILURES,
        "SIP digest credentials refused for a wrong password or an unknown user"
    );
    describe_counter!(
        SIP_AUTH_LOCKOUTS,
        "SIP digest lockouts started, by kind (source address or user name)"
    );
    describe_gauge!(
        SIP_AUTH_LOCKOUTS_ACTIVE,
        "SIP digest lockouts in force, by kind (source address or user name)"
    );
    describe_counter!(
        SIP_REJECTED,
        "SIP requests answered 503 for overload, by reason (max_calls, max_transactions, source_rate, source_pending, source_table_full, event_queue)"
    );
    describe_counter!(
        SIP_DROPPED,
        "SIP messages dropped unanswered for overload, by reason (source_rate, udp_queue_full, event_queue)"
    );
    describe_gauge!(
        STORE_UP,
        "1 while the database takes writes, 0 while call records queue for it (an alarm)"
    );
    describe_gauge!(
        STORE_QUEUED,
        "Call records waiting to be written to the database (in memory and in the spool)"
    );
    // Present from the first scrape, not only after the first outage.
    gauge!(STORE_UP).set(1.0);
    gauge!(STORE_QUEUED).set(0.0);
}

/// A call ended; `outcome` is `CallOutcome::as_str()`. Calls routed to no queue count
/// under `queue=""`.
pub fn call_ended(queue: &str, outcome: &str) {
    counter!(CALLS, "queue" => queue.to_owned(), "outcome" => outcome.to_owned()).increment(1);
}

/// An agent answered after ringing `ring_seconds`; `violation` when the call broke the
/// three-ring rule, so the counter and the histogram always agree on who answered.
pub fn agent_answered(queue: &str, agent: &str, ring_seconds: f64, violation: bool) {
    histogram!(RING_TO_ANSWER, "queue" => queue.to_owned(), "agent" => agent.to_owned())
        .record(ring_seconds);
    if violation {
        counter!(VIOLATIONS, "queue" => queue.to_owned(), "agent" => agent.to_owned()).increment(1);
    }
}

/// Calls in progress right now.
pub fn active_calls(n: usize) {
    gauge!(ACTIVE_CALLS).set(n as f64);
}

/// Tickets overdue now, for one kind.
pub fn tickets_overdue(kind: &str, n: i64) {
    gauge!(TICKETS_OVERDUE, "kind" => kind.to_owned()).set(n as f64);
}

/// Agents per state now: every state named, zeros included.
pub fn agents_by_state(counts: &[(&'static str, usize)]) {
    for (state, n) in counts {
        gauge!(AGENTS, "state" => *state).set(*n as f64);
    }
}

/// One SIP message could not be parsed.
pub fn sip_parse_errors() {
    counter!(SIP_PARSE_ERRORS).increment(1);
}

/// A SIP request was answered 503 because of a limit (`reason`, e.g. `max_calls`).
pub fn sip_rejected(reason: &'static str) {
    counter!(SIP_REJECTED, "reason" => reason).increment(1);
}

/// A SIP message was dropped without an answer because of a limit (`reason`).
pub fn sip_dropped(reason: &'static str) {
    counter!(SIP_DROPPED, "reason" => reason).increment(1);
}

/// A call that should have been recorded could not be (disk full, permissions): an alarm.
pub fn recording_failed() {
    counter!(RECORDING_FAILURES).increment(1);
}

/// Tasks alive in the runtime now (read at scrape time).
pub fn alive_tasks(n: usize) {
    gauge!(TASKS).set(n as f64);
}

/// Datagrams the media relays have sent on so far (read at scrape time from the relays'
/// own counter, so the media path pays no metrics call per packet).
pub fn media_packets_relayed(total: u64) {
    counter!(MEDIA_RELAYED).absolute(total);
}

/// An alarm went up (`true`) or was cleared (see `crate::alarms`).
pub fn alarm(name: &'static str, up: bool) {
    gauge!(ALARM, "name" => name).set(if up { 1.0 } else { 0.0 });
}

/// SIP digest credentials were wrong (or named no user).
pub fn sip_auth_failed() {
    counter!(SIP_AUTH_FAILURES).increment(1);
}

/// A SIP digest lockout began; `kind` is `source` or `user`.
pub fn sip_auth_lockout(kind: &'static str) {
    counter!(SIP_AUTH_LOCKOUTS, "kind" => kind).increment(1);
}

/// SIP digest lockouts in force now, for one kind.
pub fn sip_auth_lockouts_active(kind: &'static str, n: usize) {
    gauge!(SIP_AUTH_LOCKOUTS_ACTIVE, "kind" => kind).set(n as f64);
}

/// Whether the database takes writes (the store writer's latest finding).
pub fn store_up(up: bool) {
    gauge!(STORE_UP).set(if up { 1.0 } else { 0.0 });
}

/// Call records waiting for the database.
pub fn store_queued_records(n: u64) {
    gauge!(STORE_QUEUED).set(n as f64);
}
