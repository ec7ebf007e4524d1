//! Raw SIP over UDP for the daemon tests: a well-formed INVITE with an SDP offer, for
//! tests that talk to the daemon without SIPp.

use std::net::SocketAddr;

use super::CALLER_NUMBER;

/// A well-formed INVITE with an SDP offer to `user` at the daemon.
pub fn invite_request(local: SocketAddr, target: SocketAddr, user: &str, token: &str) -> String {
    let sdp = format!(
        "v=0\r\no=probe 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n",
        local.port() + 2
    );
    format!(
        "INVITE sip:{user}@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-inv-{token};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{CALLER_NUMBER}@{local}>;tag=inv-{token}\r\n\
         To: <sip:{user}@{target}>\r\n\
         Call-ID: inv-{token}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{CALLER_NUMBER}@{local}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\
         \r\n{sdp}",
        sdp.len()
    )
}
