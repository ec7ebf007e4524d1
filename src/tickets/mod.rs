//! Tickets (work orders, the seeds' `业务咨询单`): their kinds, statuses and links to
//! calls, and the SLA clocks that give each its due time (`sla`, on the working
//! calendar of `calendar`). The store keeps them (`store::tickets`); the API serves
//! them (`http::tickets`); the archive bundles them (`archive`).

pub mod archiving;
pub mod calendar;
pub mod service;
pub mod sla;
pub mod ticket;

pub use service::{TicketError, Tickets};
pub use ticket::{HistoryEntry, Ticket, TicketLink};

use serde::{Deserialize, Serialize};

/// What a ticket is about (SERVICE-RULES.md "Tickets").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketKind {
    /// 咨询: a question that could not be answered at once.
    Consultation,
    /// 查询: waybill, customer information, exceptions.
    Query,
    /// 问题件: a problem shipment.
    Problem,
    /// 投诉: a complaint (simple or complex).
    Complaint,
    /// 接单: order-taking.
    Order,
}

impl TicketKind {
    pub const ALL: [TicketKind; 5] = [
        TicketKind::Consultation,
        TicketKind::Query,
        TicketKind::Problem,
        TicketKind::Complaint,
        TicketKind::Order,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Consultation => "consultation",
            TicketKind::Query => "query",
            TicketKind::Problem => "problem",
            TicketKind::Complaint => "complaint",
            TicketKind::Order => "order",
        }
    }

    pub fn parse(text: &str) -> Option<TicketKind> {
        TicketKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// How hard a complaint is: 2 h for a simple one, 24 h for a complex one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Complexity {
    Simple,
    Complex,
}

impl Complexity {
    pub fn as_str(self) -> &'static str {
        match self {
            Complexity::Simple => "simple",
            Complexity::Complex => "complex",
        }
    }

    pub fn parse(text: &str) -> Option<Complexity> {
        match text {
            "simple" => Some(Complexity::Simple),
            "complex" => Some(Complexity::Complex),
            _ => None,
        }
    }
}

/// Where a ticket is in its life:
///
/// ```text
///  open ─▶ dispatched ─▶ replied ─▶ closed
///    │          │           │  ▲       │
///    └──────────┴───────────┘  │       │  a low survey score, or by hand
///                reopened ◀────┴───────┘
/// ```
/// A low survey score reopens a ticket from any status (an open or dispatched one keeps
/// its due time); by hand only replied and closed tickets are reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    Open,
    Dispatched,
    Replied,
    Closed,
    Reopened,
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 5] = [
        TicketStatus::Open,
        TicketStatus::Dispatched,
        TicketStatus::Replied,
        TicketStatus::Closed,
        TicketStatus::Reopened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::Dispatched => "dispatched",
            TicketStatus::Replied => "replied",
            TicketStatus::Closed => "closed",
            TicketStatus::Reopened => "reopened",
        }
    }

    pub fn parse(text: &str) -> Option<TicketStatus> {
        TicketStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Still waiting for an answer to the customer: its due time counts.
    pub fn awaits_reply(self) -> bool {
        matches!(
            self,
            TicketStatus::Open | TicketStatus::Dispatched | TicketStatus::Reopened
        )
    }

    /// Whether a ticket may go from `self` to `to`.
    pub fn may_become(self, to: TicketStatus) -> bool {
        use TicketStatus::*;
        match (self, to) {
            (a, b) if a == b => false,
            (Open | Reopened, Dispatched | Replied | Closed) => true,
            (Dispatched, Replied | Closed) => true,
            (Replied, Closed | Reopened) => true,
            (Closed, Reopened) => true,
            _ => false,
        }
    }
}

/// Why a call is linked to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LinkRole {
    /// The customer's call that raised the ticket.
    Inbound,
    /// A call made while working on it (a branch, a courier, another team).
    WorkContact,
    /// The call that answered the customer.
    Reply,
}

impl LinkRole {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkRole::Inbound => "inbound",
            LinkRole::WorkContact => "work-contact",
            LinkRole::Reply => "reply",
        }
    }

    pub fn parse(text: &str) -> Option<LinkRole> {
        match text {
            "inbound" => Some(LinkRole::Inbound),
            "work-contact" | "work_contact" => Some(LinkRole::WorkContact),
            "reply" => Some(LinkRole::Reply),
            _ => None,
        }
    }
}

/// Who caused a customer's dissatisfaction (the seeds separate the company's fault,
/// which reopens the order, from the customer's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SurveyCause {
    Customer,
    Company,
}

impl SurveyCause {
    pub fn as_str(self) -> &'static str {
        match self {
            SurveyCause::Customer => "customer",
            SurveyCause::Company => "company",
        }
    }

    pub fn parse(text: &str) -> Option<SurveyCause> {
        match text {
            "customer" => Some(SurveyCause::Customer),
            "company" => Some(SurveyCause::Company),
            _ => None,
        }
    }
}

/// A ticket id: `<prefix>-YYYYMMDD-NNNN`, the date of acceptance and its number that
/// day (more than 9999 a day widen the number).
pub fn format_id(prefix: &str, date: chrono::NaiveDate, number: u32) -> String {
    format!("{prefix}-{}-{number:04}", date.format("%Y%m%d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in TicketKind::ALL {
            assert_eq!(TicketKind::parse(kind.as_str()), Some(kind));
        }
        for status in TicketStatus::ALL {
            assert_eq!(TicketStatus::parse(status.as_str()), Some(status));
        }
        for role in [LinkRole::Inbound, LinkRole::WorkContact, LinkRole::Reply] {
            assert_eq!(LinkRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(TicketKind::parse("Complaint"), None);
    }

    #[test]
    fn status_moves() {
        use TicketStatus::*;
        assert!(Open.may_become(Dispatched));
        assert!(Dispatched.may_become(Replied));
        assert!(Replied.may_become(Closed));
        assert!(Closed.may_become(Reopened));
        assert!(Reopened.may_become(Dispatched));
        assert!(!Closed.may_become(Open));
        assert!(!Open.may_become(Reopened));
        assert!(!Replied.may_become(Replied));
    }

    #[test]
    fn ids_are_readable() {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(format_id("T", date, 1), "T-20261123-0001");
        assert_eq!(format_id("T", date, 12345), "T-20261123-12345");
    }
}
