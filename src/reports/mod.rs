//! Supervisor statistics: the three-ring rule and the service figures per queue, agent,
//! hour or day (`stats`), drawn as SVG charts (`charts`), exported as CSV (`csv`), and
//! the shift handover report (`shift`, `做好交接班工作`). Everything here is pure
//! aggregation over call records and tickets read from the store; nothing is stored.
//!
//! # Which calls count
//!
//! A report covers the calls *started* in `[from, to)` (epoch ms, half-open, so one day
//! after another never counts a call twice). The call tables count **inbound calls that
//! have ended and were routed**: outbound calls (ticket callbacks) are left out (the
//! three-ring rule is about callers waiting for us), calls still in progress (`active`)
//! are left out until they end, and `rejected` calls (refused before routing: unknown
//! number, bad request, overload, shutdown) were never offered to a queue.
//!
//! # Definitions (per group)
//!
//! * `offered`: inbound calls, as above; `= answered + abandoned + no_agent + failed`.
//! * `answered`, `abandoned`, `no_agent`, `failed`: by the call's outcome (`failed`
//!   also takes `not_reached`).
//! * `answered_within_target`: answered calls with `three_ring_ok = true` (answered on
//!   ring `[rings] target` or earlier); `pct_within_target` = that / `answered` × 100.
//! * `over_limit`: answered calls with `over_limit = true` (more than `[rings] limit`
//!   rings); `pct_over_limit` = that / `answered` × 100.
//! * `avg_rings`: mean `rings` of the answered calls; `p90_rings`: their 90th
//!   percentile by the nearest-rank method (sorted ascending, the value at rank
//!   ⌈0.9 · n⌉, 1-based), always a ring count that occurred.
//! * `asa_ms` (average speed of answer): mean `caller_ring_ms` of the answered calls,
//!   rounded to whole milliseconds.
//! * `answered_within_sl`: answered calls with `caller_ring_ms < [reports]
//!   service_level_ms`; `service_level` = that / `offered` × 100, so abandoned and
//!   unanswered calls count against it. The bound is strict so that the default
//!   15000 ms means exactly "within three rings" at the 5 s cadence (an answer at
//!   15000 ms falls on ring 4).
//! * `ring_no_answers`: agent attempts of the group's calls that ended `no-answer` (rang
//!   for the queue's `ring_timeout_ms` and were cancelled).
//! * `agent_hangups`: answered calls where the agent hung up first (`hangup_side =
//!   agent`), except hand-offs to the satisfaction survey (a call with a survey score):
//!   SERVICE-RULES.md makes agent-first hang-ups a QA flag except that hand-off.
//! * `talk_ms_total`: sum of `talk_ms` of the answered calls; `avg_talk_ms` its mean
//!   (whole ms).
//! * `survey_count`: calls with a survey score; `survey_avg`: their mean score;
//!   `low_surveys`: scores at or below `[tickets] reopen_score` (none when it is 0).
//!
//! Percentages and averages are rounded to two decimals; each is `null` when its
//! denominator is 0.
//!
//! # Groupings
//!
//! * `queue`: the call's queue (`null` key for calls that had none), sorted by name.
//! * `hour`: the local hour of day (`"00"` … `"23"`, every hour listed) the call
//!   started in, local meaning the `[calendar] utc_offset`: with `+08:00` a call at
//!   01:30 UTC is in hour `"09"`. Calls of several days fall into the same 24 rows.
//! * `day`: the local date the call started on, every date of the range listed.
//! * `none`: one row with every call.
//! * `agent`: by agent (工号), with the agent's configured name. An answered call counts
//!   for the agent who answered it (`answered` and every answer figure: rings, ASA,
//!   service level, over limit, talk time, surveys, hang-ups). `offered` per agent is the
//!   number of attempts that rang that agent (each INVITE to the agent, whatever it
//!   ended with), so an agent rung twice in one call was offered it twice; an answered
//!   call without an attempt for its agent (should not happen) adds one. `abandoned`,
//!   `no_agent` and `failed` per agent count the calls so ended in which the agent was
//!   rung (once per call). `ring_no_answers` counts the agent's own `no-answer`
//!   attempts. Calls that rang no agent appear in no agent row. So per agent, `offered −
//!   answered` are the attempts the agent did not answer.
//!
//! `totals` is always the figures of all the calls together (the `none` grouping),
//! whatever the grouping: for `agent` it is not the sum of the rows.

pub mod charts;
pub mod cli;
pub mod csv;
pub mod shift;
pub mod stats;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone};
use serde::{Deserialize, Serialize};

pub use stats::{Aggregator, Group, RingCounts, Stats, Summary};

/// The longest range one report may cover.
pub const MAX_RANGE_MS: i64 = 400 * 24 * 3_600_000;
/// The range when none is given: the last 24 hours.
pub const DEFAULT_RANGE_MS: i64 = 24 * 3_600_000;

/// `[reports]`: settings of the supervisor reports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Service level threshold: answered in less than this many ms (default 15000,
    /// three rings at the 5 s cadence).
    pub service_level_ms: u64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            service_level_ms: 15_000,
        }
    }
}

