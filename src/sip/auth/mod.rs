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
//!   answers a challenge, for outbound trunks.
//!
//! It deliberately does not own user storage (the caller passes a password
//! lookup), the choice between 401/`WWW-Authenticate` and
//! 407/`Proxy-Authenticate`, or the check that the digest `uri` names the
//! Request-URI: those belong to the transaction layer that calls it.
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

// ---------------------------------------------------------------------------
// Header parsing
// ---------------------------------------------------------------------------

/// RFC 3261 `token` characters (also the RFC 7230 tchar set, minus a few
/// that SIP does not allow).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Linear white space, including folded line ends in case the caller did not
/// unfold the header.
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Byte cursor over a header value. It only ever stops on ASCII bytes, so
/// every slice it produces is valid UTF-8; that is still checked rather than
/// assumed.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor {
            bytes: s.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_lws(&mut self) {
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> Result<&'a str, AuthError> {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        let slice = self.bytes.get(start..self.pos).unwrap_or_default();
        std::str::from_utf8(slice).map_err(|_| AuthError::malformed("invalid UTF-8"))
    }

    /// Reads a quoted-string body after its opening quote, undoing `\"` and
    /// `\\` (and any other quoted-pair) escapes.
    fn quoted_string(&mut self) -> Result<String, AuthError> {
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return Err(AuthError::malformed("unterminated quoted string")),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(escaped) => out.push(escaped),
                    None => return Err(AuthError::malformed("unterminated quoted string")),
                },
                Some(b) => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| AuthError::malformed("invalid UTF-8 in quoted string"))
    }
}

/// Splits off the scheme and checks it is `Digest`, leaving the cursor at the
/// parameters. Other schemes are reported before their parameters are looked
/// at, since they may not even use the auth-param syntax (e.g. token68).
fn digest_params(value: &str) -> Result<Vec<(String, String)>, AuthError> {
    let mut cur = Cursor::new(value);
    cur.skip_lws();
    let scheme = cur.take_while(is_token_byte)?;
    if scheme.is_empty() {
        return Err(AuthError::malformed("missing authentication scheme"));
    }
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::NotDigest {
            scheme: scheme.chars().take(MAX_SCHEME_ECHO).collect(),
        });
    }
    if cur.peek().is_some_and(|b| !is_lws(b)) {
        return Err(AuthError::malformed(
            "authentication scheme must be followed by white space",
        ));
    }
    parse_params(&mut cur)
}

