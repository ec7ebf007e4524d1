//! [`write_bundle()`]: temp file, checked copies, `fsync`, no-clobber link, `fsync` dir.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tar::{TarWriter, SIZE_MAX};
use super::{
    bundle_path, check_path_component, html, recording_member, ArchiveError, BundleInput, Written,
    MANIFEST, SHA256SUMS, SLOW_ENV,
};

/// Member data is copied (and hashed, and reported to the progress callback) in chunks
/// of this size.
pub(crate) const CHUNK: usize = 64 * 1024;

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) ticket_id: String,
    pub(crate) kind: String,
    /// RFC 3339, UTC, when the bundle was written.
    pub(crate) created_at: String,
    /// Every member before `manifest.json`, in archive order.
    pub(crate) members: Vec<ManifestMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestMember {
    pub(crate) name: String,
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
}

/// Final paths being written by this process: a second writer of the same bundle in
/// the same process would share the partial file's name.
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// This process's claim on writing one final path; released on drop.
struct Claim(PathBuf);

impl Claim {
    fn take(path: &Path) -> Option<Claim> {
        let mut held = IN_PROGRESS.lock().unwrap_or_else(PoisonError::into_inner);
        if held.iter().any(|p| p == path) {
            return None;
        }
        held.push(path.to_path_buf());
        Some(Claim(path.to_path_buf()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = IN_PROGRESS.lock().unwrap_or_else(PoisonError::into_inner);
        held.retain(|p| p != &self.0);
    }
}

/// The partial file; removed on drop unless published.
struct Partial {
    path: PathBuf,
    armed: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The `.<ticket id>.tar.partial-` prefix of partial files.
fn partial_prefix(ticket_id: &str) -> String {
    format!(".{ticket_id}.tar.partial-")
}

/// The delay [`SLOW_ENV`] asks for, if any.
fn slow_knob() -> Option<Duration> {
    let ms: u64 = std::env::var(SLOW_ENV).ok()?.trim().parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// `fsync`s a directory, so entries created or removed in it are durable.
fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ArchiveError::io(dir, e))
}

/// Creates the bundle's directory; when new, makes the new entries durable up to `root`.
fn create_dir(root: &Path, dir: &Path) -> Result<(), ArchiveError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| ArchiveError::io(dir, e))?;
    for ancestor in dir.ancestors().skip(1) {
        sync_dir(ancestor)?;
        if ancestor == root {
            break;
        }
    }
    Ok(())
}

