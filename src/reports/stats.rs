//! The aggregation: call records in, one [`Stats`] row per group out. The definitions
//! of every figure are in the module documentation of [`crate::reports`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Timelike};
use serde::Serialize;

use super::{pct, round2, Range, ReportSettings, RulesView};
use crate::call::record::{AttemptOutcome, CallOutcome, CallRecord, Direction, HangupSide};

/// What the rows of a summary are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Queue,
    Agent,
    Hour,
    Day,
    None,
}

impl Group {
    pub const ALL: [Group; 5] = [
        Group::Queue,
        Group::Agent,
        Group::Hour,
        Group::Day,
        Group::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Queue => "queue",
            Group::Agent => "agent",
            Group::Hour => "hour",
            Group::Day => "day",
            Group::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

/// Whether a call is in the call tables: inbound, ended, routed (see the module doc).
pub fn in_scope(call: &CallRecord) -> bool {
    call.direction == Direction::Inbound
        && !matches!(call.outcome, CallOutcome::Active | CallOutcome::Rejected)
}

/// One row of a summary: the figures of one group (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// The queue, agent id, hour (`"09"`) or local date; `null` for calls without a
    /// queue, the `none` row and the totals.
    pub key: Option<String>,
    /// The agent's configured name (agent rows only).
    pub name: Option<String>,
    pub offered: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub no_agent: u64,
    pub failed: u64,
    pub answered_within_target: u64,
    pub pct_within_target: Option<f64>,
    pub over_limit: u64,
    pub pct_over_limit: Option<f64>,
    pub avg_rings: Option<f64>,
    pub p90_rings: Option<i64>,
    pub asa_ms: Option<i64>,
    pub answered_within_sl: u64,
    pub service_level: Option<f64>,
    pub ring_no_answers: u64,
    pub agent_hangups: u64,
    pub talk_ms_total: i64,
    pub avg_talk_ms: Option<i64>,
    pub survey_count: u64,
    pub survey_avg: Option<f64>,
    pub low_surveys: u64,
}

/// Running sums of one group.
#[derive(Debug, Clone, Default)]
struct Acc {
    offered: u64,
    answered: u64,
    abandoned: u64,
    no_agent: u64,
    failed: u64,
    within_target: u64,
    over_limit: u64,
    /// Rings → answered calls: exact percentiles without keeping every call.
    rings: BTreeMap<i64, u64>,
    rings_sum: i64,
    ring_ms_sum: i64,
    ring_ms_n: u64,
    within_sl: u64,
    ring_no_answers: u64,
    agent_hangups: u64,
    talk_sum: i64,
    talk_n: u64,
    survey_sum: i64,
    survey_n: u64,
    low_surveys: u64,
}

impl Acc {
    /// The call's end: answered or not.
    fn add_outcome(&mut self, call: &CallRecord) {
        match call.outcome {
            CallOutcome::Answered => {}
            CallOutcome::Abandoned => self.abandoned += 1,
            CallOutcome::NoAgent => self.no_agent += 1,
            _ => self.failed += 1,
        }
    }

    /// An answered call's figures: rings, ASA, service level, talk, surveys, hang-up.
    fn add_answer(&mut self, call: &CallRecord, settings: &ReportSettings) {
        self.answered += 1;
        if call.three_ring_ok == Some(true) {
            self.within_target += 1;
        }
        if call.over_limit == Some(true) {
            self.over_limit += 1;
        }
        if let Some(rings) = call.rings {
            *self.rings.entry(rings).or_default() += 1;
            self.rings_sum += rings;
        }
        if let Some(ms) = call.caller_ring_ms {
            self.ring_ms_sum += ms;
            self.ring_ms_n += 1;
            if ms < settings.service_level_ms {
                self.within_sl += 1;
            }
        }
        if let Some(talk) = call.talk_ms {
            self.talk_sum += talk;
            self.talk_n += 1;
        }
        if call.hangup_side == Some(HangupSide::Agent) && !call.handed_to_survey() {
            self.agent_hangups += 1;
        }
        self.add_survey(call, settings);
    }

    fn add_survey(&mut self, call: &CallRecord, settings: &ReportSettings) {
        if let Some(score) = call.survey_score {
            self.survey_n += 1;
            self.survey_sum += score;
            if settings.is_low_score(score) {
                self.low_surveys += 1;
            }
        }
    }

