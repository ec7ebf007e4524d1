//! The login rate limiter: at most `limit` failed logins per minute for one user name,
//! and as many from one source IP, counted in a sliding one-minute window. Past it,
//! every login for that name or from that address is refused (429) until the oldest
//! failure in the window is a minute old, without looking at the password, so guessing
//! gets no faster by trying harder. Kept in memory: a restart forgets it, which costs an
//! attacker a restart they cannot cause.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Past this many keys, expired ones are swept out on the next failure.
const SWEEP_AT: usize = 10_000;

#[derive(Debug)]
pub struct LoginLimiter {
    limit: usize,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// `limit` failed attempts per minute (at least 1).
    pub fn new(limit: u32) -> LoginLimiter {
        LoginLimiter {
            limit: limit.max(1) as usize,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The keys one attempt counts against: the name and, when known, the address.
    pub fn keys(name: &str, ip: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![format!("name:{name}")];
        if let Some(ip) = ip {
            keys.push(format!("ip:{ip}"));
        }
        keys
    }

    /// `Err(wait)` when any key has used up its failures: try again after `wait`.
    pub fn check(&self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(times) = failures.get_mut(key) {
                expire(times, now);
                if times.len() >= self.limit {
                    // The window frees one place when its oldest failure expires.
                    let oldest = times[times.len() - self.limit];
                    wait = wait.max((oldest + WINDOW).saturating_duration_since(now));
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Counts a failed attempt against every key.
    pub fn failed(&self, keys: &[String], now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, times| {
                expire(times, now);
                !times.is_empty()
            });
        }
        for key in keys {
            let times = failures.entry(key.clone()).or_default();
            expire(times, now);
            times.push_back(now);
            // Only the last `limit` matter for the decision.
            while times.len() > self.limit {
                times.pop_front();
            }
        }
    }

    /// A successful login clears the name's failures (not the address's: one good
    /// password must not reset the count for an address that is guessing others').
    pub fn succeeded(&self, name: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&format!("name:{name}"));
    }
}

fn expire(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
    {
        times.pop_front();
    }
}

/// Whole seconds to wait, rounded up and at least 1 (for `Retry-After`).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_failures_per_key_in_a_sliding_minute() {
        let limiter = LoginLimiter::new(3);
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let alice = LoginLimiter::keys("alice", Some(ip));
        for i in 0..3 {
            assert_eq!(limiter.check(&alice, t0), Ok(()), "attempt {i}");
            limiter.failed(&alice, t0 + Duration::from_secs(i * 10));
        }
        let now = t0 + Duration::from_secs(25);
        assert_eq!(limiter.check(&alice, now), Err(Duration::from_secs(35)));
        // Another name from the same address is refused too, and the same name from
        // another address.
        assert!(limiter
            .check(&LoginLimiter::keys("bob", Some(ip)), now)
            .is_err());
        assert!(limiter
            .check(&LoginLimiter::keys("alice", None), now)
            .is_err());
        assert_eq!(limiter.check(&LoginLimiter::keys("bob", None), now), Ok(()));
        // A minute after the first failure, one more attempt is allowed.
        assert_eq!(limiter.check(&alice, t0 + WINDOW), Ok(()));
    }

    #[test]
    fn success_clears_the_name_but_not_the_address() {
        let limiter = LoginLimiter::new(1);
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        limiter.failed(&LoginLimiter::keys("alice", Some(ip)), t0);
        limiter.succeeded("alice");
        assert_eq!(
            limiter.check(&LoginLimiter::keys("alice", None), t0),
            Ok(())
        );
        assert!(limiter
            .check(&LoginLimiter::keys("alice", Some(ip)), t0)
            .is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(35_000)), 35);
        assert_eq!(retry_after_secs(Duration::from_millis(35_001)), 36);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
