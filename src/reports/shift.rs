//! The shift handover report (`做好交接班工作,使接班人员了解当天的咨询信息、焦点问题、
//! 突发事件`): what the next shift needs to know about `[from, to)`.
//!
//! * **Calls** (`calls`): the figures of [`Stats`] over the shift's inbound calls
//!   (offered, answered, abandoned, three-ring compliance, service level, …), per local
//!   hour (`by_hour`), the rings histogram (`rings`), and the calls answered over the
//!   ring limit (`over_limit_calls`).
//! * **Tickets**: those opened in the shift (`opened_tickets`, with counts by kind and
//!   by inquiry type, the day's hot issues), the complaints among them (`complaints`),
//!   and, as of the report's making (`generated_at`), the tickets still waiting for a
//!   reply (`tickets.open`, by kind) and the overdue ones (`overdue_tickets`).
//! * **Low survey scores** (at or below `[tickets] reopen_score`): calls of the shift,
//!   inbound and callbacks (`low_surveys.calls`), and tickets whose survey result came
//!   in during the shift (`low_surveys.tickets`).
//! * **Incidents**: calls whose recording was interrupted (the daemon died while
//!   recording) and calls that failed (`failed`, `not_reached`), both directions.
//!
//! Rendered as JSON (the [`ShiftReport`] itself), a self-contained HTML page
//! ([`render_html`]: no script, inline CSS fit for printing, the charts inline as SVG),
//! plain text for the terminal ([`render_text`]), and each list as a CSV table
//! ([`ShiftReport::table`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::charts::{self, CompliancePoint};
use super::csv::{Cell, Table};
use super::stats::{in_scope, Aggregator, Group, RingCounts, Stats};
use super::{esc, num_text, Range, ReportSettings, RulesView};
use crate::call::record::{CallOutcome, CallRecord};
use crate::store::{Store, StoreError, TicketFilter};
use crate::tickets::{Ticket, TicketKind};