    fn finish(&self, key: Option<String>, name: Option<String>) -> Stats {
        let rings_n: u64 = self.rings.values().sum();
        Stats {
            key,
            name,
            offered: self.offered,
            answered: self.answered,
            abandoned: self.abandoned,
            no_agent: self.no_agent,
            failed: self.failed,
            answered_within_target: self.within_target,
            pct_within_target: pct(self.within_target, self.answered),
            over_limit: self.over_limit,
            pct_over_limit: pct(self.over_limit, self.answered),
            avg_rings: (rings_n > 0).then(|| round2(self.rings_sum as f64 / rings_n as f64)),
            p90_rings: nearest_rank(&self.rings, 90),
            asa_ms: mean_ms(self.ring_ms_sum, self.ring_ms_n),
            answered_within_sl: self.within_sl,
            service_level: pct(self.within_sl, self.offered),
            ring_no_answers: self.ring_no_answers,
            agent_hangups: self.agent_hangups,
            talk_ms_total: self.talk_sum,
            avg_talk_ms: mean_ms(self.talk_sum, self.talk_n),
            survey_count: self.survey_n,
            survey_avg: (self.survey_n > 0)
                .then(|| round2(self.survey_sum as f64 / self.survey_n as f64)),
            low_surveys: self.low_surveys,
        }
    }
}

fn mean_ms(sum: i64, n: u64) -> Option<i64> {
    (n > 0).then(|| (sum as f64 / n as f64).round() as i64)
}

/// The `p`th percentile (nearest rank) of a histogram: the smallest value whose
/// cumulative count reaches ⌈p · n / 100⌉.
pub fn nearest_rank(counts: &BTreeMap<i64, u64>, p: u64) -> Option<i64> {
    let n: u64 = counts.values().sum();
    if n == 0 {
        return None;
    }
    let rank = (p * n).div_ceil(100).max(1);
    let mut seen = 0;
    for (value, count) in counts {
        seen += count;
        if seen >= rank {
            return Some(*value);
        }
    }
    counts.keys().next_back().copied()
}

/// A summary as the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// RFC 3339 at the centre's offset.
    pub from: String,
    pub to: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub group: &'static str,
    pub rules: RulesView,
    pub rows: Vec<Stats>,
    pub totals: Stats,
}

/// Sort key of a group: `(0, name)` for named groups, `(1, "")` for "no queue", so the
/// calls without a queue come last.
type Key = (u8, String);

/// Folds calls into the rows of one grouping and the totals, one call at a time (the
/// store hands them over page by page).
#[derive(Debug, Clone)]
pub struct Aggregator<'a> {
    settings: &'a ReportSettings,
    group: Group,
    range: Range,
    groups: BTreeMap<Key, Acc>,
    totals: Acc,
}

