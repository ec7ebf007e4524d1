//! Lockout against digest brute force: after `max_failures` wrong passwords within
//! `window` from one source address, or against one user name from any source, that
//! source (or user name) is locked for `lockout`. While locked, credentials from it are
//! refused without being checked, so guessing gets no faster by trying harder and the
//! right password is refused like any other.
//!
//! ```text
//!            failure                 failures in window == max_failures
//!  (absent) ─────────▶ Counting ───────────────────────────────────────▶ Locked
//!     ▲                 │  failures older than window drop out           │
//!     │                 ▼                                                │
//!     └──── evicted (table full, oldest first) ◀──── lockout elapsed or lifted by an admin
//! ```
//!
//! Unknown user names are counted and locked exactly like known ones, so a lockout says
//! nothing about which names exist. A user lock does not apply to a source that
//! authenticated as that user before (a "known source", remembered a day): an attacker
//! who locks an agent's name does not also lock that agent's phone out, while the
//! attacker's own source is locked by its own count. A success never clears a count:
//! an attacker who knows one password cannot reset its source's failures with it.
//!
//! Memory is bounded: each table holds at most `capacity` keys (stale ones are swept,
//! then the least recently seen unlocked one is evicted), user names are kept to
//! [`MAX_USER_KEY`] bytes. Time is passed in (`Instant`), so the rules are tested
//! without waiting. Kept in memory: a restart forgets it, which costs an attacker a
//! restart they cannot cause.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Keys per table (sources, users, known sources) before the oldest are evicted.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Longest user name kept as a key, in bytes; longer names are cut (on a character
/// boundary), so hostile names cannot grow memory.
pub const MAX_USER_KEY: usize = 64;

/// How long a source that authenticated as a user stays exempt from that user's lock.
pub const KNOWN_SOURCE_TTL: Duration = Duration::from_secs(24 * 3600);

/// When to lock, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures within `window` that lock the source or user (at least 1).
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

/// What a lockout is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockKind {
    /// One source IP address, whatever user names it tries.
    Source,
    /// One user name, from whatever source (except the user's known sources).
    User,
}

impl LockKind {
    /// `source` or `user`: the metric label and the API's `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockKind::Source => "source",
            LockKind::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<LockKind> {
        match text {
            "source" => Some(LockKind::Source),
            "user" => Some(LockKind::User),
            _ => None,
        }
    }
}

/// One lockout in force, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockout {
    pub kind: LockKind,
    /// The IP address or user name.
    pub key: String,
    /// Wrong passwords counted against the key while it was tracked.
    pub failures: u64,
    /// Requests with credentials refused unchecked since the lock began.
    pub refused: u64,
    /// When the lock ends, wall clock, milliseconds since the epoch.
    pub locked_until_ms: i64,
}

/// The lockout tables, shared by everything that checks SIP digest credentials (the
/// registrar and the INVITE challenge) and the admin API. `Send + Sync`.
pub struct Lockouts {
    policy: LockoutPolicy,
    capacity: usize,
    state: Mutex<State>,
}

impl std::fmt::Debug for Lockouts {
    // Hand-written: the tables may hold thousands of keys, which do not belong in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockouts")
            .field("policy", &self.policy)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    sources: Table<IpAddr>,
    users: Table<String>,
    /// (user, source) → until when the source is exempt from the user's lock.
    known: HashMap<(String, IpAddr), Instant>,
    /// The soonest end of any lock: nothing to expire before it.
    next_expiry: Option<Instant>,
}

#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Entry>,
}

#[derive(Debug, Default)]
struct Entry {
    /// Failures inside the window, oldest first (at most `max_failures` kept).
    recent: VecDeque<Instant>,
    /// Every failure counted for this key while tracked.
    failures: u64,
    lock: Option<Lock>,
    last_seen: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Lock {
    until: Instant,
    refused: u64,
}

impl Entry {
    fn locked(&self, now: Instant) -> bool {
        self.lock.is_some_and(|l| l.until > now)
    }

    /// Nothing left worth keeping: not locked and no failure inside the window.
    fn stale(&self, now: Instant, window: Duration) -> bool {
        !self.locked(now)
            && self
                .recent
                .back()
                .is_none_or(|&t| now.saturating_duration_since(t) >= window)
    }
}

impl<K: Eq + Hash + Clone> Table<K> {
    fn new() -> Self {
        Table {
            entries: HashMap::new(),
        }
    }

    fn locked_count(&self, now: Instant) -> usize {
        self.entries.values().filter(|e| e.locked(now)).count()
    }

