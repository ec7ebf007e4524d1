//! Quality assurance: what the QA pages show about a call beyond its record: the
//! recording's levels (`analysis`), automatic flags (`flags`), pictures (`svg`), and the
//! scoring forms and scores (`forms`).

pub mod analysis;
pub mod flags;
pub mod forms;
pub mod svg;

use serde::Deserialize;

/// `[qa]`: thresholds of the automatic flags.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QaConfig {
    /// Talk time over this is flagged (`问题解答(3 分钟内)`).
    pub long_talk_ms: u64,
    /// Both channels quieter than `silence_level` this long is a long silence.
    pub silence_ms: u64,
    /// RMS level (fraction of full scale) under which a channel counts as silent.
    pub silence_level: f32,
    /// RMS level over which a channel counts as speaking.
    pub speech_level: f32,
    /// Both channels speaking this long at once is talk-over.
    pub talk_over_ms: u64,
    /// Scoring forms; the first is the default.
    pub forms: Vec<forms::FormConfig>,
}

impl Default for QaConfig {
    fn default() -> Self {
        QaConfig {
            long_talk_ms: 180_000,
            silence_ms: 10_000,
            silence_level: 0.003,
            speech_level: 0.02,
            talk_over_ms: 1_500,
            forms: vec![forms::default_form()],
        }
    }
}

impl QaConfig {
    /// Problems as (key, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.long_talk_ms == 0 {
            problems.push(("long_talk_ms".into(), "must be greater than 0".into()));
        }
        if self.silence_ms == 0 {
            problems.push(("silence_ms".into(), "must be greater than 0".into()));
        }
        if self.talk_over_ms == 0 {
            problems.push(("talk_over_ms".into(), "must be greater than 0".into()));
        }
        if self.forms.is_empty() {
            problems.push(("forms".into(), "at least one scoring form".into()));
        }
        problems.extend(forms::validate_forms(&self.forms));
        if !(0.0..1.0).contains(&self.silence_level) {
            problems.push((
                "silence_level".into(),
                "a fraction of full scale, 0 to 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.speech_level) || self.speech_level <= self.silence_level {
            problems.push((
                "speech_level".into(),
                "a fraction of full scale above silence_level".into(),
            ));
        }
        problems
    }
}

impl QaConfig {
    /// The form called `name`, or the first one.
    pub fn form(&self, name: Option<&str>) -> Option<&forms::FormConfig> {
        match name {
            Some(name) => self.forms.iter().find(|f| f.name == name),
            None => self.forms.first(),
        }
    }
}
