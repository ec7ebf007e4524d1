//! The test sender of the reorder test: the daemon's media addresses read from SIPp's
//! message trace, two tone streams whose every packet is recognisable in the recording,
//! the caller's send order (shuffled within 60 ms windows, some packets dropped), and the
//! check that finds each packet in a channel.

use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use crate::audio::{rtp_packet, tone_payload, G711};
use crate::daemon_common::{tail, Checks, SippRun};

/// The media address (`c=` and `m=audio`) of the last SDP in a SIPp message trace carried
/// by a message whose first line starts with `first_line`.
pub fn sdp_address_in_trace(trace: &str, first_line: &str) -> Option<SocketAddr> {
    let mut found = None;
    let mut inside = false;
    let (mut ip, mut port): (Option<Ipv4Addr>, Option<u16>) = (None, None);
    for line in trace.lines().map(str::trim) {
        if line.starts_with(first_line) {
            inside = true;
            (ip, port) = (None, None);
        } else if line.starts_with("----")
            || line.contains("message sent")
            || line.contains("message received")
        {
            inside = false;
        } else if inside {
            if let Some(rest) = line.strip_prefix("c=IN IP4 ") {
                ip = rest.trim().parse().ok();
            } else if let Some(rest) = line.strip_prefix("m=audio ") {
                port = rest.split_whitespace().next().and_then(|p| p.parse().ok());
            }
            if let (Some(ip), Some(port)) = (ip, port) {
                found = Some(SocketAddr::from((ip, port)));
            }
        }
    }
    found
}

