//! Helpers shared by the socket-level integration tests: free loopback ports, a running
//! `threering sip-echo`, a SIPp runner with parsed statistics, raw SIP over UDP and TCP,
//! and an OPTIONS liveness probe.
//!
//! Everything here talks to 127.0.0.1 only, and every wait is bounded.
//! Each test binary uses a different subset of these helpers.
//!
//! Layout: [`ports`] (free ports, loopback addresses, the transport), [`text`] (report
//! text, unique tokens, the torture corpus), [`sip_echo`] (the sip-echo process), [`sipp`]
//! (the SIPp binary, its files, statistics and runner), [`raw_sip`] (SIP responses parsed,
//! raw exchanges over UDP and TCP), [`options`] (the OPTIONS liveness probe). Every public
//! name is re-exported here, so tests write `common::NAME`.
//!
//! `tests/daemon_common/mod.rs` includes this module too (as `base`, by `#[path]`) and
//! re-exports the helpers it shares with the daemon tests (ports, text, SIPp binary and
//! statistics, raw SIP over UDP, the OPTIONS probe, the torture corpus), so each of those
//! exists only here.
//!
//! Debugging aids: sip-echo inherits the environment (THREERING_LOG=debug makes it log
//! more; its stderr is shown when a test fails), and THREERING_SIPP_ARGS adds arguments
//! to every SIPp run (e.g. "-trace_msg -message_file /tmp/sipp.msg").
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

mod options;
mod ports;
mod raw_sip;
mod sip_echo;
mod sipp;
mod text;

// Each test binary uses a different subset of these.
#[allow(unused_imports)]
pub use options::{assert_options_ok, check_options_ok, options_probe, options_request};
#[allow(unused_imports)]
pub use ports::{free_port, loopback, Transport};
#[allow(unused_imports)]
pub use raw_sip::{
    head_end, parse_response, tcp_exchange, udp_exchange, udp_final_response, udp_recv, udp_socket,
    SipResponse, TcpExchange,
};
#[allow(unused_imports)]
pub use sip_echo::{SipEcho, SipEchoConfig};
#[allow(unused_imports)]
pub use sipp::{
    parse_sipp_csv, parse_sipp_stats, sipp_binary, write_stats, Sipp, SippFiles, SippOutcome,
    SippStats,
};
#[allow(unused_imports)]
pub use text::{read_lossy, show_bytes, tail, torture_files, unique_token};

/// The binary under test.
pub const THREERING: &str = env!("CARGO_BIN_EXE_threering");

/// Where the SIPp scenarios of these tests live.
pub const SCENARIO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp");

/// The RFC 4475 torture messages (`*.dat`).
pub const TORTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/rfc4475");

/// How long sip-echo may take to print its `listening` lines.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The one user every sip-echo started here knows.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "secret";
pub const REALM: &str = "threering";

// ---------------------------------------------------------------------------------------
// Serialising load tests
// ---------------------------------------------------------------------------------------

static SERIAL: Mutex<()> = Mutex::new(());

/// Tests of one binary run on parallel threads; timing-sensitive ones (SIPp load, "no
/// retransmissions") take this lock so that they do not compete for the machine's 2 cores.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
