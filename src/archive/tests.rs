//! Bundles written to real files, read back by GNU tar, `sha256sum` and [`verify()`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::tar::{self, parse_header, BLOCK};
use super::*;

pub(super) fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic noise, `len` bytes.
pub(super) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

pub(super) fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
}

/// A recording file of `len` bytes in `dir`, with its correct hash.
pub(super) fn recording(dir: &Path, name: &str, len: usize, seed: u64) -> RecordingInput {
    let data = noise(len, seed);
    let source = dir.join(format!("src-{name}"));
    fs::write(&source, &data).unwrap();
    RecordingInput {
        name: name.to_owned(),
        source,
        sha256: sha_hex(&data),
    }
}

pub(super) fn input(ticket_id: &str, recordings: Vec<RecordingInput>) -> BundleInput {
    BundleInput {
        ticket_id: ticket_id.to_owned(),
        kind: "complaint".to_owned(),
        filed_on: day(),
        form: json!({
            "id": ticket_id,
            "kind": "complaint",
            "status": "open",
            "customer": "张三",
            "phone": "13800000000",
            "content": "包裹延误 <script>alert('x')</script> & more",
            "priority_note": "VIP",
            "history": [
                {"at": "2026-11-24T09:00:00+08:00", "by": "agent-7", "action": "created"},
                {"at": "2026-11-24T10:00:00+08:00", "by": "agent-9", "action": "replied"}
            ],
            "tags": ["late", {"nested": true}, null]
        }),
        calls: json!([{"call_id": "c1", "ring_ms": 4200, "answered": true}]),
        survey: json!({"score": 5, "comment": "好"}),
        recordings,
    }
}

/// Names of files in `dir` (not recursive).
pub(super) fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// (name, data offset, size) of every member, by walking the headers.
pub(super) fn member_offsets(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + BLOCK <= bytes.len() {
        let block: &[u8; BLOCK] = bytes[at..at + BLOCK].try_into().unwrap();
        if block.iter().all(|&b| b == 0) {
            break;
        }
        let header = parse_header(block).unwrap();
        let size = header.size as usize;
        out.push((header.name, at + BLOCK, size));
        at += BLOCK + size + tar::padding(header.size);
    }
    out
}

pub(super) fn problems(err: ArchiveError) -> Vec<VerifyProblem> {
    match err {
        ArchiveError::Invalid { problems, .. } => problems,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

pub(super) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bundle_path_layout() {
    let path = bundle_path(Path::new("/srv/archive"), day(), "query", "T-20261124-0001");
    assert_eq!(
        path,
        PathBuf::from("/srv/archive/2026/11/24/query/T-20261124-0001.tar")
    );
    let jan = NaiveDate::from_ymd_opt(2027, 1, 5).unwrap();
    assert_eq!(
        bundle_path(Path::new("a"), jan, "order", "T-1"),
        PathBuf::from("a/2027/01/05/order/T-1.tar")
    );
}

#[test]
fn bundle_extracts_with_gnu_tar_and_checks_with_sha256sum() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("archive");
    let rec_a = recording(work.path(), "node1-20261124-0001.wav", 300_001, 1);
    let rec_b = recording(work.path(), "node1-20261124-0002.wav", 200_000, 2);
    let input = input("T-20261124-0001", vec![rec_a.clone(), rec_b.clone()]);
    let mut calls: Vec<(u64, u64)> = Vec::new();
    let written =
        write_bundle(&root, &input, &mut |done, total| calls.push((done, total))).unwrap();

    assert_eq!(
        written.path,
        bundle_path(&root, day(), "complaint", "T-20261124-0001")
    );
    let bytes = fs::read(&written.path).unwrap();
    assert_eq!(written.bytes, bytes.len() as u64);
    assert_eq!(written.sha256, sha_hex(&bytes));
    assert_eq!(bytes.len() % BLOCK, 0);
    assert_eq!(
        dir_names(written.path.parent().unwrap()),
        ["T-20261124-0001.tar"]
    );

    // Progress: starts at 0, never goes back, ends at the total.
    let total = calls[0].1;
    assert_eq!(calls[0], (0, total));
    assert_eq!(*calls.last().unwrap(), (total, total));
    assert!(calls
        .windows(2)
        .all(|w| w[0].0 <= w[1].0 && w[1].1 == total));
    assert!(total > 500_000);

    let expected_order = [
        "form.json",
        "form.html",
        "recordings/node1-20261124-0001.wav",
        "recordings/node1-20261124-0002.wav",
        "survey.json",
        "calls.json",
        "manifest.json",
        "SHA256SUMS",
    ];
    let listing = run(Command::new("tar").arg("-tf").arg(&written.path));
    assert_eq!(listing.lines().collect::<Vec<_>>(), expected_order);
    let verbose = run(Command::new("tar").arg("-tvf").arg(&written.path));
    assert!(
        verbose.lines().all(|l| l.starts_with("-rw-r--r--")),
        "{verbose}"
    );

    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&written.path)
        .current_dir(&out));
    let checked = run(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&out));
    assert_eq!(
        checked.lines().count(),
        expected_order.len() - 1,
        "{checked}"
    );
    assert_eq!(
        fs::read(out.join("recordings/node1-20261124-0001.wav")).unwrap(),
        fs::read(&rec_a.source).unwrap()
    );
    let form: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("form.json")).unwrap()).unwrap();
    assert_eq!(form, input.form);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["ticket_id"], "T-20261124-0001");
    assert_eq!(manifest["kind"], "complaint");
    assert!(chrono::DateTime::parse_from_rfc3339(manifest["created_at"].as_str().unwrap()).is_ok());
    let listed: Vec<&str> = manifest["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, expected_order[..6]);
    assert_eq!(manifest["members"][2]["sha256"], rec_a.sha256);
    assert_eq!(manifest["members"][2]["bytes"], 300_001);

    let verified = verify(&written.path).unwrap();
    assert_eq!(verified.ticket_id, "T-20261124-0001");
    assert_eq!(verified.sha256, written.sha256);
    let names: Vec<&str> = verified.members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, expected_order);
    assert_eq!(verified.members[3].1, rec_b.sha256);
}

