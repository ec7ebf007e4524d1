//! RFC 4475 torture messages against the parser and the request checks. The parser
//! verdicts come from the table in `../shared/rfc4475/README.md` itself, so the test
//! follows the oracle rather than a copy of it.

use super::message::Message;
use super::parse::parse;
use super::validate::{check_request, Capabilities};
use bytes::Bytes;
use std::path::PathBuf;

fn torture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/rfc4475")
}

/// (file, verdict) rows of the README table.
fn verdicts() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(torture_dir().join("README.md")).expect("rfc4475 README");
    readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let file = cells.get(1)?.trim_matches('`');
            if !file.ends_with(".dat") {
                return None;
            }
            Some((file.to_owned(), cells.get(4)?.to_string()))
        })
        .collect()
}

/// The status the request checks give to messages that parse (None: accepted).
fn expected_check(file: &str) -> Option<u16> {
    match file {
        "TC_INSUF_I.dat" | "TC_MULTI01_I.dat" | "TC_MCL01_I.dat" => Some(400),
        "TC_UNKSCM_V.dat" | "TC_NOVELSC_V.dat" => Some(416),
        "TC_BEXT01_V.dat" => Some(420),
        "TC_INVUT_V.dat" => Some(415),
        "TC_SDP01_V.dat" => Some(406),
        "TC_INTMETH.dat" | "TC_ESC02_V.dat" => Some(501),
        "TC_MPART01.dat" => Some(405),
        _ => None,
    }
}

#[test]
fn every_torture_message_gets_the_readme_verdict() {
    let rows = verdicts();
    assert_eq!(rows.len(), 50, "the README lists 50 messages");
    let mut wrong = Vec::new();
    for (file, verdict) in &rows {
        let data = std::fs::read(torture_dir().join(file)).expect("torture file");
        let result = parse(Bytes::from(data));
        let parsed = result.is_ok();
        let want_parse = verdict == "parse";
        if parsed != want_parse {
            wrong.push(format!("{file}: want {verdict}, got {result:?}"));
            continue;
        }
        if let Ok(Message::Request(req)) = result {
            let got = check_request(&req, &Capabilities::default())
                .err()
                .map(|r| r.status);
            if got != expected_check(file) {
                wrong.push(format!(
                    "{file}: checks gave {got:?}, want {:?}",
                    expected_check(file)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn refusals_name_the_problem() {
    let data = std::fs::read(torture_dir().join("TC_SCALAR02_V.dat")).unwrap();
    let err = parse(Bytes::from(data)).unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(
        err.reason_phrase().contains("CSeq"),
        "{}",
        err.reason_phrase()
    );
    let data = std::fs::read(torture_dir().join("TC_BADVERS_V.dat")).unwrap();
    assert_eq!(parse(Bytes::from(data)).unwrap_err().status(), 505);
}

#[test]
fn valid_torture_messages_read_back_typed_values() {
    use super::header::HeaderName;
    use super::message::HeaderAccess;
    let data = std::fs::read(torture_dir().join("TC_WSINV.dat")).unwrap();
    let Message::Request(req) = parse(Bytes::from(data)).unwrap() else {
        panic!("request expected")
    };
    assert_eq!(req.vias().len(), 3);
    assert_eq!(req.cseq().unwrap().seq, 9);
    assert_eq!(req.max_forwards(), Some(68));
    assert_eq!(req.header_to().unwrap().tag(), Some("1918181833n"));
    assert_eq!(req.header_from().unwrap().tag(), Some("98asjd8"));
    assert_eq!(req.body.len(), 150);
    assert_eq!(req.contacts()[0].params.value("q"), Some("0.33"));
    assert_eq!(
        req.headers
            .get(&HeaderName::Other("NewFangledHeader".into()))
            .map(|v| v.as_str()),
        Some("newfangled value continued newfangled value")
    );
    let data = std::fs::read(torture_dir().join("TC_DBLREQ.dat")).unwrap();
    let Message::Request(req) = parse(Bytes::from(data)).unwrap() else {
        panic!("request expected")
    };
    assert_eq!(req.method, super::message::Method::Register);
    assert!(req.body.is_empty());
}
