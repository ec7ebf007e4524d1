//! `threering archive` as a process: the completeness check, the bundle checked with
//! standard tools (`tar`, `sha256sum -c`), `archive verify` on a good and a damaged
//! bundle, a writer killed mid-bundle (no bundle under the final name, a clean retry),
//! and the `--closed-before` batch. The database is filled through the library: it is
//! the same SQLite file the command opens.

#[path = "tickets_common/mod.rs"]
mod tickets_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use threering::config::Config;
use threering::store::testing::{backend_from_env, TestDb};
use threering::store::Store;
use threering::tickets::ticket::{self, NewTicket, Rules, TicketUpdate};
use threering::tickets::{LinkRole, Ticket, Tickets};

use tickets_common::{
    bundle_relative, call_record, now_ms, recording_marker, sha256_file, wav_bytes, write_recording,
};

const BIN: &str = env!("CARGO_BIN_EXE_threering");

/// Longest any one command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// A config file, its database, recordings and archive in one temporary directory.
struct Setup {
    dir: tempfile::TempDir,
    _db: TestDb,
    config_file: PathBuf,
    config: Config,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::new_blocking(backend_from_env());
        let database = db.url.clone();
        let recordings = dir.path().join("recordings");
        let archive = dir.path().join("archive");
        let toml = format!(
            r#"[sip]
listen = ["udp:127.0.0.1:5060"]
realm = "threering"

[media]
address = "127.0.0.1"
rtp_ports = [20000, 20099]

[http]
listen = "127.0.0.1:8080"

[store]
database = {database:?}
recordings = {recordings:?}

[archive]
root = {archive:?}
"#
        );
        let config_file = dir.path().join("threering.toml");
        fs::write(&config_file, toml).unwrap();
        let config = Config::load(&config_file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.store.database, database);
        assert_eq!(config.store.recordings, recordings);
        assert_eq!(config.archive.root, archive);
        Setup {
            dir,
            _db: db,
            config_file,
            config,
        }
    }

    fn recordings(&self) -> &Path {
        &self.config.store.recordings
    }

    fn archive_root(&self) -> &Path {
        &self.config.archive.root
    }

    async fn tickets(&self) -> Tickets {
        let store = Store::open(&self.config.store.database).await.unwrap();
        Tickets::new(store, Rules::from_config(&self.config))
    }

    fn bundle(&self, kind: &str, id: &str) -> PathBuf {
        self.archive_root().join(bundle_relative(kind, id))
    }

    /// `threering archive --config F ARGS…`.
    fn archive(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("archive")
            .arg("--config")
            .arg(&self.config_file)
            .args(args)
            .env_remove(threering::archive::SLOW_ENV)
            .env("THREERING_LOG", "warn");
        command
    }
}

/// What a finished command said.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Starts `command` with its output going to files in `dir`.
fn spawn(mut command: Command, dir: &Path, name: &str) -> (Child, PathBuf, PathBuf) {
    let out = dir.join(format!("{name}.stdout"));
    let err = dir.join(format!("{name}.stderr"));
    let child = command
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    (child, out, err)
}