/// Most tickets one list of the report reads.
const TICKET_LIST_LIMIT: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShiftReport {
    pub from: String,
    pub to: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// When the report was made: open and overdue tickets are as of then.
    pub generated_at: String,
    pub rules: RulesView,
    /// The shift's inbound calls, all together.
    pub calls: Stats,
    /// Per local hour of day, `"00"` … `"23"`.
    pub by_hour: Vec<Stats>,
    /// Answered calls by rings.
    pub rings: RingCounts,
    pub over_limit_calls: Vec<CallItem>,
    pub tickets: TicketCounts,
    pub opened_tickets: Vec<TicketItem>,
    pub complaints: Vec<TicketItem>,
    pub overdue_tickets: Vec<TicketItem>,
    pub low_surveys: LowSurveys,
    pub incidents: Incidents,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketCounts {
    /// Opened in the shift.
    pub opened: u64,
    pub opened_by_kind: BTreeMap<String, u64>,
    /// The shift's hot issues (焦点问题): opened tickets by inquiry type.
    pub opened_by_inquiry_type: BTreeMap<String, u64>,
    pub complaints_opened: u64,
    /// Waiting for a reply (open, dispatched, reopened) as of `generated_at`.
    pub open: u64,
    pub open_by_kind: BTreeMap<String, u64>,
    /// Past due and waiting for a reply as of `generated_at`.
    pub overdue: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LowSurveys {
    pub calls: Vec<CallItem>,
    pub tickets: Vec<TicketItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incidents {
    pub interrupted_recordings: Vec<CallItem>,
    /// Outcome `failed` or `not_reached`.
    pub failed_calls: Vec<CallItem>,
}

/// A call as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallItem {
    pub id: String,
    pub started_at: String,
    pub direction: &'static str,
    pub outcome: &'static str,
    pub queue: Option<String>,
    pub agent: Option<String>,
    pub caller: String,
    pub callee: String,
    pub rings: Option<i64>,
    pub caller_ring_ms: Option<i64>,
    pub survey_score: Option<i64>,
    pub tickets: Vec<String>,
}

impl CallItem {
    fn new(call: &CallRecord, settings: &ReportSettings) -> CallItem {
        CallItem {
            id: call.id.clone(),
            started_at: settings.rfc3339(call.started_at),
            direction: call.direction.as_str(),
            outcome: call.outcome.as_str(),
            queue: call.queue.clone(),
            agent: call.agent.clone(),
            caller: call.caller.clone(),
            callee: call.callee.clone(),
            rings: call.rings,
            caller_ring_ms: call.caller_ring_ms,
            survey_score: call.survey_score,
            tickets: call.tickets.clone(),
        }
    }
}

/// A ticket as the report lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TicketItem {
    pub id: String,
    pub kind: &'static str,
    pub complexity: Option<&'static str>,
    pub status: &'static str,
    pub customer: Option<String>,
    pub area: Option<String>,
    pub inquiry_type: Option<String>,
    pub content: Option<String>,
    pub assigned_team: Option<String>,
    pub assigned_agent: Option<String>,
    pub created_at: String,
    pub due_at: String,
    pub overdue: bool,
    pub survey_score: Option<i64>,
    pub survey_cause: Option<&'static str>,
    pub survey_call_id: Option<String>,
    pub survey_at: Option<String>,
}

impl TicketItem {
    fn new(t: &Ticket, settings: &ReportSettings) -> TicketItem {
        TicketItem {
            id: t.id.clone(),
            kind: t.kind.as_str(),
            complexity: t.complexity.map(|c| c.as_str()),
            status: t.status.as_str(),
            customer: t.customer.clone(),
            area: t.area.clone(),
            inquiry_type: t.inquiry_type.clone(),
            content: t.content.clone(),
            assigned_team: t.assigned_team.clone(),
            assigned_agent: t.assigned_agent.clone(),
            created_at: settings.rfc3339(t.created_at),
            due_at: settings.rfc3339(t.due_at),
            overdue: t.overdue,
            survey_score: t.survey_score,
            survey_cause: t.survey_cause.map(|c| c.as_str()),
            survey_call_id: t.survey_call_id.clone(),
            survey_at: t.survey_at.map(|at| settings.rfc3339(at)),
        }
    }
}

/// Reads the shift `[range.from, range.to)` from the store; open and overdue tickets as
/// of `now_ms`.
pub async fn build(
    store: &Store,
    settings: &ReportSettings,
    range: Range,
    now_ms: i64,
) -> Result<ShiftReport, StoreError> {
    let mut hours = Aggregator::new(settings, Group::Hour, range);
    let mut rings = RingCounts::new(settings, None, None);
    let mut over_limit_calls = Vec::new();
    let mut low_calls = Vec::new();
    let mut interrupted = Vec::new();
    let mut failed = Vec::new();
    store
        .for_each_call_between(range.from, range.to, |call| {
            hours.add(&call);
            rings.add(&call);
            let item = || CallItem::new(&call, settings);
            if in_scope(&call)
                && call.outcome == CallOutcome::Answered
                && call.over_limit == Some(true)
            {
                over_limit_calls.push(item());
            }
            if call.survey_score.is_some_and(|s| settings.is_low_score(s)) {
                low_calls.push(item());
            }
            if call.recording.interrupted {
                interrupted.push(item());
            }
            if matches!(call.outcome, CallOutcome::Failed | CallOutcome::NotReached) {
                failed.push(item());
            }
        })
        .await?;
    let (by_hour, calls) = hours.finish();

    let mut opened = store
        .list_tickets(
            &TicketFilter {
                from: Some(range.from),
                to: Some(range.to),
                limit: Some(TICKET_LIST_LIMIT),
                ..TicketFilter::default()
            },
            now_ms,
        )
        .await?;
    opened.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let overdue = store
        .list_tickets(
            &TicketFilter {
                overdue_at: Some(now_ms),
                limit: Some(TICKET_LIST_LIMIT),
                ..TicketFilter::default()
            },
            now_ms,
        )
        .await?;
    let open_by_kind: BTreeMap<String, u64> = store
        .awaiting_by_kind()
        .await?
        .into_iter()
        .map(|(kind, n)| (kind, n.max(0) as u64))
        .collect();
    let low_tickets = if settings.reopen_score > 0 {
        store
            .tickets_surveyed_between(range.from, range.to, settings.reopen_score, now_ms)
            .await?
    } else {
        Vec::new()
    };

    let mut opened_by_kind = BTreeMap::new();
    let mut opened_by_inquiry_type = BTreeMap::new();
    for t in &opened {
        *opened_by_kind
            .entry(t.kind.as_str().to_owned())
            .or_default() += 1;
        let inquiry = t.inquiry_type.clone().unwrap_or_else(|| "—".to_owned());
        *opened_by_inquiry_type.entry(inquiry).or_default() += 1;
    }
    let ticket_items = |list: &[Ticket]| -> Vec<TicketItem> {
        list.iter().map(|t| TicketItem::new(t, settings)).collect()
    };
    let complaints: Vec<TicketItem> = opened
        .iter()
        .filter(|t| t.kind == TicketKind::Complaint)
        .map(|t| TicketItem::new(t, settings))
        .collect();
    Ok(ShiftReport {
        from: settings.rfc3339(range.from),
        to: settings.rfc3339(range.to),
        from_ms: range.from,
        to_ms: range.to,
        generated_at: settings.rfc3339(now_ms),
        rules: settings.rules(),
        calls,
        by_hour,
        rings,
        over_limit_calls,
        tickets: TicketCounts {
            opened: opened.len() as u64,
            opened_by_kind,
            opened_by_inquiry_type,
            complaints_opened: complaints.len() as u64,
            open: open_by_kind.values().sum(),
            open_by_kind,
            overdue: overdue.len() as u64,
        },
        opened_tickets: ticket_items(&opened),
        complaints,
        overdue_tickets: ticket_items(&overdue),
        low_surveys: LowSurveys {
            calls: low_calls,
            tickets: ticket_items(&low_tickets),
        },
        incidents: Incidents {
            interrupted_recordings: interrupted,
            failed_calls: failed,
        },
    })
}

/// The tables of the report, by name (`?format=csv&table=NAME`).
pub const TABLES: [&str; 10] = [
    "calls",
    "hours",
    "over_limit",
    "opened",
    "hot_issues",
    "complaints",
    "overdue",
    "low_survey_calls",
    "low_survey_tickets",
    "incidents",
];

/// Chinese and English names of the ticket kinds and statuses.
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "consultation" => "咨询 consultation",
        "query" => "查询 query",
        "problem" => "问题件 problem",
        "complaint" => "投诉 complaint",
        "order" => "接单 order",
        _ => "其他 other",
    }
}

