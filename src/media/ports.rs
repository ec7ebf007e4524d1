//! The pool of UDP ports that calls borrow for their anchored media.
//!
//! Operators open a fixed port range in their firewalls, so every RTP socket must come from
//! it. RTP uses even ports and RTCP the odd port just above (RFC 3550 §11), so the pool lends
//! pairs: a [`BoundPort`] holds both sockets, and the pair goes back to the pool when it is
//! dropped. Ports are handed out round-robin rather than lowest-first, so that a port freed
//! by one call is not immediately reused by the next: late packets of the old call then
//! land on a closed port instead of in a stranger's call.
//!
//! Another program may hold a port of the range; binding it fails and the pool moves on to
//! the next pair instead of failing the call.

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::threads::{MediaThreads, Seat};
use super::MediaError;

/// Even RTP ports from a configured range `[first, last]`, handed out round-robin and
/// returned on drop; binding failures (port in use by someone else) skip to the next port.
///
/// Cheap to clone: clones share one pool.
///
/// The pool also says where the relay tasks of the sessions using it run: on the daemon's
/// [`MediaThreads`] when given ([`PortPool::with_media_threads`]), else on the runtime
/// that starts the session.
#[derive(Debug, Clone)]
pub struct PortPool {
    inner: Arc<PoolInner>,
    threads: Option<MediaThreads>,
}

#[derive(Debug)]
struct PoolInner {
    ip: IpAddr,
    /// The range as configured, for error messages.
    first: u16,
    last: u16,
    /// The lowest even port whose RTCP neighbour is in range; slot `i` is `base + 2 * i`.
    base: u16,
    slots: usize,
    state: Mutex<PoolState>,
}

#[derive(Debug)]
struct PoolState {
    /// Lent slots, whether or not their sockets are bound yet.
    lent: Vec<bool>,
    lent_count: usize,
    /// Where the round-robin search starts next time.
    cursor: usize,
}

impl PortPool {
    /// A pool of the even ports `p` with `first <= p` and `p + 1 <= last` on `ip`.
    ///
    /// `ip` is both the address the sockets bind to and the one [`BoundPort::local_ip`]
    /// reports; bind a concrete address (not `0.0.0.0`) when that address goes into SDP.
    /// Port 0 is never used (it would mean "any port" to the kernel).
    pub fn new(ip: IpAddr, first: u16, last: u16) -> Result<PortPool, MediaError> {
        let empty = MediaError::EmptyRange { first, last };
        let lowest = first.max(2);
        let base = if lowest % 2 == 0 {
            lowest
        } else {
            lowest.checked_add(1).ok_or(empty)?
        };
        let slots = if u32::from(base) < u32::from(last) {
            (usize::from(last) - usize::from(base) - 1) / 2 + 1
        } else {
            0
        };
        if slots == 0 {
            return Err(MediaError::EmptyRange { first, last });
        }
        Ok(PortPool {
            inner: Arc::new(PoolInner {
                ip,
                first,
                last,
                base,
                slots,
                state: Mutex::new(PoolState {
                    lent: vec![false; slots],
                    lent_count: 0,
                    cursor: 0,
                }),
            }),
            threads: None,
        })
    }

    /// Runs the sessions of this pool on `threads` (their sockets register with the
    /// reactor of the thread each session is given).
    pub fn with_media_threads(mut self, threads: MediaThreads) -> PortPool {
        self.threads = Some(threads);
        self
    }

    /// Where the next session's relay task runs.
    pub(crate) fn seat(&self) -> Result<Seat, MediaError> {
        match &self.threads {
            Some(threads) => Ok(threads.seat()),
            None => tokio::runtime::Handle::try_current()
                .map(Seat::current)
                .map_err(|_| MediaError::NoRuntime),
        }
    }

    /// Binds the next free RTP port and its RTCP neighbour.
    ///
    /// Ports some other program holds are skipped. At most `capacity()` binds are tried per
    /// call, so this never loops for long even when the whole range is taken. Needs a tokio
    /// runtime (the sockets register with its reactor).
    pub fn bind(&self) -> Result<BoundPort, MediaError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MediaError::NoRuntime);
        }
        let inner = &self.inner;
        for _ in 0..inner.slots {
            let Some(lease) = self.lease_next() else {
                break;
            };
            let port = lease.port();
            match bind_pair(inner.ip, port) {
                Ok((socket, rtcp_socket)) => {
                    return Ok(BoundPort {
                        socket,
                        rtcp_socket,
                        port,
                        lease,
                    })
                }
                Err((bad_port, error)) if error.kind() == ErrorKind::AddrInUse => {
                    tracing::debug!(port = bad_port, "RTP port held by another program, skipped");
                }
                Err((bad_port, source)) => {
                    return Err(MediaError::Bind {
                        ip: inner.ip,
                        port: bad_port,
                        source,
                    })
                }
            }
        }
        Err(MediaError::NoPortsLeft {
            ip: inner.ip,
            first: inner.first,
            last: inner.last,
        })
    }

    /// How many port pairs are lent out now.
    pub fn in_use(&self) -> usize {
        self.inner.lock().lent_count
    }

    /// How many port pairs the range holds (the most calls' legs it can anchor at once).
    pub fn capacity(&self) -> usize {
        self.inner.slots
    }

    /// The address the pool's sockets bind to.
    pub fn ip(&self) -> IpAddr {
        self.inner.ip
    }

    /// Marks the next free slot after the cursor as lent. The lock is held only for this
    /// bookkeeping, never across a bind.
    fn lease_next(&self) -> Option<PortLease> {
        let inner = &self.inner;
        let mut state = inner.lock();
        let slots = inner.slots;
        let start = state.cursor;
        let slot = (0..slots)
            .map(|offset| (start + offset) % slots)
            .find(|&slot| !state.lent[slot])?;
        state.lent[slot] = true;
        state.lent_count += 1;
        state.cursor = (slot + 1) % slots;
        Some(PortLease {
            pool: Arc::clone(inner),
            slot,
        })
    }
}

