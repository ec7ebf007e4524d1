//! Replay protection: which signed nonces have been used, and with which nonce count.

use super::*;

/// How a nonce has been used so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NonceUse {
    /// Used with `qop=auth`; the highest nonce count accepted.
    Counted(u32),
    /// Used once without qop (RFC 2069 form): no further use allowed.
    Once,
}

/// Replay state for nonces that have been used successfully.
///
/// Nonces are stateless, so only used ones need an entry. The table is
/// bounded: expired entries are dropped (their nonces fail the expiry check
/// anyway), and when full the entry expiring soonest is evicted. Forgetting a
/// live entry would let its nonce be replayed, so the table remembers the
/// latest expiry it has ever dropped and treats any unknown nonce expiring no
/// later than that as stale: the client just re-authenticates with a fresh
/// nonce, without prompting the user.
#[derive(Debug)]
pub(super) struct NcTable {
    pub(super) entries: HashMap<[u8; NONCE_LEN], NonceUse>,
    /// (expiry, nonce), ordered so the soonest-expiring entry is first.
    pub(super) by_expiry: BTreeSet<(u64, [u8; NONCE_LEN])>,
    pub(super) capacity: usize,
    /// Nonces expiring at or before this and absent from `entries` may have
    /// been forgotten, so they are refused as stale.
    pub(super) forgotten_until: u64,
}

impl NcTable {
    pub(super) fn new(capacity: usize) -> Self {
        NcTable {
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
            capacity: capacity.max(1),
            forgotten_until: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn forget_first(&mut self) {
        if let Some((expiry, key)) = self.by_expiry.pop_first() {
            self.entries.remove(&key);
            self.forgotten_until = self.forgotten_until.max(expiry);
        }
    }

    pub(super) fn purge_expired(&mut self, now_secs: u64) {
        while self
            .by_expiry
            .first()
            .is_some_and(|&(expiry, _)| expiry <= now_secs)
        {
            self.forget_first();
        }
    }

    /// Accepts this use of the nonce (recording it) or reports a replay.
    /// `nc` is `Some` for `qop=auth`, `None` for the qop-less form.
    pub(super) fn record(
        &mut self,
        key: [u8; NONCE_LEN],
        expiry: u64,
        now_secs: u64,
        nc: Option<u32>,
    ) -> Result<(), AuthError> {
        self.purge_expired(now_secs);
        if let Some(used) = self.entries.get_mut(&key) {
            return match (nc, *used) {
                (Some(nc), NonceUse::Counted(last)) if nc > last => {
                    *used = NonceUse::Counted(nc);
                    Ok(())
                }
                (Some(nc), _) => Err(AuthError::Replay { nc }),
                (None, _) => Err(AuthError::Replay { nc: 0 }),
            };
        }
        if expiry <= self.forgotten_until {
            return Err(AuthError::StaleNonce);
        }
        if self.entries.len() >= self.capacity {
            // Full. If this nonce expires no later than every tracked one, it
            // is itself the soonest-expiring: refuse it rather than forget a
            // nonce that outlives it.
            if self
                .by_expiry
                .first()
                .is_some_and(|&(soonest, _)| soonest >= expiry)
            {
                return Err(AuthError::StaleNonce);
            }
            while self.entries.len() >= self.capacity && !self.by_expiry.is_empty() {
                self.forget_first();
            }
        }
        self.entries.insert(
            key,
            match nc {
                Some(nc) => NonceUse::Counted(nc),
                None => NonceUse::Once,
            },
        );
        self.by_expiry.insert((expiry, key));
        Ok(())
    }
}
