//! The aggregation with hand-made call records, CSV quoting, SVG well-formedness.

use std::collections::BTreeMap;

use chrono::FixedOffset;

use super::charts::{compliance_chart, nice_scale, rings_histogram, CompliancePoint};
use super::csv::{field, summary_table, Cell, Table};
use super::stats::nearest_rank;
use super::*;
use crate::call::record::{
    AgentAttempt, AttemptOutcome, CallOutcome, CallRecord, Direction, HangupSide, RecordingMeta,
};

/// 2025-03-01T00:00:00Z (08:00 at +08:00).
const DAY: i64 = 1_740_787_200_000;
const HOUR: i64 = 3_600_000;

fn settings() -> ReportSettings {
    ReportSettings {
        cadence_ms: 5000,
        target: 3,
        limit: 5,
        service_level_ms: 15_000,
        reopen_score: 2,
        offset: FixedOffset::east_opt(8 * 3600).unwrap(),
        agent_names: BTreeMap::from([
            ("1001".to_owned(), "Wang Fang".to_owned()),
            ("1002".to_owned(), "Li Na".to_owned()),
        ]),
    }
}

fn attempt(agent: &str, outcome: AttemptOutcome) -> AgentAttempt {
    AgentAttempt {
        agent: agent.to_owned(),
        invited_at: DAY,
        ring_started_at: DAY,
        ended_at: Some(DAY + 1000),
        ring_ms: Some(1000),
        outcome,
        sip_status: None,
    }
}

fn base(id: &str, started_at: i64, outcome: CallOutcome) -> CallRecord {
    CallRecord {
        id: id.to_owned(),
        sip_call_id: format!("{id}@test"),
        direction: Direction::Inbound,
        caller: "13800138000".to_owned(),
        callee: "4008001234".to_owned(),
        queue: Some("consult".to_owned()),
        agent: None,
        started_at,
        caller_ringing_at: Some(started_at),
        answered_at: None,
        ended_at: Some(started_at + 60_000),
        caller_ring_ms: None,
        rings: None,
        three_ring_ok: None,
        over_limit: None,
        outcome,
        hangup_side: Some(HangupSide::Caller),
        talk_ms: None,
        attempts: Vec::new(),
        recording_path: None,
        recording: RecordingMeta::default(),
        survey_score: None,
        survey_offered: false,
        tickets: Vec::new(),
    }
}

/// An answered call after `ring_ms`, rings and flags as call control computes them.
fn answered(id: &str, started_at: i64, agent: &str, ring_ms: i64) -> CallRecord {
    let s = settings();
    let rings = crate::call::record::rings_for(ring_ms, s.cadence_ms);
    let mut call = base(id, started_at, CallOutcome::Answered);
    call.agent = Some(agent.to_owned());
    call.answered_at = Some(started_at + ring_ms);
    call.caller_ring_ms = Some(ring_ms);
    call.rings = Some(rings);
    call.three_ring_ok = Some(rings <= s.target);
    call.over_limit = Some(rings > s.limit);
    call.talk_ms = Some(60_000);
    call.attempts = vec![attempt(agent, AttemptOutcome::Answered)];
    call
}

fn range() -> Range {
    Range {
        from: DAY,
        to: DAY + 24 * HOUR,
    }
}

/// Ten answered calls on rings 1,1,2,2,3,3,4,5,6,7 (ring ms 1000 … 31000) in queue
/// consult, answered by 1001, plus two abandoned and one no-agent call.
fn ten_answered() -> Vec<CallRecord> {
    let ring_ms = [
        1000, 2000, 6000, 7000, 11_000, 14_999, 15_000, 21_000, 26_000, 31_000,
    ];
    let mut calls: Vec<CallRecord> = ring_ms
        .iter()
        .enumerate()
        .map(|(i, ms)| answered(&format!("a{i}"), DAY + i as i64 * 1000, "1001", *ms))
        .collect();
    calls.push(base("ab1", DAY + 100, CallOutcome::Abandoned));
    calls.push(base("ab2", DAY + 200, CallOutcome::Abandoned));
    calls.push(base("na1", DAY + 300, CallOutcome::NoAgent));
    calls
}

