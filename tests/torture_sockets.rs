//! RFC 4475 torture messages sent, byte for byte, to a running `threering sip-echo` over
//! real UDP and TCP sockets. For each file the first response's status is checked against
//! `CASES`, and a normal OPTIONS must then still be answered 200 (the endpoint keeps
//! serving). All mismatches are collected and reported together.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use common::{
    check_options_ok, parse_response, show_bytes, tcp_exchange, torture_files, udp_exchange,
    udp_socket, SipEcho, SipResponse, Transport, TORTURE_DIR,
};

/// The first response expected for a torture message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// No response at all (UDP: none within 1 s; TCP: none before EOF or 2 s).
    Nothing,
    /// This status code.
    Status(u16),
    /// Any of these status codes.
    AnyOf(&'static [u16]),
}

use Expect::{AnyOf, Nothing, Status};

/// A valid INVITE: 100 Trying, 180 Ringing or (with --ring-ms 0) 200 OK comes first.
const INVITE: Expect = AnyOf(&[100, 180, 200]);
/// A valid INVITE whose To carries a tag, i.e. a request inside a dialog the UAS never
/// saw: RFC 3261 §12.2.2 lets the UAS answer 481 (or recreate the dialog).
const INVITE_IN_UNKNOWN_DIALOG: Expect = AnyOf(&[100, 180, 200, 481]);

/// One torture file: what comes back first over UDP and over TCP, and a header field the
/// first response must carry.
#[derive(Clone, Copy, Debug)]
struct Case {
    file: &'static str,
    udp: Expect,
    tcp: Expect,
    header: Option<&'static str>,
}

const fn both(file: &'static str, expect: Expect) -> Case {
    Case {
        file,
        udp: expect,
        tcp: expect,
        header: None,
    }
}

const fn with_header(file: &'static str, expect: Expect, header: &'static str) -> Case {
    Case {
        file,
        udp: expect,
        tcp: expect,
        header: Some(header),
    }
}

const fn split(file: &'static str, udp: Expect, tcp: Expect) -> Case {
    Case {
        file,
        udp,
        tcp,
        header: None,
    }
}

/// The expected first response to every file in shared/rfc4475.
const CASES: &[Case] = &[
    // Responses are never answered.
    both("TC_BCAST_V.dat", Nothing),
    both("TC_BIGCODE_V.dat", Nothing),
    both("TC_NOREASON_V.dat", Nothing),
    both("TC_UNREASON_V.dat", Nothing),
    both("TC_SCALARLG_V.dat", Nothing),
    // No Via and no SIP version: no response can be formed.
    both("TC_TEST_I.dat", Nothing),
    // Malformed or missing required fields: 400 with a reason that names the problem.
    both("TC_BADINV01_I.dat", Status(400)),
    both("TC_CLERR_I.dat", Status(400)),
    both("TC_NCL_I.dat", Status(400)),
    both("TC_SCALAR02_V.dat", Status(400)),
    both("TC_QUOTBAL_I.dat", Status(400)),
    both("TC_LTGTRURI_I.dat", Status(400)),
    both("TC_LWSRURI_I.dat", Status(400)),
    both("TC_LWSSTART_V.dat", Status(400)),
    both("TC_TRWS_I.dat", Status(400)),
    both("TC_ESCRURI_V.dat", Status(400)),
    both("TC_BADDATE_V.dat", Status(400)),
    both("TC_REGBADCT_I.dat", Status(400)),
    both("TC_BADASPEC_I.dat", Status(400)),
    both("TC_BADDN_I.dat", Status(400)),
    both("TC_MISMATCH01_V.dat", Status(400)),
    both("TC_MISMATCH02_V.dat", Status(400)),
    both("TC_INSUF_I.dat", Status(400)),
    both("TC_MULTI01_I.dat", Status(400)),
    both("TC_MCL01_I.dat", Status(400)),
    both("TC_UNKSM2_V.dat", Status(400)), // a registrar needs a sip/sips To
    // SIP/7.0: RFC 4475 §3.1.2.16 asks for 505 Version Not Supported.
    both("TC_BADVERS_V.dat", Status(505)),
    // Understood but refused.
    both("TC_UNKSCM_V.dat", Status(416)),
    both("TC_NOVELSC_V.dat", Status(416)),
    with_header("TC_BEXT01_V.dat", Status(420), "Unsupported"),
    with_header("TC_INVUT_V.dat", Status(415), "Accept"),
    both("TC_SDP01_V.dat", Status(406)),
    // OPTIONS answered locally (ZEROMF: even at Max-Forwards 0).
    both("TC_LWSDISP_V.dat", Status(200)),
    both("TC_SEMIURI_V.dat", Status(200)),
    both("TC_TRANSPORTS_V.dat", Status(200)),
    both("TC_BADBRANCH_V.dat", Status(200)),
    both("TC_ZEROMF_V.dat", Status(200)),
    // REGISTER without valid credentials.
    both("TC_ESCNULL_V.dat", Status(401)),
    both("TC_DBLREQ.dat", Status(401)),
    both("TC_CPARAM01_V.dat", Status(401)),
    both("TC_CPARAM02_V.dat", Status(401)),
    both("TC_REGESCRT_V.dat", Status(401)),
    both("TC_REGAUT01_V.dat", Status(401)),
    // Extension methods, and a known method this endpoint does not allow.
    both("TC_INTMETH.dat", Status(501)),
    both("TC_ESC02_V.dat", Status(501)),
    with_header("TC_MPART01.dat", Status(405), "Allow"),
    // Valid INVITEs (WSINV's To has a tag: "tag = 1918181833n").
    both("TC_WSINV.dat", INVITE_IN_UNKNOWN_DIALOG),
    both("TC_ESC01_V.dat", INVITE),
    both("TC_LONGREQ_V.dat", INVITE),
    // No Content-Length: fine in a datagram, a framing error on a stream.
    split("TC_INV2543_I.dat", INVITE, Status(400)),
];

