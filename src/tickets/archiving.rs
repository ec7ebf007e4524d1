//! Archiving a ticket (SERVICE-RULES.md "Archiving"): first the completeness check
//! (`检查“业务咨询单”的完整性和正确性`): the form's required fields, at least one linked
//! recording, every linked recording present and matching its SHA-256, a survey result
//! or a reason there is none. An incomplete ticket is refused with the whole list of what
//! is missing. Then one bundle (`crate::archive`) with the form, the recordings, the
//! survey and each call's ring timing, and the ticket is marked archived with the
//! bundle's own SHA-256.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::ticket::{missing_fields, Refused};
use super::{HistoryEntry, TicketError, Tickets};
use crate::archive::{self, ArchiveError, BundleInput, RecordingInput};
use crate::call::record::CallRecord;

/// Progress of the bundle being written: (bytes done, bytes in all).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveRefused {
    #[error("incomplete: {}", missing.join("; "))]
    Incomplete { missing: Vec<String> },
    #[error("ticket {id} is already archived at {path}")]
    AlreadyArchived { id: String, path: String },
    #[error(transparent)]
    Ticket(#[from] TicketError),
    #[error("ticket {id} is being archived by another request")]
    Busy { id: String },
    #[error("{message}")]
    Changed { message: String },
    #[error("archiving failed: {0}")]
    Failed(String),
}

/// What was archived.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Archived {
    pub ticket: String,
    /// Relative to the archive root.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub recordings: usize,
}

/// The calls linked to a ticket, and what the check found about their recordings.
struct Checked {
    calls: Vec<CallRecord>,
    recordings: Vec<RecordingInput>,
    missing: Vec<String>,
}

/// Checks the ticket and, when complete, writes its bundle and marks it archived.
pub async fn archive_ticket(
    tickets: &Tickets,
    recordings_root: &Path,
    archive_root: &Path,
    id: &str,
    author: &str,
    progress: Option<Progress>,
) -> Result<Archived, ArchiveRefused> {
    let ticket = tickets.get(id).await?;
    let version = ticket.version;
    if ticket.archived_at.is_some() {
        return Err(ArchiveRefused::AlreadyArchived {
            id: id.to_owned(),
            path: ticket.archive_path.unwrap_or_default(),
        });
    }
    let mut calls = Vec::new();
    let mut absent = Vec::new();
    for link in &ticket.calls {
        match tickets
            .store
            .get_call(&link.call_id)
            .await
            .map_err(TicketError::from)?
        {
            Some(call) => calls.push(call),
            None => absent.push(format!(
                "call {}: linked but not in the store",
                link.call_id
            )),
        }
    }
    let root = recordings_root.to_owned();
    let checked = tokio::task::spawn_blocking(move || check_recordings(&root, calls))
        .await
        .map_err(|e| ArchiveRefused::Failed(e.to_string()))?;
    let mut missing = missing_fields(&ticket);
    missing.extend(absent);
    missing.extend(checked.missing);
    if ticket.survey_score.is_none() && ticket.no_survey_reason.is_none() {
        missing.push(
            "survey result: no score, and no no_survey_reason saying why there is none".into(),
        );
    }
    if !missing.is_empty() {
        return Err(ArchiveRefused::Incomplete { missing });
    }

    let filed_on = tickets
        .rules
        .calendar
        .local_date(chrono::DateTime::from_timestamp_millis(ticket.created_at).unwrap_or_default());
    let survey = json!({
        "score": ticket.survey_score,
        "cause": ticket.survey_cause,
        "call_id": ticket.survey_call_id,
        "at": ticket.survey_at,
        "no_survey_reason": ticket.no_survey_reason,
    });
    let calls_json: Vec<serde_json::Value> = checked
        .calls
        .iter()
        .map(|call| {
            let role = ticket
                .calls
                .iter()
                .find(|l| l.call_id == call.id)
                .map(|l| l.role.as_str());
            let mut value = serde_json::to_value(call).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("role".into(), json!(role));
            }
            value
        })
        .collect();
    let recordings = checked.recordings.len();
    let input = BundleInput {
        ticket_id: ticket.id.clone(),
        kind: ticket.kind.as_str().to_owned(),
        filed_on,
        form: serde_json::to_value(&ticket).unwrap_or_default(),
        calls: serde_json::Value::Array(calls_json),
        survey,
        recordings: checked.recordings,
    };
    let root = archive_root.to_owned();
    let (written, fresh) = tokio::task::spawn_blocking(move || {
        let mut report = |done: u64, total: u64| {
            if let Some(progress) = &progress {
                progress(done, total)
            }
        };
        match archive::write_bundle(&root, &input, &mut report) {
            Ok(written) => Ok((written, true)),
            // A bundle from an earlier run that died before marking the ticket: kept
            // only if it holds this ticket exactly as it is now; else set aside (never
            // overwritten) and written afresh.
            Err(ArchiveError::Exists { path }) => {
                if let Some(kept) = same_bundle(&path, &input) {
                    return Ok((kept, false));
                }
                let aside = path.with_extension(format!(
                    "tar.stale-{}",
                    chrono::Utc::now().timestamp_millis()
                ));
                std::fs::rename(&path, &aside).map_err(|source| ArchiveError::Io {
                    path: path.clone(),
                    source,
                })?;
                tracing::warn!(stale = %aside.display(), "an earlier bundle of this ticket no longer matches it: set aside");
                archive::write_bundle(&root, &input, &mut report).map(|w| (w, true))
            }
            Err(other) => Err(other),
        }
    })
    .await
    .map_err(|e| ArchiveRefused::Failed(e.to_string()))?
    .map_err(|e| match e {
        ArchiveError::RecordingChanged { name, .. } => ArchiveRefused::Incomplete {
            missing: vec![format!(
                "recording {name}: changed while it was being archived (SHA-256 differs)"
            )],
        },
        ArchiveError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
            ArchiveRefused::Busy { id: id.to_owned() }
        }
        other => ArchiveRefused::Failed(other.to_string()),
    })?;
    let relative = written
        .path
        .strip_prefix(archive_root)
        .unwrap_or(&written.path)
        .to_string_lossy()
        .into_owned();
    let (path, sha) = (relative.clone(), written.sha256.clone());
    let marked = tickets
        .change(id, |_, t, now| {
            // The bundle holds the ticket as read above: anything since (an edit, a
            // survey, another archiver) makes it stale.
            if t.version != version || t.archived_at.is_some() {
                return Err(Refused::Conflict(format!(
                    "ticket {} changed while it was being archived; archive it again",
                    t.id
                )));
            }
            t.archived_at = Some(now);
            t.archive_path = Some(path.clone());
            t.archive_sha256 = Some(sha.clone());
            t.updated_at = now;
            Ok(vec![HistoryEntry::new(
                now,
                author,
                "archived",
                format!("archived to {path} (SHA-256 {sha})"),
            )])
        })
        .await;
    if let Err(e) = marked {
        if fresh {
            if let Err(remove) = std::fs::remove_file(&written.path) {
                tracing::error!(path = %written.path.display(), error = %remove, "a stale bundle could not be removed");
            }
        }
        return Err(match e {
            TicketError::Refused(Refused::Conflict(message)) => ArchiveRefused::Changed { message },
            other => ArchiveRefused::Ticket(other),
        });
    }
    tracing::info!(ticket = %id, path = %relative, sha256 = %written.sha256, "ticket archived");
    Ok(Archived {
        ticket: id.to_owned(),
        path: relative,
        sha256: written.sha256,
        bytes: written.bytes,
        recordings,
    })
}

