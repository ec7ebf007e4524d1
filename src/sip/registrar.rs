//! A registrar (RFC 3261 §10.3) with digest authentication (through an
//! [`Authenticator`], which also locks out brute force): agents' phones REGISTER their
//! contact; call control asks where an agent can be reached. Used by the daemon and by
//! the built-in echo UAS.

use super::authenticator::{Authenticator, Challenger};
use super::endpoint::{target_for_uri, Target};
use super::header::{parse_contact, parse_expires, HeaderName};
use super::message::{response_to, HeaderAccess, Request, Response};
use super::transport::Peer;
use super::uri::Uri;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One registered contact of a user.
#[derive(Debug, Clone)]
pub struct Binding {
    pub contact: Uri,
    pub expires_at: Instant,
    /// Where the REGISTER came from: used when the contact cannot be reached directly.
    pub source: Peer,
    pub registered_at: Instant,
}

impl Binding {
    /// Where to send requests for this binding: the contact's address when it names an
    /// IP, else the address the registration came from (a phone behind NAT).
    pub fn target(&self) -> Target {
        target_for_uri(&self.contact).unwrap_or(Target {
            protocol: self.source.protocol,
            addr: self.source.remote,
        })
    }
}

/// What a REGISTER did, for call control to react to (an agent coming and going).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Not authenticated (challenge, refusal or a bad request).
    Refused,
    /// Bindings of this user changed; `bound` says whether any remain.
    Updated { user: String, bound: bool },
}

pub struct Registrar {
    bindings: HashMap<String, Vec<Binding>>,
    max_expires: u32,
}

impl Registrar {
    pub fn new(max_expires: u32) -> Self {
        Registrar {
            bindings: HashMap::new(),
            max_expires,
        }
    }

    /// Answers a REGISTER, authenticated by `auth` (401 challenges, lockout).
    /// `password_for(user)` gives a user's password if it exists.
    pub fn handle(
        &mut self,
        req: &Request,
        peer: &Peer,
        auth: &Authenticator,
        password_for: impl Fn(&str) -> Option<String>,
    ) -> (Response, RegisterOutcome) {
        let tag = super::dialog::new_tag();
        let refuse = |resp| (resp, RegisterOutcome::Refused);
        let Some(to) = req.header_to() else {
            return refuse(response_to(
                req,
                400,
                Some("Bad Request: missing To"),
                Some(&tag),
            ));
        };
        let Some(aor_user) = to.uri.as_sip().and_then(|u| u.user_unescaped()) else {
            return refuse(response_to(
                req,
                400,
                Some("Bad Request: To must be a SIP or SIPS URI with a user"),
                Some(&tag),
            ));
        };
        let user = match auth.authenticate(
            req,
            peer.remote.ip(),
            Challenger::Registrar,
            &tag,
            password_for,
        ) {
            Ok(user) => user,
            Err(resp) => return refuse(resp),
        };
        if user != aor_user {
            return refuse(response_to(
                req,
                403,
                Some("Forbidden: not your address of record"),
                Some(&tag),
            ));
        }
        let default_expires = req.expires().unwrap_or(3600);
        let now = Instant::now();
        let max = self.max_expires;
        let bindings = self.bindings.entry(user.clone()).or_default();
        bindings.retain(|b| b.expires_at > now);
        for value in req.headers.get_all(&HeaderName::Contact) {
            match parse_contact(value) {
                Ok(None) => bindings.clear(),
                Ok(Some(contact)) => {
                    let expires = contact
                        .params
                        .value("expires")
                        .and_then(|e| parse_expires(e).ok())
                        .unwrap_or(default_expires)
                        .min(max);
                    bindings.retain(|b| b.contact != contact.uri);
                    if expires > 0 {
                        bindings.push(Binding {
                            contact: contact.uri,
                            expires_at: now + Duration::from_secs(u64::from(expires)),
                            source: peer.clone(),
                            registered_at: now,
                        });
                    }
                }
                Err(_) => {}
            }
        }
        let mut resp = response_to(req, 200, None, Some(&tag));
        for b in bindings.iter() {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            resp.headers.push(
                HeaderName::Contact,
                format!("<{}>;expires={left}", b.contact),
            );
        }
        let bound = !bindings.is_empty();
        (resp, RegisterOutcome::Updated { user, bound })
    }

    /// The most recent unexpired binding of `user`.
    pub fn binding(&self, user: &str) -> Option<&Binding> {
        let now = Instant::now();
        self.bindings
            .get(user)?
            .iter()
            .filter(|b| b.expires_at > now)
            .max_by_key(|b| b.registered_at)
    }
}
