//! Helpers for the end-to-end tests of `threering serve`: a daemon in its own temp dir
//! with its own ports and config, raw HTTP/1.1 against its API, SIPp callers and agents
//! (with RTP sinks that count the media the daemon relays), raw SIP over UDP, and a
//! collector of check failures so one run reports every mismatch at once.
//!
//! Everything talks to 127.0.0.1 only, and every wait is bounded.
//!
//! Layout: [`ports`] (a block of UDP ports for RTP and SIPp media), [`config`] (what a
//! test config holds, written as TOML), [`daemon`] (the `threering serve` process and its
//! API calls), [`http`] (HTTP/1.1 GET and POST over a plain socket), [`checks`] (JSON
//! field access and collected check failures), [`rtp_sink`] (a socket counting relayed
//! media), [`sipp`] (SIPp callers and agents, their outcomes), [`raw_sip`] (a hand-made
//! INVITE), [`tls`] (test certificates made with openssl, a rustls client, SIP over TLS),
//! [`kamailio`] (Kamailio as a TLS proxy in front of the daemon).
//! Every public name is re-exported here, so tests write `daemon_common::NAME`.
//!
//! Debugging aids: the daemon inherits the environment (THREERING_LOG=debug makes it log
//! more; its stderr is printed when a test fails), and every SIPp run keeps a message trace
//! whose tail is part of its report.
//!
//! The helpers that the sip-echo tests need too (ports, text, the SIPp binary and its
//! statistics, raw SIP over UDP, the OPTIONS probe, the torture corpus) live once, in
//! `tests/common/`, included here as `base` and re-exported.
#![allow(dead_code)]

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

#[path = "../common/mod.rs"]
mod base;

mod checks;
mod config;
mod daemon;
mod http;
mod kamailio;
mod pg;
mod ports;
mod raw_sip;
mod rtp_sink;
mod sipp;
mod tls;

// Each test binary uses a different subset of these.
#[allow(unused_imports)]
pub use base::{
    check_options_ok, free_port, loopback, parse_response, parse_sipp_csv, parse_sipp_stats,
    read_lossy, show_bytes, sipp_binary, tail, torture_files, udp_final_response, udp_recv,
    udp_socket, unique_token, SippFiles, SippStats, Transport, SCENARIO_DIR, THREERING,
    TORTURE_DIR,
};
#[allow(unused_imports)]
pub use checks::{attempts, int_field, pretty, str_field, Checks};
#[allow(unused_imports)]
pub use config::{config_toml, token_sha256, AgentSpec, DaemonSpec, Placement, QueueSpec, TlsSpec};
#[allow(unused_imports)]
pub use daemon::{check_config, Daemon};
#[allow(unused_imports)]
pub use http::{http_get, http_json, http_request, https_request, HttpResponse};
#[allow(unused_imports)]
pub use kamailio::Kamailio;
#[allow(unused_imports)]
pub use pg::{pg_admin_url, psql, PgDatabase};
#[allow(unused_imports)]
pub use ports::PortBlock;
#[allow(unused_imports)]
pub use raw_sip::invite_request;
#[allow(unused_imports)]
pub use rtp_sink::RtpSink;
#[allow(unused_imports)]
pub use sipp::{assert_all_ok, registered_phone, reports, Sipp, SippOutcome, SippRun};
#[allow(unused_imports)]
pub use tls::{client_trusting, tls_stream, TestCerts, TlsSip};

/// The audio SIPp plays (Debian `sip-tester`); the scenarios name it too.
pub const PCAP: &str = "/usr/share/sip-tester/g711a.pcap";

/// How long the daemon may take to answer `GET /healthz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// The queue number every test config routes to queue "consult".
pub const QUEUE_NUMBER: &str = "4008001234";

/// The caller's user part in every caller scenario.
pub const CALLER_NUMBER: &str = "13800138000";

// ---------------------------------------------------------------------------------------
// Timing isolation
// ---------------------------------------------------------------------------------------

static TIMING: RwLock<()> = RwLock::new(());

/// Tests that measure milliseconds take this: no other test of the binary runs meanwhile.
pub fn timing_exclusive() -> RwLockWriteGuard<'static, ()> {
    TIMING.write().unwrap_or_else(|p| p.into_inner())
}

/// Every other daemon test takes this: they run in parallel with each other, never with a
/// timing test.
pub fn timing_shared() -> RwLockReadGuard<'static, ()> {
    TIMING.read().unwrap_or_else(|p| p.into_inner())
}
