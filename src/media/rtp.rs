//! The minimal RTP/RTCP checks (RFC 3550, RFC 5761) the relay applies before forwarding.
//!
//! The relay does not interpret media; it only refuses datagrams that cannot be RTP or RTCP
//! at all, so that garbage sprayed at our ports can neither latch a leg nor reach a phone.
//! These are pure functions over a byte slice: no I/O, no allocation.

/// RTP fixed header size (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// Smallest RTCP packet: a receiver report with no report blocks (RFC 3550 §6.4.2).
pub const RTCP_MIN_LEN: usize = 8;

/// What a datagram looks like, as far as the relay cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// An RTP packet whose header fits in the datagram.
    Rtp,
    /// An RTCP packet (RFC 5761 §4: second octet in 192..=223), on its own port or muxed.
    Rtcp,
    /// Not version 2, too short, or a header that runs past the end.
    Invalid,
}

/// Classifies one datagram. Never panics, whatever the input.
pub fn classify(packet: &[u8]) -> PacketKind {
    let (Some(&first), Some(&second)) = (packet.first(), packet.get(1)) else {
        return PacketKind::Invalid;
    };
    if first >> 6 != 2 {
        return PacketKind::Invalid;
    }
    // RFC 5761 §4: RTCP packet types 192..=223 are where a muxed RTP marker+PT byte can
    // never be (RTP payload types 64..=95 are excluded from muxed sessions).
    if (192..=223).contains(&second) {
        return if packet.len() >= RTCP_MIN_LEN {
            PacketKind::Rtcp
        } else {
            PacketKind::Invalid
        };
    }
    if rtp_header_len(packet).is_some() {
        PacketKind::Rtp
    } else {
        PacketKind::Invalid
    }
}

/// Length of the RTP header including CSRCs and the header extension, if all of it fits in
/// the packet. Padding is not checked: the relay forwards the payload untouched anyway.
pub fn rtp_header_len(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    let csrc_count = usize::from(first & 0x0f);
    let mut len = RTP_HEADER_LEN + 4 * csrc_count;
    if packet.len() < len {
        return None;
    }
    let has_extension = first & 0x10 != 0;
    if has_extension {
        // Extension header: 16-bit profile, 16-bit length in 32-bit words (RFC 3550 §5.3.1).
        let words = packet.get(len + 2..len + 4)?;
        let ext_words = usize::from(u16::from_be_bytes([words[0], words[1]]));
        len += 4 + 4 * ext_words;
        if packet.len() < len {
            return None;
        }
    }
    Some(len)
}

/// The RTP payload type (7 bits), for packets [`classify`] called [`PacketKind::Rtp`].
pub fn payload_type(packet: &[u8]) -> Option<u8> {
    packet.get(1).map(|b| b & 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 1, 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78];
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn plain_rtp_is_rtp() {
        assert_eq!(classify(&rtp(0, &[0xff; 160])), PacketKind::Rtp);
        assert_eq!(classify(&rtp(101 | 0x80, &[1, 0, 0, 160])), PacketKind::Rtp);
        assert_eq!(payload_type(&rtp(101 | 0x80, &[])), Some(101));
        // A header alone (empty payload) is still RTP: comfort noise may be that small.
        assert_eq!(classify(&rtp(8, &[])), PacketKind::Rtp);
    }

    #[test]
    fn rtcp_types_are_rtcp() {
        for pt in 200..=204u8 {
            let rr = [0x80, pt, 0, 1, 0, 0, 0, 1];
            assert_eq!(classify(&rr), PacketKind::Rtcp, "pt {pt}");
        }
        assert_eq!(classify(&[0x80, 201, 0, 1]), PacketKind::Invalid);
    }

    #[test]
    fn wrong_version_short_or_truncated_is_invalid() {
        assert_eq!(classify(&[]), PacketKind::Invalid);
        assert_eq!(classify(&[0x80]), PacketKind::Invalid);
        assert_eq!(
            classify(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            PacketKind::Invalid
        );
        let mut v1 = rtp(0, &[0; 10]);
        v1[0] = 0x40;
        assert_eq!(classify(&v1), PacketKind::Invalid);
        // Says 15 CSRCs but carries none.
        let mut csrc = rtp(0, &[0; 8]);
        csrc[0] = 0x8f;
        assert_eq!(classify(&csrc), PacketKind::Invalid);
        // Extension bit with an extension longer than the packet.
        let mut ext = rtp(0, &[0xbe, 0xde, 0x00, 0x09]);
        ext[0] = 0x90;
        assert_eq!(classify(&ext), PacketKind::Invalid);
        // ...and one that fits.
        let mut ext_ok = rtp(0, &[0xbe, 0xde, 0x00, 0x01, 1, 2, 3, 4, 0xff]);
        ext_ok[0] = 0x90;
        assert_eq!(classify(&ext_ok), PacketKind::Rtp);
        assert_eq!(rtp_header_len(&ext_ok), Some(20));
    }

    #[test]
    fn every_short_input_is_handled() {
        // Exhaustive over the first two octets, every length up to 20: no panic.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let mut p = [0u8; 20];
                p[0] = a;
                p[1] = b;
                for len in 0..=p.len() {
                    let _ = classify(&p[..len]);
                }
            }
        }
    }
}
