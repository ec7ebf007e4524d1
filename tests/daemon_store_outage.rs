//! A PostgreSQL outage during calls: the daemon reaches PostgreSQL through a TCP proxy
//! (`store::testing::TcpProxy`) that the test switches off for 30 s — every connection
//! cut, every new one closed at once — while SIPp places 50 calls. The server itself,
//! which other tests share, keeps running.
//!
//! Must hold: every call is answered and completes; the records queue (not one reaches
//! the database during the outage); `/healthz` answers 200 "degraded" and `/metrics`
//! shows `threering_store_up 0` and queued records; the API answers 503 (JSON); the
//! outage is logged once. After
//! the proxy is back: all 50 records are in the database exactly once (50 rows, 50
//! distinct SIP Call-IDs, each answered and ended, one attempt each), and the daemon
//! says "ok" again.
//!
//! Needs the PostgreSQL server of the tests (`THREERING_TEST_PG`, see `.ci/run`) and
//! SIPp, whatever `THREERING_TEST_DB` says.

mod daemon_common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use daemon_common::{
    free_port, http_get, reports, str_field, timing_shared, AgentSpec, Daemon, DaemonSpec,
    PortBlock, QueueSpec, Sipp,
};
use serde_json::Value;
use threering::store::testing::{TcpProxy, TestDb};
use threering::store::{Backend, Store};

const CALLS: u32 = 50;
const OUTAGE: Duration = Duration::from_secs(30);

/// `name value` of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn healthz(daemon: &Daemon) -> Value {
    let resp = http_get(daemon.http_addr(), "/healthz", None).expect("GET /healthz");
    assert_eq!(resp.status, 200, "{}", resp.text());
    serde_json::from_slice(&resp.body).expect("/healthz is JSON")
}

fn metrics(daemon: &Daemon) -> String {
    http_get(daemon.http_addr(), "/metrics", None)
        .expect("GET /metrics")
        .text()
}

