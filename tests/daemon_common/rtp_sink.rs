//! [`RtpSink`]: a UDP socket on a test-chosen port that counts the datagrams arriving
//! there (the media the daemon relays to a SIPp endpoint whose SDP names that port).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A UDP socket on 127.0.0.1:port counting the datagrams that arrive (the media the
/// daemon relays to a SIPp endpoint, whose SDP names this port).
pub struct RtpSink {
    pub port: u16,
    count: Arc<AtomicU64>,
    rtp_like: Arc<AtomicU64>,
    sources: Arc<Mutex<BTreeSet<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpSink {
    pub fn bind(port: u16) -> RtpSink {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|e| panic!("bind the RTP sink 127.0.0.1:{port}: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set the sink's read timeout");
        let count = Arc::new(AtomicU64::new(0));
        let rtp_like = Arc::new(AtomicU64::new(0));
        let sources = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (count, rtp_like, sources, stop) = (
                count.clone(),
                rtp_like.clone(),
                sources.clone(),
                stop.clone(),
            );
            thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    match socket.recv_from(&mut buf) {
                        Ok((n, from)) => {
                            count.fetch_add(1, Ordering::Relaxed);
                            // RTP version 2, at least the 12-byte fixed header.
                            if n >= 12 && buf[0] >> 6 == 2 {
                                rtp_like.fetch_add(1, Ordering::Relaxed);
                            }
                            let mut s = sources.lock().unwrap_or_else(|p| p.into_inner());
                            if s.len() < 16 {
                                s.insert(from);
                            }
                        }
                        Err(_) => continue,
                    }
                }
            })
        };
        RtpSink {
            port,
            count,
            rtp_like,
            sources,
            stop,
            thread: Some(thread),
        }
    }

    /// Datagrams received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Of those, how many look like RTP version 2.
    pub fn rtp_count(&self) -> u64 {
        self.rtp_like.load(Ordering::Relaxed)
    }

    pub fn sources(&self) -> Vec<SocketAddr> {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    pub(super) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}
