//! Reading a relay socket's queued datagrams with one `recvmmsg(2)`.
//!
//! A call's socket gets one datagram every 20 ms, so a relay task woken for it nearly
//! always finds exactly one. Reading with `recv_from` until the socket says "would block"
//! then takes two system calls per datagram: the one that reads it and the one that finds
//! the queue empty, which is what clears tokio's readiness. `recvmmsg` with room for
//! [`RECV_BATCH`] reads every queued datagram at once; when it returns fewer than asked,
//! the queue was empty after the last one, so readiness can be cleared without asking
//! again. (Clearing it is safe even if a datagram arrives in between: the reactor then has
//! a newer readiness event, and tokio clears only the one it handed out.)
//!
//! The buffers are per thread (one per media thread), not per call: a relay task reads
//! and relays within one poll, so the datagrams never outlive the drain that read them.

use super::ports::MediaSocket;
use super::relay::MAX_PACKET;
use std::cell::RefCell;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Datagrams one `recvmmsg` reads at most.
pub const RECV_BATCH: usize = 16;

/// One buffer per datagram, one byte more than [`MAX_PACKET`], so that an oversized
/// datagram (which the kernel truncates to the buffer) is recognised by filling it.
const BUFFER: usize = MAX_PACKET + 1;

/// The datagrams of the last [`ReceiveBatch::receive`].
pub struct ReceiveBatch {
    buffers: Box<[[u8; BUFFER]; RECV_BATCH]>,
    sources: [libc::sockaddr_storage; RECV_BATCH],
    lengths: [usize; RECV_BATCH],
}

thread_local! {
    static BATCH: RefCell<ReceiveBatch> = RefCell::new(ReceiveBatch::new());
}

/// Runs `f` with this thread's batch. Not re-entrant: `f` must not call it again.
pub fn with_batch<R>(f: impl FnOnce(&mut ReceiveBatch) -> R) -> R {
    BATCH.with_borrow_mut(f)
}

/// What one [`ReceiveBatch::receive`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Datagrams now in the batch.
    pub count: usize,
    /// The socket's queue was empty after them (tokio's readiness is cleared, and the task
    /// is woken again when the next one arrives).
    pub drained: bool,
}

impl ReceiveBatch {
    fn new() -> ReceiveBatch {
        ReceiveBatch {
            buffers: Box::new([[0; BUFFER]; RECV_BATCH]),
            // SAFETY: `sockaddr_storage` is plain old data, valid when zeroed.
            sources: unsafe { std::mem::zeroed() },
            lengths: [0; RECV_BATCH],
        }
    }

