//! The OPTIONS liveness probe: a well-formed OPTIONS sent over UDP or TCP, its final
//! response awaited, and checks that it is a 200 (the endpoint still serves).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::ports::Transport;
use super::raw_sip::{head_end, parse_response, udp_final_response, udp_socket, SipResponse};
use super::text::{show_bytes, unique_token};

/// A well-formed OPTIONS request from `local` to `target`.
pub fn options_request(
    transport: Transport,
    local: SocketAddr,
    target: SocketAddr,
    token: &str,
) -> String {
    format!(
        "OPTIONS sip:echo@{target} SIP/2.0\r\n\
         Via: SIP/2.0/{via} {local};branch=z9hG4bK-probe-{token};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=probe-{token}\r\n\
         To: <sip:echo@{target}>\r\n\
         Call-ID: probe-{token}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:probe@{local};transport={lower}>\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\
         \r\n",
        via = transport.via(),
        lower = transport.via().to_ascii_lowercase(),
    )
}

const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Sends a normal OPTIONS (fresh socket or connection) and returns its final response, or
/// says what went wrong. Provisional responses are skipped.
pub fn options_probe(transport: Transport, target: SocketAddr) -> Result<SipResponse, String> {
    let token = unique_token();
    let call_id = format!("probe-{token}@127.0.0.1");
    let check = |resp: SipResponse| -> Result<SipResponse, String> {
        match resp.header("Call-ID") {
            Some(id) if id == call_id => Ok(resp),
            other => Err(format!(
                "OPTIONS answered with a foreign Call-ID {other:?}: {}",
                show_bytes(&resp.raw, 600)
            )),
        }
    };
    match transport {
        Transport::Udp => {
            let socket = udp_socket();
            let local = socket.local_addr().map_err(|e| e.to_string())?;
            let msg = options_request(transport, local, target, &token);
            socket
                .send_to(msg.as_bytes(), target)
                .map_err(|e| format!("OPTIONS send over UDP: {e}"))?;
            let Some(data) = udp_final_response(&socket, PROBE_WAIT) else {
                return Err(format!(
                    "no final response to OPTIONS over UDP within {PROBE_WAIT:?}"
                ));
            };
            match parse_response(&data) {
                Some(resp) => check(resp),
                None => Err(format!(
                    "OPTIONS over UDP got a non-response: {}",
                    show_bytes(&data, 400)
                )),
            }
        }
        Transport::Tcp => {
            let deadline = Instant::now() + PROBE_WAIT;
            let mut stream = TcpStream::connect_timeout(&target, PROBE_WAIT)
                .map_err(|e| format!("OPTIONS: TCP connect to {target}: {e}"))?;
            let local = stream.local_addr().map_err(|e| e.to_string())?;
            let msg = options_request(transport, local, target, &token);
            stream
                .write_all(msg.as_bytes())
                .map_err(|e| format!("OPTIONS write over TCP: {e}"))?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                // Take every complete message off the front of the buffer.
                while let Some(end) = head_end(&buf) {
                    let resp = parse_response(&buf[..end]).ok_or_else(|| {
                        format!(
                            "OPTIONS over TCP got a non-response: {}",
                            show_bytes(&buf, 400)
                        )
                    })?;
                    let body = resp
                        .header("Content-Length")
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if resp.code >= 200 {
                        return check(resp);
                    }
                    if buf.len() < end + body {
                        break; // the rest of this provisional's body is still on its way
                    }
                    buf.drain(..end + body);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!(
                        "no final response to OPTIONS over TCP within {PROBE_WAIT:?} (got {})",
                        show_bytes(&buf, 400)
                    ));
                }
                stream
                    .set_read_timeout(Some(left))
                    .map_err(|e| e.to_string())?;
                match stream.read(&mut chunk) {
                    Ok(0) => {
                        return Err(format!(
                        "connection closed before a final response to OPTIONS over TCP (got {})",
                        show_bytes(&buf, 400)
                    ))
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(format!(
                            "OPTIONS over TCP: read failed: {e} (got {})",
                            show_bytes(&buf, 400)
                        ))
                    }
                }
            }
        }
    }
}

/// Like [`options_probe`], but requires a 200 (returned as Err otherwise).
pub fn check_options_ok(transport: Transport, target: SocketAddr) -> Result<(), String> {
    let resp = options_probe(transport, target)?;
    if resp.code == 200 {
        Ok(())
    } else {
        Err(format!(
            "OPTIONS over {transport:?} answered {} instead of 200",
            resp.status_line()
        ))
    }
}

/// Sends a normal OPTIONS and asserts a 200 comes back.
pub fn assert_options_ok(transport: Transport, target: SocketAddr) {
    if let Err(e) = check_options_ok(transport, target) {
        panic!("liveness check failed: {e}");
    }
}
