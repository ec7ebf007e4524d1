//! The lockout rules with explicit time: windows, expiry, known sources, caps.

use super::*;

const POLICY: LockoutPolicy = LockoutPolicy {
    max_failures: 3,
    window: Duration::from_secs(60),
    lockout: Duration::from_secs(600),
};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_source_is_locked_at_the_nth_failure_within_the_window() {
    let lockouts = Lockouts::new(POLICY);
    let t0 = Instant::now();
    let attacker = ip("192.0.2.7");
    // Each guess is for another user name, so only the source count can lock.
    assert_eq!(lockouts.failed(attacker, "1001", t0), vec![]);
    assert_eq!(lockouts.check(attacker, "1002", t0 + secs(1)), Ok(()));
    assert_eq!(lockouts.failed(attacker, "1002", t0 + secs(1)), vec![]);
    assert_eq!(
        lockouts.failed(attacker, "1003", t0 + secs(2)),
        vec![LockKind::Source]
    );
    // Locked: any user name from it is refused unchecked; another source is not.
    let now = t0 + secs(3);
    assert_eq!(lockouts.check(attacker, "9999", now), Err(LockKind::Source));
    assert_eq!(lockouts.check(ip("192.0.2.8"), "9999", now), Ok(()));
    let list = lockouts.list(now, UNIX_EPOCH + secs(1_000));
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].kind, LockKind::Source);
    assert_eq!(list[0].key, "192.0.2.7");
    assert_eq!(list[0].failures, 3);
    assert_eq!(list[0].refused, 1);
    // Locked at t0+2 for 600 s; seen at t0+3 as wall time 1000 s: ends at 1599 s.
    assert_eq!(list[0].locked_until_ms, 1_599_000);
    assert_eq!(lockouts.active(now), (1, 0));
}

#[test]
fn failures_spread_wider_than_the_window_never_lock() {
    let lockouts = Lockouts::new(POLICY);
    let t0 = Instant::now();
    let source = ip("192.0.2.9");
    for i in 0..10u64 {
        // 31 s apart: at most two failures are ever inside one 60 s window.
        let now = t0 + secs(i * 31);
        assert_eq!(lockouts.failed(source, &format!("u{i}"), now), vec![]);
        assert_eq!(lockouts.check(source, "u", now), Ok(()));
    }
    assert!(lockouts.list(t0 + secs(400), SystemTime::now()).is_empty());
}

#[test]
fn a_lock_ends_after_the_lockout_and_counting_starts_again() {
    let lockouts = Lockouts::new(POLICY);
    let t0 = Instant::now();
    let source = ip("198.51.100.1");
    for i in 0..3 {
        lockouts.failed(source, "1001", t0 + secs(i));
    }
    assert_eq!(
        lockouts.check(source, "1001", t0 + secs(601)),
        Err(LockKind::Source)
    );
    let after = t0 + secs(2 + 600);
    assert_eq!(lockouts.check(source, "1001", after), Ok(()));
    assert!(lockouts.list(after, SystemTime::now()).is_empty());
    assert_eq!(lockouts.active(after), (0, 0));
    // Forgotten with the lock: it takes the full count again to lock.
    assert_eq!(lockouts.failed(source, "a", after), vec![]);
    assert_eq!(lockouts.failed(source, "b", after), vec![]);
    assert_eq!(lockouts.failed(source, "c", after), vec![LockKind::Source]);
}

#[test]
fn a_user_name_is_locked_against_every_source_but_its_known_ones() {
    let lockouts = Lockouts::new(POLICY);
    let t0 = Instant::now();
    let phone = ip("10.0.0.5");
    lockouts.succeeded(phone, "1001", t0);
    // Three attackers, one guess each: no source lock, but the user is locked.
    assert_eq!(lockouts.failed(ip("192.0.2.1"), "1001", t0), vec![]);
    assert_eq!(lockouts.failed(ip("192.0.2.2"), "1001", t0), vec![]);
    assert_eq!(
        lockouts.failed(ip("192.0.2.3"), "1001", t0),
        vec![LockKind::User]
    );
    let now = t0 + secs(5);
    assert_eq!(
        lockouts.check(ip("192.0.2.4"), "1001", now),
        Err(LockKind::User)
    );
    assert_eq!(lockouts.check(ip("192.0.2.4"), "1002", now), Ok(()));
    // The agent's own phone still gets its credentials checked.
    assert_eq!(lockouts.check(phone, "1001", now), Ok(()));
    // Unknown names lock the same way (a lock tells nothing about existence).
    for i in 0..3 {
        lockouts.failed(ip(&format!("203.0.113.{i}")), "no-such-user", now);
    }
    assert_eq!(
        lockouts.check(ip("203.0.113.99"), "no-such-user", now),
        Err(LockKind::User)
    );
}