    /// Reads what is queued on `socket`, up to [`RECV_BATCH`] datagrams, never waiting.
    /// `Err` with [`ErrorKind::WouldBlock`] if nothing was queued; other errors are the
    /// socket's (an ICMP error reported on a later read, for example).
    pub fn receive(&mut self, socket: &MediaSocket) -> io::Result<Received> {
        let mut count = 0;
        let result = socket.try_read(|fd| {
            count = self.recvmmsg(fd)?;
            if count < RECV_BATCH {
                // Fewer than asked: the queue is empty. Saying "would block" makes tokio
                // clear the readiness it handed out, as a second read would have.
                Err(ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => Ok(Received {
                count,
                drained: false,
            }),
            Err(e) if e.kind() == ErrorKind::WouldBlock && count > 0 => Ok(Received {
                count,
                drained: true,
            }),
            Err(e) => Err(e),
        }
    }

    /// Datagram `k` of the last receive (`k` < its count): its bytes, at most
    /// `MAX_PACKET + 1` of them, and its source (`None` for a family other than IPv4 and
    /// IPv6, which a UDP socket of ours never reports).
    pub fn datagram(&self, k: usize) -> (&[u8], Option<SocketAddr>) {
        (
            &self.buffers[k][..self.lengths[k]],
            socket_addr(&self.sources[k]),
        )
    }

    fn recvmmsg(&mut self, fd: i32) -> io::Result<usize> {
        // SAFETY: all-zero is a valid (empty) value for these plain C structs.
        let mut iovecs: [libc::iovec; RECV_BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; RECV_BATCH] = unsafe { std::mem::zeroed() };
        for (k, (iovec, header)) in iovecs.iter_mut().zip(headers.iter_mut()).enumerate() {
            iovec.iov_base = self.buffers[k].as_mut_ptr().cast();
            iovec.iov_len = BUFFER;
            header.msg_hdr.msg_name = std::ptr::from_mut(&mut self.sources[k]).cast();
            header.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at one live buffer of `BUFFER` bytes (its iovec) and
        // one `sockaddr_storage` with its true size, all owned by `self` or this frame and
        // not otherwise borrowed during the call; the kernel writes at most that much.
        let read = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                RECV_BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let read = usize::try_from(read).map_err(|_| io::Error::last_os_error())?;
        for (length, header) in self.lengths.iter_mut().zip(&headers[..read]) {
            *length = (header.msg_len as usize).min(BUFFER);
        }
        Ok(read)
    }
}

/// The address the kernel wrote into a `sockaddr_storage`.
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`, which it is large
            // and aligned enough for.
            let v4 = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for `sockaddr_in6`.
            let v6 = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::UdpSocket;

    /// A sender, and a relay socket to receive with.
    async fn pair(ip: &str) -> (UdpSocket, MediaSocket) {
        let a = UdpSocket::bind((ip, 0)).await.expect("bind");
        let b = std::net::UdpSocket::bind((ip, 0)).expect("bind");
        b.set_nonblocking(true).expect("non-blocking");
        (a, MediaSocket::new(b).expect("register"))
    }

    /// Waits until `socket` is readable, then receives.
    async fn receive_when_ready(batch: &mut ReceiveBatch, socket: &MediaSocket) -> Received {
        let deadline = std::time::Duration::from_secs(2);
        tokio::time::timeout(deadline, async {
            loop {
                std::future::poll_fn(|cx| socket.poll_recv_ready(cx))
                    .await
                    .expect("readable");
                match batch.receive(socket) {
                    Ok(received) => return received,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("receive: {e}"),
                }
            }
        })
        .await
        .expect("a datagram in time")
    }

    #[tokio::test]
    async fn reads_every_queued_datagram_with_its_source_on_both_families() {
        for ip in ["127.0.0.1", "::1"] {
            let (from, to) = pair(ip).await;
            let target = to.local_addr().expect("addr");
            for k in 0..3u8 {
                from.send_to(&[k; 10], target).await.expect("send");
            }
            // Let all three arrive before reading.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let mut batch = ReceiveBatch::new();
            let received = receive_when_ready(&mut batch, &to).await;
            assert_eq!(
                received,
                Received {
                    count: 3,
                    drained: true
                }
            );
            for k in 0..3 {
                let (data, source) = batch.datagram(k);
                assert_eq!(data, &[k as u8; 10][..]);
                assert_eq!(source, Some(from.local_addr().expect("addr")), "{ip}");
            }
            let again = batch.receive(&to).expect_err("empty now");
            assert_eq!(again.kind(), ErrorKind::WouldBlock);
        }
    }

    #[tokio::test]
    async fn a_full_batch_leaves_the_rest_queued_and_oversized_datagrams_show_it() {
        let (from, to) = pair("127.0.0.1").await;
        let target = to.local_addr().expect("addr");
        for _ in 0..RECV_BATCH {
            from.send_to(&[1; 20], target).await.expect("send");
        }
        from.send_to(&[2; MAX_PACKET + 100], target)
            .await
            .expect("send");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut batch = ReceiveBatch::new();
        let first = receive_when_ready(&mut batch, &to).await;
        assert_eq!(
            first,
            Received {
                count: RECV_BATCH,
                drained: false
            }
        );
        // Readiness was kept: the rest is read without waiting for a new event.
        let second = batch.receive(&to).expect("the rest");
        assert_eq!(
            second,
            Received {
                count: 1,
                drained: true
            }
        );
        assert_eq!(batch.datagram(0).0.len(), MAX_PACKET + 1, "truncated");
    }
}