/// Removes `.<ticket id>.tar.partial-<pid>` files a killed run left in `dir`.
pub(crate) fn remove_stale_partials(dir: &Path, ticket_id: &str) -> Result<(), ArchiveError> {
    let prefix = partial_prefix(ticket_id);
    let entries = fs::read_dir(dir).map_err(|e| ArchiveError::io(dir, e))?;
    let mut removed = false;
    for entry in entries {
        let entry = entry.map_err(|e| ArchiveError::io(dir, e))?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io(entry.path(), e)),
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fails with [`ArchiveError::Exists`] if anything is at `path`.
fn refuse_existing(path: &Path) -> Result<(), ArchiveError> {
    match path.symlink_metadata() {
        Ok(_) => Err(ArchiveError::Exists {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArchiveError::io(path, e)),
    }
}

/// Reads until `buf` is full or the source ends.
fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// State shared by every member copy.
struct Copier<'a> {
    tar: TarWriter<BufWriter<File>>,
    partial: PathBuf,
    buf: Vec<u8>,
    done: u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
    slow: Option<Duration>,
    /// Set for the trailing index members: no progress reports, no test delay.
    quiet: bool,
    listed: Vec<ManifestMember>,
}

impl Copier<'_> {
    fn write_err(&self, e: io::Error) -> ArchiveError {
        ArchiveError::io(&self.partial, e)
    }

    /// Writes member `name` of `size` bytes from `src` in [`CHUNK`]s, hashing into
    /// `hasher`; returns how many bytes `src` gave (less than `size` if it ended early,
    /// in which case the member is left open and the archive unusable).
    fn copy(
        &mut self,
        name: &str,
        size: u64,
        src: &mut dyn Read,
        src_path: &Path,
        hasher: &mut Sha256,
    ) -> Result<u64, ArchiveError> {
        self.tar.header(name, size).map_err(|e| self.write_err(e))?;
        let mut copied = 0u64;
        while copied < size {
            let want = (size - copied).min(CHUNK as u64) as usize;
            let n =
                read_full(src, &mut self.buf[..want]).map_err(|e| ArchiveError::io(src_path, e))?;
            if n == 0 {
                return Ok(copied);
            }
            hasher.update(&self.buf[..n]);
            self.tar
                .data(&self.buf[..n])
                .map_err(|e| self.write_err(e))?;
            copied += n as u64;
            if self.quiet {
                continue;
            }
            self.done += n as u64;
            (self.progress)(self.done, self.total);
            if let Some(delay) = self.slow {
                std::thread::sleep(delay);
            }
        }
        self.tar.end_member().map_err(|e| self.write_err(e))?;
        Ok(copied)
    }

    /// A member from memory, listed in the manifest.
    fn memory(&mut self, name: &str, data: &[u8]) -> Result<(), ArchiveError> {
        let mut hasher = Sha256::new();
        let partial = self.partial.clone();
        self.copy(
            name,
            data.len() as u64,
            &mut &data[..],
            &partial,
            &mut hasher,
        )?;
        self.listed.push(ManifestMember {
            name: name.to_owned(),
            bytes: data.len() as u64,
            sha256: hex::encode(hasher.finalize()),
        });
        Ok(())
    }

    /// A recording, checked against its expected SHA-256 and listed in the manifest.
    fn recording(
        &mut self,
        member: &str,
        opened: &mut Opened,
        input: &super::RecordingInput,
    ) -> Result<(), ArchiveError> {
        let mut hasher = Sha256::new();
        let copied = self.copy(
            member,
            opened.size,
            &mut opened.file,
            &input.source,
            &mut hasher,
        )?;
        let got = hex::encode(hasher.clone().finalize());
        if copied == opened.size && got.eq_ignore_ascii_case(&input.sha256) {
            self.listed.push(ManifestMember {
                name: member.to_owned(),
                bytes: opened.size,
                sha256: got,
            });
            return Ok(());
        }
        // Report the hash of the whole file as it reads now (it may have grown).
        io::copy(&mut opened.file, &mut hasher).map_err(|e| ArchiveError::io(&input.source, e))?;
        Err(ArchiveError::RecordingChanged {
            name: input.name.clone(),
            expected: input.sha256.clone(),
            actual: hex::encode(hasher.finalize()),
        })
    }
}

/// A recording source, opened before the partial file is created.
struct Opened {
    file: File,
    size: u64,
}

fn open_recording(source: &Path) -> Result<Opened, ArchiveError> {
    let file = File::open(source).map_err(|e| ArchiveError::io(source, e))?;
    let size = file
        .metadata()
        .map_err(|e| ArchiveError::io(source, e))?
        .len();
    if size > SIZE_MAX {
        let e = io::Error::new(
            io::ErrorKind::InvalidInput,
            "recording larger than a ustar member can be (8 GiB)",
        );
        return Err(ArchiveError::io(source, e));
    }
    Ok(Opened { file, size })
}

/// A JSON member as the bundle holds it (pretty, ending in a newline).
pub fn pretty(value: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).expect("a JSON value always serializes");
    out.push(b'\n');
    out
}

