//! The post-call satisfaction survey (`对客户进行满意度调查`, SERVICE-RULES.md): when the
//! agent hangs up, the caller stays on the line, hears the survey prompt, and the first
//! key 1–5 (RFC 4733 telephone-event or SIP INFO) is the call's score. Any other key
//! replays the question once; no key within the timeout ends without a score. A thank-you
//! prompt closes it. The flow runs as its own task and reports the score to call control.

use crate::config::SurveyConfig;
use crate::media::prompt::{Prompt, PromptCodec};
use crate::media::MediaSession;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const BUILTIN_SURVEY: &[u8] = include_bytes!("../../config/prompts/survey.wav");
const BUILTIN_INVALID: &[u8] = include_bytes!("../../config/prompts/invalid.wav");
const BUILTIN_THANKS: &[u8] = include_bytes!("../../config/prompts/thanks.wav");

/// The three prompts, decoded once at start-up.
#[derive(Debug, Clone)]
pub struct SurveyPrompts {
    survey: Prompt,
    invalid: Prompt,
    thanks: Prompt,
    timeout: Duration,
}

/// One call's survey: the prompts in the caller's codec and the payload type to send.
#[derive(Debug, Clone)]
pub struct SurveyPlan {
    pub payload_type: u8,
    survey: Arc<Vec<[u8; 160]>>,
    invalid: Arc<Vec<[u8; 160]>>,
    thanks: Arc<Vec<[u8; 160]>>,
    timeout: Duration,
}

fn prompt(path: Option<&Path>, builtin: &[u8], what: &str) -> Result<Prompt, String> {
    match path {
        Some(p) => Prompt::load_wav(p).map_err(|e| format!("survey.{what}: {}: {e}", p.display())),
        None => Prompt::from_wav_bytes(builtin).map_err(|e| format!("built-in {what}: {e}")),
    }
}

impl SurveyPrompts {
    /// The configured prompts, or the built-in ones (`config/prompts/`).
    pub fn load(config: &SurveyConfig) -> Result<SurveyPrompts, String> {
        Ok(SurveyPrompts {
            survey: prompt(config.prompt.as_deref(), BUILTIN_SURVEY, "prompt")?,
            invalid: prompt(
                config.invalid_prompt.as_deref(),
                BUILTIN_INVALID,
                "invalid_prompt",
            )?,
            thanks: prompt(
                config.thanks_prompt.as_deref(),
                BUILTIN_THANKS,
                "thanks_prompt",
            )?,
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    pub fn plan(&self, codec: PromptCodec, payload_type: u8) -> SurveyPlan {
        SurveyPlan {
            payload_type,
            survey: Arc::new(self.survey.frames(codec)),
            invalid: Arc::new(self.invalid.frames(codec)),
            thanks: Arc::new(self.thanks.frames(codec)),
            timeout: self.timeout,
        }
    }
}

/// Runs the survey on a caller leg whose agent has gone. `digits` carries the caller's
/// keys from the moment the survey started (earlier presses do not count). Returns the
/// score, if the caller gave one.
pub async fn run(
    media: Arc<MediaSession>,
    mut digits: mpsc::Receiver<char>,
    plan: SurveyPlan,
) -> Option<u8> {
    let pt = plan.payload_type;
    let mut score = None;
    for attempt in 0..2 {
        if media.play_to_caller(plan.survey.clone(), pt).await.is_err() {
            return None;
        }
        match tokio::time::timeout(plan.timeout, digits.recv()).await {
            Ok(Some(key @ '1'..='5')) => {
                score = Some(key as u8 - b'0');
                break;
            }
            Ok(Some(_)) if attempt == 0 => {
                if media
                    .play_to_caller(plan.invalid.clone(), pt)
                    .await
                    .is_err()
                {
                    return None;
                }
                // Keys pressed while the apology played do not answer the question.
                while digits.try_recv().is_ok() {}
            }
            _ => break,
        }
    }
    let _ = media.play_to_caller(plan.thanks.clone(), pt).await;
    score
}
