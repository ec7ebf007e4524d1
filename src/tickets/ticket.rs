//! The ticket as the API serves it and the rules that change it: creating, updating
//! (with the status moves of [`TicketStatus::may_become`]), survey results and replies.
//! Pure functions over a [`Ticket`] and the clock passed in; the store loads and saves,
//! `service` puts the two together.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::Calendar;
use super::sla::{self, SlaConfig};
use super::{Complexity, LinkRole, SurveyCause, TicketKind, TicketStatus};
use crate::config::Config;

/// A ticket with its links (and, when read alone, its history).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Ticket {
    pub id: String,
    pub kind: TicketKind,
    pub complexity: Option<Complexity>,
    pub status: TicketStatus,
    pub customer: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub area: Option<String>,
    pub inquiry_type: Option<String>,
    pub waybill: Option<String>,
    pub content: Option<String>,
    /// The caller was checked to be the shipper (waybill details go only to them).
    pub shipper_verified: Option<bool>,
    pub assigned_team: Option<String>,
    pub assigned_agent: Option<String>,
    pub reply: Option<String>,
    pub created_by: String,
    /// Epoch milliseconds, like every time in the API.
    pub created_at: i64,
    pub updated_at: i64,
    pub reply_due_at: i64,
    pub promised_callback_at: Option<i64>,
    pub due_at: i64,
    pub replied_at: Option<i64>,
    pub closed_at: Option<i64>,
    /// Past its due time and still waiting for a reply (as of the read).
    pub overdue: bool,
    pub survey_score: Option<i64>,
    pub survey_cause: Option<SurveyCause>,
    pub survey_call_id: Option<String>,
    pub survey_at: Option<i64>,
    pub no_survey_reason: Option<String>,
    pub archived_at: Option<i64>,
    pub archive_path: Option<String>,
    pub archive_sha256: Option<String>,
    pub calls: Vec<TicketLink>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryEntry>>,
    /// Optimistic-locking version (not served).
    #[serde(skip)]
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TicketLink {
    pub call_id: String,
    pub role: LinkRole,
    pub linked_at: i64,
    pub linked_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct HistoryEntry {
    pub at: i64,
    pub author: String,
    pub action: String,
    pub note: String,
}

impl HistoryEntry {
    pub fn new(at: i64, author: &str, action: &str, note: impl Into<String>) -> HistoryEntry {
        HistoryEntry {
            at,
            author: author.to_owned(),
            action: action.to_owned(),
            note: note.into(),
        }
    }
}

/// A time in the API: epoch milliseconds or RFC 3339.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum TimeInput {
    Millis(i64),
    Text(String),
}

impl TimeInput {
    pub fn to_millis(&self, key: &str) -> Result<i64, String> {
        match self {
            TimeInput::Millis(ms) => Ok(*ms),
            TimeInput::Text(text) => DateTime::parse_from_rfc3339(text)
                .map(|t| t.timestamp_millis())
                .map_err(|_| {
                    format!("{key}: {text:?} is neither RFC 3339 (2026-11-23T15:00:00+08:00) nor epoch milliseconds")
                }),
        }
    }
}

/// `POST /api/tickets`: only `kind` is required; what is missing is listed when the
/// ticket is archived.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    pub kind: Option<String>,
    pub complexity: Option<String>,
    pub customer: Option<String>,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub area: Option<String>,
    pub inquiry_type: Option<String>,
    pub waybill: Option<String>,
    pub content: Option<String>,
    pub shipper_verified: Option<bool>,
    pub assigned_team: Option<String>,
    pub assigned_agent: Option<String>,
    pub promised_callback_at: Option<TimeInput>,
    /// A first handling note.
    pub note: Option<String>,
}

/// `PATCH /api/tickets/{id}`: every key optional. For the form fields, the promise and
/// the no-survey reason, `null` (or `""`) clears: absent and `null` are told apart.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketUpdate {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub complexity: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub customer: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub company: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub area: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub inquiry_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub waybill: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub content: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub shipper_verified: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub assigned_team: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub assigned_agent: Option<Option<String>>,
    pub reply: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub promised_callback_at: Option<Option<TimeInput>>,
    #[serde(default, deserialize_with = "present")]
    pub no_survey_reason: Option<Option<String>>,
    pub note: Option<String>,
}