fn status_label(status: &str) -> &'static str {
    match status {
        "open" => "待处理 open",
        "dispatched" => "已派单 dispatched",
        "replied" => "已答复 replied",
        "closed" => "已关闭 closed",
        "reopened" => "重新处理 reopened",
        _ => "其他 other",
    }
}

/// Local time for people from an RFC 3339 time (`2025-03-01 16:30`).
fn short_time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(at) => at.format("%Y-%m-%d %H:%M").to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

fn call_table(calls: &[CallItem], with_rings: bool) -> Table {
    let mut columns = vec![
        "call_id",
        "started_at",
        "direction",
        "outcome",
        "queue",
        "agent",
        "caller",
    ];
    if with_rings {
        columns.extend(["rings", "caller_ring_ms"]);
    }
    columns.extend(["survey_score", "tickets"]);
    let mut table = Table::new(&columns);
    for c in calls {
        let mut row = vec![
            Cell::text(&c.id),
            Cell::text(short_time(&c.started_at)),
            Cell::text(c.direction),
            Cell::text(c.outcome),
            Cell::opt_text(c.queue.clone()),
            Cell::opt_text(c.agent.clone()),
            Cell::text(&c.caller),
        ];
        if with_rings {
            row.extend([Cell::opt_int(c.rings), Cell::opt_int(c.caller_ring_ms)]);
        }
        row.extend([
            Cell::opt_int(c.survey_score),
            Cell::text(c.tickets.join(" ")),
        ]);
        table.rows.push(row);
    }
    table
}

fn ticket_table(tickets: &[TicketItem], survey: bool) -> Table {
    let mut columns = vec![
        "ticket_id",
        "kind",
        "status",
        "created_at",
        "due_at",
        "customer",
        "area",
        "inquiry_type",
        "assigned",
    ];
    if survey {
        columns.extend(["survey_score", "survey_cause", "survey_call_id"]);
    } else {
        columns.push("content");
    }
    let mut table = Table::new(&columns);
    for t in tickets {
        let assigned = [t.assigned_team.as_deref(), t.assigned_agent.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" / ");
        let kind = match t.complexity {
            Some(c) => format!("{} ({c})", kind_label(t.kind)),
            None => kind_label(t.kind).to_owned(),
        };
        let mut row = vec![
            Cell::text(&t.id),
            Cell::text(kind),
            Cell::text(status_label(t.status)),
            Cell::text(short_time(&t.created_at)),
            Cell::text(short_time(&t.due_at)),
            Cell::opt_text(t.customer.clone()),
            Cell::opt_text(t.area.clone()),
            Cell::opt_text(t.inquiry_type.clone()),
            Cell::text(assigned),
        ];
        if survey {
            row.extend([
                Cell::opt_int(t.survey_score),
                Cell::opt_text(t.survey_cause),
                Cell::opt_text(t.survey_call_id.clone()),
            ]);
        } else {
            row.push(Cell::opt_text(t.content.clone()));
        }
        table.rows.push(row);
    }
    table
}

