//! [`verify()`] against damaged and hand-made archives: every problem, named by member.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::tar::{TarWriter, BLOCK};
use super::tests::{input, member_offsets, problems, recording, sha_hex};
use super::*;

/// Writes a two-recording bundle and returns its path and bytes.
fn written_bundle(work: &Path) -> (PathBuf, Vec<u8>) {
    let recs = vec![
        recording(work, "a.wav", 70_000, 3),
        recording(work, "b.wav", 90_000, 4),
    ];
    let written = write_bundle(&work.join("root"), &input("T-9", recs), &mut |_, _| {}).unwrap();
    let bytes = fs::read(&written.path).unwrap();
    (written.path, bytes)
}

#[test]
fn flipped_recording_byte_names_the_recording() {
    let work = tempfile::tempdir().unwrap();
    let (path, mut bytes) = written_bundle(work.path());
    let (_, offset, size) = member_offsets(&bytes)
        .into_iter()
        .find(|(name, ..)| name == "recordings/b.wav")
        .unwrap();
    bytes[offset + size / 2] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    let problems = problems(verify(&path).unwrap_err());
    assert!(!problems.is_empty());
    assert!(
        problems.iter().all(|p| p.member == "recordings/b.wav"),
        "{problems:?}"
    );
    assert!(problems
        .iter()
        .any(|p| p.problem.starts_with("sha256 mismatch: manifest says ")));
    assert!(problems
        .iter()
        .any(|p| p.problem.contains("SHA256SUMS says")));
    let message = ArchiveError::Invalid {
        path: path.clone(),
        problems: problems.clone(),
    }
    .to_string();
    assert!(
        message.contains("recordings/b.wav: sha256 mismatch"),
        "{message}"
    );
    assert!(message.contains(&path.display().to_string()));
}

#[test]
fn flipped_form_byte_names_form_json() {
    let work = tempfile::tempdir().unwrap();
    let (path, mut bytes) = written_bundle(work.path());
    let (_, offset, _) = member_offsets(&bytes)
        .into_iter()
        .find(|(name, ..)| name == "form.json")
        .unwrap();
    bytes[offset + 3] ^= 0x20;
    fs::write(&path, &bytes).unwrap();

    let problems = problems(verify(&path).unwrap_err());
    assert!(
        problems.iter().all(|p| p.member == "form.json"),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 2, "manifest and SHA256SUMS both disagree");
}

#[test]
fn truncated_archive_and_bad_header_are_reported() {
    let work = tempfile::tempdir().unwrap();
    let (path, bytes) = written_bundle(work.path());
    let offsets = member_offsets(&bytes);
    let (_, b_offset, _) = offsets
        .iter()
        .find(|(n, ..)| n == "recordings/b.wav")
        .unwrap();

    // Cut inside recordings/b.wav: it is truncated, later members are missing.
    fs::write(&path, &bytes[..b_offset + 1000]).unwrap();
    let found = problems(verify(&path).unwrap_err());
    assert!(found
        .iter()
        .any(|p| p.member == "recordings/b.wav" && p.problem.starts_with("truncated")));
    assert!(found.iter().any(|p| p.member == "manifest.json"));
    assert!(found.iter().any(|p| p.member == "SHA256SUMS"));

    // Only the end-of-archive blocks cut off.
    fs::write(&path, &bytes[..bytes.len() - BLOCK * 2]).unwrap();
    let found = problems(verify(&path).unwrap_err());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].member, WHOLE_ARCHIVE);
    assert!(found[0].problem.starts_with("truncated"));

    // A damaged header: its checksum fails, the walk stops there.
    let mut damaged = bytes.clone();
    damaged[b_offset - BLOCK + 130] ^= 0x01; // inside the size field
    fs::write(&path, &damaged).unwrap();
    let found = problems(verify(&path).unwrap_err());
    assert!(found
        .iter()
        .any(|p| p.member == "recordings/b.wav" && p.problem.contains("bad header checksum")));
    assert!(found.iter().any(|p| p.member == "recordings/b.wav"
        && p.problem == "missing from the archive (listed in manifest.json)"));
    // The walk found the next header: later members are checked and fine.
    assert!(
        found.iter().all(|p| p.member == "recordings/b.wav"),
        "{found:#?}"
    );
}

#[test]
fn verify_reports_every_index_problem() {
    // A hand-made archive: an unlisted member, a listed one missing, a wrong size,
    // and a SHA256SUMS with a bad line and a wrong hash.
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("bad.tar");
    let form = b"{}\n";
    let manifest = json!({
        "ticket_id": "T-1", "kind": "query", "created_at": "2026-11-24T00:00:00Z",
        "members": [
            {"name": "form.json", "bytes": 99, "sha256": sha_hex(form)},
            {"name": "gone.json", "bytes": 1, "sha256": sha_hex(b"x")}
        ]
    })
    .to_string();
    let sums = format!(
        "{}  form.json\nnot a line\n{}  manifest.json\n",
        sha_hex(b"other"),
        sha_hex(manifest.as_bytes())
    );
    let mut tar = TarWriter::new(Vec::new(), 0);
    tar.append("form.json", form).unwrap();
    tar.append("extra.txt", b"hello").unwrap();
    tar.append(MANIFEST, manifest.as_bytes()).unwrap();
    tar.append(SHA256SUMS, sums.as_bytes()).unwrap();
    let (bytes, _, _) = tar.finish().unwrap();
    fs::write(&path, bytes).unwrap();

    let found: Vec<String> = problems(verify(&path).unwrap_err())
        .iter()
        .map(ToString::to_string)
        .collect();
    let expect = [
        "form.json: size mismatch: manifest says 99 bytes, member has 3",
        "gone.json: missing from the archive (listed in manifest.json)",
        "extra.txt: not listed in manifest.json",
        "SHA256SUMS: line 2 unreadable",
        "form.json: sha256 mismatch: SHA256SUMS says",
        "extra.txt: not listed in SHA256SUMS",
    ];
    for e in expect {
        assert!(
            found.iter().any(|f| f.starts_with(e)),
            "{e} not in {found:#?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:#?}");

    // No manifest at all; SHA256SUMS missing too.
    let mut tar = TarWriter::new(Vec::new(), 0);
    tar.append("form.json", form).unwrap();
    let (bytes, _, _) = tar.finish().unwrap();
    fs::write(&path, bytes).unwrap();
    let found = problems(verify(&path).unwrap_err());
    assert!(found.contains(&VerifyProblem::new(MANIFEST, "missing from the archive")));
    assert!(found.contains(&VerifyProblem::new(SHA256SUMS, "missing from the archive")));

    // An unreadable manifest.
    let mut tar = TarWriter::new(Vec::new(), 0);
    tar.append(MANIFEST, b"{not json").unwrap();
    let (bytes, _, _) = tar.finish().unwrap();
    fs::write(&path, bytes).unwrap();
    let found = problems(verify(&path).unwrap_err());
    assert!(found
        .iter()
        .any(|p| p.member == MANIFEST && p.problem.starts_with("unreadable")));
}
