//! Overload protection at the endpoint's intake: what a new request must pass before a
//! server transaction is made for it.
//!
//! Two kinds of limit, both decided before any per-request state is kept, so a request
//! past a limit costs one parse and at most one stateless 503:
//!
//! - global: at most `max_transactions` server + client transactions (checked by the
//!   core, which owns the count);
//! - per source IP ([`SourceLimits`]): a token bucket of `source_rps` requests per second
//!   (burst twice that), and at most `source_pending_invites` INVITEs from that address
//!   still waiting for their final response. Trusted sources (the daemon trusts
//!   `[sip] trusted_peers` and `[[trunks]]` addresses: PBXs, carriers and IVRs send
//!   every call from one address) get `trusted_source_rps` and no pending-INVITE limit:
//!   `[daemon] max_calls` bounds them.
//!
//! A source over its rate gets 503 with Retry-After, but only up to about one rate's
//! worth of 503s per second: past twice the rate in excess (a leaky count of recent
//! refusals), its requests are dropped without an answer, so a flood is not answered
//! at the flood's own rate. Retransmissions of a transaction in progress, ACKs,
//! responses and CANCELs of INVITEs in progress never pass through here.
//!
//! Memory: one small entry per source IP, at most `max_sources` entries. Entries with no
//! INVITE pending that have been quiet for [`IDLE_AFTER`] carry no information (their
//! bucket is full again) and are swept; when the table is full of active sources, a
//! new source is refused 503 until some go quiet.
//!
//! ```text
//!                 tokens ≥ 1 ──▶ pending INVITEs < limit (untrusted) ──▶ admit
//!  request ──▶ refill ─┤                         └─ else ──▶ 503 source_pending
//!                 tokens < 1 ──▶ excess ≤ 2·rate ──▶ 503 source_rate
//!                                └─ else ──▶ drop source_rate
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A source with nothing pending and no request for this long is forgotten.
pub const IDLE_AFTER: Duration = Duration::from_secs(10);

/// How often the table is swept of idle sources, at most.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Which source addresses are trusted peers (trunks, IVRs): decided by the application.
#[derive(Clone)]
pub struct TrustPolicy(Arc<dyn Fn(IpAddr) -> bool + Send + Sync>);

impl TrustPolicy {
    pub fn new(is_trusted: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> TrustPolicy {
        TrustPolicy(Arc::new(is_trusted))
    }

    /// Loopback addresses only (the daemon's default `[sip] trusted_peers`).
    pub fn loopback() -> TrustPolicy {
        TrustPolicy::new(|ip: IpAddr| ip.is_loopback())
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        (self.0)(ip)
    }
}

impl fmt::Debug for TrustPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrustPolicy(..)")
    }
}

/// The intake limits (`[sip] max_transactions`, `source_rps`, `trusted_source_rps`,
/// `source_pending_invites`).
#[derive(Debug, Clone)]
pub struct OverloadConfig {
    /// Most server + client transactions at once; past it new requests get a stateless
    /// 503. In-dialog requests (BYE ending a call) may use a quarter more.
    pub max_transactions: usize,
    /// Requests per second from one untrusted source (burst: twice this).
    pub source_rps: u32,
    /// Requests per second from one trusted peer (burst: twice this).
    pub trusted_source_rps: u32,
    /// INVITEs from one untrusted source still waiting for their final response.
    pub source_pending_invites: u32,
    /// Source addresses remembered at once.
    pub max_sources: usize,
    pub trusted: TrustPolicy,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        OverloadConfig {
            max_transactions: 5000,
            source_rps: 200,
            trusted_source_rps: 2000,
            source_pending_invites: 50,
            max_sources: 10_000,
            trusted: TrustPolicy::loopback(),
        }
    }
}

