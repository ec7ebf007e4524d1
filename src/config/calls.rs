//! `[survey]`, `[rings]`, `[[agents]]` and `[[queues]]`: who answers calls, and how
//! they ring.

use std::path::PathBuf;

use serde::Deserialize;

use super::Secret;

/// The post-call satisfaction survey (`对客户进行满意度调查`): when the agent hangs up, the
/// caller stays on the line, hears `prompt`, and the first key 1–5 is the score.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyConfig {
    /// Survey callers when the agent hangs up first (queues may override). Default true.
    #[serde(default = "default_survey_enabled")]
    pub enabled: bool,
    /// How long to wait for a key after the prompt, in ms.
    #[serde(default = "default_survey_timeout_ms")]
    pub timeout_ms: u64,
    /// 8 kHz mono 16-bit WAV files; the built-in prompts when absent.
    #[serde(default)]
    pub prompt: Option<PathBuf>,
    #[serde(default)]
    pub invalid_prompt: Option<PathBuf>,
    #[serde(default)]
    pub thanks_prompt: Option<PathBuf>,
    /// An agent transfers the caller to the survey with a REFER to this user
    /// (`Refer-To: <sip:survey@…>`).
    #[serde(default = "default_survey_number")]
    pub number: String,
}

fn default_survey_number() -> String {
    "survey".into()
}

impl Default for SurveyConfig {
    fn default() -> Self {
        SurveyConfig {
            enabled: default_survey_enabled(),
            timeout_ms: default_survey_timeout_ms(),
            prompt: None,
            invalid_prompt: None,
            thanks_prompt: None,
            number: default_survey_number(),
        }
    }
}

fn default_survey_enabled() -> bool {
    true
}

fn default_survey_timeout_ms() -> u64 {
    10_000
}

/// The three-ring rule (DESIGN.md "Ring timing").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingsConfig {
    /// One ring burst every `cadence_ms` (China: 1 s on, 4 s off = 5000).
    #[serde(default = "default_cadence_ms")]
    pub cadence_ms: u64,
    /// Answer within this many rings.
    #[serde(default = "default_ring_target")]
    pub target: u32,
    /// Never more than this many rings.
    #[serde(default = "default_ring_limit")]
    pub limit: u32,
}

impl Default for RingsConfig {
    fn default() -> Self {
        RingsConfig {
            cadence_ms: default_cadence_ms(),
            target: default_ring_target(),
            limit: default_ring_limit(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The employee number; also the SIP user the agent registers as.
    pub id: String,
    pub name: String,
    /// Digest password for REGISTER.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A fixed contact (e.g. a PBX extension) rung when the agent has not registered.
    #[serde(default)]
    pub contact: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// Request-URI user parts routed to this queue.
    pub numbers: Vec<String>,
    #[serde(default)]
    pub strategy: Strategy,
    /// Agent ids, in order (the order matters for round-robin and ties).
    pub agents: Vec<String>,
    /// How long one agent attempt rings before we cancel it and try the next agent.
    #[serde(default = "default_ring_timeout_ms")]
    pub ring_timeout_ms: u64,
    /// How long a caller may wait for any agent before overflow (or 480).
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// Queue that takes the call after `max_wait_ms`.
    #[serde(default)]
    pub overflow: Option<String>,
    /// After a call, the agent is not rung for this long.
    #[serde(default = "default_wrap_up_ms")]
    pub wrap_up_ms: u64,
    /// Ring-no-answers in a row after which the agent is paused (0 = never).
    #[serde(default = "default_auto_pause_after")]
    pub auto_pause_after: u32,
    /// After an agent answers busy, rejects, or cannot be reached, it is not rung again
    /// for this long (without it, a busy phone would be re-rung in a tight loop).
    #[serde(default = "default_retry_ms")]
    pub retry_ms: u64,
    /// Record this queue's calls (both sides, stereo WAV). Default true.
    #[serde(default = "default_record")]
    pub record: bool,
    /// Survey this queue's callers after the agent hangs up; `[survey] enabled` if absent.
    #[serde(default)]
    pub survey: Option<bool>,
    /// This queue's own survey prompts (8 kHz mono 16-bit WAV); `[survey]`'s otherwise.
    #[serde(default)]
    pub survey_prompt: Option<PathBuf>,
    #[serde(default)]
    pub survey_invalid_prompt: Option<PathBuf>,
    #[serde(default)]
    pub survey_thanks_prompt: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Ring every available agent at once; the first to answer wins.
    RingAll,
    /// The agent idle longest since their last call.
    #[default]
    LongestIdle,
    /// Agents in turn, continuing after the last one rung.
    RoundRobin,
    /// The agent with the fewest answered calls so far.
    FewestCalls,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RingAll => "ring-all",
            Strategy::LongestIdle => "longest-idle",
            Strategy::RoundRobin => "round-robin",
            Strategy::FewestCalls => "fewest-calls",
        }
    }
}

fn default_record() -> bool {
    true
}
fn default_cadence_ms() -> u64 {
    5000
}
fn default_ring_target() -> u32 {
    3
}
fn default_ring_limit() -> u32 {
    5
}
fn default_ring_timeout_ms() -> u64 {
    15_000
}
fn default_max_wait_ms() -> u64 {
    120_000
}
fn default_wrap_up_ms() -> u64 {
    5000
}
fn default_retry_ms() -> u64 {
    5000
}

fn default_auto_pause_after() -> u32 {
    3
}
