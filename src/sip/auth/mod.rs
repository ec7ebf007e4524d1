//! SIP digest authentication (RFC 3261 §22, with the digest computations of
//! RFC 2617, RFC 7616 and RFC 8760).
//!
//! This module owns:
//!
//! * parsing `Authorization` / `Proxy-Authorization` credentials
//!   ([`parse_credentials`]) and `WWW-Authenticate` / `Proxy-Authenticate`
//!   challenges ([`parse_challenge`]);
//! * the server side ([`DigestServer`]): issuing stateless, HMAC-signed nonces
//!   that carry their own expiry, checking a client's digest response against
//!   them, and the bounded nonce-count table that rejects replays;
//! * the client side ([`authorization_for`]): the `Authorization` value that
//!   answers a challenge, for outbound trunks;
//! * the brute-force lockout tables ([`lockout::Lockouts`]).
//!
//! It deliberately does not own user storage (the caller passes a password
//! lookup), the choice between 401/`WWW-Authenticate` and
//! 407/`Proxy-Authenticate`, or the check that the digest `uri` names the
//! Request-URI: those belong to the layer that calls it
//! (`crate::sip::authenticator`).
//!
//! Everything here is synchronous. The only shared state is the replay table,
//! behind a `std::sync::Mutex`, so a [`DigestServer`] can be shared between
//! tasks behind an `Arc`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Digest;

type HmacSha256 = Hmac<sha2::Sha256>;

/// Bytes of the big-endian expiry (unix seconds) at the start of a nonce.
const EXPIRY_LEN: usize = 8;
/// Random bytes after the expiry, so two nonces issued in the same second differ.
const RANDOM_LEN: usize = 8;
/// The signed part of a nonce: expiry ‖ random.
const BODY_LEN: usize = EXPIRY_LEN + RANDOM_LEN;
/// Truncated HMAC-SHA256 tag; 128 bits is far beyond what an online forger can guess.
const TAG_LEN: usize = 16;
/// Raw nonce length; on the wire it is twice this in lower-case hex.
const NONCE_LEN: usize = BODY_LEN + TAG_LEN;

/// Upper bound on the replay table, so a flood of successful authentications
/// cannot grow memory without bound (about 100 bytes per entry).
const NC_TABLE_CAPACITY: usize = 65_536;

/// Password used when the user does not exist, so that an unknown user costs
/// the same hashing work as a known one and response timing does not reveal
/// which user names are valid.
const DUMMY_PASSWORD: &str = "threering:no-such-user:dummy-password";

/// Longest scheme name echoed back in [`AuthError::NotDigest`], so that a
/// hostile header cannot blow up log lines.
const MAX_SCHEME_ECHO: usize = 64;

/// Everything that can go wrong while parsing or verifying digest headers.
///
/// Callers map these to responses: `NotDigest`, `BadNonce`, `StaleNonce`
/// (with `stale=true`), `Replay`, `UnknownUser` and `WrongResponse` all lead to
/// a fresh challenge; `UnknownUser` must be answered exactly like
/// `WrongResponse` so user names cannot be enumerated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The header uses another authentication scheme (e.g. `Basic`, or the
    /// `NoOneKnowsThisScheme` of RFC 4475 §3.3.7).
    #[error("authentication scheme {scheme:?} is not Digest")]
    NotDigest { scheme: String },
    /// The header does not follow the auth-param grammar or lacks a
    /// required parameter.
    #[error("malformed digest header: {reason}")]
    Malformed { reason: String },
    /// The credentials are for a realm other than ours.
    #[error("credentials are for another realm")]
    WrongRealm,
    /// No such user. Same work as `WrongResponse`; answer it the same way.
    #[error("unknown user")]
    UnknownUser,
    /// The nonce is ours and the response was right, but the nonce expired
    /// (or its replay state was dropped): re-challenge with `stale=true`.
    #[error("nonce is stale")]
    StaleNonce,
    /// The nonce was not issued by this server (bad signature or shape).
    #[error("nonce was not issued by this server")]
    BadNonce,
    /// The nonce count was not above the last one accepted for this nonce
    /// (or a qop-less nonce was reused; `nc` is then 0).
    #[error("nonce count {nc:08x} was already used")]
    Replay { nc: u32 },
    /// The digest response does not match the password.
    #[error("digest response does not match")]
    WrongResponse,
    /// Only MD5 and SHA-256 (without `-sess`) are supported.
    #[error("unsupported digest algorithm {algorithm:?}")]
    UnsupportedAlgorithm { algorithm: String },
    /// Only `qop=auth` (or no qop at all) is supported.
    #[error("unsupported qop {qop:?}")]
    UnsupportedQop { qop: String },
}