fn summarize(calls: &[CallRecord], group: Group) -> Summary {
    let s = settings();
    let mut agg = Aggregator::new(&s, group, range());
    for c in calls {
        agg.add(c);
    }
    agg.summary()
}

#[test]
fn totals_have_exact_rings_p90_asa_and_service_level() {
    let summary = summarize(&ten_answered(), Group::None);
    let t = &summary.totals;
    assert_eq!(t.offered, 13);
    assert_eq!(t.answered, 10);
    assert_eq!(t.abandoned, 2);
    assert_eq!(t.no_agent, 1);
    assert_eq!(t.failed, 0);
    // Rings 1,1,2,2,3,3 are within three rings (14 999 ms is still ring 3).
    assert_eq!(t.answered_within_target, 6);
    assert_eq!(t.pct_within_target, Some(60.0));
    // Rings 6 and 7 are over the limit of 5.
    assert_eq!(t.over_limit, 2);
    assert_eq!(t.pct_over_limit, Some(20.0));
    // (1+1+2+2+3+3+4+5+6+7) / 10.
    assert_eq!(t.avg_rings, Some(3.4));
    // Nearest rank: ⌈0.9 · 10⌉ = 9th of the sorted rings = 6.
    assert_eq!(t.p90_rings, Some(6));
    // (1000+2000+6000+7000+11000+14999+15000+21000+26000+31000) / 10 = 13499.9.
    assert_eq!(t.asa_ms, Some(13_500));
    // Under 15 000 ms: the six calls within three rings; of 13 offered.
    assert_eq!(t.answered_within_sl, 6);
    assert_eq!(t.service_level, Some(46.15));
    assert_eq!(t.talk_ms_total, 600_000);
    assert_eq!(t.avg_talk_ms, Some(60_000));
    assert_eq!(t.survey_count, 0);
    assert_eq!(t.survey_avg, None);
    assert_eq!(summary.rows.len(), 1);
    assert_eq!(summary.rows[0], *t);
    assert_eq!(summary.group, "none");
    assert_eq!(summary.from, "2025-03-01T08:00:00+08:00");
}

#[test]
fn nearest_rank_percentiles() {
    let counts = |values: &[i64]| {
        let mut map = BTreeMap::new();
        for v in values {
            *map.entry(*v).or_insert(0u64) += 1;
        }
        map
    };
    assert_eq!(nearest_rank(&counts(&[]), 90), None);
    assert_eq!(nearest_rank(&counts(&[4]), 90), Some(4));
    // n = 11: rank ⌈9.9⌉ = 10.
    assert_eq!(
        nearest_rank(&counts(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), 90),
        Some(10)
    );
    // n = 20: rank 18.
    let twenty: Vec<i64> = (1..=20).collect();
    assert_eq!(nearest_rank(&counts(&twenty), 90), Some(18));
    assert_eq!(nearest_rank(&counts(&[1, 1, 1, 9]), 50), Some(1));
    assert_eq!(nearest_rank(&counts(&[1, 1, 1, 9]), 90), Some(9));
}

#[test]
fn service_level_counts_abandoned_calls_against_it_and_is_strict() {
    let s = ReportSettings {
        service_level_ms: 10_000,
        ..settings()
    };
    let calls = [
        answered("a", DAY, "1001", 9_999),
        answered("b", DAY, "1001", 10_000),
        base("c", DAY, CallOutcome::Abandoned),
        base("d", DAY, CallOutcome::Failed),
    ];
    let mut agg = Aggregator::new(&s, Group::None, range());
    for c in &calls {
        agg.add(c);
    }
    let (_, t) = agg.finish();
    assert_eq!(t.offered, 4);
    assert_eq!(t.failed, 1);
    assert_eq!(t.answered_within_sl, 1);
    assert_eq!(t.service_level, Some(25.0));
}