/// UDP: how long "no response" is waited for, and how long a response may take.
const UDP_SILENCE: Duration = Duration::from_secs(1);
const UDP_WAIT: Duration = Duration::from_secs(2);
/// TCP: read until EOF or this long (or until a first response head is complete).
const TCP_WAIT: Duration = Duration::from_secs(2);

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Checks the first response (if any) against the expectation; Err says what is wrong.
fn judge(expect: Expect, header: Option<&str>, first: Option<&[u8]>) -> Result<(), String> {
    let Some(bytes) = first.filter(|b| !b.is_empty()) else {
        return match expect {
            Nothing => Ok(()),
            other => Err(format!("expected {other:?}, got no response")),
        };
    };
    let Some(resp) = parse_response(bytes) else {
        return Err(format!(
            "expected {expect:?}, got something that is not a SIP response: {}",
            show_bytes(bytes, 300)
        ));
    };
    let ok = match expect {
        Nothing => false,
        Status(code) => resp.code == code,
        AnyOf(codes) => codes.contains(&resp.code),
    };
    if !ok {
        return Err(format!("expected {expect:?}, got {}", resp.status_line()));
    }
    if resp.code == 400 {
        check_400_reason(&resp)?;
    }
    if let Some(name) = header {
        if !resp.has_header(name) {
            return Err(format!(
                "{} carries no {name} header field: {}",
                resp.status_line(),
                show_bytes(&resp.raw, 600)
            ));
        }
    }
    Ok(())
}

/// A 400's reason phrase must name the problem ("Bad Request: CSeq"), not be bare.
fn check_400_reason(resp: &SipResponse) -> Result<(), String> {
    let reason = resp.reason.trim();
    const BARE: &str = "Bad Request";
    let rest = match (reason.get(..BARE.len()), reason.get(BARE.len()..)) {
        (Some(head), Some(rest)) if head.eq_ignore_ascii_case(BARE) => rest,
        _ => reason,
    };
    let detail = rest.trim_matches(|c: char| c.is_whitespace() || ":-;,()".contains(c));
    if detail.is_empty() {
        Err(format!(
            "400 reason phrase {reason:?} does not say what is wrong (want e.g. \"Bad Request: CSeq\")"
        ))
    } else {
        Ok(())
    }
}

fn case_for(name: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.file == name)
}

#[test]
fn cases_table_covers_exactly_the_corpus() {
    let on_disk: BTreeSet<String> = torture_files().iter().map(|p| file_name(p)).collect();
    let in_table: BTreeSet<String> = CASES.iter().map(|c| c.file.to_string()).collect();
    assert_eq!(
        CASES.len(),
        in_table.len(),
        "a file is listed twice in CASES"
    );
    let unlisted: Vec<_> = on_disk.difference(&in_table).collect();
    let missing: Vec<_> = in_table.difference(&on_disk).collect();
    assert!(
        unlisted.is_empty() && missing.is_empty(),
        "CASES and {TORTURE_DIR} disagree: not in CASES {unlisted:?}; not on disk {missing:?}"
    );
}

fn run_corpus(transport: Transport) {
    let mut echo = SipEcho::start();
    let target = echo.addr(transport);
    // A fresh UDP socket per file, kept open to the end so that late retransmissions
    // (of 2xx to the INVITEs) land on a live socket and never in another file's exchange.
    let mut kept_sockets: Vec<UdpSocket> = Vec::new();
    let mut mismatches: Vec<String> = Vec::new();

    for path in torture_files() {
        let name = file_name(&path);
        let Some(case) = case_for(&name) else {
            mismatches.push(format!("{name}: no entry in CASES"));
            continue;
        };
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let expect = match transport {
            Transport::Udp => case.udp,
            Transport::Tcp => case.tcp,
        };

        let first: Result<Option<Vec<u8>>, String> = match transport {
            Transport::Udp => {
                let socket = udp_socket();
                let wait = if expect == Nothing {
                    UDP_SILENCE
                } else {
                    UDP_WAIT
                };
                let got = udp_exchange(&socket, target, &bytes, wait).map_err(|e| e.to_string());
                kept_sockets.push(socket);
                got
            }
            Transport::Tcp => tcp_exchange(target, &bytes, true, TCP_WAIT, true)
                .map(|x| Some(x.received))
                .map_err(|e| format!("TCP exchange failed: {e}")),
        };
        let verdict = first.and_then(|first| judge(expect, case.header, first.as_deref()));
        if let Err(e) = verdict {
            mismatches.push(format!("{name} over {transport:?}: {e}"));
        }

        if let Err(e) = check_options_ok(transport, target) {
            mismatches.push(format!("after {name} over {transport:?}: {e}"));
        }
    }

    echo.assert_running();
    drop(kept_sockets);
    // On failure sip-echo's output is printed when `echo` is dropped.
    assert!(
        mismatches.is_empty(),
        "{} mismatch(es) over {transport:?}:\n  {}",
        mismatches.len(),
        mismatches.join("\n  "),
    );
}

#[test]
fn torture_messages_over_udp() {
    run_corpus(Transport::Udp);
}

#[test]
fn torture_messages_over_tcp() {
    run_corpus(Transport::Tcp);
}
