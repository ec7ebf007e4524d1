//! SIPp (a real, independent SIP implementation) against `threering sip-echo` over real
//! loopback sockets: call load over UDP and TCP, calls through a lossy UDP relay, and
//! digest-authenticated REGISTER (right password, wrong password, replayed credential).
//!
//! Needs SIPp 3.6 (`apt-get install sip-tester`); without it these tests fail, on purpose.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use common::{assert_options_ok, serial, SipEcho, Sipp, SippOutcome, Transport};

/// Asserts a SIPp run's exit status and counters, with SIPp's output on failure (sip-echo's
/// is printed when its guard is dropped during the panic).
fn assert_calls(run: &SippOutcome, successful: u64) {
    let report = &run.report;
    assert_eq!(run.stats.failed, 0, "FailedCall(C) must be 0\n{report}");
    assert_eq!(
        run.stats.successful, successful,
        "SuccessfulCall(C) must be {successful}\n{report}"
    );
    assert!(
        run.status.success(),
        "SIPp exited with {}\n{report}",
        run.status
    );
    eprintln!(
        "SIPp: {} successful, {} failed, {} retransmissions",
        run.stats.successful, run.stats.failed, run.stats.retransmissions
    );
}

// ---------------------------------------------------------------------------------------
// Call load
// ---------------------------------------------------------------------------------------

fn call_load(transport: Transport) {
    let _serial = serial();
    let mut echo = SipEcho::start(); // --ring-ms 0
    let target = echo.addr(transport);
    let run = Sipp::new("uac_call.xml", target)
        .transport(transport)
        .calls(500)
        .rate(100)
        .timeout(Duration::from_secs(60))
        .run();
    assert_calls(&run, 500);
    assert_eq!(
        run.stats.retransmissions, 0,
        "Retransmissions(C) must be 0 on loopback\n{}",
        run.report
    );
    echo.assert_running();
    assert_options_ok(transport, target);
}

#[test]
fn udp_500_calls_at_100_per_second_complete_without_retransmissions() {
    call_load(Transport::Udp);
}

#[test]
fn tcp_500_calls_at_100_per_second_complete_without_retransmissions() {
    call_load(Transport::Tcp);
}

// ---------------------------------------------------------------------------------------
// Lossy UDP relay
// ---------------------------------------------------------------------------------------

/// xorshift64 (Marsaglia): a tiny deterministic PRNG for reproducible loss patterns.
struct XorShift64(u64);