/// A key that is present: `Some(None)` for `null`, `Some(Some(v))` for a value (absent
/// keys stay `None` through `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Why a change was refused: bad input (400) or a status move not allowed (409).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Invalid(Vec<String>),
    Conflict(String),
}

/// The ticket policy from the configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    pub calendar: Calendar,
    pub sla: SlaConfig,
    pub reopen_score: u8,
    pub areas: Vec<String>,
    pub inquiry_types: Vec<String>,
    pub id_prefix: String,
    pub dispatch: Vec<crate::config::DispatchRule>,
}

impl Rules {
    /// From a validated configuration.
    pub fn from_config(config: &Config) -> Rules {
        Rules {
            calendar: config
                .calendar
                .compile()
                .expect("the calendar was checked by Config::validate"),
            sla: config.sla.clone(),
            reopen_score: config.tickets.reopen_score,
            areas: config.tickets.areas.clone(),
            inquiry_types: config.tickets.inquiry_types.clone(),
            id_prefix: config.tickets.id_prefix.clone(),
            dispatch: config.tickets.dispatch.clone(),
        }
    }

    /// The team of the first dispatch rule the ticket matches.
    pub fn team_for(&self, ticket: &Ticket) -> Option<String> {
        let matches = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        self.dispatch
            .iter()
            .find(|rule| {
                matches(&rule.area, &ticket.area)
                    && matches(&rule.inquiry_type, &ticket.inquiry_type)
                    && rule
                        .kind
                        .as_deref()
                        .is_none_or(|k| k == ticket.kind.as_str())
                    && rule.content_contains.as_ref().is_none_or(|text| {
                        ticket
                            .content
                            .as_deref()
                            .is_some_and(|c| c.contains(text.as_str()))
                    })
            })
            .map(|rule| rule.team.clone())
    }

    fn reply_due(&self, kind: TicketKind, complexity: Option<Complexity>, from_ms: i64) -> i64 {
        sla::reply_due(&self.calendar, &self.sla, kind, complexity, utc(from_ms)).timestamp_millis()
    }

    /// The local date a ticket accepted at `now_ms` is numbered under.
    pub fn local_day(&self, now_ms: i64) -> chrono::NaiveDate {
        self.calendar.local_date(utc(now_ms))
    }