#[test]
fn fifty_calls_during_a_30_s_postgres_outage_are_all_recorded_once() {
    let _shared = timing_shared();
    let db = TestDb::new_blocking(Backend::Postgres);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = db.pg_server_addr().expect("the PostgreSQL address");
    let proxy = runtime.block_on(TcpProxy::start(server)).unwrap();

    let ports = Arc::new(PortBlock::new());
    let agent_port = free_port();
    let ids: Vec<String> = (0..10).map(|i| format!("{}", 3001 + i)).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let spec = DaemonSpec::new(
        ids.iter().map(|id| AgentSpec::at(id, agent_port)).collect(),
        vec![QueueSpec::consult("longest-idle", &id_refs)],
    )
    .database(&db.url_via(proxy.addr));
    let daemon = Daemon::start_with_ports(&spec, Arc::clone(&ports));
    assert_eq!(healthz(&daemon)["status"], "ok");

    // The outage starts; the calls come at 2.5 a second, 10 at most at once.
    proxy.set_open(false);
    let outage_started = Instant::now();
    let agents = Sipp::agent(
        "agents 3001-3010",
        "daemon_uas_answer.xml",
        agent_port,
        &ports,
    )
    .pause_ms(200)
    .calls(CALLS)
    .spawn();
    let callers = Sipp::caller("daemon_uac.xml", daemon.sip_addr(), &ports)
        .pause_ms(1000)
        .calls(CALLS)
        .arg("-r")
        .arg("5")
        .arg("-rp")
        .arg("2000")
        .arg("-l")
        .arg("10")
        .spawn();
    let prefix = callers
        .call_id()
        .strip_suffix("-1@127.0.0.1")
        .expect("caller Call-IDs are PREFIX-N@127.0.0.1")
        .to_string();

    // Degraded, with records queued, while it lasts.
    let mut degraded = None;
    let mut queued_seen = 0.0_f64;
    while outage_started.elapsed() < OUTAGE - Duration::from_secs(3) {
        let health = healthz(&daemon);
        let text = metrics(&daemon);
        if health["status"] == "degraded" && degraded.is_none() {
            degraded = Some(health);
        }
        if metric(&text, "threering_store_up") == Some(0.0) {
            queued_seen =
                queued_seen.max(metric(&text, "threering_store_queued_records").unwrap_or(0.0));
        }
        thread::sleep(Duration::from_millis(250));
    }
    // The API cannot read meanwhile: 503 with a JSON message, not a 500 or a hang.
    let listing = daemon.get("/api/calls").expect("GET /api/calls");
    assert_eq!(listing.status, 503, "{}", listing.text());
    let error: Value = serde_json::from_slice(&listing.body).expect("a JSON error");
    assert!(error["error"].is_string(), "{error}");
    let callers = callers.wait_at_most(OUTAGE);
    let agents = agents.wait_at_most(Duration::from_secs(15));
    let runs = [&callers, &agents];
    assert!(
        callers.ok_with(u64::from(CALLS)) && agents.ok_with(u64::from(CALLS)),
        "every call is answered and completes during the outage\n{}",
        reports(&runs)
    );
    let degraded = degraded.unwrap_or_else(|| {
        panic!(
            "{}",
            daemon.report("/healthz never said \"degraded\" during the outage")
        )
    });
    assert!(
        degraded["store"]["queued_records"].as_u64().unwrap_or(0) > 0,
        "{degraded}"
    );
    assert!(degraded["store"]["reason"].is_string(), "{degraded}");
    assert!(
        queued_seen > 0.0,
        "threering_store_queued_records never above 0 while down"
    );

    // Nothing reached the database while it was unreachable.
    let direct = runtime.block_on(Store::open(&db.url)).unwrap();
    let count = |sql: &'static str| -> i64 {
        runtime
            .block_on(sqlx::query_scalar(sql).fetch_one(direct.pool()))
            .unwrap()
    };
    assert_eq!(count("SELECT COUNT(*) FROM calls"), 0);
    let outage_left = OUTAGE.saturating_sub(outage_started.elapsed());
    thread::sleep(outage_left);
    assert_eq!(count("SELECT COUNT(*) FROM calls"), 0, "still down at 30 s");

    // Back: the queue drains on its own.
    proxy.set_open(true);
    let back = Instant::now();
    loop {
        let health = healthz(&daemon);
        let text = metrics(&daemon);
        if health["status"] == "ok"
            && metric(&text, "threering_store_queued_records") == Some(0.0)
            && count("SELECT COUNT(*) FROM calls") == i64::from(CALLS)
        {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "{}",
            daemon.report(&format!(
                "not drained 30 s after the database came back: {health}, {} rows",
                count("SELECT COUNT(*) FROM calls")
            ))
        );
        thread::sleep(Duration::from_millis(200));
    }
    let drained_in = back.elapsed();

    // Exactly once: one row per SIP call, each complete, one attempt each.
    assert_eq!(
        count("SELECT COUNT(DISTINCT sip_call_id) FROM calls"),
        i64::from(CALLS)
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM calls WHERE answered_at IS NOT NULL AND ended_at IS NOT NULL \
             AND outcome = 'answered'"
        ),
        i64::from(CALLS)
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM call_attempts"),
        i64::from(CALLS)
    );
    let listed = daemon
        .get_json("/api/calls?limit=1000")
        .unwrap_or_else(|e| panic!("{}", daemon.report(&e)))
        .1;
    let ours = listed["calls"]
        .as_array()
        .expect("a calls array")
        .iter()
        .filter(|c| str_field(c, "sip_call_id").is_some_and(|s| s.starts_with(&prefix)))
        .count();
    assert_eq!(ours, CALLS as usize, "the API serves all 50");

    let log = daemon.stderr();
    assert_eq!(
        log.matches("store unreachable").count(),
        1,
        "the outage is logged once:\n{}",
        daemon.report("")
    );
    assert!(
        log.contains("store reachable again"),
        "{}",
        daemon.report("")
    );
    eprintln!(
        "outage {OUTAGE:?}, {CALLS} calls, most records queued {queued_seen}, drained {drained_in:?} after the database came back"
    );
    runtime.block_on(direct.close());
}
