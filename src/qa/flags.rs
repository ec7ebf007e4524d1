//! Automatic QA flags (SERVICE-RULES.md "Answering"): what a QA auditor should look at
//! in a call without listening to all of it. From the record: answered after the target
//! ring, over the limit, the agent hung up first (not a hand-off to the survey), talk
//! over three minutes, a recording cut by a crash. From the recording's levels: a long
//! silence, and talk-over (both channels loud at once).

use serde::Serialize;

use super::analysis::{Analysis, WINDOW_MS};
use super::QaConfig;
use crate::call::record::{CallRecord, HangupSide};

/// One flag on a call.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Flag {
    /// Stable code: late_answer, over_limit, agent_hung_up_first, long_talk,
    /// long_silence, talk_over, interrupted_recording.
    pub code: &'static str,
    /// Chinese and English, for the pages.
    pub label: &'static str,
    /// Where in the recording (ms from its start), when it is about a moment.
    pub at_ms: Option<i64>,
    pub detail: String,
}

fn flag(code: &'static str, label: &'static str, at_ms: Option<i64>, detail: String) -> Flag {
    Flag {
        code,
        label,
        at_ms,
        detail,
    }
}

/// The flags of `call`; `analysis` is its recording's, when there is one.
pub fn call_flags(
    call: &CallRecord,
    config: &QaConfig,
    target_rings: u32,
    analysis: Option<&Analysis>,
) -> Vec<Flag> {
    let mut flags = Vec::new();
    if call.three_ring_ok == Some(false) {
        flags.push(flag(
            "late_answer",
            "超过三声接听 · answered after the target ring",
            None,
            format!(
                "answered on ring {} (target {target_rings}) after {} ms",
                call.rings.unwrap_or_default(),
                call.caller_ring_ms.unwrap_or_default()
            ),
        ));
    }
    if call.over_limit == Some(true) {
        flags.push(flag(
            "over_limit",
            "超过响铃上限 · over the ring limit",
            None,
            format!("answered on ring {}", call.rings.unwrap_or_default()),
        ));
    }
    // A hand-off to the survey is not "hanging up on the customer".
    if call.hangup_side == Some(HangupSide::Agent) && !call.handed_to_survey() {
        flags.push(flag(
            "agent_hung_up_first",
            "坐席先挂机 · the agent hung up first",
            call.talk_ms,
            "the customer was still on the line".into(),
        ));
    }
    if let Some(talk) = call.talk_ms.filter(|t| *t > config.long_talk_ms as i64) {
        flags.push(flag(
            "long_talk",
            "解答超过3分钟 · talk over three minutes",
            Some(config.long_talk_ms as i64),
            format!("talk time {} s", talk / 1000),
        ));
    }
    if call.recording.interrupted {
        flags.push(flag(
            "interrupted_recording",
            "录音中断 · recording interrupted",
            None,
            "the daemon stopped while recording; the file was repaired".into(),
        ));
    }
    if let Some(analysis) = analysis {
        // Only the conversation counts: the survey after it is prompts and keys.
        let talk_windows = call
            .talk_ms
            .map(|t| (t / i64::from(WINDOW_MS)) as usize)
            .unwrap_or(analysis.rms.len())
            .min(analysis.rms.len());
        let levels = &analysis.rms[..talk_windows];
        for (start, len) in runs(levels, |[c, a]| {
            c < config.silence_level && a < config.silence_level
        }) {
            let ms = len as i64 * i64::from(WINDOW_MS);
            if ms >= config.silence_ms as i64 {
                flags.push(flag(
                    "long_silence",
                    "长时间静音 · long silence",
                    Some(start as i64 * i64::from(WINDOW_MS)),
                    format!("{:.1} s with neither side speaking", ms as f64 / 1000.0),
                ));
            }
        }
        for (start, len) in runs(levels, |[c, a]| {
            c >= config.speech_level && a >= config.speech_level
        }) {
            let ms = len as i64 * i64::from(WINDOW_MS);
            if ms >= config.talk_over_ms as i64 {
                flags.push(flag(
                    "talk_over",
                    "抢话 · both talking at once",
                    Some(start as i64 * i64::from(WINDOW_MS)),
                    format!("{:.1} s of both channels loud", ms as f64 / 1000.0),
                ));
            }
        }
    }
    flags
}

