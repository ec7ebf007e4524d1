//! The audit log: one row per thing done to confidential data or to access itself.
//!
//! | action | target | detail |
//! |---|---|---|
//! | `recording.play` | call id | the `Range` asked for, if any |
//! | `login.ok`, `login.failed`, `logout` | user name (as typed, for a failure) | how (form, api) |
//! | `ticket.create`, `ticket.update`, `ticket.note`, `ticket.link`, `ticket.survey`, `ticket.callback`, `ticket.archive` | ticket id | what changed |
//! | `user.create`, `user.update` | user name | role, changed fields (never a password) |
//! | `token.create`, `token.revoke` | user name | token id and label |
//!
//! Entries are only ever added; `seq` numbers them in the order written.

use std::net::IpAddr;

use serde::Serialize;

use crate::config::Role;

/// Entries listed when the filter names no limit.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most entries one list returns.
pub const MAX_LIMIT: u32 = 1000;

/// An entry to write (the time is taken when it is written).
#[derive(Debug, Clone)]
pub struct NewAudit {
    /// The user or token name; for `login.failed` the name that was tried.
    pub actor: String,
    pub role: Option<Role>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub source_ip: Option<IpAddr>,
}

impl NewAudit {
    pub fn new(actor: &str, role: Option<Role>, action: &str) -> NewAudit {
        NewAudit {
            actor: actor.to_owned(),
            role,
            action: action.to_owned(),
            target: None,
            detail: None,
            source_ip: None,
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> NewAudit {
        self.target = Some(target.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> NewAudit {
        self.detail = Some(detail.into());
        self
    }

    pub fn source_ip(mut self, ip: Option<IpAddr>) -> NewAudit {
        self.source_ip = ip;
        self
    }
}

/// One stored entry, as `GET /api/audit` serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub seq: i64,
    /// Epoch ms.
    pub at: i64,
    pub actor: String,
    pub role: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub source_ip: Option<String>,
}

/// Which entries to list; every field narrows, `None` leaves open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// An action (`recording.play`), or a family ending in `.*` (`ticket.*`).
    pub action: Option<String>,
    pub target: Option<String>,
    /// At or after this epoch ms.
    pub from: Option<i64>,
    /// Before this epoch ms.
    pub to: Option<i64>,
    /// Default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`].
    pub limit: Option<u32>,
}