#[test]
fn changed_recording_is_refused_and_nothing_is_left() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let good = recording(work.path(), "a.wav", 100_000, 5);
    let mut bad = recording(work.path(), "b.wav", 150_000, 6);
    let actual = bad.sha256.clone();
    bad.sha256 = sha_hex(b"what the call store says");
    let input = input("T-2", vec![good, bad.clone()]);

    let err = write_bundle(&root, &input, &mut |_, _| {}).unwrap_err();
    match err {
        ArchiveError::RecordingChanged {
            name,
            expected,
            actual: got,
        } => {
            assert_eq!(name, "b.wav");
            assert_eq!(expected, bad.sha256);
            assert_eq!(got, actual);
        }
        other => panic!("expected RecordingChanged, got {other:?}"),
    }
    let final_path = bundle_path(&root, day(), "complaint", "T-2");
    assert!(!final_path.exists());
    assert!(dir_names(final_path.parent().unwrap()).is_empty());

    // A missing source is an Io error naming it, also leaving nothing.
    let mut gone = input.clone();
    gone.recordings[1].source = work.path().join("no-such.wav");
    let err = write_bundle(&root, &gone, &mut |_, _| {}).unwrap_err();
    assert!(matches!(&err, ArchiveError::Io { path, .. } if path.ends_with("no-such.wav")));
    assert!(err.to_string().contains("no-such.wav"));
    assert!(dir_names(final_path.parent().unwrap()).is_empty());
}

#[test]
fn existing_bundle_is_never_overwritten() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let input = input("T-3", vec![recording(work.path(), "a.wav", 10_000, 7)]);
    let first = write_bundle(&root, &input, &mut |_, _| {}).unwrap();
    let before = fs::read(&first.path).unwrap();

    let err = write_bundle(&root, &input, &mut |_, _| {}).unwrap_err();
    assert!(matches!(&err, ArchiveError::Exists { path } if *path == first.path));
    assert_eq!(fs::read(&first.path).unwrap(), before);
    assert_eq!(dir_names(first.path.parent().unwrap()), ["T-3.tar"]);

    // Anything at the final name counts, even a file that is not a bundle.
    let other = bundle_path(&root, day(), "complaint", "T-4");
    fs::write(&other, b"not mine").unwrap();
    let mut input4 = input.clone();
    input4.ticket_id = "T-4".into();
    let err = write_bundle(&root, &input4, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, ArchiveError::Exists { .. }));
    assert_eq!(fs::read(&other).unwrap(), b"not mine");
}

