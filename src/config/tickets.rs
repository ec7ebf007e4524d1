//! `[tickets]`, `[archive]`, `[callbacks]` and `[[trunks]]`: tickets and the calls back.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;
use crate::sip::transport::Protocol;

/// `[tickets]`: what the form offers and when a survey reopens a ticket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsConfig {
    /// Business areas (业务区域) a ticket is dispatched by.
    pub areas: Vec<String>,
    /// Inquiry types (咨询类型).
    pub inquiry_types: Vec<String>,
    /// Ticket ids are `<id_prefix>-YYYYMMDD-NNNN`.
    pub id_prefix: String,
    /// A reply call's survey score at or below this reopens the ticket.
    pub reopen_score: u8,
    /// Dispatch rules (按业务区域、咨询类型和内容下发工单): a new ticket with no team goes
    /// to the team of the first rule it matches.
    pub dispatch: Vec<DispatchRule>,
}

/// `[[tickets.dispatch]]`: every key given must match (content by substring).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchRule {
    #[serde(default)]
    pub area: Option<String>,
    #[serde(default)]
    pub inquiry_type: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// Matches when the ticket's content contains this text.
    #[serde(default)]
    pub content_contains: Option<String>,
    pub team: String,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        TicketsConfig {
            areas: strings(&["华南", "华东", "华北", "西南", "东北"]),
            inquiry_types: strings(&[
                "下单",
                "查单",
                "收送范围",
                "运输费用",
                "运送时效",
                "禁寄物品",
                "办理流程",
                "办理须知",
                "其他",
            ]),
            id_prefix: "T".into(),
            reopen_score: 2,
            dispatch: Vec::new(),
        }
    }
}

/// `[archive]`: where ticket bundles go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Root of `YYYY/MM/DD/<kind>/<ticket id>.tar`.
    pub root: PathBuf,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            root: PathBuf::from("archive"),
        }
    }
}

/// `[callbacks]`: which numbers callbacks may dial and how many a day, so a stolen
/// agent account cannot run up international calls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// A number must start with one of these (empty: any).
    pub allowed_prefixes: Vec<String>,
    /// ...and with none of these (checked first).
    pub denied_prefixes: Vec<String>,
    /// Longest number, in characters.
    pub max_digits: usize,
    /// Callbacks one agent may start per local day (0 = no limit).
    pub per_agent_per_day: u32,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        CallbacksConfig {
            // Mobile numbers (1…) and domestic numbers with an area code (0…); no
            // international (00…, +…) unless configured.
            allowed_prefixes: vec!["1".into(), "0".into()],
            denied_prefixes: vec!["00".into(), "+".into()],
            max_digits: 13,
            per_agent_per_day: 100,
        }
    }
}

impl CallbacksConfig {
    /// Why `number` may not be dialled, if it may not.
    pub fn refuse(&self, number: &str) -> Option<String> {
        if number.len() > self.max_digits {
            return Some(format!(
                "{number:?} is longer than [callbacks] max_digits ({})",
                self.max_digits
            ));
        }
        if let Some(p) = self
            .denied_prefixes
            .iter()
            .find(|p| number.starts_with(p.as_str()))
        {
            return Some(format!(
                "{number:?} starts with {p:?}, which [callbacks] denied_prefixes refuses"
            ));
        }
        let allowed = self.allowed_prefixes.is_empty()
            || self
                .allowed_prefixes
                .iter()
                .any(|p| number.starts_with(p.as_str()));
        (!allowed).then(|| {
            format!(
                "{number:?} starts with none of [callbacks] allowed_prefixes ({})",
                self.allowed_prefixes.join(", ")
            )
        })
    }
}

/// `[[trunks]]`: a SIP trunk (PBX, carrier, Kamailio) that outbound calls go through.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// `IP:PORT`, or an IP for port 5060 (5061 over TLS); host names are not resolved.
    pub address: String,
    /// udp | tcp | tls (TLS verifies the trunk's certificate for its IP address against
    /// the system roots and `[sip] tls_ca`).
    #[serde(default = "default_trunk_transport")]
    pub transport: String,
    /// Digest credentials, when the trunk challenges our INVITEs.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// The number customers see (From user); the queue's first number otherwise.
    #[serde(default)]
    pub caller_id: Option<String>,
}

fn default_trunk_transport() -> String {
    "udp".into()
}

impl TrunkConfig {
    /// `address` as IP:PORT; a bare IP means the transport's default port (5060, or
    /// 5061 for TLS).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let default_port = self.protocol().map_or(5060, Protocol::default_port);
        let address = self.address.trim();
        address
            .parse()
            .ok()
            .or_else(|| {
                address
                    .parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, default_port))
            })
            .or_else(|| {
                let bare = address.strip_prefix('[')?.strip_suffix(']')?;
                bare.parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, default_port))
            })
    }

    /// The protocol `transport` names, if it is one.
    pub fn protocol(&self) -> Option<Protocol> {
        Protocol::from_name(&self.transport)
    }

    /// Where the trunk is, when `address` and `transport` are valid.
    pub fn target(&self) -> Option<(SocketAddr, Protocol)> {
        Some((self.socket_addr()?, self.protocol()?))
    }
}