impl OverloadConfig {
    /// The transaction count past which a new request is refused: in-dialog requests
    /// (mostly BYEs, which end calls and so relieve the overload) get some headroom.
    pub fn transaction_cap(&self, in_dialog: bool) -> usize {
        if in_dialog {
            self.max_transactions
                .saturating_add(self.max_transactions / 4)
        } else {
            self.max_transactions
        }
    }
}

/// Why a request was refused; the `reason` label of `threering_sip_rejected_total` and
/// `threering_sip_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxTransactions,
    SourceRate,
    SourcePending,
    SourceTableFull,
    /// The application's event queue was full.
    EventQueue,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MaxTransactions => "max_transactions",
            Refusal::SourceRate => "source_rate",
            Refusal::SourcePending => "source_pending",
            Refusal::SourceTableFull => "source_table_full",
            Refusal::EventQueue => "event_queue",
        }
    }
}

/// The verdict on one new request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit,
    /// Answer 503 with Retry-After, statelessly.
    Reject(Refusal),
    /// Say nothing.
    Drop(Refusal),
}

#[derive(Debug, Clone)]
struct SourceState {
    /// Requests that may still be sent now; refilled at the source's rate, up to twice it.
    tokens: f64,
    /// Recent refusals, leaking at the source's rate: past twice the rate, drop.
    excess: f64,
    /// INVITEs admitted whose final response has not been sent.
    pending_invites: u32,
    last_seen: Instant,
}

/// Per-source rate and pending-INVITE accounting, in a bounded table. Pure: every
/// decision takes the time as an argument.
#[derive(Debug)]
pub struct SourceLimits {
    config: OverloadConfig,
    sources: HashMap<IpAddr, SourceState>,
    last_sweep: Option<Instant>,
}