/// Parses `name=value` pairs separated by commas (empty list elements are
/// tolerated, as RFC 7230 §7 asks). Names come back lower-cased; values are
/// unquoted. A repeated name is an error because the two copies could be
/// read differently by different components.
fn parse_params(cur: &mut Cursor<'_>) -> Result<Vec<(String, String)>, AuthError> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut seen = HashSet::new();
    loop {
        cur.skip_lws();
        match cur.peek() {
            None => break,
            Some(b',') => {
                cur.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = cur.take_while(is_token_byte)?.to_ascii_lowercase();
        if name.is_empty() {
            return Err(AuthError::malformed("expected a parameter name"));
        }
        cur.skip_lws();
        if cur.bump() != Some(b'=') {
            return Err(AuthError::malformed(format!(
                "parameter {name} has no value"
            )));
        }
        cur.skip_lws();
        let value = if cur.peek() == Some(b'"') {
            cur.pos += 1;
            cur.quoted_string()?
        } else {
            // Tokens, leniently: base64 nonces and the like may contain '/'
            // or '=' even though they should have been quoted.
            let v = cur.take_while(|b| !is_lws(b) && b != b',' && b != b'"')?;
            if v.is_empty() {
                return Err(AuthError::malformed(format!(
                    "parameter {name} has an empty value"
                )));
            }
            v.to_string()
        };
        if !seen.insert(name.clone()) {
            return Err(AuthError::malformed(format!("duplicate parameter {name}")));
        }
        cur.skip_lws();
        match cur.bump() {
            None | Some(b',') => {}
            Some(_) => {
                return Err(AuthError::malformed(format!(
                    "unexpected text after parameter {name}"
                )))
            }
        }
        params.push((name, value));
    }
    Ok(params)
}

/// The parameters of a `Digest` `Authorization` / `Proxy-Authorization`
/// value, unquoted but otherwise as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub opaque: Option<String>,
}

/// Parses `Digest username="..", realm="..", ...`. Unknown parameters are
/// ignored; missing required ones and duplicates are [`AuthError::Malformed`];
/// another scheme is [`AuthError::NotDigest`].
pub fn parse_credentials(value: &str) -> Result<DigestCredentials, AuthError> {
    let mut username = None;
    let mut realm = None;
    let mut nonce = None;
    let mut uri = None;
    let mut response = None;
    let mut algorithm = None;
    let mut cnonce = None;
    let mut qop = None;
    let mut nc = None;
    let mut opaque = None;
    for (name, value) in digest_params(value)? {
        let slot = match name.as_str() {
            "username" => &mut username,
            "realm" => &mut realm,
            "nonce" => &mut nonce,
            "uri" => &mut uri,
            "response" => &mut response,
            "algorithm" => &mut algorithm,
            "cnonce" => &mut cnonce,
            "qop" => &mut qop,
            "nc" => &mut nc,
            "opaque" => &mut opaque,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(DigestCredentials {
        username: username.ok_or_else(|| AuthError::missing("username"))?,
        realm: realm.ok_or_else(|| AuthError::missing("realm"))?,
        nonce: nonce.ok_or_else(|| AuthError::missing("nonce"))?,
        uri: uri.ok_or_else(|| AuthError::missing("uri"))?,
        response: response.ok_or_else(|| AuthError::missing("response"))?,
        algorithm,
        cnonce,
        qop,
        nc,
        opaque,
    })
}

/// A parsed `WWW-Authenticate` / `Proxy-Authenticate` Digest challenge, as
/// needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// The server offered `qop=auth`; when false we answer in the RFC 2069
    /// form without cnonce/nc.
    pub qop_auth: bool,
    pub opaque: Option<String>,
    pub stale: bool,
}

/// Parses one Digest challenge (client side). A header value carrying several
/// comma-separated challenges is not split; callers give one challenge per
/// header line, as SIP servers send them.
pub fn parse_challenge(value: &str) -> Result<Challenge, AuthError> {
    let mut realm = None;
    let mut nonce = None;
    let mut algorithm = Algorithm::Md5;
    let mut qop_auth = false;
    let mut opaque = None;
    let mut stale = false;
    for (name, value) in digest_params(value)? {
        match name.as_str() {
            "realm" => realm = Some(value),
            "nonce" => nonce = Some(value),
            "algorithm" => algorithm = value.parse()?,
            "qop" => {
                // qop-options is a quoted, comma-separated list.
                qop_auth = value.split(',').any(|q| {
                    q.trim_matches(|c: char| c.is_ascii_whitespace())
                        .eq_ignore_ascii_case("auth")
                });
                if !qop_auth {
                    return Err(AuthError::UnsupportedQop { qop: value });
                }
            }
            "opaque" => opaque = Some(value),
            "stale" => stale = value.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    Ok(Challenge {
        realm: realm.ok_or_else(|| AuthError::missing("realm"))?,
        nonce: nonce.ok_or_else(|| AuthError::missing("nonce"))?,
        algorithm,
        qop_auth,
        opaque,
        stale,
    })
}

/// Renders `s` as a quoted-string, escaping `"` and `\`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Client side: the `Authorization` / `Proxy-Authorization` value answering
/// `ch` for a request with this method and Request-URI. `nc` counts the
/// requests made with this nonce, starting at 1; the caller keeps it, and
/// supplies a fresh random `cnonce`.
pub fn authorization_for(
    ch: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let nc_hex = format!("{nc:08x}");
    let response = DigestInputs {
        algorithm: ch.algorithm,
        username,
        realm: &ch.realm,
        password,
        method,
        uri,
        nonce: &ch.nonce,
        qop_auth: ch.qop_auth.then_some((nc_hex.as_str(), cnonce)),
    }
    .response();
    let mut out = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\", algorithm={}",
        quote(username),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(uri),
        ch.algorithm,
    );
    if ch.qop_auth {
        out.push_str(&format!(
            ", qop=auth, nc={nc_hex}, cnonce={}",
            quote(cnonce)
        ));
    }
    if let Some(opaque) = &ch.opaque {
        out.push_str(&format!(", opaque={}", quote(opaque)));
    }
    out
}

// ---------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------

/// How a nonce has been used so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NonceUse {
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
struct NcTable {
    entries: HashMap<[u8; NONCE_LEN], NonceUse>,
    /// (expiry, nonce), ordered so the soonest-expiring entry is first.
    by_expiry: BTreeSet<(u64, [u8; NONCE_LEN])>,
    capacity: usize,
    /// Nonces expiring at or before this and absent from `entries` may have
    /// been forgotten, so they are refused as stale.
    forgotten_until: u64,
}

impl NcTable {
    fn new(capacity: usize) -> Self {
        NcTable {
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
            capacity: capacity.max(1),
            forgotten_until: 0,
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn forget_first(&mut self) {
        if let Some((expiry, key)) = self.by_expiry.pop_first() {
            self.entries.remove(&key);
            self.forgotten_until = self.forgotten_until.max(expiry);
        }
    }

    fn purge_expired(&mut self, now_secs: u64) {
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
    fn record(
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
        let creds = parse_credentials(authorization)?;
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
            username: creds.username,
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
