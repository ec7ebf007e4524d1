//! Pictures for the call page, drawn on the server as SVG (no JavaScript): the
//! recording's waveform, one lane per channel (caller, agent), and the ring timeline
//! (each agent attempt, each ring burst the caller heard, the answer and the hang-up).

use std::fmt::Write as _;

use super::analysis::Analysis;
use crate::call::record::{AttemptOutcome, CallRecord, HangupSide};

pub use crate::html::esc;

const WIDTH: f64 = 900.0;
const LANE: f64 = 70.0;
const LEFT: f64 = 70.0;

/// Seconds as m:ss.
fn clock(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

/// The waveform: two lanes (客户 caller on top, 坐席 agent below), min/max per column,
/// with a time axis. `class="lane"` groups carry `data-channel` for tests and scripts.
pub fn waveform(analysis: &Analysis) -> String {
    let plot = WIDTH - LEFT - 10.0;
    let columns = (plot as usize).min(analysis.rms.len()).max(1);
    let windows = analysis.rms.len();
    let height = 2.0 * LANE + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="waveform" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="waveform: caller and agent channels"><title>录音波形 · waveform ({})</title>"#,
        clock(analysis.duration_ms())
    );
    for (lane, (name, color)) in [("客户 caller", "#1f6fb2"), ("坐席 agent", "#b2521f")]
        .into_iter()
        .enumerate()
    {
        let top = 10.0 + lane as f64 * LANE;
        let mid = top + LANE / 2.0;
        let _ = write!(
            svg,
            r##"<g class="lane" data-channel="{}"><text x="4" y="{:.1}" font-size="12">{}</text><line x1="{LEFT}" y1="{mid:.1}" x2="{:.1}" y2="{mid:.1}" stroke="#ccc"/><path fill="none" stroke="{color}" d=""##,
            if lane == 0 { "caller" } else { "agent" },
            mid + 4.0,
            esc(name),
            LEFT + plot
        );
        for col in 0..columns {
            let from = col * windows / columns;
            let to = ((col + 1) * windows / columns).max(from + 1).min(windows);
            if from >= windows {
                break;
            }
            let low = analysis.low[from..to]
                .iter()
                .map(|l| l[lane])
                .min()
                .unwrap_or(0);
            let high = analysis.high[from..to]
                .iter()
                .map(|h| h[lane])
                .max()
                .unwrap_or(0);
            let x = LEFT + col as f64 * plot / columns as f64;
            let scale = (LANE / 2.0 - 2.0) / 32768.0;
            let y1 = mid - f64::from(high.max(0)) * scale;
            let y2 = mid - f64::from(low.min(0)) * scale;
            let _ = write!(svg, "M{x:.1} {y1:.1}V{:.1}", y2.max(y1 + 0.5));
        }
        svg.push_str("\"/></g>");
    }
    // Time axis: a tick every 10 s (or 60 s for long calls).
    let duration = analysis.duration_ms().max(1);
    // About ten ticks, on round numbers of seconds.
    let step = [
        1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000, 600_000,
    ]
    .into_iter()
    .find(|s| duration / s <= 12)
    .unwrap_or(1_800_000);
    let axis = 10.0 + 2.0 * LANE + 5.0;
    let mut t = 0;
    while t <= duration {
        let x = LEFT + t as f64 * plot / duration as f64;
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{axis:.1}" x2="{x:.1}" y2="{:.1}" stroke="#888"/><text x="{x:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"##,
            axis + 4.0,
            axis + 16.0,
            clock(t)
        );
        t += step;
    }
    svg.push_str("</svg>");
    svg
}

fn outcome_color(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Answered => "#2e8b57",
        AttemptOutcome::Ringing => "#999",
        AttemptOutcome::NoAnswer => "#d4a017",
        AttemptOutcome::Busy | AttemptOutcome::Rejected => "#c0392b",
        AttemptOutcome::Cancelled | AttemptOutcome::Failed => "#7f8c8d",
    }
}