impl PoolInner {
    /// The state is only bookkeeping that no code path leaves half-updated, so a poisoned
    /// lock (a panic elsewhere while holding it) is safe to keep using.
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Binds `port` and `port + 1`; on failure says which of the two failed.
fn bind_pair(ip: IpAddr, port: u16) -> Result<(MediaSocket, MediaSocket), (u16, io::Error)> {
    let rtcp_port = port.wrapping_add(1);
    let rtp = bind_one(ip, port).map_err(|e| (port, e))?;
    let rtcp = bind_one(ip, rtcp_port).map_err(|e| (rtcp_port, e))?;
    Ok((rtp, rtcp))
}

fn bind_one(ip: IpAddr, port: u16) -> io::Result<MediaSocket> {
    // std binds synchronously (the pool API is sync); no SO_REUSEADDR, so a port someone
    // else holds fails with AddrInUse instead of being shared.
    let socket = UdpSocket::bind(SocketAddr::new(ip, port))?;
    socket.set_nonblocking(true)?;
    MediaSocket::new(socket)
}

/// A UDP socket of the relay, registered with its runtime's reactor for reading only.
///
/// Sends go straight to the kernel and never wait: a full send buffer is a failed send,
/// which the relay counts. tokio's own `UdpSocket` registers for writability too, and then
/// every datagram sent reports the socket writable again when the kernel frees its buffer
/// (on loopback, within the send): an epoll event per relayed packet that nobody waits
/// for, a wake-up in the kernel and an event for the reactor to hand out.
#[derive(Debug)]
pub struct MediaSocket(AsyncFd<UdpSocket>);

impl MediaSocket {
    /// Registers a non-blocking socket with the reactor of the current runtime.
    pub(crate) fn new(socket: UdpSocket) -> io::Result<MediaSocket> {
        // SAFETY: the `UdpSocket` owns its descriptor, which stays open and the same until
        // the socket is dropped with the `AsyncFd`; nothing here replaces or closes it.
        let registered = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) };
        registered.map(MediaSocket).map_err(io::Error::from)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }

    /// Ready once a datagram may be queued; stays ready until a read finds the queue
    /// empty ([`MediaSocket::try_read`] returning `WouldBlock`).
    pub fn poll_recv_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The guard is dropped without clearing: readiness is kept for the read.
        self.0.poll_read_ready(cx).map_ok(|_guard| ())
    }

    /// Runs a read on the socket's descriptor if it is ready; a `WouldBlock` from `read`
    /// clears the readiness (so it must come only from a read that found nothing).
    pub fn try_read<R>(&self, read: impl FnOnce(RawFd) -> io::Result<R>) -> io::Result<R> {
        self.0
            .try_io(Interest::READABLE, |socket| read(socket.as_raw_fd()))
    }

    /// Sends one datagram now, or fails (`WouldBlock` when the send buffer is full).
    pub fn try_send_to(&self, datagram: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.0.get_ref().send_to(datagram, target)
    }
}

/// An RTP socket on an even port of the pool, with its RTCP socket on the odd port above.
/// Dropping it closes both sockets and returns the pair to the pool.
#[derive(Debug)]
pub struct BoundPort {
    pub socket: MediaSocket,
    /// Bound so that nobody else takes the RTCP port our SDP implies (RFC 3550 §11); the
    /// relay forwards RTCP through it.
    pub rtcp_socket: MediaSocket,
    pub port: u16,
    /// Declared last: fields drop in order, so the sockets are closed before the slot is
    /// marked free and the next call can bind it.
    lease: PortLease,
}

impl BoundPort {
    /// The RTCP port, `port + 1`.
    pub fn rtcp_port(&self) -> u16 {
        self.port.wrapping_add(1)
    }

    /// The address the sockets are bound to.
    pub fn local_ip(&self) -> IpAddr {
        self.lease.pool.ip
    }
}

/// A lent slot; gives it back on drop, whether or not its sockets were ever bound.
#[derive(Debug)]
struct PortLease {
    pool: Arc<PoolInner>,
    slot: usize,
}