#[test]
fn outbound_active_and_rejected_calls_and_calls_outside_the_range_are_left_out() {
    let mut out = answered("out", DAY, "1001", 1000);
    out.direction = Direction::Outbound;
    let calls = [
        out,
        base("active", DAY, CallOutcome::Active),
        base("rejected", DAY, CallOutcome::Rejected),
        answered("early", DAY - 1, "1001", 1000),
        answered("late", DAY + 24 * HOUR, "1001", 1000),
        answered("in", DAY + 24 * HOUR - 1, "1001", 1000),
    ];
    let t = summarize(&calls, Group::None).totals;
    assert_eq!(t.offered, 1);
    assert_eq!(t.answered, 1);
}

#[test]
fn agents_get_their_answers_and_the_attempts_that_rang_them() {
    // Call 1: 1001 does not answer (ring-no-answer), 1002 answers on ring 4.
    let mut one = answered("one", DAY, "1002", 16_000);
    one.attempts = vec![
        attempt("1001", AttemptOutcome::NoAnswer),
        attempt("1002", AttemptOutcome::Answered),
    ];
    one.hangup_side = Some(HangupSide::Agent);
    // Call 2: 1001 answers on ring 1; the agent hands the caller to the survey (1).
    let mut two = answered("two", DAY + 10, "1001", 500);
    two.hangup_side = Some(HangupSide::Agent);
    two.survey_score = Some(1);
    // Call 3: 1001 rung twice (no answer, then cancelled), the caller gives up.
    let mut three = base("three", DAY + 20, CallOutcome::Abandoned);
    three.attempts = vec![
        attempt("1001", AttemptOutcome::NoAnswer),
        attempt("1002", AttemptOutcome::Busy),
        attempt("1001", AttemptOutcome::Cancelled),
    ];
    // Call 4: nobody rung at all.
    let four = base("four", DAY + 30, CallOutcome::Abandoned);
    let summary = summarize(&[one, two, three, four], Group::Agent);
    assert_eq!(summary.rows.len(), 2);
    let a1 = &summary.rows[0];
    let a2 = &summary.rows[1];
    assert_eq!(a1.key.as_deref(), Some("1001"));
    assert_eq!(a1.name.as_deref(), Some("Wang Fang"));
    assert_eq!(a2.key.as_deref(), Some("1002"));
    assert_eq!(a2.name.as_deref(), Some("Li Na"));

    // 1001: rung in call 1, call 2, twice in call 3.
    assert_eq!(a1.offered, 4);
    assert_eq!(a1.answered, 1);
    assert_eq!(a1.abandoned, 1);
    assert_eq!(a1.ring_no_answers, 2);
    assert_eq!(a1.answered_within_target, 1);
    assert_eq!(a1.pct_within_target, Some(100.0));
    assert_eq!(a1.asa_ms, Some(500));
    assert_eq!(a1.service_level, Some(25.0));
    // The hand-off to the survey is not an agent hang-up.
    assert_eq!(a1.agent_hangups, 0);
    assert_eq!(a1.survey_count, 1);
    assert_eq!(a1.survey_avg, Some(1.0));
    assert_eq!(a1.low_surveys, 1);

    // 1002: rung in calls 1 and 3.
    assert_eq!(a2.offered, 2);
    assert_eq!(a2.answered, 1);
    assert_eq!(a2.abandoned, 1);
    assert_eq!(a2.ring_no_answers, 0);
    assert_eq!(a2.answered_within_target, 0);
    assert_eq!(a2.pct_within_target, Some(0.0));
    assert_eq!(a2.p90_rings, Some(4));
    assert_eq!(a2.asa_ms, Some(16_000));
    assert_eq!(a2.agent_hangups, 1);

    // Totals are per call, not the sum of the agent rows.
    let t = &summary.totals;
    assert_eq!(t.offered, 4);
    assert_eq!(t.answered, 2);
    assert_eq!(t.abandoned, 2);
    assert_eq!(t.ring_no_answers, 2);
    assert_eq!(t.agent_hangups, 1);
    assert_eq!(t.low_surveys, 1);
}