/// The existing bundle at `path` if it verifies and holds exactly `input` (same form,
/// calls, survey and recordings).
fn same_bundle(path: &Path, input: &BundleInput) -> Option<archive::Written> {
    let verified = archive::verify(path).ok()?;
    if verified.ticket_id != input.ticket_id {
        return None;
    }
    let sha = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    let mut wanted = vec![
        (
            "form.json".to_owned(),
            sha(&archive::json_member(&input.form)),
        ),
        (
            "calls.json".to_owned(),
            sha(&archive::json_member(&input.calls)),
        ),
        (
            "survey.json".to_owned(),
            sha(&archive::json_member(&input.survey)),
        ),
    ];
    for recording in &input.recordings {
        wanted.push((
            format!("recordings/{}", recording.name),
            recording.sha256.to_ascii_lowercase(),
        ));
    }
    let held = |name: &str| {
        verified
            .members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.to_ascii_lowercase())
    };
    let recordings_held = verified
        .members
        .iter()
        .filter(|(n, _)| n.starts_with("recordings/"))
        .count();
    let same = wanted
        .iter()
        .all(|(name, s)| held(name).as_deref() == Some(s.as_str()))
        && recordings_held == input.recordings.len();
    same.then(|| archive::Written {
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        path: path.to_owned(),
        sha256: verified.sha256,
    })
}

/// Finds each linked call's recording and checks it against its stored SHA-256.
fn check_recordings(root: &Path, calls: Vec<CallRecord>) -> Checked {
    let mut missing = Vec::new();
    let mut recordings = Vec::new();
    for call in &calls {
        let Some(relative) = &call.recording_path else {
            continue; // not answered, or not recorded: nothing to archive
        };
        let source: PathBuf = root.join(relative);
        let Some(expected) = &call.recording.sha256 else {
            missing.push(format!(
                "recording of call {}: not finished (no SHA-256 yet; is the call still going?)",
                call.id
            ));
            continue;
        };
        match sha256_file(&source) {
            Ok(actual) if &actual == expected => recordings.push(RecordingInput {
                name: format!("{}.wav", call.id),
                source,
                sha256: actual,
            }),
            Ok(actual) => missing.push(format!(
                "recording of call {}: {} does not match its SHA-256 (stored {expected}, file {actual})",
                call.id,
                source.display()
            )),
            Err(e) => missing.push(format!(
                "recording of call {}: {} cannot be read ({e})",
                call.id,
                source.display()
            )),
        }
    }
    if recordings.is_empty() && !missing.iter().any(|m| m.starts_with("recording")) {
        missing.push(
            "recordings: no linked call has a recording (the customer's call, a work contact or the reply call)"
                .into(),
        );
    }
    Checked {
        calls,
        recordings,
        missing,
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
