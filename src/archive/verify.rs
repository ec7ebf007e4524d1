//! [`verify()`]: reads a bundle with our own tar reader and reports every problem.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::tar::{padding, parse_header, raw_name, BLOCK};
use super::write::{Manifest, CHUNK};
use super::{ArchiveError, Verified, VerifyProblem, MANIFEST, SHA256SUMS, WHOLE_ARCHIVE};

/// `manifest.json` and `SHA256SUMS` larger than this are not read (a bundle's are a few
/// KiB; a huge one is damage, not data).
const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;

/// Hashes and counts everything read through it: the whole-file SHA-256.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    offset: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

/// A member as found in the archive.
struct Found {
    name: String,
    sha256: String,
    bytes: u64,
}

/// What walking the archive found.
#[derive(Default)]
struct Walk {
    members: Vec<Found>,
    /// Members whose data the archive cut short (already reported).
    truncated: HashSet<String>,
    manifest: Option<Vec<u8>>,
    sums: Option<Vec<u8>>,
    problems: Vec<VerifyProblem>,
}

/// Walks the tar: checks every header, hashes every member, keeps the index members.
fn walk(reader: &mut HashingReader<BufReader<File>>) -> io::Result<Walk> {
    let mut walk = Walk::default();
    let mut buf = vec![0u8; CHUNK];
    // After a bad header: looking for the next block that is a valid header.
    let mut resyncing = false;
    loop {
        let at = reader.offset;
        let mut block = [0u8; BLOCK];
        let n = read_full(reader, &mut block)?;
        if resyncing {
            if n < BLOCK {
                break;
            }
            match parse_header(&block) {
                Ok(_) if block.iter().any(|&b| b != 0) => resyncing = false,
                _ => continue,
            }
        }
        if n < BLOCK {
            let what = if n == 0 {
                format!("truncated: ends at byte {at} without the end-of-archive blocks")
            } else {
                format!("truncated: incomplete header block at byte {at}")
            };
            walk.problems.push(VerifyProblem::new(WHOLE_ARCHIVE, what));
            break;
        }
        if block.iter().all(|&b| b == 0) {
            let mut second = [0u8; BLOCK];
            let n = read_full(reader, &mut second)?;
            if n < BLOCK {
                walk.problems.push(VerifyProblem::new(
                    WHOLE_ARCHIVE,
                    "truncated: end-of-archive marker incomplete",
                ));
            } else if second.iter().any(|&b| b != 0) {
                walk.problems.push(VerifyProblem::new(
                    WHOLE_ARCHIVE,
                    format!("lone zero block at byte {at} followed by more data"),
                ));
            }
            break;
        }
        let header = match parse_header(&block) {
            Ok(header) => header,
            Err(e) => {
                let raw = raw_name(&block);
                let member = if raw.is_empty() || raw.chars().any(char::is_control) {
                    WHOLE_ARCHIVE.to_owned()
                } else {
                    raw
                };
                let problem = format!("{e} (header at byte {at}); skipped to the next header");
                walk.problems.push(VerifyProblem::new(member, problem));
                resyncing = true;
                continue;
            }
        };
        let name = header.name;
        let regular = header.typeflag == b'0' || header.typeflag == 0;
        if !regular {
            walk.problems.push(VerifyProblem::new(
                &name,
                format!(
                    "not a regular file (type {:?})",
                    char::from(header.typeflag)
                ),
            ));
        }
        let keep =
            regular && (name == MANIFEST || name == SHA256SUMS) && header.size <= MAX_INDEX_BYTES;
        if (name == MANIFEST || name == SHA256SUMS) && header.size > MAX_INDEX_BYTES {
            walk.problems.push(VerifyProblem::new(
                &name,
                format!("implausibly large ({} bytes); not read", header.size),
            ));
        }
        let mut kept = Vec::new();
        let mut hasher = Sha256::new();
        let mut copied = 0u64;
        while copied < header.size {
            let want = (header.size - copied).min(CHUNK as u64) as usize;
            let n = read_full(reader, &mut buf[..want])?;
            hasher.update(&buf[..n]);
            if keep {
                kept.extend_from_slice(&buf[..n]);
            }
            copied += n as u64;
            if n < want {
                break;
            }
        }
        if copied < header.size {
            walk.problems.push(VerifyProblem::new(
                &name,
                format!(
                    "truncated: header says {} bytes, the archive ends after {copied}",
                    header.size
                ),
            ));
            walk.truncated.insert(name);
            break;
        }
        let pad = padding(header.size);
        let padded = read_full(reader, &mut buf[..pad])? == pad;
        if regular {
            if walk.members.iter().any(|m| m.name == name) {
                walk.problems.push(VerifyProblem::new(
                    &name,
                    "appears more than once in the archive",
                ));
            }
            if keep && name == MANIFEST {
                walk.manifest = Some(kept);
            } else if keep {
                walk.sums = Some(kept);
            }
            walk.members.push(Found {
                name,
                sha256: hex::encode(hasher.finalize()),
                bytes: header.size,
            });
        }
        if !padded {
            walk.problems.push(VerifyProblem::new(
                WHOLE_ARCHIVE,
                format!("truncated: ends at byte {} inside padding", reader.offset),
            ));
            break;
        }
    }
    Ok(walk)
}