/// The ring timeline: time runs from the call's start; the caller's lane shows each ring
/// burst (`cadence_ms` apart, from our 180) with its number, the target and limit
/// marks, the answer and the hang-up; one lane per agent attempt.
pub fn timeline(call: &CallRecord, cadence_ms: u64, target: u32, limit: u32) -> String {
    let start = call.started_at;
    let end = call
        .ended_at
        .or(call.answered_at)
        .unwrap_or(start + 1000)
        .max(start + 1000);
    // Ringing matters most: zoom to the ring phase plus a margin when the call is long.
    let ring_end = call
        .answered_at
        .or(call.ended_at)
        .unwrap_or(end)
        .max(start + 1000);
    let span_end = ring_end + (ring_end - start) / 5 + 1000;
    let span = (span_end.min(end.max(ring_end)) - start).max(1000) as f64;
    let plot = WIDTH - LEFT - 10.0;
    let x = |at: i64| LEFT + ((at - start) as f64 / span * plot).clamp(0.0, plot);
    let lanes = 1 + call.attempts.len();
    let height = 30.0 + lanes as f64 * 28.0 + 24.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="ring timeline"><title>振铃时间线 · ring timeline</title>"#
    );
    // Caller lane.
    let y = 20.0;
    let _ = write!(
        svg,
        r#"<text x="4" y="{:.1}" font-size="12">客户 caller</text>"#,
        y + 12.0
    );
    if let Some(ringing) = call.caller_ringing_at {
        let ring_stop = call.answered_at.or(call.ended_at).unwrap_or(ringing);
        let cadence = cadence_ms.max(1) as i64;
        let mut n = 0;
        let mut at = ringing;
        while at < ring_stop && n < 60 {
            n += 1;
            let burst_end = (at + cadence.min(1000)).min(ring_stop);
            let _ = write!(
                svg,
                r##"<rect class="ring" data-ring="{n}" x="{:.1}" y="{y:.1}" width="{:.1}" height="16" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="10">{n}</text>"##,
                x(at),
                (x(burst_end) - x(at)).max(1.5),
                if n as u32 > limit {
                    "#c0392b"
                } else if n as u32 > target {
                    "#d4a017"
                } else {
                    "#5dade2"
                },
                x(at) + 1.0,
                y - 2.0
            );
            at += cadence;
        }
        for (mark, label, color) in [(target, "target", "#d4a017"), (limit, "limit", "#c0392b")] {
            let at = ringing + i64::from(mark) * cadence;
            if at - start <= span as i64 {
                let _ = write!(
                    svg,
                    r#"<line x1="{0:.1}" y1="10" x2="{0:.1}" y2="{1:.1}" stroke="{color}" stroke-dasharray="3 3"/><text x="{0:.1}" y="9" font-size="9" fill="{color}">{label} {mark}</text>"#,
                    x(at),
                    height - 20.0
                );
            }
        }
    }
    if let Some(answered) = call.answered_at {
        let _ = write!(
            svg,
            r##"<line class="answer" x1="{0:.1}" y1="10" x2="{0:.1}" y2="{1:.1}" stroke="#2e8b57" stroke-width="2"/><text x="{2:.1}" y="{3:.1}" font-size="10" fill="#2e8b57">接听 answered{4}</text>"##,
            x(answered),
            height - 20.0,
            x(answered) + 3.0,
            height - 8.0,
            call.rings
                .map(|r| format!(" (ring {r})"))
                .unwrap_or_default()
        );
    }
    if let (Some(ended), Some(side)) = (call.ended_at, call.hangup_side) {
        let who = match side {
            HangupSide::Caller => "客户挂机 caller hung up",
            HangupSide::Agent => "坐席挂机 agent hung up",
            HangupSide::System => "系统挂断 ended by the system",
        };
        let shown = if ended - start <= span as i64 {
            x(ended)
        } else {
            LEFT + plot
        };
        let _ = write!(
            svg,
            r##"<text class="hangup" x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{who} · {}</text>"##,
            shown,
            height - 8.0,
            clock(ended - start)
        );
    }
    // Agent lanes.
    for (i, attempt) in call.attempts.iter().enumerate() {
        let y = 20.0 + (i + 1) as f64 * 28.0;
        let until = attempt.ended_at.unwrap_or(end);
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.1}" font-size="12">{}</text><rect class="attempt" data-outcome="{}" x="{:.1}" y="{y:.1}" width="{:.1}" height="16" fill="{}"><title>{} {} {} ms</title></rect>"#,
            y + 12.0,
            esc(&attempt.agent),
            attempt.outcome.as_str(),
            x(attempt.ring_started_at),
            (x(until) - x(attempt.ring_started_at)).max(1.5),
            outcome_color(attempt.outcome),
            esc(&attempt.agent),
            attempt.outcome.as_str(),
            attempt.ring_ms.unwrap_or_default()
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::record::{AgentAttempt, CallOutcome, Direction};

    #[test]
    fn the_waveform_has_two_lanes_and_a_path_each() {
        let mut samples = Vec::new();
        for i in 0..16000 {
            samples.push(if i < 8000 { 12000 } else { 0 });
            samples.push(if i >= 8000 { -12000 } else { 0 });
        }
        let svg = waveform(&Analysis::of_samples(8000, 2, &samples));
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="lane""#).count(), 2);
        assert!(
            svg.contains(r#"data-channel="caller""#) && svg.contains(r#"data-channel="agent""#)
        );
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("0:00"));
    }

    #[test]
    fn the_timeline_shows_each_ring_burst_and_each_attempt() {
        let call = CallRecord {
            id: "n1".into(),
            sip_call_id: "x".into(),
            direction: Direction::Inbound,
            caller: "1".into(),
            callee: "2".into(),
            queue: None,
            agent: Some("1002".into()),
            started_at: 1_000,
            caller_ringing_at: Some(1_100),
            answered_at: Some(1_100 + 16_000),
            ended_at: Some(60_000),
            caller_ring_ms: Some(16_000),
            rings: Some(4),
            three_ring_ok: Some(false),
            over_limit: Some(false),
            outcome: CallOutcome::Answered,
            hangup_side: Some(HangupSide::Caller),
            talk_ms: Some(40_000),
            attempts: vec![
                AgentAttempt {
                    agent: "1001".into(),
                    invited_at: 1_110,
                    ring_started_at: 1_120,
                    ended_at: Some(11_120),
                    ring_ms: Some(10_000),
                    outcome: AttemptOutcome::NoAnswer,
                    sip_status: Some(487),
                },
                AgentAttempt {
                    agent: "1002<x>".into(),
                    invited_at: 11_130,
                    ring_started_at: 11_140,
                    ended_at: Some(17_100),
                    ring_ms: Some(5_960),
                    outcome: AttemptOutcome::Answered,
                    sip_status: Some(200),
                },
            ],
            recording_path: None,
            survey_score: None,
            survey_offered: false,
            recording: Default::default(),
            tickets: Vec::new(),
        };
        let svg = timeline(&call, 5000, 3, 5);
        assert_eq!(svg.matches(r#"class="ring""#).count(), 4, "{svg}");
        assert!(svg.contains(r#"data-ring="4""#));
        assert_eq!(svg.matches(r#"class="attempt""#).count(), 2);
        assert!(svg.contains("answered (ring 4)"));
        assert!(svg.contains("caller hung up"));
        assert!(svg.contains("1002&lt;x&gt;"), "agent ids are escaped");
    }
}