impl ReportsConfig {
    /// Problems as `(key, message)`, the key relative to `[reports]`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(1..=3_600_000).contains(&self.service_level_ms) {
            problems.push((
                "service_level_ms".to_owned(),
                "must be from 1 to 3600000 (one hour), e.g. 15000".to_owned(),
            ));
        }
        problems
    }
}

/// What a report needs from the configuration; cheap to clone.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSettings {
    pub cadence_ms: i64,
    /// `[rings] target`: answered on this ring or earlier is within the rule.
    pub target: i64,
    /// `[rings] limit`: more rings than this is over the limit.
    pub limit: i64,
    pub service_level_ms: i64,
    /// `[tickets] reopen_score`: survey scores at or below it are low (0 = none is).
    pub reopen_score: i64,
    /// The centre's local time (`[calendar] utc_offset`).
    pub offset: FixedOffset,
    /// Agent id → configured name.
    pub agent_names: BTreeMap<String, String>,
}

impl ReportSettings {
    /// From a validated configuration (an offset that does not compile, impossible
    /// after validation, falls back to UTC).
    pub fn from_config(config: &crate::config::Config) -> ReportSettings {
        let offset = config
            .calendar
            .compile()
            .map(|c| c.offset())
            .unwrap_or_else(|_| FixedOffset::east_opt(0).expect("UTC"));
        ReportSettings {
            cadence_ms: config.rings.cadence_ms as i64,
            target: i64::from(config.rings.target),
            limit: i64::from(config.rings.limit),
            service_level_ms: config.reports.service_level_ms as i64,
            reopen_score: i64::from(config.tickets.reopen_score),
            offset,
            agent_names: config
                .agents
                .iter()
                .map(|a| (a.id.clone(), a.name.clone()))
                .collect(),
        }
    }

    /// The rules a report was made with, as it shows them.
    pub fn rules(&self) -> RulesView {
        RulesView {
            cadence_ms: self.cadence_ms,
            target: self.target,
            limit: self.limit,
            service_level_ms: self.service_level_ms,
            reopen_score: self.reopen_score,
            utc_offset: self.offset.to_string(),
        }
    }

    /// Is a survey score low (at or below `reopen_score`)?
    pub fn is_low_score(&self, score: i64) -> bool {
        score <= self.reopen_score
    }

    pub fn local(&self, epoch_ms: i64) -> DateTime<FixedOffset> {
        DateTime::from_timestamp_millis(epoch_ms)
            .unwrap_or_default()
            .with_timezone(&self.offset)
    }

    /// RFC 3339 at the centre's offset, e.g. `2025-03-01T16:30:00+08:00` (milliseconds
    /// only when there are some).
    pub fn rfc3339(&self, epoch_ms: i64) -> String {
        self.local(epoch_ms)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// Local time for people: `2025-03-01 16:30`.
    pub fn display(&self, epoch_ms: i64) -> String {
        self.local(epoch_ms).format("%Y-%m-%d %H:%M").to_string()
    }
}

/// The rules in force, shown with every report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RulesView {
    pub cadence_ms: i64,
    pub target: i64,
    pub limit: i64,
    pub service_level_ms: i64,
    pub reopen_score: i64,
    pub utc_offset: String,
}

/// A report's time range, epoch ms, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

impl Range {
    /// `from`/`to` as given, the defaults filled in (`to`: now; `from`: 24 h before
    /// `to`), then checked: `from` before `to`, at most [`MAX_RANGE_MS`] apart. The error
    /// names the offending parameter.
    pub fn resolve(
        from: Option<i64>,
        to: Option<i64>,
        now_ms: i64,
    ) -> Result<Range, (&'static str, String)> {
        let to = to.unwrap_or(now_ms);
        // Saturating and checked: any i64 may come from a query string.
        let from = from.unwrap_or_else(|| to.saturating_sub(DEFAULT_RANGE_MS));
        if from >= to {
            return Err(("to", "must be after from".to_owned()));
        }
        if to.checked_sub(from).is_none_or(|span| span > MAX_RANGE_MS) {
            return Err((
                "from",
                "a report covers at most 400 days; narrow from/to".to_owned(),
            ));
        }
        Ok(Range { from, to })
    }
}

/// A time given on the command line: RFC 3339, epoch ms, or local time at `offset` as
/// `YYYY-MM-DD` (midnight), `YYYY-MM-DD HH:MM` or `YYYY-MM-DDTHH:MM[:SS]`.
pub fn parse_cli_time(text: &str, offset: FixedOffset) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    let naive = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })?;
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|at| at.timestamp_millis())
}

pub use crate::html::esc;

/// `100 · n / d` rounded to two decimals; `None` when `d` is 0.
pub(crate) fn pct(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| round2(100.0 * n as f64 / d as f64))
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A percentage or average for people: `87.5`, `66.67`, `–` when there is none.
pub fn num_text(value: Option<f64>) -> String {
    match value {
        Some(v) => format!("{v}"),
        None => "–".to_owned(),
    }
}