/// Writes the bundle for `input` under `root`; see the [module docs](super) for the
/// layout and the crash-safety guarantee.
///
/// `progress(done, total)` is called with bytes of member data written so far, out of
/// the data of all members except the two small trailing ones (`manifest.json`,
/// `SHA256SUMS`): first with `done == 0`, then after every 64 KiB chunk.
pub fn write_bundle(
    root: &Path,
    input: &BundleInput,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Written, ArchiveError> {
    check_path_component(&input.ticket_id)?;
    check_path_component(&input.kind)?;
    let mut members = Vec::with_capacity(input.recordings.len());
    let mut seen = HashSet::new();
    for recording in &input.recordings {
        let member = recording_member(&recording.name)?;
        if !seen.insert(member.clone()) {
            return Err(ArchiveError::BadName {
                name: recording.name.clone(),
            });
        }
        members.push(member);
    }

    let final_path = bundle_path(root, input.filed_on, &input.kind, &input.ticket_id);
    let dir = final_path
        .parent()
        .expect("a bundle path has a parent")
        .to_path_buf();
    let _claim = Claim::take(&final_path).ok_or_else(|| {
        let e = io::Error::new(
            io::ErrorKind::AlreadyExists,
            "this bundle is being written by another thread of this process",
        );
        ArchiveError::io(&final_path, e)
    })?;
    refuse_existing(&final_path)?;
    create_dir(root, &dir)?;
    remove_stale_partials(&dir, &input.ticket_id)?;

    let form_json = pretty(&input.form);
    let form_html = html::render_form(&input.ticket_id, &input.form).into_bytes();
    let survey_json = pretty(&input.survey);
    let calls_json = pretty(&input.calls);
    let mut opened = Vec::with_capacity(input.recordings.len());
    for recording in &input.recordings {
        opened.push(open_recording(&recording.source)?);
    }
    let total = [&form_json, &form_html, &survey_json, &calls_json]
        .iter()
        .map(|d| d.len() as u64)
        .chain(opened.iter().map(|o| o.size))
        .sum();

    let partial_path = dir.join(format!(
        "{}{}",
        partial_prefix(&input.ticket_id),
        std::process::id()
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial_path)
        .map_err(|e| ArchiveError::io(&partial_path, e))?;
    let mut partial = Partial {
        path: partial_path.clone(),
        armed: true,
    };
    let now = SystemTime::now();
    let mtime = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let created_at = chrono::DateTime::<chrono::Utc>::from(now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    let mut copier = Copier {
        tar: TarWriter::new(BufWriter::with_capacity(CHUNK, file), mtime),
        partial: partial_path.clone(),
        buf: vec![0; CHUNK],
        done: 0,
        total,
        progress,
        slow: slow_knob(),
        quiet: false,
        listed: Vec::new(),
    };
    (copier.progress)(0, total);
    copier.memory("form.json", &form_json)?;
    copier.memory("form.html", &form_html)?;
    for ((recording, member), opened) in input.recordings.iter().zip(&members).zip(&mut opened) {
        copier.recording(member, opened, recording)?;
    }
    copier.memory("survey.json", &survey_json)?;
    copier.memory("calls.json", &calls_json)?;

    let manifest = Manifest {
        ticket_id: input.ticket_id.clone(),
        kind: input.kind.clone(),
        created_at,
        members: copier.listed.clone(),
    };
    let mut manifest_json =
        serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    manifest_json.push(b'\n');
    copier.quiet = true;
    copier.memory(MANIFEST, &manifest_json)?;
    let sums: String = copier
        .listed
        .iter()
        .map(|m| format!("{}  {}\n", m.sha256, m.name))
        .collect();
    let mut hasher = Sha256::new();
    let copied = copier.copy(
        SHA256SUMS,
        sums.len() as u64,
        &mut sums.as_bytes(),
        &partial_path,
        &mut hasher,
    )?;
    debug_assert_eq!(copied, sums.len() as u64);

    let Copier { tar, .. } = copier;
    let (out, sha256, bytes) = tar
        .finish()
        .map_err(|e| ArchiveError::io(&partial_path, e))?;
    let file = out
        .into_inner()
        .map_err(|e| ArchiveError::io(&partial_path, e.into_error()))?;
    file.sync_all()
        .map_err(|e| ArchiveError::io(&partial_path, e))?;
    drop(file);

    // Publish without ever replacing: link(2) fails if the final name exists.
    refuse_existing(&final_path)?;
    match fs::hard_link(&partial_path, &final_path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ArchiveError::Exists { path: final_path });
        }
        Err(e) => return Err(ArchiveError::io(&final_path, e)),
    }
    partial.armed = false;
    if let Err(e) = fs::remove_file(&partial_path) {
        // The bundle is complete under its final name; the next write of this ticket
        // (or none) cleans up. Failing here would invite a retry that hits `Exists`.
        tracing::warn!(path = %partial_path.display(), error = %e, "could not remove partial bundle after publishing");
    }
    sync_dir(&dir)?;
    Ok(Written {
        path: final_path,
        sha256,
        bytes,
    })
}