#[test]
fn a_known_source_is_exempt_only_for_a_while() {
    let lockouts = Lockouts::new(LockoutPolicy {
        lockout: KNOWN_SOURCE_TTL * 2,
        ..POLICY
    });
    let t0 = Instant::now();
    let phone = ip("10.0.0.5");
    lockouts.succeeded(phone, "1001", t0);
    for i in 0..3 {
        lockouts.failed(ip(&format!("192.0.2.{i}")), "1001", t0);
    }
    assert_eq!(lockouts.check(phone, "1001", t0 + secs(60)), Ok(()));
    assert_eq!(
        lockouts.check(phone, "1001", t0 + KNOWN_SOURCE_TTL + secs(1)),
        Err(LockKind::User)
    );
}

#[test]
fn a_success_does_not_reset_the_source_count() {
    let lockouts = Lockouts::new(POLICY);
    let t0 = Instant::now();
    let attacker = ip("192.0.2.50");
    lockouts.failed(attacker, "1001", t0);
    lockouts.failed(attacker, "1002", t0);
    // The attacker knows its own account's password and logs in with it.
    lockouts.succeeded(attacker, "2000", t0);
    assert_eq!(
        lockouts.failed(attacker, "1003", t0),
        vec![LockKind::Source],
        "the third failure still locks"
    );
}

#[test]
fn lifting_ends_a_lock_and_its_count() {
    let lockouts = Lockouts::new(POLICY);
    let t0 = Instant::now();
    let source = ip("192.0.2.20");
    for user in ["a", "b", "c"] {
        lockouts.failed(source, user, t0);
    }
    for user in ["x", "x", "x"] {
        lockouts.failed(ip("192.0.2.21"), user, t0);
    }
    let wall = SystemTime::now();
    assert_eq!(lockouts.lift(LockKind::Source, "not an ip", t0, wall), None);
    assert_eq!(lockouts.lift(LockKind::User, "a", t0, wall), None);
    let lifted = lockouts
        .lift(LockKind::Source, "192.0.2.20", t0, wall)
        .expect("locked");
    assert_eq!(
        (lifted.kind, lifted.key.as_str()),
        (LockKind::Source, "192.0.2.20")
    );
    assert_eq!(lockouts.check(source, "a", t0), Ok(()));
    assert_eq!(
        lockouts.lift(LockKind::Source, "192.0.2.20", t0, wall),
        None
    );
    assert!(lockouts.lift(LockKind::User, "x", t0, wall).is_some());
    assert_eq!(lockouts.check(ip("192.0.2.99"), "x", t0), Ok(()));
    assert_eq!(lockouts.active(t0), (1, 0), "192.0.2.21 is still locked");
}

#[test]
fn tables_are_capped_and_locked_keys_outlive_the_rest() {
    let lockouts = Lockouts::with_capacity(POLICY, 4);
    let t0 = Instant::now();
    let locked = ip("192.0.2.1");
    for user in ["a", "b", "c"] {
        lockouts.failed(locked, user, t0);
    }
    // A flood of one failure each from many sources and names.
    for i in 0..100u64 {
        let now = t0 + Duration::from_millis(i);
        lockouts.failed(
            ip(&format!("198.51.100.{}", i % 250)),
            &format!("n{i}"),
            now,
        );
    }
    let now = t0 + secs(1);
    {
        let state = lockouts.state();
        assert!(
            state.sources.entries.len() <= 4,
            "{:?}",
            state.sources.entries.len()
        );
        assert!(
            state.users.entries.len() <= 4,
            "{:?}",
            state.users.entries.len()
        );
    }
    assert_eq!(
        lockouts.check(locked, "z", now),
        Err(LockKind::Source),
        "eviction takes unlocked keys first"
    );
    // The most recent keys are kept: two more failures lock the last flood source.
    let last = ip("198.51.100.99");
    lockouts.failed(last, "m1", now);
    assert_eq!(lockouts.failed(last, "m2", now), vec![LockKind::Source]);
}

#[test]
fn known_sources_are_capped() {
    let lockouts = Lockouts::with_capacity(POLICY, 8);
    let t0 = Instant::now();
    for i in 0..50u64 {
        lockouts.succeeded(ip("10.0.0.1"), &format!("user{i}"), t0 + secs(i));
    }
    assert!(lockouts.state().known.len() <= 8);
    assert!(lockouts
        .state()
        .known
        .contains_key(&("user49".to_owned(), ip("10.0.0.1"))));
}

#[test]
fn long_user_names_are_cut_to_one_key() {
    let lockouts = Lockouts::new(POLICY);
    let t0 = Instant::now();
    let long = "é".repeat(100);
    for i in 0..3 {
        let mut name = long.clone();
        name.push_str(&i.to_string());
        lockouts.failed(ip(&format!("192.0.2.{i}")), &name, t0);
    }
    let list = lockouts.list(t0, SystemTime::now());
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].kind, LockKind::User);
    assert!(list[0].key.len() <= MAX_USER_KEY);
    assert!(list[0].key.chars().all(|c| c == 'é'));
}