impl ShiftReport {
    /// The key figures: (Chinese, English, value).
    pub fn figures(&self) -> Vec<(&'static str, &'static str, String)> {
        let c = &self.calls;
        let pct = |v: Option<f64>| match v {
            Some(v) => format!("{v}%"),
            None => "–".to_owned(),
        };
        let ms = |v: Option<i64>| match v {
            Some(v) => format!("{:.1} s", v as f64 / 1000.0),
            None => "–".to_owned(),
        };
        vec![
            ("来电", "calls offered", c.offered.to_string()),
            ("接听", "answered", c.answered.to_string()),
            ("放弃", "abandoned", c.abandoned.to_string()),
            ("无坐席", "no agent", c.no_agent.to_string()),
            ("失败", "failed", c.failed.to_string()),
            (
                "三声内接听率",
                "three-ring compliance",
                format!(
                    "{} ({} / {})",
                    pct(c.pct_within_target),
                    c.answered_within_target,
                    c.answered
                ),
            ),
            ("服务水平", "service level", pct(c.service_level)),
            (
                "超过上限",
                "over the ring limit",
                format!("{} ({})", c.over_limit, pct(c.pct_over_limit)),
            ),
            ("平均应答时间", "average speed of answer", ms(c.asa_ms)),
            ("平均响铃声数", "average rings", num_text(c.avg_rings)),
            (
                "90% 响铃声数",
                "90th percentile rings",
                c.p90_rings.map_or("–".to_owned(), |r| r.to_string()),
            ),
            ("坐席先挂机", "agent hang-ups", c.agent_hangups.to_string()),
            (
                "满意度",
                "survey average",
                format!("{} ({} 份 surveys)", num_text(c.survey_avg), c.survey_count),
            ),
            (
                "新建工单",
                "tickets opened",
                self.tickets.opened.to_string(),
            ),
            (
                "新建投诉",
                "complaints opened",
                self.tickets.complaints_opened.to_string(),
            ),
            ("待处理工单", "tickets open", self.tickets.open.to_string()),
            (
                "超时工单",
                "tickets overdue",
                self.tickets.overdue.to_string(),
            ),
        ]
    }

    /// One of [`TABLES`] by name.
    pub fn table(&self, name: &str) -> Option<Table> {
        Some(match name {
            "calls" => {
                let mut t = Table::new(&["figure", "指标", "value"]);
                for (zh, en, value) in self.figures() {
                    t.rows
                        .push(vec![Cell::text(en), Cell::text(zh), Cell::text(value)]);
                }
                t
            }
            "hours" => {
                let mut columns = vec!["hour"];
                columns.extend(super::csv::STATS_COLUMNS);
                let mut t = Table::new(&columns);
                for row in &self.by_hour {
                    let mut cells = vec![Cell::opt_text(row.key.clone())];
                    cells.extend(super::csv::stats_cells(row));
                    t.rows.push(cells);
                }
                t
            }
            "over_limit" => call_table(&self.over_limit_calls, true),
            "opened" => ticket_table(&self.opened_tickets, false),
            "hot_issues" => {
                let mut t = Table::new(&["inquiry_type", "tickets"]);
                let mut issues: Vec<(&String, &u64)> =
                    self.tickets.opened_by_inquiry_type.iter().collect();
                issues.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                for (inquiry, n) in issues {
                    t.rows.push(vec![Cell::text(inquiry), Cell::Int(*n as i64)]);
                }
                t
            }
            "complaints" => ticket_table(&self.complaints, false),
            "overdue" => ticket_table(&self.overdue_tickets, false),
            "low_survey_calls" => call_table(&self.low_surveys.calls, false),
            "low_survey_tickets" => ticket_table(&self.low_surveys.tickets, true),
            "incidents" => {
                let mut t = Table::new(&[
                    "incident",
                    "call_id",
                    "started_at",
                    "direction",
                    "outcome",
                    "queue",
                    "agent",
                    "caller",
                    "callee",
                ]);
                let lists = [
                    (
                        "recording interrupted",
                        &self.incidents.interrupted_recordings,
                    ),
                    ("call failed", &self.incidents.failed_calls),
                ];
                for (what, calls) in lists {
                    for c in calls {
                        t.rows.push(vec![
                            Cell::text(what),
                            Cell::text(&c.id),
                            Cell::text(short_time(&c.started_at)),
                            Cell::text(c.direction),
                            Cell::text(c.outcome),
                            Cell::opt_text(c.queue.clone()),
                            Cell::opt_text(c.agent.clone()),
                            Cell::text(&c.caller),
                            Cell::text(&c.callee),
                        ]);
                    }
                }
                t
            }
            _ => return None,
        })
    }