impl XorShift64 {
    fn new(seed: u64) -> Self {
        // The all-zero state is a fixed point.
        XorShift64(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

#[derive(Default, Debug)]
struct Counters {
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn get(&self) -> (u64, u64) {
        (
            self.forwarded.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

/// A UDP relay between one client (SIPp) and one server (sip-echo) that drops a fixed
/// share of datagrams in each direction, decided by seeded PRNGs.
///
/// SIPp sends to `front`; the relay forwards from its own `back` socket to the server;
/// the server answers to `back` (symmetric response routing) and the relay passes that
/// on from `front` to the last address SIPp sent from.
struct LossyRelay {
    front_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    to_server: Arc<Counters>,
    to_client: Arc<Counters>,
}

const RELAY_POLL: Duration = Duration::from_millis(50);

impl LossyRelay {
    fn start(server: SocketAddr, loss_percent: u64, seed: u64) -> LossyRelay {
        let front = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind relay front");
        let back = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind relay back");
        front.set_read_timeout(Some(RELAY_POLL)).unwrap();
        back.set_read_timeout(Some(RELAY_POLL)).unwrap();
        let front_addr = front.local_addr().unwrap();
        let front_tx = front.try_clone().expect("clone relay front");
        let back_tx = back.try_clone().expect("clone relay back");

        let stop = Arc::new(AtomicBool::new(false));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let to_server = Arc::new(Counters::default());
        let to_client = Arc::new(Counters::default());

        let upstream = {
            let (stop, client, counters) = (stop.clone(), client.clone(), to_server.clone());
            let mut rng = XorShift64::new(seed);
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = front.recv_from(&mut buf) else {
                        continue; // poll timeout (or a transient error): check `stop`
                    };
                    *client.lock().unwrap() = Some(from);
                    if rng.chance(loss_percent) {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    } else if back_tx.send_to(&buf[..n], server).is_ok() {
                        counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };

        let downstream = {
            let (stop, client, counters) = (stop.clone(), client.clone(), to_client.clone());
            let mut rng = XorShift64::new(seed.rotate_left(32) ^ 0xD1B5_4A32_D192_ED03);
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = back.recv_from(&mut buf) else {
                        continue;
                    };
                    if from != server {
                        continue; // not ours
                    }
                    let Some(to) = *client.lock().unwrap() else {
                        continue; // nobody to deliver to yet
                    };
                    if rng.chance(loss_percent) {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    } else if front_tx.send_to(&buf[..n], to).is_ok() {
                        counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };

        LossyRelay {
            front_addr,
            stop,
            threads: vec![upstream, downstream],
            to_server,
            to_client,
        }
    }

    /// Where SIPp should send.
    fn addr(&self) -> SocketAddr {
        self.front_addr
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

const LOSS_PERCENT: u64 = 10;
const LOSS_SEED: u64 = 0x7448_5245_4552_494E; // "tHREERIN"

#[test]
fn xorshift_loss_pattern_is_deterministic_and_near_ten_percent() {
    let draws = |seed| {
        let mut rng = XorShift64::new(seed);
        (0..100_000)
            .map(|_| rng.chance(LOSS_PERCENT))
            .collect::<Vec<_>>()
    };
    let a = draws(LOSS_SEED);
    assert_eq!(a, draws(LOSS_SEED), "same seed, same pattern");
    assert_ne!(a, draws(LOSS_SEED + 1), "another seed, another pattern");
    let dropped = a.iter().filter(|&&d| d).count();
    assert!(
        (9_500..=10_500).contains(&dropped),
        "{dropped} of 100000 dropped, expected about 10000"
    );
}

#[test]
fn lossy_udp_100_calls_all_complete_through_10_percent_loss_each_way() {
    let _serial = serial();
    let mut echo = SipEcho::start(); // --ring-ms 0, --t1-ms 500
    let mut relay = LossyRelay::start(echo.udp, LOSS_PERCENT, LOSS_SEED);
    let run = Sipp::new("uac_call.xml", relay.addr())
        .transport(Transport::Udp)
        .calls(100)
        .rate(20)
        .timeout(Duration::from_secs(120))
        .run();
    relay.shutdown();
    let (up_fwd, up_drop) = relay.to_server.get();
    let (down_fwd, down_drop) = relay.to_client.get();
    let relay_report = format!(
        "relay: to sip-echo {up_fwd} forwarded / {up_drop} dropped; \
         to SIPp {down_fwd} forwarded / {down_drop} dropped"
    );
    eprintln!("{relay_report}");

    assert_calls(&run, 100);
    assert!(
        up_drop > 0 && down_drop > 0,
        "the relay must have dropped datagrams both ways: {relay_report}"
    );
    assert!(
        run.stats.retransmissions > 0,
        "with 10 % loss SIPp must have retransmitted\n{relay_report}\n{}",
        run.report
    );
    echo.assert_running();
    assert_options_ok(Transport::Udp, echo.udp);
}

// ---------------------------------------------------------------------------------------
// Digest authentication (sip-echo runs with --user alice:secret --realm threering)
// ---------------------------------------------------------------------------------------

fn register(scenario: &str, transport: Transport) {
    let _serial = serial();
    let mut echo = SipEcho::start();
    let target = echo.addr(transport);
    let run = Sipp::new(scenario, target)
        .transport(transport)
        .calls(1)
        .rate(1)
        .timeout(Duration::from_secs(20))
        .run();
    // Each scenario succeeds only when every expected response (200 or 403) arrives.
    assert_calls(&run, 1);
    echo.assert_running();
}

#[test]
fn register_with_the_right_password_gets_401_then_200() {
    register("register_auth.xml", Transport::Udp);
}

#[test]
fn register_with_the_right_password_over_tcp_gets_401_then_200() {
    register("register_auth.xml", Transport::Tcp);
}

#[test]
fn register_with_a_wrong_password_gets_403() {
    register("register_wrong.xml", Transport::Udp);
}

#[test]
fn register_replaying_a_nonce_and_nc_gets_403() {
    // UDP only: the scenario loops one request back to SIPp itself with setdest.
    register("register_replay.xml", Transport::Udp);
}