/// Waits (bounded) for `child`; kills it and fails the test when it takes too long.
fn finish(mut child: Child, out: &Path, err: &Path) -> Ran {
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "command still running after {COMMAND_LIMIT:?}: {}",
                fs::read_to_string(err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ran {
        status,
        stdout: fs::read_to_string(out).unwrap(),
        stderr: fs::read_to_string(err).unwrap(),
    }
}

fn run(command: Command, dir: &Path, name: &str) -> Ran {
    let (child, out, err) = spawn(command, dir, name);
    finish(child, &out, &err)
}

/// `threering archive verify PATH`.
fn verify(setup: &Setup, bundle: &Path, name: &str) -> Ran {
    let mut command = Command::new(BIN);
    command.arg("archive").arg("verify").arg(bundle);
    run(command, setup.dir.path(), name)
}

/// A standard tool run in `dir`.
fn tool(program: &str, args: &[&str], dir: &Path) -> Ran {
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    let scratch = tempfile::tempdir().unwrap();
    run(command, scratch.path(), program)
}

fn form(kind: &str) -> NewTicket {
    let text = |s: &str| Some(s.to_owned());
    NewTicket {
        kind: text(kind),
        customer: text("李四"),
        company: text("<script>alert(1)</script>"),
        phone: text("13900139000"),
        area: text("华南"),
        inquiry_type: text("运送时效"),
        waybill: text("SF9876543210"),
        content: text("催件：客户要求今天送达"),
        ..Default::default()
    }
}

/// A ticket with every field, one linked call with a finished recording of `data_len`
/// bytes of audio, and a survey score; closed when `close`.
async fn complete_ticket(
    setup: &Setup,
    tickets: &Tickets,
    kind: &str,
    call_id: &str,
    data_len: usize,
    close: bool,
) -> Ticket {
    let ticket = tickets.create(&form(kind), "test").await.unwrap();
    let recording = write_recording(setup.recordings(), call_id, data_len);
    tickets
        .store
        .save_call(&call_record(
            call_id,
            now_ms() - 600_000,
            Some(recording),
            vec![],
        ))
        .await
        .unwrap();
    tickets
        .link(&ticket.id, call_id, LinkRole::Inbound, "test")
        .await
        .unwrap();
    tickets
        .change(&ticket.id, |rules, t, now| {
            ticket::record_survey(rules, t, 5, None, None, "test", now)
        })
        .await
        .unwrap();
    if close {
        let change = TicketUpdate {
            reply: Some("已送达".to_owned()),
            status: Some("closed".to_owned()),
            ..Default::default()
        };
        let closed = tickets
            .change(&ticket.id, |rules, t, now| {
                ticket::update(rules, t, &change, "test", now)
            })
            .await
            .unwrap();
        assert_eq!(closed.status.as_str(), "closed");
    }
    tickets.get(&ticket.id).await.unwrap()
}

/// Every file below `dir` whose name starts with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

/// `(name, data offset, size)` of every member, from the 512-byte ustar headers.
fn tar_members(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let mut members = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() {
        let header = &bytes[at..at + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let name_end = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8(header[..name_end].to_vec()).unwrap();
        let size_text = std::str::from_utf8(&header[124..136])
            .unwrap()
            .trim_matches(|c: char| c == '\0' || c == ' ');
        let size = usize::from_str_radix(size_text, 8).unwrap();
        assert_eq!(&header[257..262], b"ustar", "member {name}: not ustar");
        members.push((name, at + 512, size));
        at += 512 + size.div_ceil(512) * 512;
    }
    members
}

fn find(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test]
async fn an_incomplete_ticket_is_refused_and_a_complete_one_bundled() {
    let setup = Setup::new();
    let tickets = setup.tickets().await;
    let bare = tickets
        .create(
            &NewTicket {
                kind: Some("problem".to_owned()),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    let done = complete_ticket(
        &setup,
        &tickets,
        "consultation",
        "n1-20261124-0101",
        40_000,
        false,
    )
    .await;
    tickets.store.close().await;

    // Incomplete: exit 1, every gap listed, nothing written.
    let ran = run(
        setup.archive(&["--ticket", &bare.id]),
        setup.dir.path(),
        "incomplete",
    );
    assert_eq!(ran.code(), Some(1), "{}", ran.output());
    let output = ran.output();
    for item in [
        "field customer is empty",
        "field phone is empty",
        "field area is empty",
        "field inquiry_type is empty",
        "field content is empty",
        "field waybill is empty",
        "recordings: no linked call has a recording",
        "survey result",
    ] {
        assert!(output.contains(item), "no {item:?} in\n{output}");
    }
    assert!(output.contains(&bare.id), "{output}");
    assert!(!setup.archive_root().exists() || files_starting(setup.archive_root(), "").is_empty());

    // Unknown ticket, and no ticket at all: refused.
    let ran = run(
        setup.archive(&["--ticket", "T-20200101-0001"]),
        setup.dir.path(),
        "unknown",
    );
    assert_eq!(ran.code(), Some(1), "{}", ran.output());
    assert!(ran.output().contains("T-20200101-0001"), "{}", ran.output());
    let ran = run(setup.archive(&[]), setup.dir.path(), "nothing");
    assert_ne!(ran.code(), Some(0), "{}", ran.output());
    assert!(ran.output().contains("--ticket"), "{}", ran.output());

    // Complete: exit 0, the bundle where the layout says.
    let ran = run(
        setup.archive(&["--ticket", &done.id]),
        setup.dir.path(),
        "complete",
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.output());
    let bundle = setup.bundle("consultation", &done.id);
    assert!(
        bundle.is_file(),
        "no {}:\n{}",
        bundle.display(),
        ran.output()
    );
    let sha = sha256_file(&bundle);
    assert!(ran.output().contains(&sha), "{}", ran.output());

    // The store says so.
    let tickets = setup.tickets().await;
    let archived = tickets.get(&done.id).await.unwrap();
    assert!(archived.archived_at.is_some());
    assert_eq!(
        archived.archive_path.as_deref(),
        Some(bundle_relative("consultation", &done.id).as_str())
    );
    assert_eq!(archived.archive_sha256.as_deref(), Some(sha.as_str()));
    assert!(tickets.get(&bare.id).await.unwrap().archived_at.is_none());
    tickets.store.close().await;

    // Standard tools: list, extract, check.
    let call = "n1-20261124-0101";
    let listing = tool("tar", &["-tf", bundle.to_str().unwrap()], setup.dir.path());
    assert!(listing.status.success(), "{}", listing.output());
    let names: Vec<&str> = listing.stdout.lines().collect();
    let recording = format!("recordings/{call}.wav");
    assert_eq!(
        names,
        [
            "form.json",
            "form.html",
            recording.as_str(),
            "survey.json",
            "calls.json",
            "manifest.json",
            "SHA256SUMS"
        ]
    );
    let out = tempfile::tempdir().unwrap();
    let extracted = tool("tar", &["-xf", bundle.to_str().unwrap()], out.path());
    assert!(extracted.status.success(), "{}", extracted.output());
    let checked = tool("sha256sum", &["-c", "SHA256SUMS"], out.path());
    assert!(checked.status.success(), "{}", checked.output());
    for name in [
        "form.json",
        "form.html",
        recording.as_str(),
        "survey.json",
        "calls.json",
        "manifest.json",
    ] {
        assert!(
            checked.stdout.contains(&format!("{name}: OK")),
            "{name} not checked:\n{}",
            checked.output()
        );
    }
    assert_eq!(
        fs::read(out.path().join(&recording)).unwrap(),
        wav_bytes(call, 40_000),
        "the recording byte for byte"
    );
    let form_json: serde_json::Value =
        serde_json::from_slice(&fs::read(out.path().join("form.json")).unwrap()).unwrap();
    assert_eq!(form_json["id"], done.id.as_str());
    assert_eq!(form_json["customer"], "李四");
    assert_eq!(form_json["calls"][0]["call_id"], call);
    let survey: serde_json::Value =
        serde_json::from_slice(&fs::read(out.path().join("survey.json")).unwrap()).unwrap();
    assert_eq!(survey["score"], 5);
    let calls: serde_json::Value =
        serde_json::from_slice(&fs::read(out.path().join("calls.json")).unwrap()).unwrap();
    assert_eq!(calls[0]["id"], call);
    assert_eq!(calls[0]["caller_ring_ms"], 6_200);
    assert_eq!(calls[0]["role"], "inbound");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(out.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["ticket_id"], done.id.as_str());
    assert_eq!(manifest["kind"], "consultation");
    let html = fs::read_to_string(out.path().join("form.html")).unwrap();
    assert!(html.contains(&done.id), "{html}");
    assert!(html.contains("李四"), "{html}");
    assert!(
        !html.contains("<script>alert"),
        "form text is escaped: {html}"
    );
    assert!(html.contains("&lt;script&gt;"), "{html}");

    let ran = verify(&setup, &bundle, "verify");
    assert_eq!(ran.code(), Some(0), "{}", ran.output());
    assert!(ran.stdout.contains("ok"), "{}", ran.output());
    assert!(ran.stdout.contains(&done.id), "{}", ran.output());
    assert!(ran.stdout.contains(&sha), "{}", ran.output());

    // Archiving again is refused; the bundle is untouched.
    let ran = run(
        setup.archive(&["--ticket", &done.id]),
        setup.dir.path(),
        "again",
    );
    assert_eq!(ran.code(), Some(1), "{}", ran.output());
    assert!(
        ran.output().contains("already archived"),
        "{}",
        ran.output()
    );
    assert_eq!(sha256_file(&bundle), sha);
}

#[tokio::test]
async fn verify_names_a_recording_damaged_inside_the_bundle() {
    let setup = Setup::new();
    let tickets = setup.tickets().await;
    let call = "n1-20261124-0201";
    let done = complete_ticket(&setup, &tickets, "complaint", call, 100_000, false).await;
    tickets.store.close().await;
    let ran = run(
        setup.archive(&["--ticket", &done.id]),
        setup.dir.path(),
        "archive",
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.output());
    let bundle = setup.bundle("complaint", &done.id);
    assert_eq!(verify(&setup, &bundle, "good").code(), Some(0));

    // Find the marker written into the WAV, inside the recording member's data.
    let mut bytes = fs::read(&bundle).unwrap();
    let member = format!("recordings/{call}.wav");
    let members = tar_members(&bytes);
    let (_, data_at, size) = members
        .iter()
        .find(|(name, _, _)| *name == member)
        .unwrap_or_else(|| panic!("no {member} in {members:?}"))
        .clone();
    assert_eq!(size, wav_bytes(call, 100_000).len());
    let hits = find(&bytes, &recording_marker(call));
    assert_eq!(hits.len(), 1, "the marker is in the bundle once");
    let at = hits[0] + 3;
    assert!(
        (data_at..data_at + size).contains(&at),
        "{at} outside {member} ({data_at}+{size})"
    );
    bytes[at] ^= 0x01;
    fs::write(&bundle, &bytes).unwrap();

    let ran = verify(&setup, &bundle, "damaged");
    assert_eq!(ran.code(), Some(1), "{}", ran.output());
    assert!(ran.output().contains(&member), "{}", ran.output());
    for other in ["form.json", "survey.json", "calls.json"] {
        assert!(
            !ran.output().contains(&format!("{other}:")),
            "only the recording is damaged: {}",
            ran.output()
        );
    }

    // Standard tools see it too.
    let out = tempfile::tempdir().unwrap();
    let extracted = tool("tar", &["-xf", bundle.to_str().unwrap()], out.path());
    assert!(extracted.status.success(), "{}", extracted.output());
    let checked = tool("sha256sum", &["-c", "SHA256SUMS"], out.path());
    assert!(!checked.status.success(), "{}", checked.output());
    assert!(
        checked.stdout.contains(&format!("{member}: FAILED")),
        "{}",
        checked.output()
    );
}

#[tokio::test]
async fn a_writer_killed_mid_bundle_leaves_no_bundle_and_a_retry_succeeds() {
    let setup = Setup::new();
    let tickets = setup.tickets().await;
    let call = "n1-20261124-0301";
    // 4 MiB of audio: 64 chunks of 64 KiB, 20 ms each with the test knob.
    let done = complete_ticket(&setup, &tickets, "order", call, 4 << 20, false).await;
    tickets.store.close().await;
    let bundle = setup.bundle("order", &done.id);
    let dir = bundle.parent().unwrap().to_path_buf();
    let prefix = format!(".{}.tar.partial-", done.id);

    let mut command = setup.archive(&["--ticket", &done.id]);
    command.env(threering::archive::SLOW_ENV, "20");
    let (mut child, out, err) = spawn(command, setup.dir.path(), "slow");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let partial = loop {
        if let Some(found) = files_starting(&dir, &prefix).pop() {
            break found;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "archive ended ({status}) before a partial file appeared: {}",
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no {prefix}* in {} within 10 s", dir.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(
        partial.file_name().unwrap().to_string_lossy(),
        format!("{prefix}{pid}"),
        "the partial file carries the writer's pid"
    );
    // Let it get some way into the recording, then kill -9 while it still writes.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the writer finished before it was killed: {}{}",
        fs::read_to_string(&out).unwrap_or_default(),
        fs::read_to_string(&err).unwrap_or_default()
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished: {status}");

    assert!(
        !bundle.exists(),
        "a bundle under its final name after kill -9"
    );
    assert!(
        partial.is_file(),
        "the killed writer's partial file is still there"
    );
    assert!(fs::metadata(&partial).unwrap().len() > 0);
    let tickets = setup.tickets().await;
    assert!(tickets.get(&done.id).await.unwrap().archived_at.is_none());
    tickets.store.close().await;

    // A new run finishes, and sweeps up the partial file.
    let ran = run(
        setup.archive(&["--ticket", &done.id]),
        setup.dir.path(),
        "retry",
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.output());
    assert!(bundle.is_file());
    assert_eq!(files_starting(&dir, &prefix), Vec::<PathBuf>::new());
    assert_eq!(files_starting(&dir, ""), std::slice::from_ref(&bundle));
    let ran = verify(&setup, &bundle, "verify");
    assert_eq!(ran.code(), Some(0), "{}", ran.output());
    let tickets = setup.tickets().await;
    let archived = tickets.get(&done.id).await.unwrap();
    assert_eq!(
        archived.archive_sha256.as_deref(),
        Some(sha256_file(&bundle).as_str())
    );
    tickets.store.close().await;
}

/// The local (+08:00) date of `epoch_ms` plus `days`, `YYYY-MM-DD`.
fn local_date_of(epoch_ms: i64, days: i64) -> String {
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let at = chrono::DateTime::from_timestamp_millis(epoch_ms).unwrap();
    (at.with_timezone(&offset).date_naive() + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// The local (+08:00) date `days` from today, `YYYY-MM-DD`.
fn local_date(days: i64) -> String {
    local_date_of(now_ms(), days)
}

#[tokio::test]
async fn closed_before_archives_exactly_the_closed_tickets() {
    let setup = Setup::new();
    let tickets = setup.tickets().await;
    let first = complete_ticket(&setup, &tickets, "query", "n1-20261124-0401", 8_000, true).await;
    let second =
        complete_ticket(&setup, &tickets, "problem", "n1-20261124-0402", 8_000, true).await;
    let open = complete_ticket(&setup, &tickets, "query", "n1-20261124-0403", 8_000, false).await;
    tickets.store.close().await;

    // Nothing was closed before the day the first of them was closed.
    let closed = [first.closed_at.unwrap(), second.closed_at.unwrap()];
    let today = local_date_of(closed[0].min(closed[1]), 0);
    let ran = run(
        setup.archive(&["--closed-before", &today]),
        setup.dir.path(),
        "today",
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.output());
    assert!(
        ran.output().contains("no closed, unarchived tickets"),
        "{}",
        ran.output()
    );
    assert!(!setup.archive_root().exists());

    let tomorrow = local_date_of(closed[0].max(closed[1]), 1);
    let ran = run(
        setup.archive(&["--closed-before", &tomorrow]),
        setup.dir.path(),
        "tomorrow",
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.output());
    assert!(
        setup.bundle("query", &first.id).is_file(),
        "{}",
        ran.output()
    );
    assert!(
        setup.bundle("problem", &second.id).is_file(),
        "{}",
        ran.output()
    );
    assert!(
        !setup.bundle("query", &open.id).exists(),
        "{}",
        ran.output()
    );
    assert!(!ran.output().contains(&open.id), "{}", ran.output());
    for bundle in [
        setup.bundle("query", &first.id),
        setup.bundle("problem", &second.id),
    ] {
        assert_eq!(verify(&setup, &bundle, "verify").code(), Some(0));
    }
    let tickets = setup.tickets().await;
    assert!(tickets.get(&first.id).await.unwrap().archived_at.is_some());
    assert!(tickets.get(&second.id).await.unwrap().archived_at.is_some());
    assert!(tickets.get(&open.id).await.unwrap().archived_at.is_none());
    tickets.store.close().await;

    // Again: nothing left to do.
    let ran = run(
        setup.archive(&["--closed-before", &tomorrow]),
        setup.dir.path(),
        "again",
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.output());
    assert!(
        ran.output().contains("no closed, unarchived tickets"),
        "{}",
        ran.output()
    );

    let ran = run(
        setup.archive(&["--closed-before", "next week"]),
        setup.dir.path(),
        "bad date",
    );
    assert_ne!(ran.code(), Some(0), "{}", ran.output());
    assert!(ran.output().contains("--closed-before"), "{}", ran.output());
}

#[tokio::test]
async fn a_batch_archives_the_complete_and_reports_the_incomplete() {
    let setup = Setup::new();
    let tickets = setup.tickets().await;
    let good = complete_ticket(&setup, &tickets, "order", "n1-20261124-0501", 8_000, true).await;
    // Closed, but without a survey result.
    let lacking = tickets.create(&form("order"), "test").await.unwrap();
    let (path, sha) = write_recording(setup.recordings(), "n1-20261124-0502", 8_000);
    tickets
        .store
        .save_call(&call_record(
            "n1-20261124-0502",
            now_ms() - 60_000,
            Some((path, sha)),
            vec![lacking.id.clone()],
        ))
        .await
        .unwrap();
    let change = TicketUpdate {
        status: Some("closed".to_owned()),
        ..Default::default()
    };
    tickets
        .change(&lacking.id, |rules, t, now| {
            ticket::update(rules, t, &change, "test", now)
        })
        .await
        .unwrap();
    tickets.store.close().await;

    let tomorrow = local_date(1);
    let ran = run(
        setup.archive(&["--closed-before", &tomorrow]),
        setup.dir.path(),
        "batch",
    );
    assert_eq!(ran.code(), Some(1), "{}", ran.output());
    let output = ran.output();
    assert!(output.contains(&lacking.id), "{output}");
    assert!(output.contains("survey result"), "{output}");
    assert!(setup.bundle("order", &good.id).is_file(), "{output}");
    assert!(!setup.bundle("order", &lacking.id).exists(), "{output}");
}

// Regression: a ticket changed while its bundle is written (the form's content here) is
// not marked archived with the stale bundle: the archiver refuses, removes the bundle it
// just wrote, and a retry archives the ticket as it is now.
#[tokio::test]
async fn a_ticket_changed_while_its_bundle_is_written_is_not_archived_stale() {
    let setup = Setup::new();
    let tickets = setup.tickets().await;
    let call = "n1-20261124-0601";
    let done = complete_ticket(&setup, &tickets, "consultation", call, 4 << 20, false).await;
    let bundle = setup.bundle("consultation", &done.id);
    let dir = bundle.parent().unwrap().to_path_buf();
    let prefix = format!(".{}.tar.partial-", done.id);

    let mut command = setup.archive(&["--ticket", &done.id]);
    command.env(threering::archive::SLOW_ENV, "20");
    let (mut child, out, err) = spawn(command, setup.dir.path(), "slow");
    let deadline = Instant::now() + Duration::from_secs(10);
    while files_starting(&dir, &prefix).is_empty() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "archive ended ({status}) before a partial file appeared: {}",
                fs::read_to_string(&err).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no {prefix}* in {} within 10 s", dir.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // The bundle is being written from the ticket as it was; now the form changes.
    let change = TicketUpdate {
        content: Some(Some("客户改口：改为明天送达".to_owned())),
        ..Default::default()
    };
    let changed = tickets
        .change(&done.id, |rules, t, now| {
            ticket::update(rules, t, &change, "test", now)
        })
        .await
        .unwrap();
    assert!(
        !files_starting(&dir, &prefix).is_empty(),
        "the change came while the bundle was still being written"
    );
    let ran = finish(child, &out, &err);
    let stored = tickets.get(&done.id).await.unwrap();
    tickets.store.close().await;
    assert_eq!(stored.content, changed.content);
    if stored.archived_at.is_none() {
        // Refused: fine, as long as it says so.
        assert_eq!(ran.code(), Some(1), "{}", ran.output());
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let extracted = tool("tar", &["-xf", bundle.to_str().unwrap()], out.path());
    assert!(extracted.status.success(), "{}", extracted.output());
    let form_json: serde_json::Value =
        serde_json::from_slice(&fs::read(out.path().join("form.json")).unwrap()).unwrap();
    assert_eq!(
        form_json["content"].as_str(),
        stored.content.as_deref(),
        "the ticket was marked archived, but its bundle holds an older form\n{}",
        ran.output()
    );
}

// Regression: a bundle left by a run that died before marking its ticket is kept only
// if it holds the ticket as it is now; after a change it is set aside (never
// overwritten) and a fresh bundle is written.
#[tokio::test]
async fn a_bundle_left_by_an_earlier_run_is_not_kept_when_the_ticket_changed_since() {
    let setup = Setup::new();
    let tickets = setup.tickets().await;
    let done = complete_ticket(&setup, &tickets, "order", "n1-20261124-0701", 8_000, false).await;
    tickets.store.close().await;
    let ran = run(
        setup.archive(&["--ticket", &done.id]),
        setup.dir.path(),
        "first",
    );
    assert_eq!(ran.code(), Some(0), "{}", ran.output());
    let bundle = setup.bundle("order", &done.id);
    assert!(bundle.is_file());

    // As if that run had died after publishing the bundle, before marking the ticket:
    let tickets = setup.tickets().await;
    let mut unmarked = tickets.get(&done.id).await.unwrap();
    unmarked.archived_at = None;
    unmarked.archive_path = None;
    unmarked.archive_sha256 = None;
    let note = threering::tickets::HistoryEntry::new(now_ms(), "test", "note", "unmarked");
    assert!(tickets.store.save_ticket(&unmarked, &[note]).await.unwrap());
    // … and the ticket was changed afterwards.
    let change = TicketUpdate {
        content: Some(Some("客户改口：改为明天送达".to_owned())),
        ..Default::default()
    };
    tickets
        .change(&done.id, |rules, t, now| {
            ticket::update(rules, t, &change, "test", now)
        })
        .await
        .unwrap();
    tickets.store.close().await;

    let ran = run(
        setup.archive(&["--ticket", &done.id]),
        setup.dir.path(),
        "second",
    );
    let tickets = setup.tickets().await;
    let stored = tickets.get(&done.id).await.unwrap();
    tickets.store.close().await;
    if stored.archived_at.is_none() {
        assert_eq!(ran.code(), Some(1), "{}", ran.output());
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let archived = setup
        .archive_root()
        .join(stored.archive_path.as_deref().unwrap());
    let extracted = tool("tar", &["-xf", archived.to_str().unwrap()], out.path());
    assert!(extracted.status.success(), "{}", extracted.output());
    let form_json: serde_json::Value =
        serde_json::from_slice(&fs::read(out.path().join("form.json")).unwrap()).unwrap();
    assert_eq!(
        form_json["content"].as_str(),
        stored.content.as_deref(),
        "the ticket was marked archived with a bundle of an older form\n{}",
        ran.output()
    );
}