    /// The range for people: `2025-03-01 08:00 – 2025-03-01 20:00 (+08:00)`.
    pub fn range_text(&self) -> String {
        format!(
            "{} – {} ({})",
            short_time(&self.from),
            short_time(&self.to),
            self.rules.utc_offset
        )
    }

    /// The compliance bars per hour, starting at the shift's first hour (a night shift
    /// reads 22, 23, 00, …).
    fn hour_points(&self) -> Vec<CompliancePoint> {
        let mut points: Vec<CompliancePoint> = self
            .by_hour
            .iter()
            .map(CompliancePoint::from_stats)
            .collect();
        let start = chrono::DateTime::parse_from_rfc3339(&self.from)
            .map(|at| chrono::Timelike::hour(&at) as usize)
            .unwrap_or(0);
        if points.len() == 24 {
            points.rotate_left(start);
        }
        points
    }
}

/// The sections of the page and of the text: (table name, Chinese, English, note when
/// empty).
const SECTIONS: [(&str, &str, &str, &str); 8] = [
    (
        "over_limit",
        "超过上限的来电",
        "Calls answered over the ring limit",
        "无 none",
    ),
    (
        "opened",
        "本班新建工单",
        "Tickets opened in the shift",
        "无 none",
    ),
    (
        "hot_issues",
        "焦点问题",
        "Hot issues (opened tickets by inquiry type)",
        "无 none",
    ),
    ("complaints", "投诉", "Complaints opened", "无 none"),
    ("overdue", "超时工单", "Overdue tickets", "无 none"),
    (
        "low_survey_calls",
        "低满意度通话",
        "Low survey scores: calls",
        "无 none",
    ),
    (
        "low_survey_tickets",
        "低满意度工单",
        "Low survey scores: tickets",
        "无 none",
    ),
    (
        "incidents",
        "突发事件",
        "Incidents: interrupted recordings, failed calls",
        "无 none",
    ),
];