#[test]
fn hours_and_days_are_local_at_plus_eight() {
    // 2025-03-01T15:30Z = 23:30 local (1 March); 16:10Z = 00:10 local on 2 March.
    let calls = [
        answered("a", DAY + 15 * HOUR + 30 * 60_000, "1001", 1000),
        answered("b", DAY + 16 * HOUR + 10 * 60_000, "1001", 20_000),
        answered("c", DAY + 1, "1001", 1000),
    ];
    let hours = summarize(&calls, Group::Hour);
    assert_eq!(hours.rows.len(), 24);
    let row = |h: &str| {
        hours
            .rows
            .iter()
            .find(|r| r.key.as_deref() == Some(h))
            .unwrap()
    };
    assert_eq!(row("23").answered, 1);
    assert_eq!(row("00").answered, 1);
    assert_eq!(row("00").pct_within_target, Some(0.0));
    assert_eq!(row("08").answered, 1);
    assert_eq!(row("15").offered, 0);
    assert_eq!(row("15").pct_within_target, None);
    assert_eq!(hours.rows[0].key.as_deref(), Some("00"));

    let days = summarize(&calls, Group::Day);
    let keys: Vec<&str> = days.rows.iter().filter_map(|r| r.key.as_deref()).collect();
    // The range 08:00 1 March to 08:00 2 March local touches both dates.
    assert_eq!(keys, ["2025-03-01", "2025-03-02"]);
    assert_eq!(days.rows[0].answered, 2);
    assert_eq!(days.rows[1].answered, 1);
}

#[test]
fn queues_are_sorted_and_calls_without_a_queue_come_last() {
    let mut none = base("x", DAY, CallOutcome::Failed);
    none.queue = None;
    let mut complaints = answered("y", DAY, "1002", 1000);
    complaints.queue = Some("complaints".to_owned());
    let calls = [answered("z", DAY, "1001", 1000), none, complaints];
    let summary = summarize(&calls, Group::Queue);
    let keys: Vec<Option<&str>> = summary.rows.iter().map(|r| r.key.as_deref()).collect();
    assert_eq!(keys, [Some("complaints"), Some("consult"), None]);
    assert_eq!(summary.rows[2].failed, 1);
    assert_eq!(summary.totals.offered, 3);
}

#[test]
fn ring_counts_fill_buckets_up_to_limit_plus_one() {
    let s = settings();
    let mut counts = RingCounts::new(&s, Some("consult".into()), None);
    for c in ten_answered() {
        counts.add(&c);
    }
    let mut other = answered("q", DAY, "1001", 1000);
    other.queue = Some("other".into());
    counts.add(&other);
    // Rings 1,1,2,2,3,3,4,5 and 6,7 → "6+".
    assert_eq!(counts.counts, [2, 2, 2, 1, 1, 2]);
    assert_eq!(counts.label(0), "1");
    assert_eq!(counts.label(5), "6+");
    let mut by_agent = RingCounts::new(&s, None, Some("1002".into()));
    for c in ten_answered() {
        by_agent.add(&c);
    }
    assert_eq!(by_agent.total(), 0);
}