/// Waits for the SIPp run's trace to hold a message starting with `first_line` with an
/// SDP; returns its media address.
pub fn wait_sdp_address(run: &mut SippRun, first_line: &str, what: &str) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(addr) = sdp_address_in_trace(&run.messages_so_far(), first_line) {
            return addr;
        }
        if Instant::now() >= deadline || !run.running() {
            panic!(
                "no {what} with an SDP in the SIPp trace:\n{}",
                tail(&run.messages_so_far(), 6000)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One leg of the test sender: a tone, one packet per 20 ms, amplitude changing packet by
/// packet so that each packet's samples are found at one place only.
pub struct ToneLeg {
    pub freq: f64,
    /// Amplitude of packet k: `base + step * (k % period)`.
    pub base: f64,
    pub step: f64,
    pub period: usize,
    pub seq0: u16,
    pub ts0: u32,
    pub ssrc: u32,
}

impl ToneLeg {
    /// The caller's stream: 1 kHz, sequence numbers and timestamps that wrap around early.
    pub fn caller() -> ToneLeg {
        ToneLeg {
            freq: 1000.0,
            base: 4000.0,
            step: 1500.0,
            period: 5,
            seq0: 65_500,
            ts0: 0xffff_f000,
            ssrc: 0x1234_5678,
        }
    }

    /// The agent's stream: 500 Hz.
    pub fn agent() -> ToneLeg {
        ToneLeg {
            freq: 500.0,
            base: 3000.0,
            step: 1000.0,
            period: 4,
            seq0: 1000,
            ts0: 160_000,
            ssrc: 0x0bad_cafe,
        }
    }

    pub fn payload(&self, k: usize) -> Vec<u8> {
        let amplitude = self.base + self.step * (k % self.period) as f64;
        tone_payload(G711::Alaw, self.freq, amplitude, 160 * k as u64)
    }

    pub fn packet(&self, k: usize) -> Vec<u8> {
        rtp_packet(
            8,
            k == 0,
            self.seq0.wrapping_add(k as u16),
            self.ts0.wrapping_add(160 * k as u32),
            self.ssrc,
            &self.payload(k),
        )
    }

    /// The samples the recording must hold for packet k.
    pub fn samples(&self, k: usize) -> Vec<i16> {
        self.payload(k)
            .into_iter()
            .map(|b| G711::Alaw.decode(b))
            .collect()
    }
}

/// Packets per leg: 3 s.
pub const STREAM_PACKETS: usize = 150;
/// Caller packets never sent (5.3 %, one 40 ms hole among them).
pub const DROPPED: [usize; 8] = [7, 23, 24, 51, 88, 110, 131, 140];
/// Caller packets sent twice (the copy 30 ms later).
pub const DUPLICATED: [usize; 2] = [40, 100];

/// The caller's send order: windows of three packets (60 ms), each window shuffled by a
/// fixed pseudo-random permutation (the first keeps packet 0 first, so the stream starts
/// with its first packet), dropped packets left out. Each entry: (slot, packet): packet
/// sent at slot × 20 ms.
pub fn caller_send_order() -> Vec<(usize, usize)> {
    const PERMUTATIONS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let mut state: u32 = 0x2545_f491;
    let mut order = Vec::new();
    for window in 0..STREAM_PACKETS / 3 {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let perm = if window == 0 {
            PERMUTATIONS[1]
        } else {
            PERMUTATIONS[(state >> 16) as usize % 6]
        };
        for (j, &p) in perm.iter().enumerate() {
            let k = window * 3 + p;
            if !DROPPED.contains(&k) {
                order.push((window * 3 + j, k));
            }
        }
    }
    order
}

/// What the sender sends, in time order: (ms from its start, from the caller's side?,
/// packet). The caller's packets in [`caller_send_order`] with [`DUPLICATED`] ones sent
/// again 30 ms later; the agent's in order, packet k at the same instant as the caller's
/// slot k.
pub fn send_plan(caller: &ToneLeg, agent: &ToneLeg) -> Vec<(u64, bool, Vec<u8>)> {
    let mut plan: Vec<(u64, bool, Vec<u8>)> = Vec::new();
    for (slot, k) in caller_send_order() {
        plan.push((20 * slot as u64, true, caller.packet(k)));
        if DUPLICATED.contains(&k) {
            plan.push((20 * slot as u64 + 30, true, caller.packet(k)));
        }
    }
    for k in 0..STREAM_PACKETS {
        plan.push((20 * k as u64, false, agent.packet(k)));
    }
    plan.sort_by_key(|&(at, from_caller, _)| (at, !from_caller));
    plan
}

/// Where each expected packet was found in a channel: the offset from its expected place
/// (p0 + 160 k) of the nearest exact copy of its samples within ±100 ms.
pub fn locate(channel: &[i16], expected: usize, samples: &[i16]) -> Option<i64> {
    let window = 800i64;
    let matches_at = |pos: i64| -> bool {
        pos >= 0
            && channel
                .get(pos as usize..pos as usize + samples.len())
                .is_some_and(|s| s == samples)
    };
    (0..=window)
        .flat_map(|d| [d, -d])
        .find(|&d| matches_at(expected as i64 + d))
}

/// The first exact copy of `samples` in `channel`.
pub fn find_first(channel: &[i16], samples: &[i16]) -> Option<usize> {
    channel.windows(samples.len()).position(|w| w == samples)
}

/// One leg checked: `sent[k]` says whether packet k was sent. Returns the position of
/// packet 0 and adds failures to `c`; `timeline` gets one character per packet
/// (`=` exactly in place, `~` shifted, `?` missing, `.` dropped and silent, `X` dropped
/// but not silent).
pub fn check_leg(
    c: &mut Checks,
    name: &str,
    channel: &[i16],
    leg: &ToneLeg,
    sent: &[bool],
    timeline: &mut String,
) -> Option<usize> {
    let Some(p0) = find_first(channel, &leg.samples(0)) else {
        c.that(
            false,
            format!("{name}: the first packet's samples are nowhere in the channel"),
        );
        return None;
    };
    let mut shifted = Vec::new();
    let mut missing = Vec::new();
    let mut noisy_holes = Vec::new();
    let mut last_offset = 0i64;
    for (k, &was_sent) in sent.iter().enumerate() {
        let expected = p0 + 160 * k;
        if was_sent {
            match locate(channel, expected, &leg.samples(k)) {
                Some(0) => timeline.push('='),
                Some(d) => {
                    timeline.push('~');
                    shifted.push((k, d));
                    last_offset = d;
                }
                None => {
                    timeline.push('?');
                    missing.push(k);
                }
            }
        } else {
            let at = (expected as i64 + last_offset).max(0) as usize;
            let slot = channel.get(at..at + 160).unwrap_or(&[]);
            if slot.len() == 160 && slot.iter().all(|&s| s == 0) {
                timeline.push('.');
            } else {
                timeline.push('X');
                noisy_holes.push(k);
            }
        }
    }
    c.that(
        missing.is_empty(),
        format!("{name}: packets whose samples are not within 100 ms of their place: {missing:?}"),
    );
    c.that(
        shifted.iter().all(|&(_, d)| d.abs() <= 80),
        format!("{name}: packets more than 10 ms from their place (packet, samples): {shifted:?}"),
    );
    c.that(
        noisy_holes.is_empty(),
        format!("{name}: the 20 ms of these packets, never sent, are not silence: {noisy_holes:?}"),
    );
    let end = p0 + 160 * sent.len();
    c.that(
        channel[..p0].iter().all(|&s| s == 0),
        format!("{name}: not silent before the first packet ({p0} samples)"),
    );
    c.that(
        channel
            .get(end..)
            .is_some_and(|rest| rest.iter().all(|&s| s == 0)),
        format!(
            "{name}: not silent after the last packet (sample {end} of {})",
            channel.len()
        ),
    );
    Some(p0)
}