/// Checks the members against `manifest.json`; returns the ticket id it names.
fn check_manifest(
    walk: &Walk,
    found: &HashMap<&str, &Found>,
    problems: &mut Vec<VerifyProblem>,
) -> Option<String> {
    let Some(bytes) = &walk.manifest else {
        if !walk.truncated.contains(MANIFEST) && !found.contains_key(MANIFEST) {
            problems.push(VerifyProblem::new(MANIFEST, "missing from the archive"));
        }
        return None;
    };
    let manifest: Manifest = match serde_json::from_slice(bytes) {
        Ok(manifest) => manifest,
        Err(e) => {
            problems.push(VerifyProblem::new(MANIFEST, format!("unreadable: {e}")));
            return None;
        }
    };
    let mut listed = HashSet::new();
    for entry in &manifest.members {
        let name = entry.name.as_str();
        if !listed.insert(name) {
            problems.push(VerifyProblem::new(name, "listed twice in manifest.json"));
            continue;
        }
        match found.get(name) {
            Some(member) => {
                if !member.sha256.eq_ignore_ascii_case(&entry.sha256) {
                    problems.push(VerifyProblem::new(
                        name,
                        format!(
                            "sha256 mismatch: manifest says {}, member has {}",
                            entry.sha256, member.sha256
                        ),
                    ));
                }
                if member.bytes != entry.bytes {
                    problems.push(VerifyProblem::new(
                        name,
                        format!(
                            "size mismatch: manifest says {} bytes, member has {}",
                            entry.bytes, member.bytes
                        ),
                    ));
                }
            }
            None if walk.truncated.contains(name) => {}
            None => problems.push(VerifyProblem::new(
                name,
                "missing from the archive (listed in manifest.json)",
            )),
        }
    }
    for member in &walk.members {
        let name = member.name.as_str();
        if name != MANIFEST && name != SHA256SUMS && !listed.contains(name) {
            problems.push(VerifyProblem::new(name, "not listed in manifest.json"));
        }
    }
    Some(manifest.ticket_id)
}

/// Parses one `sha256sum` line: 64 hex digits, a space, a space or `*`, the name.
fn parse_sum_line(line: &str) -> Option<(&str, &str)> {
    let (hash, rest) = line.split_at_checked(64)?;
    if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))?;
    (!name.is_empty()).then_some((hash, name))
}

/// Checks the members against `SHA256SUMS`.
fn check_sums(walk: &Walk, found: &HashMap<&str, &Found>, problems: &mut Vec<VerifyProblem>) {
    let Some(bytes) = &walk.sums else {
        if !walk.truncated.contains(SHA256SUMS) && !found.contains_key(SHA256SUMS) {
            problems.push(VerifyProblem::new(SHA256SUMS, "missing from the archive"));
        }
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        problems.push(VerifyProblem::new(SHA256SUMS, "unreadable: not UTF-8"));
        return;
    };
    let mut listed = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let Some((hash, name)) = parse_sum_line(line) else {
            problems.push(VerifyProblem::new(
                SHA256SUMS,
                format!("line {} unreadable: {line:?}", i + 1),
            ));
            continue;
        };
        if !listed.insert(name) {
            problems.push(VerifyProblem::new(name, "listed twice in SHA256SUMS"));
            continue;
        }
        match found.get(name) {
            Some(member) if !member.sha256.eq_ignore_ascii_case(hash) => {
                problems.push(VerifyProblem::new(
                    name,
                    format!(
                        "sha256 mismatch: SHA256SUMS says {hash}, member has {}",
                        member.sha256
                    ),
                ));
            }
            Some(_) => {}
            None if walk.truncated.contains(name) => {}
            None => problems.push(VerifyProblem::new(
                name,
                "missing from the archive (listed in SHA256SUMS)",
            )),
        }
    }
    for member in &walk.members {
        let name = member.name.as_str();
        if name != SHA256SUMS && !listed.contains(name) {
            problems.push(VerifyProblem::new(name, "not listed in SHA256SUMS"));
        }
    }
}

/// Checks a bundle without extracting it: every tar header (checksum, type, size
/// against the data present), every member's SHA-256 and size against `manifest.json`,
/// members missing from the archive or unknown to the manifest, and `SHA256SUMS`.
///
/// Every problem found is reported in one [`ArchiveError::Invalid`]. A header that
/// fails its checksum is reported and, since its size cannot be trusted, the walk
/// skips block by block to the next valid header (as GNU tar does), so the members
/// after it are still checked and the damaged one shows up as missing. [`ArchiveError::Io`] means the file could not be read at all.
pub fn verify(path: &Path) -> Result<Verified, ArchiveError> {
    let io_err = |e| ArchiveError::io(path, e);
    let file = File::open(path).map_err(io_err)?;
    let mut reader = HashingReader {
        inner: BufReader::with_capacity(CHUNK, file),
        hasher: Sha256::new(),
        offset: 0,
    };
    let walk = walk(&mut reader).map_err(io_err)?;
    // The whole-file hash covers anything after the end-of-archive blocks too.
    io::copy(&mut reader, &mut io::sink()).map_err(io_err)?;
    let sha256 = hex::encode(reader.hasher.finalize());

    let found: HashMap<&str, &Found> = walk.members.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut problems = walk.problems.clone();
    let ticket_id = check_manifest(&walk, &found, &mut problems);
    check_sums(&walk, &found, &mut problems);
    match ticket_id {
        Some(ticket_id) if problems.is_empty() => Ok(Verified {
            ticket_id,
            members: walk
                .members
                .into_iter()
                .map(|m| (m.name, m.sha256))
                .collect(),
            sha256,
        }),
        _ => Err(ArchiveError::Invalid {
            path: path.to_path_buf(),
            problems,
        }),
    }
}