impl PortLease {
    fn port(&self) -> u16 {
        // slot < slots, and base + 2 * (slots - 1) + 1 <= last, so this fits in u16.
        let offset = u16::try_from(self.slot * 2).unwrap_or(u16::MAX);
        self.pool.base.saturating_add(offset)
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        if let Some(lent) = state.lent.get_mut(self.slot) {
            if *lent {
                *lent = false;
                state.lent_count -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    // Each test (here and in the relay's tests) uses its own range in 31100..31400: below
    // the kernel's ephemeral ports (32768 and up), where outgoing sockets land, and outside
    // the RTP ranges of the shipped configs (20000-29999, 30000-30999), where a daemon
    // running on the same machine would bind.

    #[tokio::test]
    async fn lends_even_ports_in_range_round_robin() {
        let pool = PortPool::new(LOCALHOST, 31101, 31110).expect("pool");
        // 31102, 31104, 31106, 31108 have their RTCP port in range; 31110 does not.
        assert_eq!(pool.capacity(), 4);
        let a = pool.bind().expect("first");
        let b = pool.bind().expect("second");
        assert_eq!((a.port, b.port), (31102, 31104));
        assert_eq!(a.rtcp_port(), 31103);
        assert_eq!(a.socket.local_addr().expect("addr").port(), 31102);
        assert_eq!(a.rtcp_socket.local_addr().expect("addr").port(), 31103);
        assert_eq!(a.local_ip(), LOCALHOST);
        assert_eq!(pool.in_use(), 2);
        drop(a);
        // Round robin: the freed port is not reused before the others.
        let c = pool.bind().expect("third");
        assert_eq!(c.port, 31106);
        for bound in [&b, &c] {
            assert_eq!(bound.port % 2, 0);
            assert!((31101..=31110).contains(&bound.port));
        }
    }

    #[tokio::test]
    async fn exhaustion_is_an_error_and_drop_releases() {
        let pool = PortPool::new(LOCALHOST, 31120, 31125).expect("pool");
        assert_eq!(pool.capacity(), 3);
        let held: Vec<BoundPort> = (0..3).map(|_| pool.bind().expect("bind")).collect();
        assert_eq!(pool.in_use(), 3);
        assert!(matches!(
            pool.bind(),
            Err(MediaError::NoPortsLeft {
                first: 31120,
                last: 31125,
                ..
            })
        ));
        assert_eq!(pool.in_use(), 3, "a failed bind lends nothing");
        let freed = held[1].port;
        drop(held);
        assert_eq!(pool.in_use(), 0);
        // The sockets are closed too: the port can be bound by anyone again.
        std::net::UdpSocket::bind((LOCALHOST, freed)).expect("port really released");
        let again = pool.bind().expect("bind after release");
        assert!((31120..=31125).contains(&again.port));
    }

    #[tokio::test]
    async fn skips_ports_held_by_other_programs() {
        let pool = PortPool::new(LOCALHOST, 31140, 31149).expect("pool");
        let _rtp_squatter = std::net::UdpSocket::bind((LOCALHOST, 31140)).expect("squat");
        let _rtcp_squatter = std::net::UdpSocket::bind((LOCALHOST, 31143)).expect("squat");
        let bound = pool.bind().expect("bind skips the taken pairs");
        assert_eq!(bound.port, 31144);
        assert_eq!(pool.in_use(), 1, "the skipped slots were given back");
        let next = pool.bind().expect("bind");
        assert_eq!(next.port, 31146);
        let last = pool.bind().expect("bind");
        assert_eq!(last.port, 31148);
        // Only the squatted pairs are left, and they are still taken.
        assert!(matches!(pool.bind(), Err(MediaError::NoPortsLeft { .. })));
    }

    #[tokio::test]
    async fn address_that_is_not_local_fails_at_once() {
        // TEST-NET-1 is never a local address.
        let pool =
            PortPool::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 31160, 31199).expect("pool");
        match pool.bind() {
            Err(MediaError::Bind { port: 31160, .. }) => {}
            other => panic!("expected a bind error on the first port, got {other:?}"),
        }
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn ranges_without_a_pair_are_refused() {
        for (first, last) in [
            (10, 10),
            (11, 11),
            (12, 12),
            (20, 10),
            (65535, 65535),
            (0, 1),
        ] {
            assert!(
                matches!(
                    PortPool::new(LOCALHOST, first, last),
                    Err(MediaError::EmptyRange { .. })
                ),
                "{first}-{last}"
            );
        }
        let widest = PortPool::new(LOCALHOST, 0, 65535).expect("whole space");
        assert_eq!(widest.capacity(), 32767, "2..=65534, even");
        let top = PortPool::new(LOCALHOST, 65534, 65535).expect("top pair");
        assert_eq!(top.capacity(), 1);
    }

    #[test]
    fn binding_outside_a_runtime_is_an_error() {
        let pool = PortPool::new(LOCALHOST, 31200, 31209).expect("pool");
        assert!(matches!(pool.bind(), Err(MediaError::NoRuntime)));
    }
}