impl AuthError {
    /// True when the caller should re-challenge with `stale=true`, telling the
    /// client its password was right and it only needs to retry with the new
    /// nonce (RFC 2617 §3.2.1), instead of prompting the user again.
    pub fn is_stale(&self) -> bool {
        matches!(self, AuthError::StaleNonce)
    }

    fn malformed(reason: impl Into<String>) -> Self {
        AuthError::Malformed {
            reason: reason.into(),
        }
    }

    fn missing(param: &str) -> Self {
        AuthError::malformed(format!("missing {param} parameter"))
    }
}

/// Digest hash algorithm. The `-sess` variants are not supported: they need
/// per-session state for no benefit to a SIP server that holds plaintext
/// passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// `MD5`, the RFC 2617 default and what most SIP phones still speak.
    #[default]
    Md5,
    /// `SHA-256` (RFC 7616, allowed for SIP by RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The canonical token as it appears in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex of H(parts joined by ':'), the building block of every
    /// digest computation.
    fn hex_digest(self, parts: &[&str]) -> String {
        match self {
            Algorithm::Md5 => joined_hex::<md5::Md5>(parts),
            Algorithm::Sha256 => joined_hex::<sha2::Sha256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = AuthError;

    /// Algorithm tokens are case-insensitive (RFC 7616 §3.3).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("MD5") {
            Ok(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Ok(Algorithm::Sha256)
        } else {
            Err(AuthError::UnsupportedAlgorithm {
                algorithm: s.to_string(),
            })
        }
    }
}

fn joined_hex<D: Digest>(parts: &[&str]) -> String {
    let mut hasher = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Compares two byte strings in time that depends only on their lengths, so a
/// forger cannot learn a response or a nonce tag byte by byte. Lengths are
/// public (fixed per algorithm), so leaking them is harmless.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the optimiser from turning the loop into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// Seconds since the Unix epoch; clocks before 1970 count as 0 rather than
/// panicking.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Everything that goes into one digest response.
struct DigestInputs<'a> {
    algorithm: Algorithm,
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nonce: &'a str,
    /// `(nc, cnonce)` when `qop=auth`; `None` for the RFC 2069 form.
    qop_auth: Option<(&'a str, &'a str)>,
}

impl DigestInputs<'_> {
    /// The expected `response` value (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1),
    /// in lower-case hex.
    fn response(&self) -> String {
        let alg = self.algorithm;
        let ha1 = alg.hex_digest(&[self.username, self.realm, self.password]);
        let ha2 = alg.hex_digest(&[self.method, self.uri]);
        match self.qop_auth {
            Some((nc, cnonce)) => alg.hex_digest(&[&ha1, self.nonce, nc, cnonce, "auth", &ha2]),
            None => alg.hex_digest(&[&ha1, self.nonce, &ha2]),
        }
    }
}

pub mod lockout;
mod replay;
mod wire;

use crate::sip::text::quote;
use replay::NcTable;
pub use wire::{
    authorization_for, parse_challenge, parse_credentials, Challenge, DigestCredentials,
};

// ---------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------

/// Successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub username: String,
    pub algorithm: Algorithm,
}