#[test]
fn stale_partials_of_the_ticket_are_removed() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let dir = bundle_path(&root, day(), "complaint", "T-5")
        .parent()
        .unwrap()
        .to_path_buf();
    fs::create_dir_all(&dir).unwrap();
    for name in [
        ".T-5.tar.partial-4242",
        ".T-5.tar.partial-1",
        ".T-50.tar.partial-4242",
        ".T-5.tar.partial-notes",
    ] {
        fs::write(dir.join(name), b"half").unwrap();
    }
    write_bundle(&root, &input("T-5", Vec::new()), &mut |_, _| {}).unwrap();
    assert_eq!(
        dir_names(&dir),
        [
            ".T-5.tar.partial-notes",
            ".T-50.tar.partial-4242",
            "T-5.tar"
        ]
    );
    verify(&dir.join("T-5.tar")).unwrap();
}

#[test]
fn unusable_names_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let long = "x".repeat(120);
    let max = "y".repeat(tar::NAME_MAX - RECORDINGS_DIR.len());
    for name in [
        long.as_str(),
        "../evil.wav",
        "a/b.wav",
        "a\0b",
        "",
        "a\nb",
        "..",
    ] {
        let mut rec = recording(work.path(), "ok.wav", 10, 8);
        rec.name = name.to_owned();
        let err = write_bundle(&root, &input("T-6", vec![rec]), &mut |_, _| {}).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::BadName { name: n } if n == name),
            "{name:?}: {err:?}"
        );
    }
    let dup = vec![
        recording(work.path(), "same.wav", 10, 8),
        recording(work.path(), "same.wav", 10, 8),
    ];
    let err = write_bundle(&root, &input("T-6", dup), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, ArchiveError::BadName { .. }));
    for id in ["../T-6", "a/b", ".hidden", ""] {
        let err = write_bundle(&root, &input(id, Vec::new()), &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, ArchiveError::BadName { .. }), "{id:?}");
    }
    assert!(!root.exists(), "nothing created for refused input");

    // Exactly 100 bytes fits, and GNU tar reads it back.
    let rec = recording(work.path(), &max, 1000, 9);
    let written = write_bundle(&root, &input("T-7", vec![rec]), &mut |_, _| {}).unwrap();
    let listing = run(Command::new("tar").arg("-tf").arg(&written.path));
    assert!(listing.contains(&format!("recordings/{max}\n")));
    verify(&written.path).unwrap();
}

