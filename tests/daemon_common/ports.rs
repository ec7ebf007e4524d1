//! Blocks of 200 consecutive UDP ports below the ephemeral range, one per test: the first
//! half is the daemon's RTP range, the rest SIPp media ports (and the RTP sinks beside
//! them).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Size of a port block: the daemon's RTP range is the first half, SIPp media the second.
const BLOCK: u16 = 200;
/// Blocks live below Linux's ephemeral range (32768+), so free_port() never lands in one.
const BLOCK_FIRST: u16 = 20_000;
const BLOCK_COUNT: u16 = 63; // 20000 ..= 32599

static BLOCKS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// 200 consecutive UDP ports, all free when checked, below the ephemeral range: the daemon
/// gets `rtp_ports = [base, base + 99]`, and SIPp media ports come from the rest.
#[derive(Debug)]
pub struct PortBlock {
    pub base: u16,
    next_media: AtomicU64,
}

impl PortBlock {
    pub fn new() -> PortBlock {
        let mut taken = BLOCKS.lock().unwrap_or_else(|p| p.into_inner());
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0) as u64
            + std::process::id() as u64;
        for i in 0..BLOCK_COUNT as u64 {
            let k = ((seed + i) % BLOCK_COUNT as u64) as u16;
            let base = BLOCK_FIRST + k * BLOCK;
            if taken.contains(&base) {
                continue;
            }
            let all_free =
                (base..base + BLOCK).all(|p| UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).is_ok());
            if all_free {
                taken.insert(base);
                return PortBlock {
                    base,
                    next_media: AtomicU64::new(0),
                };
            }
        }
        panic!("no free block of {BLOCK} UDP ports between {BLOCK_FIRST} and 32600");
    }

    /// The daemon's `[media] rtp_ports`.
    pub fn rtp_range(&self) -> (u16, u16) {
        (self.base, self.base + BLOCK / 2 - 1)
    }

    /// A SIPp `-mp` port M: SIPp binds M and M + 2, the test's RTP sink binds M + 4 (the
    /// port the daemon_* scenarios put in their SDP).
    pub fn media_port(&self) -> u16 {
        let n = self.next_media.fetch_add(1, Ordering::Relaxed) as u16;
        let port = self.base + BLOCK / 2 + n * 8;
        assert!(
            port + 4 < self.base + BLOCK,
            "a test asked for more than 12 SIPp media ports"
        );
        port
    }
}

impl Default for PortBlock {
    fn default() -> Self {
        Self::new()
    }
}