#[test]
fn csv_fields_are_quoted_per_rfc_4180() {
    assert_eq!(field("plain"), "plain");
    assert_eq!(field("a,b"), "\"a,b\"");
    assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(field("two\nlines"), "\"two\nlines\"");
    assert_eq!(field("cr\rhere"), "\"cr\rhere\"");
    assert_eq!(field("张三,李四"), "\"张三,李四\"");
    assert_eq!(field("华东"), "华东");

    let mut table = Table::new(&["name", "n", "pct", "note"]);
    table.rows.push(vec![
        Cell::text("张三, \"VIP\""),
        Cell::Int(-3),
        Cell::Num(Some(66.67)),
        Cell::text("line1\r\nline2"),
    ]);
    table.rows.push(vec![
        Cell::text("=1+1"),
        Cell::Int(0),
        Cell::Num(None),
        Cell::Empty,
    ]);
    let csv = table.to_csv();
    assert!(csv.starts_with('\u{feff}'));
    assert!(csv.as_bytes().starts_with(&[0xEF, 0xBB, 0xBF]));
    assert_eq!(
        &csv['\u{feff}'.len_utf8()..],
        "name,n,pct,note\r\n\
         \"张三, \"\"VIP\"\"\",-3,66.67,\"line1\r\nline2\"\r\n\
         '=1+1,0,,\r\n"
    );
}

#[test]
fn summary_csv_has_a_header_the_rows_and_the_totals() {
    let summary = summarize(&ten_answered(), Group::Agent);
    let csv = summary_table(&summary).to_csv();
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').split("\r\n").collect();
    assert!(lines[0].starts_with("agent,name,offered,answered,abandoned,"));
    assert!(lines[1].starts_with("1001,Wang Fang,10,10,0,0,0,6,60,2,20,3.4,6,13500,6,"));
    assert!(lines[2].starts_with("total,,13,10,2,1,0,6,60,"));
    assert_eq!(lines[3], "");
    assert_eq!(lines.len(), 4);
    let header_fields = lines[0].split(',').count();
    assert!(lines[1..3]
        .iter()
        .all(|l| l.split(',').count() == header_fields));

    let none = summary_table(&summarize(&ten_answered(), Group::None)).to_csv();
    assert_eq!(
        none.split("\r\n").count(),
        3,
        "header, one row, end: {none}"
    );
}

/// Checks that every tag opened is closed in order (a small XML well-formedness check:
/// no comments, CDATA or processing instructions in our SVG), and returns the number
/// of elements.
fn check_balanced(svg: &str) -> usize {
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        assert!(!text.contains('>'), "stray > in text {text:?}");
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let tag = &rest[start + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
        } else {
            elements += 1;
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in <{tag}>"
            );
            let name: String = tag
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '/')
                .collect();
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert!(!rest.contains('>'));
    elements
}

#[test]
fn the_rings_histogram_is_well_formed_svg_with_its_buckets() {
    let s = settings();
    let mut counts = RingCounts::new(&s, None, None);
    for c in ten_answered() {
        counts.add(&c);
    }
    // A queue name that needs escaping, shown in the subtitle.
    counts.queue = Some("consult & <co>".into());
    let svg = rings_histogram(&counts, "2025-03-01 08:00 – 2025-03-02 08:00 (+08:00)");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>"));
    assert!(check_balanced(&svg) > 20);
    assert!(svg.contains("<title id=\"rings-title\">响铃次数分布 Rings to answer</title>"));
    assert!(svg.contains("<desc id=\"rings-desc\">"));
    assert!(svg.contains("role=\"img\""));
    for label in ["1", "2", "3", "4", "5", "6+"] {
        assert!(
            svg.contains(&format!("data-rings=\"{label}\"")),
            "bucket {label}"
        );
        assert!(svg.contains(&format!(">{label}</text>")), "label {label}");
    }
    assert!(svg.contains("data-rings=\"6+\" data-calls=\"2\""));
    assert!(svg.contains("目标 target ≤ 3"));
    assert!(svg.contains("stroke-dasharray"));
    assert!(svg.contains("通话数 Calls"));
    assert!(svg.contains("Rings heard before the answer"));
    // The filter text is escaped.
    assert!(svg.contains("consult &amp; &lt;co&gt;"));
    assert!(svg.contains("ring 6+: 2 calls"));
}