    fn check_lists(&self, area: Option<&str>, inquiry: Option<&str>, problems: &mut Vec<String>) {
        if let Some(area) = area {
            if !self.areas.iter().any(|a| a == area) {
                problems.push(format!(
                    "area: {area:?} is not one of the configured areas ({})",
                    self.areas.join(", ")
                ));
            }
        }
        if let Some(inquiry) = inquiry {
            if !self.inquiry_types.iter().any(|t| t == inquiry) {
                problems.push(format!(
                    "inquiry_type: {inquiry:?} is not one of the configured types ({})",
                    self.inquiry_types.join(", ")
                ));
            }
        }
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Trimmed; empty counts as absent.
fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn parse_kind(text: &str, problems: &mut Vec<String>) -> Option<TicketKind> {
    let kind = TicketKind::parse(text);
    if kind.is_none() {
        problems.push(format!(
            "kind: {text:?} is not one of consultation, query, problem, complaint, order"
        ));
    }
    kind
}

fn parse_complexity(text: &str, problems: &mut Vec<String>) -> Option<Complexity> {
    let complexity = Complexity::parse(text);
    if complexity.is_none() {
        problems.push(format!("complexity: {text:?} is not simple or complex"));
    }
    complexity
}

/// A new ticket (without its id, which the store gives out) from the API's input.
pub fn create(
    rules: &Rules,
    input: &NewTicket,
    author: &str,
    now_ms: i64,
) -> Result<(Ticket, Vec<HistoryEntry>), Refused> {
    let mut problems = Vec::new();
    let kind = match input.kind.as_deref() {
        Some(k) => parse_kind(k, &mut problems),
        None => {
            problems.push("kind: required (consultation, query, problem, complaint, order)".into());
            None
        }
    };
    let mut complexity = input
        .complexity
        .as_deref()
        .and_then(|c| parse_complexity(c, &mut problems));
    let area = text(&input.area);
    let inquiry_type = text(&input.inquiry_type);
    rules.check_lists(area.as_deref(), inquiry_type.as_deref(), &mut problems);
    let promised = match &input.promised_callback_at {
        Some(t) => t
            .to_millis("promised_callback_at")
            .map_err(|e| problems.push(e))
            .ok(),
        None => None,
    };
    let Some(kind) = kind.filter(|_| problems.is_empty()) else {
        return Err(Refused::Invalid(problems));
    };
    if kind == TicketKind::Complaint && complexity.is_none() {
        // The stricter clock when nobody said.
        complexity = Some(Complexity::Simple);
    }
    if kind != TicketKind::Complaint {
        complexity = None;
    }
    let reply_due_at = rules.reply_due(kind, complexity, now_ms);
    let assigned_team = text(&input.assigned_team);
    let assigned_agent = text(&input.assigned_agent);
    let status = if assigned_team.is_some() || assigned_agent.is_some() {
        TicketStatus::Dispatched
    } else {
        TicketStatus::Open
    };
    let mut ticket = Ticket {
        id: String::new(),
        kind,
        complexity,
        status,
        customer: text(&input.customer),
        company: text(&input.company),
        phone: text(&input.phone),
        area,
        inquiry_type,
        waybill: text(&input.waybill),
        content: text(&input.content),
        shipper_verified: input.shipper_verified,
        assigned_team,
        assigned_agent,
        reply: None,
        created_by: author.to_owned(),
        created_at: now_ms,
        updated_at: now_ms,
        reply_due_at,
        promised_callback_at: promised,
        due_at: due(reply_due_at, promised),
        replied_at: None,
        closed_at: None,
        overdue: false,
        survey_score: None,
        survey_cause: None,
        survey_call_id: None,
        survey_at: None,
        no_survey_reason: None,
        archived_at: None,
        archive_path: None,
        archive_sha256: None,
        calls: Vec::new(),
        history: None,
        version: 0,
    };
    let mut history = vec![HistoryEntry::new(
        now_ms,
        author,
        "created",
        format!("{} ticket accepted", kind.as_str()),
    )];
    if ticket.assigned_team.is_none() {
        if let Some(team) = rules.team_for(&ticket) {
            history.push(HistoryEntry::new(
                now_ms,
                "dispatch",
                "dispatch",
                format!("to team {team} by the dispatch rules"),
            ));
            ticket.assigned_team = Some(team);
            ticket.status = TicketStatus::Dispatched;
        }
    }
    if let Some(note) = text(&input.note) {
        history.push(HistoryEntry::new(now_ms, author, "note", note));
    }
    Ok((ticket, history))
}

fn due(reply_due_at: i64, promised: Option<i64>) -> i64 {
    sla::due_at(utc(reply_due_at), promised.map(utc)).timestamp_millis()
}

/// Refuses changes to an archived ticket: its bundle is the record.
fn not_archived(ticket: &Ticket) -> Result<(), Refused> {
    match ticket.archived_at {
        Some(_) => Err(Refused::Conflict(format!(
            "ticket {} is archived; it can no longer change",
            ticket.id
        ))),
        None => Ok(()),
    }
}

/// Moves the ticket to `to`, stamping reply and close times; reopening restarts the
/// reply clock from now.
fn move_status(
    rules: &Rules,
    ticket: &mut Ticket,
    to: TicketStatus,
    now_ms: i64,
    author: &str,
    why: &str,
) -> HistoryEntry {
    let from = ticket.status;
    ticket.status = to;
    match to {
        TicketStatus::Replied => ticket.replied_at = Some(now_ms),
        TicketStatus::Closed => ticket.closed_at = Some(now_ms),
        TicketStatus::Reopened if !from.awaits_reply() => {
            // Answered once already: a new reply is due from now.
            ticket.closed_at = None;
            ticket.reply_due_at = rules.reply_due(ticket.kind, ticket.complexity, now_ms);
            ticket.promised_callback_at = None;
            ticket.due_at = ticket.reply_due_at;
        }
        _ => {}
    }
    let mut note = format!("{} → {}", from.as_str(), to.as_str());
    if !why.is_empty() {
        note.push_str(": ");
        note.push_str(why);
    }
    HistoryEntry::new(now_ms, author, "status", note)
}

/// Applies a `PATCH`. Every problem is reported at once.
pub fn update(
    rules: &Rules,
    ticket: &mut Ticket,
    change: &TicketUpdate,
    author: &str,
    now_ms: i64,
) -> Result<Vec<HistoryEntry>, Refused> {
    not_archived(ticket)?;
    let mut problems = Vec::new();
    let status = change.status.as_deref().and_then(|s| {
        let status = TicketStatus::parse(s);
        if status.is_none() {
            problems.push(format!(
                "status: {s:?} is not one of open, dispatched, replied, closed, reopened"
            ));
        }
        status
    });
    let kind = change
        .kind
        .as_deref()
        .and_then(|k| parse_kind(k, &mut problems));
    let complexity = change
        .complexity
        .as_deref()
        .and_then(|c| parse_complexity(c, &mut problems));
    rules.check_lists(
        text(&change.area.clone().flatten()).as_deref(),
        text(&change.inquiry_type.clone().flatten()).as_deref(),
        &mut problems,
    );
    // None: not in the request; Some(None): withdrawn; Some(Some(ms)): a new promise.
    let promised = match &change.promised_callback_at {
        Some(Some(t)) => t
            .to_millis("promised_callback_at")
            .map_err(|e| problems.push(e))
            .ok()
            .map(Some),
        Some(None) => Some(None),
        None => None,
    };
    if !problems.is_empty() {
        return Err(Refused::Invalid(problems));
    }
    if let Some(to) = status {
        if to != ticket.status && !ticket.status.may_become(to) {
            return Err(Refused::Conflict(format!(
                "a {} ticket cannot become {}",
                ticket.status.as_str(),
                to.as_str()
            )));
        }
    }
    let mut history = Vec::new();
    let mut changed = Vec::new();
    macro_rules! set_text {
        ($field:ident) => {
            if let Some(value) = &change.$field {
                let value = text(value);
                if value != ticket.$field {
                    ticket.$field = value;
                    changed.push(stringify!($field));
                }
            }
        };
    }
    set_text!(customer);
    set_text!(company);
    set_text!(phone);
    set_text!(area);
    set_text!(inquiry_type);
    set_text!(waybill);
    set_text!(content);
    set_text!(assigned_team);
    set_text!(assigned_agent);
    set_text!(no_survey_reason);
    if let Some(verified) = change.shipper_verified {
        if ticket.shipper_verified != verified {
            ticket.shipper_verified = verified;
            changed.push("shipper_verified");
        }
    }
    let mut clock_changed = false;
    if let Some(kind) = kind.filter(|k| *k != ticket.kind) {
        ticket.kind = kind;
        changed.push("kind");
        clock_changed = true;
    }
    if let Some(complexity) = complexity.filter(|c| Some(*c) != ticket.complexity) {
        ticket.complexity = Some(complexity);
        changed.push("complexity");
        clock_changed = true;
    }
    if ticket.kind == TicketKind::Complaint && ticket.complexity.is_none() {
        ticket.complexity = Some(Complexity::Simple);
    } else if ticket.kind != TicketKind::Complaint {
        ticket.complexity = None;
    }
    if clock_changed {
        ticket.reply_due_at = rules.reply_due(ticket.kind, ticket.complexity, ticket.created_at);
    }
    if let Some(promised) = promised.filter(|p| *p != ticket.promised_callback_at) {
        ticket.promised_callback_at = promised;
        changed.push("promised_callback_at");
        clock_changed = true;
    }
    if clock_changed {
        ticket.due_at = due(ticket.reply_due_at, ticket.promised_callback_at);
    }
    if !changed.is_empty() {
        history.push(HistoryEntry::new(
            now_ms,
            author,
            "updated",
            format!("changed {}", changed.join(", ")),
        ));
    }
    if let Some(reply) = text(&change.reply) {
        if ticket.reply.as_deref() != Some(&reply) {
            ticket.reply = Some(reply.clone());
            history.push(HistoryEntry::new(now_ms, author, "reply", reply));
        }
    }
    // Implied moves: assigning dispatches an open ticket; a reply answers it.
    let implied = if change.reply.is_some() && ticket.status.awaits_reply() {
        Some(TicketStatus::Replied)
    } else if (matches!(change.assigned_team, Some(Some(_)))
        || matches!(change.assigned_agent, Some(Some(_))))
        && matches!(ticket.status, TicketStatus::Open | TicketStatus::Reopened)
    {
        Some(TicketStatus::Dispatched)
    } else {
        None
    };
    for to in [implied, status].into_iter().flatten() {
        if to != ticket.status && ticket.status.may_become(to) {
            let why = if Some(to) == status {
                ""
            } else {
                "implied by the change"
            };
            history.push(move_status(rules, ticket, to, now_ms, author, why));
        }
    }
    if let Some(note) = text(&change.note) {
        history.push(HistoryEntry::new(now_ms, author, "note", note));
    }
    if !history.is_empty() {
        ticket.updated_at = now_ms;
    }
    Ok(history)
}

/// A survey result for the ticket: from its reply call (`call_id`) or taken by other
/// means. A score at or below the threshold reopens the ticket, unless the customer's
/// own doing caused it.
pub fn record_survey(
    rules: &Rules,
    ticket: &mut Ticket,
    score: i64,
    cause: Option<SurveyCause>,
    call_id: Option<&str>,
    author: &str,
    now_ms: i64,
) -> Result<Vec<HistoryEntry>, Refused> {
    not_archived(ticket)?;
    if !(1..=5).contains(&score) {
        return Err(Refused::Invalid(vec![format!("score: {score} is not 1-5")]));
    }
    if ticket.survey_score == Some(score)
        && call_id.is_some()
        && ticket.survey_call_id.as_deref() == call_id
    {
        return Ok(Vec::new()); // the same result again
    }
    ticket.survey_score = Some(score);
    ticket.survey_cause = cause;
    ticket.survey_call_id = call_id.map(str::to_owned);
    ticket.survey_at = Some(now_ms);
    ticket.updated_at = now_ms;
    let source = match call_id {
        Some(call) => format!("from call {call}"),
        None => "taken by other means".to_owned(),
    };
    let cause_note = cause
        .map(|c| format!(", cause {}", c.as_str()))
        .unwrap_or_default();
    let mut history = vec![HistoryEntry::new(
        now_ms,
        author,
        "survey",
        format!("satisfaction {score} {source}{cause_note}"),
    )];
    // A dissatisfied customer reopens the order until satisfied (seeds 000), whatever
    // the status; a ticket still waiting for its reply keeps its due time.
    let low = score <= i64::from(rules.reopen_score);
    if low && cause != Some(SurveyCause::Customer) && ticket.status != TicketStatus::Reopened {
        history.push(move_status(
            rules,
            ticket,
            TicketStatus::Reopened,
            now_ms,
            author,
            &format!(
                "customer dissatisfied (score {score} ≤ {})",
                rules.reopen_score
            ),
        ));
    }
    Ok(history)
}

/// A reply call reached the customer: the ticket is replied (if it was waiting).
pub fn reply_call_answered(
    rules: &Rules,
    ticket: &mut Ticket,
    call_id: &str,
    now_ms: i64,
) -> Vec<HistoryEntry> {
    if ticket.archived_at.is_some() || !ticket.status.awaits_reply() {
        return Vec::new();
    }
    ticket.updated_at = now_ms;
    vec![move_status(
        rules,
        ticket,
        TicketStatus::Replied,
        now_ms,
        "system",
        &format!("reply call {call_id} answered"),
    )]
}

/// Whether the ticket is overdue at `now_ms`.
pub fn is_overdue(ticket: &Ticket, now_ms: i64) -> bool {
    ticket.status.awaits_reply() && ticket.due_at < now_ms
}

/// What a ticket lacks before it can be archived (fields only; the archive adds the
/// recordings and the survey).
pub fn missing_fields(ticket: &Ticket) -> Vec<String> {
    let mut missing = Vec::new();
    let fields: [(&str, &Option<String>); 5] = [
        ("customer", &ticket.customer),
        ("phone", &ticket.phone),
        ("area", &ticket.area),
        ("inquiry_type", &ticket.inquiry_type),
        ("content", &ticket.content),
    ];
    for (name, value) in fields {
        if value.is_none() {
            missing.push(format!("field {name} is empty"));
        }
    }
    if matches!(ticket.kind, TicketKind::Query | TicketKind::Problem) && ticket.waybill.is_none() {
        missing.push(format!(
            "field waybill is empty (required for a {} ticket)",
            ticket.kind.as_str()
        ));
    }
    missing
}

/// A link's role from the API (`inbound` when not given).
pub fn parse_role(role: Option<&str>) -> Result<LinkRole, String> {
    match role {
        None => Ok(LinkRole::Inbound),
        Some(r) => LinkRole::parse(r)
            .ok_or_else(|| format!("role: {r:?} is not one of inbound, work-contact, reply")),
    }
}

#[cfg(test)]
#[path = "ticket_tests.rs"]
mod tests;