impl<'a> Aggregator<'a> {
    pub fn new(settings: &'a ReportSettings, group: Group, range: Range) -> Aggregator<'a> {
        let mut groups = BTreeMap::new();
        // Every hour, and every date of the range, get a row even without calls.
        match group {
            Group::Hour => {
                for hour in 0..24 {
                    groups.insert((0, format!("{hour:02}")), Acc::default());
                }
            }
            Group::Day => {
                let first = settings.local(range.from).date_naive();
                let last = settings.local(range.to - 1).date_naive();
                let mut day = first;
                while day <= last {
                    groups.insert((0, day.to_string()), Acc::default());
                    day += Duration::days(1);
                }
            }
            Group::None => {
                groups.insert((0, String::new()), Acc::default());
            }
            Group::Queue | Group::Agent => {}
        }
        Aggregator {
            settings,
            group,
            range,
            groups,
            totals: Acc::default(),
        }
    }

    /// Adds one call (calls outside the scope or the range are skipped).
    pub fn add(&mut self, call: &CallRecord) {
        if !in_scope(call) || call.started_at < self.range.from || call.started_at >= self.range.to
        {
            return;
        }
        let settings = self.settings;
        add_call(&mut self.totals, call, settings);
        let key = match self.group {
            Group::Agent => return self.add_by_agent(call),
            Group::Queue => match &call.queue {
                Some(q) => (0, q.clone()),
                None => (1, String::new()),
            },
            Group::Hour => (0, format!("{:02}", settings.local(call.started_at).hour())),
            Group::Day => (0, settings.local(call.started_at).date_naive().to_string()),
            Group::None => (0, String::new()),
        };
        add_call(self.groups.entry(key).or_default(), call, settings);
    }

    fn add_by_agent(&mut self, call: &CallRecord) {
        let settings = self.settings;
        let mut rung = BTreeSet::new();
        for attempt in &call.attempts {
            let acc = self.groups.entry((0, attempt.agent.clone())).or_default();
            acc.offered += 1;
            if attempt.outcome == AttemptOutcome::NoAnswer {
                acc.ring_no_answers += 1;
            }
            rung.insert(attempt.agent.as_str());
        }
        if call.outcome == CallOutcome::Answered {
            if let Some(agent) = &call.agent {
                let acc = self.groups.entry((0, agent.clone())).or_default();
                if !rung.contains(agent.as_str()) {
                    acc.offered += 1;
                }
                acc.add_answer(call, settings);
            }
        } else {
            for agent in rung {
                if let Some(acc) = self.groups.get_mut(&(0, agent.to_owned())) {
                    acc.add_outcome(call);
                }
            }
        }
    }

    /// The rows (in key order) and the totals.
    pub fn finish(self) -> (Vec<Stats>, Stats) {
        let settings = self.settings;
        let group = self.group;
        let rows = self
            .groups
            .iter()
            .map(|((order, key), acc)| {
                let key = match group {
                    Group::None => None,
                    _ if *order == 1 => None,
                    _ => Some(key.clone()),
                };
                let name = match group {
                    Group::Agent => key
                        .as_ref()
                        .and_then(|k| settings.agent_names.get(k).cloned()),
                    _ => None,
                };
                acc.finish(key, name)
            })
            .collect();
        (rows, self.totals.finish(None, None))
    }

    /// The finished summary.
    pub fn summary(self) -> Summary {
        let settings = self.settings;
        let range = self.range;
        let group = self.group;
        let (rows, totals) = self.finish();
        Summary {
            from: settings.rfc3339(range.from),
            to: settings.rfc3339(range.to),
            from_ms: range.from,
            to_ms: range.to,
            group: group.as_str(),
            rules: settings.rules(),
            rows,
            totals,
        }
    }
}

/// One call into a call-level group (queue, hour, day, none, totals).
fn add_call(acc: &mut Acc, call: &CallRecord, settings: &ReportSettings) {
    acc.offered += 1;
    acc.ring_no_answers += call
        .attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::NoAnswer)
        .count() as u64;
    if call.outcome == CallOutcome::Answered {
        acc.add_answer(call, settings);
    } else {
        acc.add_outcome(call);
        // A survey needs an answered call; count one anyway if a record has it.
        acc.add_survey(call, settings);
    }
}

/// The answered calls by rings, for the histogram: buckets `1 ..= limit`, and one for
/// `limit + 1` or more.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RingCounts {
    /// `counts[i]` is the number of calls answered on ring `i + 1` (the last bucket:
    /// `limit + 1` or more).
    pub counts: Vec<u64>,
    pub target: i64,
    pub limit: i64,
    /// Only the calls of this queue / answered by this agent.
    pub queue: Option<String>,
    pub agent: Option<String>,
}

impl RingCounts {
    pub fn new(settings: &ReportSettings, queue: Option<String>, agent: Option<String>) -> Self {
        RingCounts {
            counts: vec![0; (settings.limit.max(1) + 1) as usize],
            target: settings.target,
            limit: settings.limit.max(1),
            queue,
            agent,
        }
    }

    /// Adds an answered, in-scope call that passes the filters.
    pub fn add(&mut self, call: &CallRecord) {
        if !in_scope(call) || call.outcome != CallOutcome::Answered {
            return;
        }
        if self
            .queue
            .as_ref()
            .is_some_and(|q| call.queue.as_ref() != Some(q))
            || self
                .agent
                .as_ref()
                .is_some_and(|a| call.agent.as_ref() != Some(a))
        {
            return;
        }
        let Some(rings) = call.rings else {
            return;
        };
        let bucket = (rings.clamp(1, self.limit + 1) - 1) as usize;
        self.counts[bucket] += 1;
    }

    /// The label of bucket `i`: `"1"`, … and `"6+"` for the last.
    pub fn label(&self, i: usize) -> String {
        if i as i64 == self.limit {
            format!("{}+", self.limit + 1)
        } else {
            (i + 1).to_string()
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}