const CSS: &str = "
body{font-family:'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif;color:#222;
margin:24px auto;max-width:1000px;padding:0 16px;line-height:1.45}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #1565c0;
padding-bottom:3px}h1 small,h2 small{font-weight:normal;color:#555;font-size:60%;margin-left:8px}
.meta{color:#555;margin:0 0 12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border:1px solid #bbb;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef3fa}th small{display:block;font-weight:normal;color:#555}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:8px}
.figure{border:1px solid #bbb;padding:6px 8px}.figure b{display:block;font-size:18px}
.figure span{color:#555;font-size:12px}
.charts svg{max-width:100%;height:auto;border:1px solid #ddd;margin:8px 0}
.empty{color:#777}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}
table,.figure,svg{break-inside:avoid}tr{break-inside:avoid}a{color:inherit;text-decoration:none}}
@page{size:A4;margin:15mm}
";

/// Chinese captions of the table columns (the CSV keeps the English names).
fn column_zh(column: &str) -> &'static str {
    match column {
        "call_id" => "通话",
        "ticket_id" => "工单",
        "started_at" => "开始时间",
        "direction" => "方向",
        "outcome" => "结果",
        "queue" => "队列",
        "agent" => "坐席",
        "caller" => "主叫",
        "callee" => "被叫",
        "rings" => "响铃声数",
        "caller_ring_ms" => "响铃毫秒",
        "survey_score" => "满意度",
        "survey_cause" => "原因",
        "survey_call_id" => "调查通话",
        "tickets" => "工单",
        "kind" => "类型",
        "status" => "状态",
        "created_at" => "受理时间",
        "due_at" => "截止时间",
        "customer" => "客户",
        "area" => "业务区域",
        "inquiry_type" => "咨询类型",
        "assigned" => "处理人",
        "content" => "内容",
        "incident" => "事件",
        _ => "",
    }
}

/// A table as HTML; numbers right-aligned.
pub fn html_table(table: &Table) -> String {
    let mut out = String::from("<table><thead><tr>");
    for c in &table.columns {
        let _ = write!(out, "<th>{}<small>{}</small></th>", column_zh(c), esc(c));
    }
    out.push_str("</tr></thead><tbody>");
    for row in &table.rows {
        out.push_str("<tr>");
        for cell in row {
            let class = match cell {
                Cell::Int(_) | Cell::Num(_) => " class=\"num\"",
                _ => "",
            };
            let _ = write!(out, "<td{class}>{}</td>", esc(&cell.display()));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// The self-contained HTML page.
pub fn render_html(report: &ShiftReport) -> String {
    let range = report.range_text();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>交接班报告 Shift handover {}</title><style>{CSS}</style></head><body>",
        esc(&range)
    );
    let _ = write!(
        out,
        "<h1>交接班报告<small>Shift handover report</small></h1>\
         <p class=\"meta\">{} · 生成于 generated {} · 三声规则 ring target {} / 上限 limit {} · \
         服务水平 service level &lt; {} ms</p>",
        esc(&range),
        esc(&short_time(&report.generated_at)),
        report.rules.target,
        report.rules.limit,
        report.rules.service_level_ms
    );
    out.push_str("<h2>通话概况<small>Calls</small></h2><div class=\"figures\">");
    for (zh, en, value) in report.figures() {
        let _ = write!(
            out,
            "<div class=\"figure\"><b>{}</b>{} <span>{}</span></div>",
            esc(&value),
            esc(zh),
            esc(en)
        );
    }
    out.push_str("</div><div class=\"charts\">");
    out.push_str(&charts::rings_histogram(&report.rings, &range));
    out.push_str(&charts::compliance_chart(
        &report.hour_points(),
        false,
        &range,
    ));
    out.push_str("</div>");
    for (name, zh, en, empty) in SECTIONS {
        let _ = write!(out, "<h2>{zh}<small>{}</small></h2>", esc(en));
        let table = report.table(name).unwrap_or_default();
        if table.rows.is_empty() {
            let _ = write!(out, "<p class=\"empty\">{empty}</p>");
        } else {
            out.push_str(&html_table(&table));
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// Columns a terminal is given of East Asian text: wide characters take two.
fn width(text: &str) -> usize {
    text.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF => 2,
            0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

fn pad(text: &str, to: usize) -> String {
    let mut out = text.to_owned();
    out.extend(std::iter::repeat_n(' ', to.saturating_sub(width(text))));
    out
}

/// A table as aligned text columns.
pub fn text_table(table: &Table) -> String {
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| c.display().replace(['\r', '\n'], " "))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = table.columns.iter().map(|c| width(c)).collect();
    for row in &cells {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(cell));
            }
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<&str>| {
        let parts: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| pad(c, *w)).collect();
        out.push_str("  ");
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut out, table.columns.iter().map(String::as_str).collect());
    for row in &cells {
        line(&mut out, row.iter().map(String::as_str).collect());
    }
    out
}

/// The report as plain text for a terminal.
pub fn render_text(report: &ShiftReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "交接班报告 Shift handover report");
    let _ = writeln!(out, "{}", report.range_text());
    let _ = writeln!(
        out,
        "generated {} · ring target {} / limit {} · service level < {} ms",
        short_time(&report.generated_at),
        report.rules.target,
        report.rules.limit,
        report.rules.service_level_ms
    );
    let _ = writeln!(out, "\n== 通话概况 Calls ==");
    let figures = report.figures();
    let label_width = figures
        .iter()
        .map(|(zh, en, _)| width(zh) + 1 + width(en))
        .max()
        .unwrap_or(0);
    for (zh, en, value) in figures {
        let _ = writeln!(
            out,
            "  {}  {value}",
            pad(&format!("{zh} {en}"), label_width)
        );
    }
    let _ = writeln!(out, "\n== 响铃次数 Rings to answer ==");
    for (i, n) in report.rings.counts.iter().enumerate() {
        let _ = writeln!(out, "  {:>3}  {n}", report.rings.label(i));
    }
    for (name, zh, en, empty) in SECTIONS {
        let _ = writeln!(out, "\n== {zh} {en} ==");
        let table = report.table(name).unwrap_or_default();
        if table.rows.is_empty() {
            let _ = writeln!(out, "  {empty}");
        } else {
            out.push_str(&text_table(&table));
        }
    }
    out
}