/// Runs of consecutive windows where `test` holds: (first window, length).
fn runs(levels: &[[f32; 2]], test: impl Fn([f32; 2]) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &level) in levels.iter().enumerate() {
        match (test(level), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - s));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, levels.len() - s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::record::{CallOutcome, Direction};

    fn call() -> CallRecord {
        CallRecord {
            id: "n1-1".into(),
            sip_call_id: "x".into(),
            direction: Direction::Inbound,
            caller: "13800138000".into(),
            callee: "4008001234".into(),
            queue: Some("consult".into()),
            agent: Some("1001".into()),
            started_at: 0,
            caller_ringing_at: Some(0),
            answered_at: Some(21_000),
            ended_at: Some(300_000),
            caller_ring_ms: Some(21_000),
            rings: Some(5),
            three_ring_ok: Some(false),
            over_limit: Some(false),
            outcome: CallOutcome::Answered,
            hangup_side: Some(HangupSide::Agent),
            talk_ms: Some(200_000),
            attempts: Vec::new(),
            recording_path: None,
            survey_score: None,
            survey_offered: false,
            recording: Default::default(),
            tickets: Vec::new(),
        }
    }

    fn codes(flags: &[Flag]) -> Vec<&str> {
        flags.iter().map(|f| f.code).collect()
    }

    #[test]
    fn the_record_alone_gives_late_answer_hang_up_and_long_talk() {
        let flags = call_flags(&call(), &QaConfig::default(), 3, None);
        assert_eq!(
            codes(&flags),
            ["late_answer", "agent_hung_up_first", "long_talk"]
        );
        assert!(flags[0].detail.contains("ring 5"));
        let mut quick = call();
        quick.three_ring_ok = Some(true);
        quick.hangup_side = Some(HangupSide::Caller);
        quick.talk_ms = Some(60_000);
        assert!(call_flags(&quick, &QaConfig::default(), 3, None).is_empty());
    }

    #[test]
    fn a_hand_off_to_the_survey_is_not_an_agent_hang_up() {
        let mut surveyed = call();
        surveyed.survey_score = Some(4);
        let flags = call_flags(&surveyed, &QaConfig::default(), 3, None);
        assert!(!codes(&flags).contains(&"agent_hung_up_first"));
        // Handed over but no key pressed: still a hand-off.
        let mut unscored = call();
        unscored.survey_offered = true;
        let flags = call_flags(&unscored, &QaConfig::default(), 3, None);
        assert!(!codes(&flags).contains(&"agent_hung_up_first"));
    }

    #[test]
    fn silence_and_talk_over_are_found_in_the_levels() {
        let config = QaConfig::default();
        let mut levels = vec![[0.1, 0.0]; 40]; // 2 s caller
        levels.extend(vec![[0.0, 0.0]; 240]); // 12 s silence
        levels.extend(vec![[0.1, 0.1]; 40]); // 2 s both
        let analysis = Analysis {
            sample_rate: 8000,
            channels: 2,
            frames: levels.len() as u64 * 400,
            low: vec![[0, 0]; levels.len()],
            high: vec![[0, 0]; levels.len()],
            rms: levels,
        };
        let mut c = call();
        c.talk_ms = Some(16_000);
        c.hangup_side = Some(HangupSide::Caller);
        c.three_ring_ok = Some(true);
        let flags = call_flags(&c, &config, 3, Some(&analysis));
        assert_eq!(codes(&flags), ["long_silence", "talk_over"]);
        assert_eq!(flags[0].at_ms, Some(2000));
        assert_eq!(flags[1].at_ms, Some(14_000));
        // Talk ends before the loud part: no talk-over.
        c.talk_ms = Some(13_000);
        let flags = call_flags(&c, &config, 3, Some(&analysis));
        assert_eq!(codes(&flags), ["long_silence"]);
    }
}
