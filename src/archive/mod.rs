//! Ticket archive bundles: one ticket, everything about it, in one checksummed `.tar`.
//!
//! A ticket (customer work order) is archived as a single POSIX ustar file at
//! `<root>/YYYY/MM/DD/<kind>/<ticket id>.tar` ([`bundle_path`], dated by the day the
//! ticket was filed). Its members sit at the top level, in this order:
//!
//! | member | content |
//! |---|---|
//! | `form.json` | the ticket, pretty-printed JSON |
//! | `form.html` | the ticket as a self-contained page with Chinese field labels |
//! | `recordings/<name>` | every call recording linked to the ticket, byte for byte |
//! | `survey.json` | the satisfaction survey result |
//! | `calls.json` | the call records (ring timing etc.) |
//! | `manifest.json` | `ticket_id`, `kind`, `created_at` and name, size and SHA-256 of every member above |
//! | `SHA256SUMS` | `sha256sum` lines for every member, `manifest.json` included |
//!
//! So a bundle checks itself with standard tools: `tar -xf T.tar && sha256sum -c
//! SHA256SUMS` in an empty directory; [`verify()`] does the same and more (header
//! checksums, truncation, members missing from or unknown to the manifest) without
//! extracting anything.
//!
//! # Crash safety
//!
//! **There is never a half-written bundle under a final name.** [`write_bundle()`] writes
//! `.<ticket id>.tar.partial-<pid>` in the destination directory, checks each recording
//! against its expected SHA-256 while copying it, `fsync`s the file, then links it to
//! the final name with `link(2)` (which fails rather than replace an existing file: a
//! bundle, once written, is never overwritten, see [`ArchiveError::Exists`]), removes the
//! temporary name and `fsync`s the directory. On any error the partial file is removed;
//! a partial left by a killed process is removed by the next write of the same ticket.
//! When `write_bundle` returns `Ok`, the bundle is complete and durable. The archive root
//! must be on a file system with hard links (any POSIX file system).
//!
//! Test knob: when the environment variable `THREERING_ARCHIVE_SLOW_MS` is set to `N`,
//! the writer sleeps `N` ms after each 64 KiB chunk of member data, so a test can kill a
//! process in the middle of a write. Leave it unset in production.

mod html;
pub mod progress;
mod tar;
mod verify;
mod write;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};

pub use progress::ProgressBar;
pub use verify::verify;
pub use write::{pretty as json_member, write_bundle};

/// Environment variable naming a delay (ms) after each 64 KiB chunk written; a test knob.
pub const SLOW_ENV: &str = "THREERING_ARCHIVE_SLOW_MS";

/// The member that lists every other member with its size and SHA-256.
pub const MANIFEST: &str = "manifest.json";

/// The member in `sha256sum` format, for checking with standard tools.
pub const SHA256SUMS: &str = "SHA256SUMS";

/// The directory recordings sit in inside a bundle.
pub const RECORDINGS_DIR: &str = "recordings/";

/// One call recording to put in a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInput {
    /// File name inside `recordings/`, e.g. `node1-20261124-0001.wav` (no `/`).
    pub name: String,
    /// Where the recording is now.
    pub source: PathBuf,
    /// Its expected SHA-256, lowercase hex; the copy is refused if the file differs.
    pub sha256: String,
}

/// Everything a bundle holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleInput {
    pub ticket_id: String,
    pub kind: String,
    /// The day the ticket was filed: the bundle's directory.
    pub filed_on: NaiveDate,
    /// The ticket as JSON (an object).
    pub form: serde_json::Value,
    /// The call records (an array).
    pub calls: serde_json::Value,
    /// The survey result (an object).
    pub survey: serde_json::Value,
    pub recordings: Vec<RecordingInput>,
}

/// A bundle written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Its final path.
    pub path: PathBuf,
    /// SHA-256 of the whole `.tar`, lowercase hex.
    pub sha256: String,
    /// Size of the whole `.tar`.
    pub bytes: u64,
}

/// A bundle that passed [`verify()`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// As the manifest says.
    pub ticket_id: String,
    /// Every member in archive order (`manifest.json` and `SHA256SUMS` included) with
    /// its SHA-256.
    pub members: Vec<(String, String)>,
    /// SHA-256 of the whole file.
    pub sha256: String,
}

/// One thing wrong with a bundle; `member` is a member name, or `(archive)` for the
/// archive as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyProblem {
    pub member: String,
    pub problem: String,
}

impl VerifyProblem {
    pub(crate) fn new(member: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            member: member.into(),
            problem: problem.into(),
        }
    }
}

impl std::fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.member, self.problem)
    }
}

/// The `member` of a [`VerifyProblem`] about the archive as a whole.
pub const WHOLE_ARCHIVE: &str = "(archive)";

/// Why a bundle could not be written or did not verify.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file system operation failed; `path` is the file or directory concerned.
    #[error("archive {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bundle already exists at the final name; it is never overwritten.
    #[error("bundle {} already exists (bundles are never overwritten)", path.display())]
    Exists { path: PathBuf },
    /// A recording's content is not what the caller expected (it changed or is the wrong
    /// file); nothing was written.
    #[error("recording {name} changed: expected sha256 {expected}, file has {actual}")]
    RecordingChanged {
        name: String,
        expected: String,
        actual: String,
    },
    /// A member name (or ticket id / kind, which become path components) is unusable:
    /// empty, too long for a ustar header, or containing `..`, `/`, NUL or control
    /// characters.
    #[error(
        "unusable name {name:?} (must be non-empty, fit a 100-byte tar name, \
         and have no \"..\", \"/\", \"\\\" or control characters)"
    )]
    BadName { name: String },
    /// [`verify()`] found problems; every one is listed.
    #[error("bundle {} is invalid: {}", path.display(), list_problems(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<VerifyProblem>,
    },
}

fn list_problems(problems: &[VerifyProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ArchiveError::Io {
            path: path.into(),
            source,
        }
    }
}

/// `<root>/YYYY/MM/DD/<kind>/<ticket id>.tar`.
pub fn bundle_path(root: &Path, filed_on: NaiveDate, kind: &str, ticket_id: &str) -> PathBuf {
    root.join(format!("{:04}", filed_on.year()))
        .join(format!("{:02}", filed_on.month()))
        .join(format!("{:02}", filed_on.day()))
        .join(kind)
        .join(format!("{ticket_id}.tar"))
}

/// Checks text that becomes part of a name: non-empty, no `..`, `/`, `\`, NUL or
/// control characters.
fn check_text(name: &str) -> Result<(), ArchiveError> {
    let bad = name.is_empty()
        || name.contains("..")
        || name.contains('/')
        || name.contains('\\')
        || name.chars().any(char::is_control);
    if bad {
        return Err(ArchiveError::BadName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Checks a ticket id or kind, which become path components: also no leading `.`
/// (hidden names are the writer's partial files) and at most 200 bytes, so the partial
/// file's name fits the usual 255-byte limit.
pub(crate) fn check_path_component(name: &str) -> Result<(), ArchiveError> {
    check_text(name)?;
    if name.starts_with('.') || name.len() > 200 {
        return Err(ArchiveError::BadName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Checks a recording's file name and returns its member name `recordings/<name>`.
pub(crate) fn recording_member(name: &str) -> Result<String, ArchiveError> {
    check_text(name)?;
    let member = format!("{RECORDINGS_DIR}{name}");
    if member.len() > tar::NAME_MAX {
        return Err(ArchiveError::BadName {
            name: name.to_owned(),
        });
    }
    Ok(member)
}