#[test]
fn the_compliance_chart_is_well_formed_svg_per_hour_and_per_day() {
    let hours = summarize(&ten_answered(), Group::Hour);
    let points: Vec<CompliancePoint> = hours.rows.iter().map(CompliancePoint::from_stats).collect();
    let svg = compliance_chart(&points, false, "range");
    assert!(svg.starts_with("<svg"));
    check_balanced(&svg);
    assert!(svg.contains("<title id=\"compliance-title\">"));
    assert!(svg.contains("data-key=\"08\" data-pct=\"60\" data-answered=\"10\""));
    assert!(svg.contains("data-key=\"09\" data-pct=\"\" data-answered=\"0\""));
    assert!(svg.contains("08: 60% of 10 answered"));
    assert!(svg.contains("100%"));
    assert!(svg.contains("小时 Local hour of day"));

    // Sixty days: every label would not fit, but the chart stays well formed.
    let points: Vec<CompliancePoint> = (0..60)
        .map(|i| CompliancePoint {
            label: format!("2025-03-{:02}", i % 28 + 1),
            pct_within_target: Some(f64::from(i)),
            answered: 1,
        })
        .collect();
    let svg = compliance_chart(&points, true, "range");
    check_balanced(&svg);
    assert_eq!(svg.matches("class=\"bar\"").count(), 60);
    assert!(svg.contains("日期 Local date"));
}

#[test]
fn axis_scales_are_round() {
    assert_eq!(nice_scale(0), (1, 1));
    assert_eq!(nice_scale(4), (4, 1));
    assert_eq!(nice_scale(7), (8, 2));
    assert_eq!(nice_scale(23), (25, 5));
    assert_eq!(nice_scale(101), (150, 50));
}

#[test]
fn ranges_default_to_the_last_day_and_are_checked() {
    let now = DAY + 5 * HOUR;
    assert_eq!(
        Range::resolve(None, None, now),
        Ok(Range {
            from: now - 24 * HOUR,
            to: now
        })
    );
    assert_eq!(Range::resolve(Some(5), Some(5), now).unwrap_err().0, "to");
    assert_eq!(
        Range::resolve(Some(0), Some(MAX_RANGE_MS + 1), now)
            .unwrap_err()
            .0,
        "from"
    );
    // Extreme epoch ms from a query string are refused, not an overflow (schemathesis
    // found `to=-9223372036854775807` closing the connection).
    assert_eq!(
        Range::resolve(None, Some(i64::MIN + 1), now),
        Ok(Range {
            from: i64::MIN,
            to: i64::MIN + 1
        })
    );
    assert_eq!(
        Range::resolve(Some(946_684_800_000), Some(i64::MIN + 1), now)
            .unwrap_err()
            .0,
        "to"
    );
    assert_eq!(
        Range::resolve(Some(i64::MIN), Some(i64::MAX), now)
            .unwrap_err()
            .0,
        "from"
    );
}

#[test]
fn command_line_times_are_local_dates_times_rfc3339_or_epoch_ms() {
    let offset = FixedOffset::east_opt(8 * 3600).unwrap();
    // Midnight 1 March at +08:00 is 16:00 UTC on 28 February.
    assert_eq!(parse_cli_time("2025-03-01", offset), Some(DAY - 8 * HOUR));
    assert_eq!(parse_cli_time("2025-03-01 08:00", offset), Some(DAY));
    assert_eq!(parse_cli_time("2025-03-01T08:00:00", offset), Some(DAY));
    assert_eq!(parse_cli_time("2025-03-01T00:00:00Z", offset), Some(DAY));
    assert_eq!(parse_cli_time("1740787200000", offset), Some(DAY));
    assert_eq!(parse_cli_time("yesterday", offset), None);
}

#[test]
fn the_reports_section_is_validated() {
    assert!(ReportsConfig::default().validate().is_empty());
    let bad = ReportsConfig {
        service_level_ms: 0,
    };
    assert_eq!(bad.validate()[0].0, "service_level_ms");
}
