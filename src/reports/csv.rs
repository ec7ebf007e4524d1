//! Tables and their CSV (RFC 4180): a header row, CRLF line ends, a field quoted when it
//! holds a comma, a double quote, CR or LF (its quotes doubled). UTF-8 with a byte order
//! mark in front, so Excel opens Chinese text correctly.
//!
//! Text cells that a spreadsheet would take for a formula (starting with `=`, `+`, `-`,
//! `@`, tab or CR) get a leading `'` (OWASP's advice against CSV injection): customer
//! names come from callers. Numbers are written as numbers.

use super::stats::{Group, Stats, Summary};

/// The byte order mark that makes Excel read the file as UTF-8.
pub const BOM: &str = "\u{feff}";

/// One cell of a [`Table`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    /// A percentage or average; empty when there is none.
    Num(Option<f64>),
    Empty,
}

impl Cell {
    pub fn text(value: impl Into<String>) -> Cell {
        Cell::Text(value.into())
    }

    pub fn opt_text(value: Option<impl Into<String>>) -> Cell {
        value.map_or(Cell::Empty, |v| Cell::Text(v.into()))
    }

    pub fn opt_int(value: Option<i64>) -> Cell {
        value.map_or(Cell::Empty, Cell::Int)
    }

    /// As people read it (HTML and text): `–` for nothing.
    pub fn display(&self) -> String {
        match self {
            Cell::Text(t) => t.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Num(v) => super::num_text(*v),
            Cell::Empty => "–".to_owned(),
        }
    }

    /// The CSV field, quoted as needed.
    fn csv(&self) -> String {
        match self {
            Cell::Text(t) => field(&defuse(t)),
            Cell::Int(n) => n.to_string(),
            Cell::Num(Some(v)) => format!("{v}"),
            Cell::Num(None) | Cell::Empty => String::new(),
        }
    }
}

/// A table: column names and rows of cells.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(columns: &[&str]) -> Table {
        Table {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// The whole table as CSV, BOM first.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(BOM);
        let header: Vec<String> = self.columns.iter().map(|c| field(c)).collect();
        out.push_str(&header.join(","));
        out.push_str("\r\n");
        for row in &self.rows {
            let fields: Vec<String> = row.iter().map(Cell::csv).collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// One field per RFC 4180: quoted when it holds a comma, a quote, CR or LF.
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A leading `'` for text a spreadsheet would run as a formula.
fn defuse(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The columns of a summary table, after the group's own (`queue`, `agent` and
/// `name`, `hour`, `day`, or `scope`).
pub const STATS_COLUMNS: [&str; 21] = [
    "offered",
    "answered",
    "abandoned",
    "no_agent",
    "failed",
    "answered_within_target",
    "pct_within_target",
    "over_limit",
    "pct_over_limit",
    "avg_rings",
    "p90_rings",
    "asa_ms",
    "answered_within_sl",
    "service_level",
    "ring_no_answers",
    "agent_hangups",
    "talk_ms_total",
    "avg_talk_ms",
    "survey_count",
    "survey_avg",
    "low_surveys",
];

/// The figures of a row, in [`STATS_COLUMNS`] order.
pub fn stats_cells(s: &Stats) -> Vec<Cell> {
    let int = |n: u64| Cell::Int(n as i64);
    vec![
        int(s.offered),
        int(s.answered),
        int(s.abandoned),
        int(s.no_agent),
        int(s.failed),
        int(s.answered_within_target),
        Cell::Num(s.pct_within_target),
        int(s.over_limit),
        Cell::Num(s.pct_over_limit),
        Cell::Num(s.avg_rings),
        Cell::opt_int(s.p90_rings),
        Cell::opt_int(s.asa_ms),
        int(s.answered_within_sl),
        Cell::Num(s.service_level),
        int(s.ring_no_answers),
        int(s.agent_hangups),
        Cell::Int(s.talk_ms_total),
        Cell::opt_int(s.avg_talk_ms),
        int(s.survey_count),
        Cell::Num(s.survey_avg),
        int(s.low_surveys),
    ]
}

/// A summary as a table: one row per group, then a `total` row (all calls; not the
/// sum of the agent rows, see the module doc of [`crate::reports`]).
pub fn summary_table(summary: &Summary) -> Table {
    let group = Group::parse(summary.group).unwrap_or(Group::None);
    let mut columns: Vec<&str> = match group {
        Group::Agent => vec!["agent", "name"],
        Group::None => vec!["scope"],
        other => vec![other.as_str()],
    };
    columns.extend(STATS_COLUMNS);
    let mut table = Table::new(&columns);
    let lead = |stats: &Stats, total: bool| -> Vec<Cell> {
        let key = match (&stats.key, total, group) {
            (_, true, _) => Cell::text("total"),
            (_, false, Group::None) => Cell::text("all"),
            (Some(k), false, _) => Cell::text(k.clone()),
            (None, false, _) => Cell::Empty,
        };
        let mut cells = vec![key];
        if group == Group::Agent {
            cells.push(Cell::opt_text(stats.name.clone()));
        }
        cells
    };
    for row in &summary.rows {
        let mut cells = lead(row, false);
        cells.extend(stats_cells(row));
        table.rows.push(cells);
    }
    // With `none` the one row already is the total.
    if group != Group::None {
        let mut cells = lead(&summary.totals, true);
        cells.extend(stats_cells(&summary.totals));
        table.rows.push(cells);
    }
    table
}
