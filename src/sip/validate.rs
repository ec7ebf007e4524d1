//! Checks on a parsed request that decide the response before any application logic
//! runs (RFC 3261 §8.2.1–8.2.3 and the RFC 4475 §3.3 cases): required headers present
//! and single, a method this element handles, a URI scheme it knows, no unsupported
//! `Require`, a body type it understands, an `Accept` it can satisfy.

use super::header::HeaderName;
use super::message::{HeaderAccess, Method, Request};

/// A refusal: the status, a reason phrase naming the problem, and headers the response
/// must carry (Allow, Unsupported, Accept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(HeaderName, String)>,
}

impl Rejection {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Rejection {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// What this element supports, for the checks.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Methods answered; others get 405 (standard methods) or 501 (extensions).
    pub allowed: Vec<Method>,
    /// Option tags understood in Require.
    pub supported: Vec<String>,
    /// Body types accepted in requests that carry a session description.
    pub accepted_bodies: Vec<(String, String)>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            allowed: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Options,
                Method::Register,
                Method::Info,
                Method::Update,
                Method::Refer,
            ],
            supported: Vec::new(),
            accepted_bodies: vec![("application".into(), "sdp".into())],
        }
    }
}

impl Capabilities {
    /// The body types accepted, as an Accept header value.
    pub fn accept_header(&self) -> String {
        self.accepted_bodies
            .iter()
            .map(|(k, s)| format!("{k}/{s}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn allow_header(&self) -> String {
        self.allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs the checks in RFC 3261 order. ACK is never answered, so callers skip it on error.
pub fn check_request(req: &Request, caps: &Capabilities) -> Result<(), Rejection> {
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        if req.headers.count(&name) == 0 {
            return Err(Rejection::new(400, format!("Bad Request: missing {name}")));
        }
    }
    for h in &req.headers.0 {
        if h.name.is_single() && req.headers.count(&h.name) > 1 {
            return Err(Rejection::new(
                400,
                format!("Bad Request: multiple {} headers", h.name),
            ));
        }
    }
    if !caps.allowed.contains(&req.method) {
        let status = if req.method.is_standard() { 405 } else { 501 };
        let reason = if status == 405 {
            "Method Not Allowed"
        } else {
            "Not Implemented"
        };
        return Err(Rejection::new(status, reason).with(HeaderName::Allow, caps.allow_header()));
    }
    match req.uri.scheme() {
        "sip" | "sips" | "tel" => {}
        other => {
            return Err(Rejection::new(
                416,
                format!("Unsupported URI Scheme: {other}"),
            ));
        }
    }
    if req.method != Method::Ack && req.method != Method::Cancel {
        let unsupported: Vec<String> = req
            .tokens(&HeaderName::Require)
            .into_iter()
            .filter(|tag| !caps.supported.iter().any(|s| s.eq_ignore_ascii_case(tag)))
            .collect();
        if !unsupported.is_empty() {
            return Err(Rejection::new(420, "Bad Extension")
                .with(HeaderName::Unsupported, unsupported.join(", ")));
        }
    }
    let carries_session = matches!(
        req.method,
        Method::Invite | Method::Ack | Method::Update | Method::Prack
    );
    if carries_session && !req.body.is_empty() {
        let accepted = req
            .content_type()
            .is_some_and(|ct| caps.accepted_bodies.iter().any(|(k, s)| ct.is(k, s)));
        if !accepted {
            let accept = caps.accept_header();
            return Err(
                Rejection::new(415, "Unsupported Media Type").with(HeaderName::Accept, accept)
            );
        }
    }
    if req.method == Method::Invite {
        let ranges: Vec<_> = req
            .headers
            .get_all(&HeaderName::Accept)
            .filter_map(|v| super::header::MediaType::parse(v).ok())
            .collect();
        let has_accept = req.headers.count(&HeaderName::Accept) > 0;
        if has_accept
            && !ranges
                .iter()
                .any(|r| caps.accepted_bodies.iter().any(|(k, s)| r.admits(k, s)))
        {
            let accept = caps.accept_header();
            return Err(Rejection::new(406, "Not Acceptable").with(HeaderName::Accept, accept));
        }
    }
    Ok(())
}