impl SourceLimits {
    pub fn new(config: OverloadConfig) -> SourceLimits {
        SourceLimits {
            config,
            sources: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Sources remembered now.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// INVITEs from `ip` still waiting for their final response.
    pub fn pending_invites(&self, ip: IpAddr) -> u32 {
        self.sources.get(&ip).map_or(0, |s| s.pending_invites)
    }

    /// Decides on one new request from `ip` at `now`; `new_invite` for an INVITE that
    /// starts a call (no To tag). Admitting does not count the INVITE as pending: call
    /// [`SourceLimits::invite_started`] once its transaction exists.
    pub fn admit(&mut self, ip: IpAddr, new_invite: bool, now: Instant) -> Admission {
        let trusted = self.config.trusted.is_trusted(ip);
        let rate = f64::from(if trusted {
            self.config.trusted_source_rps
        } else {
            self.config.source_rps
        })
        .max(1.0);
        let burst = 2.0 * rate;
        if self
            .last_sweep
            .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY)
        {
            self.sweep(now);
        }
        if !self.sources.contains_key(&ip) {
            if self.sources.len() >= self.config.max_sources {
                self.sweep(now);
            }
            if self.sources.len() >= self.config.max_sources {
                return Admission::Reject(Refusal::SourceTableFull);
            }
            self.sources.insert(
                ip,
                SourceState {
                    tokens: burst,
                    excess: 0.0,
                    pending_invites: 0,
                    last_seen: now,
                },
            );
        }
        let limit = self.config.source_pending_invites;
        let Some(state) = self.sources.get_mut(&ip) else {
            return Admission::Admit; // inserted just above
        };
        let elapsed = now.saturating_duration_since(state.last_seen).as_secs_f64();
        state.last_seen = state.last_seen.max(now);
        state.tokens = (state.tokens + rate * elapsed).min(burst);
        state.excess = (state.excess - rate * elapsed).max(0.0);
        if state.tokens < 1.0 {
            if state.excess >= burst {
                return Admission::Drop(Refusal::SourceRate);
            }
            state.excess += 1.0;
            return Admission::Reject(Refusal::SourceRate);
        }
        state.tokens -= 1.0;
        if new_invite && !trusted && state.pending_invites >= limit {
            return Admission::Reject(Refusal::SourcePending);
        }
        Admission::Admit
    }

    /// An admitted INVITE from `ip` now has its transaction: it is pending until
    /// [`SourceLimits::invite_answered`].
    pub fn invite_started(&mut self, ip: IpAddr) {
        if let Some(state) = self.sources.get_mut(&ip) {
            state.pending_invites = state.pending_invites.saturating_add(1);
        }
    }

    /// The final response to a pending INVITE from `ip` was sent, or its transaction
    /// ended without one.
    pub fn invite_answered(&mut self, ip: IpAddr) {
        if let Some(state) = self.sources.get_mut(&ip) {
            state.pending_invites = state.pending_invites.saturating_sub(1);
        }
    }

    /// Forgets sources with nothing pending that have been quiet for [`IDLE_AFTER`].
    fn sweep(&mut self, now: Instant) {
        self.last_sweep = Some(now);
        self.sources.retain(|_, s| {
            s.pending_invites > 0 || now.saturating_duration_since(s.last_seen) < IDLE_AFTER
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn limits(rps: u32, pending: u32, max_sources: usize) -> SourceLimits {
        SourceLimits::new(OverloadConfig {
            max_transactions: 100,
            source_rps: rps,
            trusted_source_rps: rps * 10,
            source_pending_invites: pending,
            max_sources,
            trusted: TrustPolicy::new(|ip: IpAddr| ip == IpAddr::from([10, 0, 0, 1])),
        })
    }

    fn count(verdicts: &[Admission], want: Admission) -> usize {
        verdicts.iter().filter(|v| **v == want).count()
    }

    #[test]
    fn the_bucket_allows_a_burst_of_twice_the_rate_then_the_rate() {
        let mut l = limits(10, 1000, 10);
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        // 20 at once: the burst.
        let burst: Vec<_> = (0..20).map(|_| l.admit(src, false, t0)).collect();
        assert_eq!(count(&burst, Admission::Admit), 20);
        assert_eq!(
            l.admit(src, false, t0),
            Admission::Reject(Refusal::SourceRate)
        );
        // 100 ms later one token has come back, and only one.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.admit(src, false, t1), Admission::Admit);
        assert_eq!(
            l.admit(src, false, t1),
            Admission::Reject(Refusal::SourceRate)
        );
        // Exactly at the rate (one every 100 ms) everything passes.
        for i in 2..50 {
            let t = t0 + Duration::from_millis(100 * i);
            assert_eq!(l.admit(src, false, t), Admission::Admit, "request {i}");
        }
    }

    #[test]
    fn a_flood_gets_about_one_rate_of_503s_per_second_and_the_rest_dropped() {
        let mut l = limits(10, 1000, 10);
        let t0 = Instant::now();
        let src = ip("192.0.2.2");
        // 5 s at 100 requests/s (10 times the rate).
        let verdicts: Vec<_> = (0..500)
            .map(|i| l.admit(src, false, t0 + Duration::from_millis(10 * i)))
            .collect();
        let admitted = count(&verdicts, Admission::Admit);
        let rejected = count(&verdicts, Admission::Reject(Refusal::SourceRate));
        let dropped = count(&verdicts, Admission::Drop(Refusal::SourceRate));
        assert_eq!(admitted + rejected + dropped, 500);
        // Burst 20 + 10/s over 5 s.
        assert!((68..=72).contains(&admitted), "admitted {admitted}");
        // Excess up to 20, then leaking 10/s: about 20 + 10/s.
        assert!((65..=75).contains(&rejected), "rejected {rejected}");
        assert!(dropped > 350, "dropped {dropped}");
        // Once the flood stops, the source is served again within the bucket's refill.
        let later = t0 + Duration::from_secs(6);
        assert_eq!(l.admit(src, false, later), Admission::Admit);
    }

    #[test]
    fn another_source_is_not_hurt_by_a_flood() {
        let mut l = limits(10, 1000, 10);
        let t0 = Instant::now();
        let flood: Vec<_> = (0..200)
            .map(|i| l.admit(ip("192.0.2.3"), false, t0 + Duration::from_millis(i)))
            .collect();
        assert_eq!(count(&flood, Admission::Admit), 21);
        assert!(count(&flood, Admission::Drop(Refusal::SourceRate)) > 100);
        assert_eq!(
            l.admit(ip("192.0.2.4"), true, t0 + Duration::from_millis(199)),
            Admission::Admit
        );
    }

    #[test]
    fn trusted_peers_get_their_higher_rate() {
        let mut l = limits(10, 1000, 10);
        let t0 = Instant::now();
        // 200 at once: inside the trusted burst (2 × 100), far past the untrusted one.
        let trusted: Vec<_> = (0..200)
            .map(|_| l.admit(ip("10.0.0.1"), false, t0))
            .collect();
        assert_eq!(count(&trusted, Admission::Admit), 200);
        let untrusted: Vec<_> = (0..200)
            .map(|_| l.admit(ip("10.0.0.2"), false, t0))
            .collect();
        assert_eq!(count(&untrusted, Admission::Admit), 20);
    }

    #[test]
    fn unanswered_invites_are_limited_per_untrusted_source() {
        let mut l = limits(1000, 3, 10);
        let t0 = Instant::now();
        let src = ip("192.0.2.5");
        for _ in 0..3 {
            assert_eq!(l.admit(src, true, t0), Admission::Admit);
            l.invite_started(src);
        }
        assert_eq!(l.pending_invites(src), 3);
        assert_eq!(
            l.admit(src, true, t0),
            Admission::Reject(Refusal::SourcePending)
        );
        // Other requests (a BYE, an OPTIONS) and in-dialog INVITEs still pass.
        assert_eq!(l.admit(src, false, t0), Admission::Admit);
        // One answered: one more may come.
        l.invite_answered(src);
        assert_eq!(l.admit(src, true, t0), Admission::Admit);
        l.invite_started(src);
        assert_eq!(
            l.admit(src, true, t0),
            Admission::Reject(Refusal::SourcePending)
        );
        // Never below zero, whatever the order of events.
        for _ in 0..10 {
            l.invite_answered(src);
        }
        assert_eq!(l.pending_invites(src), 0);
        // Trusted peers have no pending limit (max_calls bounds them).
        let trunk = ip("10.0.0.1");
        for _ in 0..10 {
            assert_eq!(l.admit(trunk, true, t0), Admission::Admit);
            l.invite_started(trunk);
        }
    }

    #[test]
    fn the_table_is_bounded_and_forgets_idle_sources() {
        let mut l = limits(10, 5, 3);
        let t0 = Instant::now();
        for last in 1..=3u8 {
            assert_eq!(
                l.admit(IpAddr::from([192, 0, 2, last]), true, t0),
                Admission::Admit
            );
        }
        // A source with an INVITE pending is never forgotten (its count would be lost).
        l.invite_started(IpAddr::from([192, 0, 2, 1]));
        assert_eq!(
            l.admit(ip("192.0.2.9"), false, t0 + Duration::from_secs(1)),
            Admission::Reject(Refusal::SourceTableFull)
        );
        assert_eq!(l.len(), 3);
        // Quiet for IDLE_AFTER: the two idle ones go, the pending one stays.
        let later = t0 + IDLE_AFTER;
        assert_eq!(l.admit(ip("192.0.2.9"), false, later), Admission::Admit);
        assert_eq!(l.len(), 2);
        assert_eq!(l.pending_invites(IpAddr::from([192, 0, 2, 1])), 1);
    }

    #[test]
    fn in_dialog_requests_get_headroom_over_max_transactions() {
        let c = OverloadConfig {
            max_transactions: 100,
            ..OverloadConfig::default()
        };
        assert_eq!(c.transaction_cap(false), 100);
        assert_eq!(c.transaction_cap(true), 125);
    }
}