    /// Makes room for one more key: stale entries go first, then the least recently
    /// seen unlocked one, and only when every key is locked the lock ending soonest.
    fn make_room(&mut self, capacity: usize, now: Instant, window: Duration) {
        if self.entries.len() < capacity {
            return;
        }
        self.entries.retain(|_, e| !e.stale(now, window));
        if self.entries.len() < capacity {
            return;
        }
        let victim = self
            .entries
            .iter()
            .min_by_key(|(_, e)| (e.locked(now), e.lock.map(|l| l.until), e.last_seen))
            .map(|(k, _)| k.clone());
        if let Some(key) = victim {
            self.entries.remove(&key);
        }
    }

    /// Counts a failure; `Some(until)` when it starts a lock.
    fn fail(
        &mut self,
        key: K,
        policy: &LockoutPolicy,
        capacity: usize,
        now: Instant,
    ) -> Option<Instant> {
        if !self.entries.contains_key(&key) {
            self.make_room(capacity, now, policy.window);
        }
        let entry = self.entries.entry(key).or_default();
        entry.last_seen = Some(now);
        entry.failures += 1;
        if entry.locked(now) {
            // Only unchecked refusals happen while locked; nothing to count.
            return None;
        }
        entry.lock = None;
        while entry
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= policy.window)
        {
            entry.recent.pop_front();
        }
        entry.recent.push_back(now);
        let max = policy.max_failures.max(1) as usize;
        if entry.recent.len() < max {
            return None;
        }
        entry.recent.clear();
        let until = now + policy.lockout;
        entry.lock = Some(Lock { until, refused: 0 });
        Some(until)
    }

    /// Counts a refusal against a locked key; false when the key is not locked.
    fn refuse<Q>(&mut self, key: &Q, now: Instant) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        match self.entries.get_mut(key) {
            Some(entry) if entry.locked(now) => {
                entry.last_seen = Some(now);
                if let Some(lock) = &mut entry.lock {
                    lock.refused += 1;
                }
                true
            }
            _ => false,
        }
    }

    /// Ends the locks that ran out; the key is forgotten with them.
    fn expire(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| e.lock.is_none_or(|l| l.until > now));
    }

    fn soonest_end(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| e.lock.map(|l| l.until))
            .min()
    }
}