/// Server side of digest authentication for one realm.
///
/// Nonces are `hex(expiry ‖ random ‖ HMAC-SHA256(secret, expiry ‖ random)[..16])`,
/// so issuing one needs no state and any server sharing the secret can check
/// it; only the replay table is stateful. `Send + Sync`: share it behind an
/// `Arc`.
pub struct DigestServer {
    realm: String,
    /// HMAC keyed with the nonce secret, cloned for each use so the key
    /// schedule is computed once.
    mac: HmacSha256,
    nonce_ttl: Duration,
    nc_table: Mutex<NcTable>,
}

impl fmt::Debug for DigestServer {
    // Hand-written so the keyed MAC state never ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("nonce_ttl", &self.nonce_ttl)
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    /// `secret` signs nonces (use random bytes; rotating it invalidates
    /// outstanding nonces as `BadNonce`). Nonces are accepted for `nonce_ttl`
    /// (rounded up to whole seconds) after they are issued.
    pub fn new(realm: impl Into<String>, secret: [u8; 32], nonce_ttl: Duration) -> Self {
        Self::with_nc_capacity(realm, secret, nonce_ttl, NC_TABLE_CAPACITY)
    }

    fn with_nc_capacity(
        realm: impl Into<String>,
        secret: [u8; 32],
        nonce_ttl: Duration,
        capacity: usize,
    ) -> Self {
        // HMAC zero-pads keys shorter than the hash block (RFC 2104 §2), so
        // padding the 32-byte secret into a full block here is the same key;
        // doing it ourselves avoids the fallible variable-length constructor.
        let mut key = hmac::digest::Key::<HmacSha256>::default();
        for (dst, src) in key.iter_mut().zip(secret.iter()) {
            *dst = *src;
        }
        DigestServer {
            realm: realm.into(),
            mac: <HmacSha256 as Mac>::new(&key),
            nonce_ttl,
            nc_table: Mutex::new(NcTable::new(capacity)),
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Number of nonces currently tracked for replay protection (for metrics).
    pub fn tracked_nonces(&self) -> usize {
        self.table().len()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, NcTable> {
        // The table is consistent after every statement, so a panic elsewhere
        // while holding the lock leaves nothing to repair.
        self.nc_table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ttl_secs(&self) -> u64 {
        let ttl = self.nonce_ttl;
        ttl.as_secs()
            .saturating_add(u64::from(ttl.subsec_nanos() > 0))
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        for (dst, src) in tag.iter_mut().zip(full.iter()) {
            *dst = *src;
        }
        tag
    }

    fn issue_nonce(&self, now: SystemTime) -> String {
        let expiry = unix_secs(now).saturating_add(self.ttl_secs());
        let random: [u8; RANDOM_LEN] = rand::random();
        let mut raw = [0u8; NONCE_LEN];
        let (body, tag) = raw.split_at_mut(BODY_LEN);
        let (expiry_part, random_part) = body.split_at_mut(EXPIRY_LEN);
        expiry_part.copy_from_slice(&expiry.to_be_bytes());
        random_part.copy_from_slice(&random);
        tag.copy_from_slice(&self.tag(body));
        hex::encode(raw)
    }

    /// Checks a nonce's shape and signature, returning its raw bytes (the
    /// replay-table key) and expiry. Only the exact lower-case form we issue is
    /// accepted, so one nonce has one spelling.
    fn open_nonce(&self, nonce: &str) -> Result<([u8; NONCE_LEN], u64), AuthError> {
        let is_lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if nonce.len() != NONCE_LEN * 2 || !nonce.bytes().all(is_lower_hex) {
            return Err(AuthError::BadNonce);
        }
        let mut raw = [0u8; NONCE_LEN];
        hex::decode_to_slice(nonce, &mut raw).map_err(|_| AuthError::BadNonce)?;
        let (body, tag) = raw.split_at(BODY_LEN);
        if !ct_eq(&self.tag(body), tag) {
            return Err(AuthError::BadNonce);
        }
        let mut expiry = [0u8; EXPIRY_LEN];
        for (dst, src) in expiry.iter_mut().zip(body.iter()) {
            *dst = *src;
        }
        Ok((raw, u64::from_be_bytes(expiry)))
    }

    /// Value for a `WWW-Authenticate` / `Proxy-Authenticate` header with a
    /// fresh nonce. Always offers `qop="auth"`; `stale` tells a client whose
    /// nonce expired that it may retry without asking the user again.
    pub fn challenge(&self, algorithm: Algorithm, stale: bool, now: SystemTime) -> String {
        let mut out = format!(
            "Digest realm={}, nonce=\"{}\", algorithm={algorithm}, qop=\"auth\"",
            quote(&self.realm),
            self.issue_nonce(now),
        );
        if stale {
            out.push_str(", stale=true");
        }
        out
    }

    /// Verifies an `Authorization` / `Proxy-Authorization` value for a request
    /// with this method. `password_for(username)` returns the user's plaintext
    /// password if the user exists.
    ///
    /// The nonce's expiry is checked only after the response: RFC 2617 §3.2.1
    /// says `stale=true` means the password was right, so an expired nonce with
    /// a wrong response is `WrongResponse`, not `StaleNonce`. Only successful
    /// verifications are recorded for replay detection.
    pub fn verify(
        &self,
        method: &str,
        authorization: &str,
        password_for: impl Fn(&str) -> Option<String>,
        now: SystemTime,
    ) -> Result<Verified, AuthError> {
        self.verify_credentials(
            method,
            &parse_credentials(authorization)?,
            password_for,
            now,
        )
    }

    /// [`DigestServer::verify`] for credentials already parsed (by a caller that needed
    /// the user name first, e.g. to check a lockout).
    pub fn verify_credentials(
        &self,
        method: &str,
        creds: &DigestCredentials,
        password_for: impl Fn(&str) -> Option<String>,
        now: SystemTime,
    ) -> Result<Verified, AuthError> {
        let algorithm = match &creds.algorithm {
            Some(a) => a.parse()?,
            None => Algorithm::Md5,
        };
        let qop_auth = match &creds.qop {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc_hex = creds
                    .nc
                    .as_deref()
                    .ok_or_else(|| AuthError::missing("nc"))?;
                let cnonce = creds
                    .cnonce
                    .as_deref()
                    .ok_or_else(|| AuthError::missing("cnonce"))?;
                Some((nc_hex, cnonce, parse_nc(nc_hex)?))
            }
            Some(q) => return Err(AuthError::UnsupportedQop { qop: q.clone() }),
        };
        if creds.realm != self.realm {
            return Err(AuthError::WrongRealm);
        }
        let (key, expiry) = self.open_nonce(&creds.nonce)?;

        let password = password_for(&creds.username);
        let known_user = password.is_some();
        // black_box keeps the hashing from being skipped for unknown users.
        let expected = std::hint::black_box(
            DigestInputs {
                algorithm,
                username: &creds.username,
                realm: &self.realm,
                password: password.as_deref().unwrap_or(DUMMY_PASSWORD),
                method,
                uri: &creds.uri,
                nonce: &creds.nonce,
                qop_auth: qop_auth.map(|(nc_hex, cnonce, _)| (nc_hex, cnonce)),
            }
            .response(),
        );
        // RFC 7616 specifies lower-case hex; accept upper case from sloppy
        // clients rather than fail them for it.
        let matches = ct_eq(
            expected.as_bytes(),
            creds.response.to_ascii_lowercase().as_bytes(),
        );
        if !known_user {
            return Err(AuthError::UnknownUser);
        }
        if !matches {
            return Err(AuthError::WrongResponse);
        }
        let now_secs = unix_secs(now);
        if expiry <= now_secs {
            return Err(AuthError::StaleNonce);
        }
        self.table()
            .record(key, expiry, now_secs, qop_auth.map(|(_, _, nc)| nc))?;
        Ok(Verified {
            username: creds.username.clone(),
            algorithm,
        })
    }
}

/// Parses a nonce count: exactly eight hex digits (RFC 7616 §3.4), never 0.
fn parse_nc(nc: &str) -> Result<u32, AuthError> {
    if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::malformed("nc must be 8 hex digits"));
    }
    match u32::from_str_radix(nc, 16) {
        Ok(0) | Err(_) => Err(AuthError::malformed("nc must start at 00000001")),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests;