#[test]
fn form_html_is_escaped_and_labelled() {
    let work = tempfile::tempdir().unwrap();
    let mut input = input("T-<8>", Vec::new());
    input.ticket_id = "T-8".into();
    let written = write_bundle(&work.path().join("root"), &input, &mut |_, _| {}).unwrap();
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&written.path)
        .current_dir(&out));
    let page = fs::read_to_string(out.join("form.html")).unwrap();
    assert!(page.contains("<meta charset=\"utf-8\">"));
    assert!(page.contains("<title>业务咨询单 T-8</title>"));
    assert!(!page.contains("<script"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
    for label in ["编号", "类型", "状态", "客户", "电话", "内容"] {
        assert!(page.contains(label), "{label}");
    }
    assert!(page.contains("<th>priority_note</th>"));
    assert!(page.contains("T-&lt;8&gt;"), "the form's own id, escaped");
    assert!(page.contains("agent-9"), "history rendered");
    // Known labels come first, in their order; unknown keys after them.
    let pos = |s: &str| page.find(s).unwrap();
    assert!(pos("编号") < pos("状态") && pos("内容") < pos("priority_note"));

    let title = html::render_form("<b>\"'&", &json!({"<k>": "<v>"}));
    assert!(title.contains("业务咨询单 &lt;b&gt;&quot;&#39;&amp;"));
    assert!(title.contains("<th>&lt;k&gt;</th><td>&lt;v&gt;</td>"));
    let multi = html::render_form("T", &json!({"reply": "第一行\n<第二行>"}));
    assert!(multi.contains("<td><span class=\"text\">第一行\n&lt;第二行&gt;</span></td>"));
}

#[test]
fn tar_headers_round_trip() {
    let block = tar::file_header("recordings/x.wav", 123_456, 1_700_000_000);
    let header = parse_header(&block).unwrap();
    assert_eq!(header.name, "recordings/x.wav");
    assert_eq!(header.size, 123_456);
    assert_eq!(header.typeflag, b'0');
    assert_eq!(&block[257..265], b"ustar\x0000");
    let mut bad = block;
    bad[0] ^= 1;
    assert!(parse_header(&bad).is_err());
    assert_eq!(tar::padding(0), 0);
    assert_eq!(tar::padding(1), 511);
    assert_eq!(tar::padding(512), 0);
}

/// Env var telling [`kill_child_writer`] where to write (set only by the parent test).
const CHILD_ENV: &str = "THREERING_ARCHIVE_TEST_CHILD";

fn kill_input(work: &Path) -> BundleInput {
    let rec = RecordingInput {
        name: "long.wav".into(),
        source: work.join("long.wav"),
        sha256: sha_hex(&fs::read(work.join("long.wav")).unwrap()),
    };
    input("T-KILL", vec![rec])
}

/// Run by `killed_write_leaves_no_bundle` as a child process, slowed by the test knob.
#[test]
#[ignore = "child process of killed_write_leaves_no_bundle"]
fn kill_child_writer() {
    let Ok(work) = std::env::var(CHILD_ENV) else {
        return;
    };
    let work = PathBuf::from(work);
    let _ = write_bundle(&work.join("root"), &kill_input(&work), &mut |_, _| {});
}

#[test]
fn killed_write_leaves_no_bundle() {
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("long.wav"), noise(4 * 1024 * 1024, 10)).unwrap();
    let input = kill_input(work.path());
    let root = work.path().join("root");
    let final_path = bundle_path(&root, day(), "complaint", "T-KILL");
    let dir = final_path.parent().unwrap().to_path_buf();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "archive::tests::kill_child_writer", "--ignored"])
        .env(CHILD_ENV, work.path())
        .env(SLOW_ENV, "20")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the child is well into the recording, then kill it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let partial = loop {
        let found = fs::read_dir(&dir).ok().and_then(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .find(|p| p.metadata().map(|m| m.len() > 512 * 1024).unwrap_or(false))
        });
        if let Some(partial) = found {
            break partial;
        }
        assert!(Instant::now() < deadline, "child never got going");
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().unwrap();
    child.wait().unwrap();

    let name = partial.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name, format!(".T-KILL.tar.partial-{}", child.id()));
    assert!(!final_path.exists(), "no bundle under the final name");
    assert!(partial.exists(), "the killed run left its partial file");

    let written = write_bundle(&root, &input, &mut |_, _| {}).unwrap();
    assert_eq!(dir_names(&dir), ["T-KILL.tar"]);
    assert_eq!(verify(&written.path).unwrap().sha256, written.sha256);
}

#[test]
fn recording_changed_during_copy_is_caught() {
    use std::io::{Seek, SeekFrom, Write};
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let rec = recording(work.path(), "live.wav", 400_000, 11);
    let source = rec.source.clone();
    let input = input("T-12", vec![rec.clone()]);
    let mut tampered = false;
    let err = write_bundle(&root, &input, &mut |done, _| {
        if !tampered && done > 200_000 {
            // Past the first chunks of the recording: change a byte near its end.
            let mut f = fs::OpenOptions::new().write(true).open(&source).unwrap();
            f.seek(SeekFrom::Start(399_990)).unwrap();
            f.write_all(b"!").unwrap();
            tampered = true;
        }
    })
    .unwrap_err();
    assert!(tampered);
    let now = sha_hex(&fs::read(&source).unwrap());
    assert!(
        matches!(&err, ArchiveError::RecordingChanged { name, expected, actual }
            if name == "live.wav" && *expected == rec.sha256 && *actual == now),
        "{err:?}"
    );
    let dir = bundle_path(&root, day(), "complaint", "T-12");
    assert!(dir_names(dir.parent().unwrap()).is_empty());
}