/// `name` cut to [`MAX_USER_KEY`] bytes on a character boundary.
fn user_key(name: &str) -> &str {
    if name.len() <= MAX_USER_KEY {
        return name;
    }
    let mut end = MAX_USER_KEY;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Milliseconds since the epoch of `until`, seen from (`now`, `wall_now`).
fn wall_ms(until: Instant, now: Instant, wall_now: SystemTime) -> i64 {
    let wall = wall_now + until.saturating_duration_since(now);
    wall.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Lockouts {
    pub fn new(policy: LockoutPolicy) -> Lockouts {
        Lockouts::with_capacity(policy, DEFAULT_CAPACITY)
    }

    /// With `capacity` keys per table (at least 1).
    pub fn with_capacity(policy: LockoutPolicy, capacity: usize) -> Lockouts {
        Lockouts {
            policy,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                sources: Table::new(),
                users: Table::new(),
                known: HashMap::new(),
                next_expiry: None,
            }),
        }
    }

    pub fn policy(&self) -> LockoutPolicy {
        self.policy
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every statement leaves the tables consistent, so a panic elsewhere while
        // holding the lock leaves nothing to repair.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// May credentials for `user` from `source` be checked now? `Err(kind)` when the
    /// source, or the user (from a source not known for it), is locked; the refusal is
    /// counted on the lock.
    pub fn check(&self, source: IpAddr, user: &str, now: Instant) -> Result<(), LockKind> {
        let mut state = self.state();
        state.expire(now);
        if state.sources.refuse(&source, now) {
            return Err(LockKind::Source);
        }
        let user = user_key(user);
        let known = state
            .known
            .get(&(user.to_owned(), source))
            .is_some_and(|&until| until > now);
        if !known && state.users.refuse(user, now) {
            return Err(LockKind::User);
        }
        Ok(())
    }

    /// Counts a wrong password (or unknown user) for `user` from `source`. Returns the
    /// locks it started (each also logged once and counted in the metrics).
    pub fn failed(&self, source: IpAddr, user: &str, now: Instant) -> Vec<LockKind> {
        crate::metrics::sip_auth_failed();
        let policy = self.policy;
        let mut state = self.state();
        state.expire(now);
        let user = user_key(user);
        let mut started = Vec::new();
        if let Some(until) = state.sources.fail(source, &policy, self.capacity, now) {
            started.push((LockKind::Source, source.to_string(), until));
        }
        if let Some(until) = state
            .users
            .fail(user.to_owned(), &policy, self.capacity, now)
        {
            started.push((LockKind::User, user.to_owned(), until));
        }
        for (kind, key, until) in &started {
            state.next_expiry = Some(state.next_expiry.map_or(*until, |t| t.min(*until)));
            crate::metrics::sip_auth_lockout(kind.as_str());
            tracing::warn!(
                kind = kind.as_str(),
                key = %key,
                failures = policy.max_failures,
                window_s = policy.window.as_secs(),
                lockout_s = policy.lockout.as_secs(),
                "SIP digest authentication locked out after repeated failures"
            );
        }
        if !started.is_empty() {
            state.publish(now);
        }
        started.into_iter().map(|(kind, _, _)| kind).collect()
    }

    /// `user` authenticated from `source`: the source becomes known for the user (exempt
    /// from the user's lock). No count is cleared.
    pub fn succeeded(&self, source: IpAddr, user: &str, now: Instant) {
        let mut state = self.state();
        let key = (user_key(user).to_owned(), source);
        if !state.known.contains_key(&key) && state.known.len() >= self.capacity {
            state.known.retain(|_, until| *until > now);
            if state.known.len() >= self.capacity {
                let oldest = state
                    .known
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    state.known.remove(&oldest);
                }
            }
        }
        state.known.insert(key, now + KNOWN_SOURCE_TTL);
    }

    /// Ends the locks that ran out (cheap when none did); keeps the gauges right.
    pub fn expire(&self, now: Instant) {
        self.state().expire(now);
    }

    /// Every lock in force, sources first, the latest ending first within a kind.
    pub fn list(&self, now: Instant, wall_now: SystemTime) -> Vec<Lockout> {
        let mut state = self.state();
        state.expire(now);
        let mut out: Vec<(Lockout, Instant)> = Vec::new();
        for (key, entry) in &state.sources.entries {
            if let Some(view) = view(LockKind::Source, key.to_string(), entry, now, wall_now) {
                out.push(view);
            }
        }
        for (key, entry) in &state.users.entries {
            if let Some(view) = view(LockKind::User, key.clone(), entry, now, wall_now) {
                out.push(view);
            }
        }
        out.sort_by(|(a, a_until), (b, b_until)| {
            a.kind
                .cmp(&b.kind)
                .then(b_until.cmp(a_until))
                .then(a.key.cmp(&b.key))
        });
        out.into_iter().map(|(lockout, _)| lockout).collect()
    }

    /// Lifts the lock on `key` (an IP address for sources, a user name for users) and
    /// forgets its count. None when no such lock is in force.
    pub fn lift(
        &self,
        kind: LockKind,
        key: &str,
        now: Instant,
        wall_now: SystemTime,
    ) -> Option<Lockout> {
        let mut state = self.state();
        state.expire(now);
        let lifted = match kind {
            LockKind::Source => {
                let ip: IpAddr = key.parse().ok()?;
                let entry = state.sources.entries.get(&ip)?;
                let lifted = view(kind, ip.to_string(), entry, now, wall_now)?;
                state.sources.entries.remove(&ip);
                lifted
            }
            LockKind::User => {
                let key = user_key(key);
                let entry = state.users.entries.get(key)?;
                let lifted = view(kind, key.to_owned(), entry, now, wall_now)?;
                state.users.entries.remove(key);
                lifted
            }
        };
        state.publish(now);
        Some(lifted.0)
    }

    /// Locks in force now, per kind (what the gauge shows).
    pub fn active(&self, now: Instant) -> (usize, usize) {
        let state = self.state();
        (
            state.sources.locked_count(now),
            state.users.locked_count(now),
        )
    }
}

fn view(
    kind: LockKind,
    key: String,
    entry: &Entry,
    now: Instant,
    wall_now: SystemTime,
) -> Option<(Lockout, Instant)> {
    let lock = entry.lock.filter(|l| l.until > now)?;
    Some((
        Lockout {
            kind,
            key,
            failures: entry.failures,
            refused: lock.refused,
            locked_until_ms: wall_ms(lock.until, now, wall_now),
        },
        lock.until,
    ))
}

impl State {
    fn expire(&mut self, now: Instant) {
        if self.next_expiry.is_none_or(|t| t > now) {
            return;
        }
        self.sources.expire(now);
        self.users.expire(now);
        self.publish(now);
    }

    /// Recomputes the soonest lock end and sets the active-lockouts gauges.
    fn publish(&mut self, now: Instant) {
        self.next_expiry = match (self.sources.soonest_end(), self.users.soonest_end()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        crate::metrics::sip_auth_lockouts_active(
            LockKind::Source.as_str(),
            self.sources.locked_count(now),
        );
        crate::metrics::sip_auth_lockouts_active(
            LockKind::User.as_str(),
            self.users.locked_count(now),
        );
    }
}

#[cfg(test)]
mod tests;
