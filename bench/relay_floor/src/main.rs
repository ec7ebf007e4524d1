//! The floor under any userspace RTP relay on this machine: the CPU one thread spends per
//! datagram when all it does is receive each one and send it on, with nothing else (no
//! parsing, no counters, no recording, no async runtime).
//!
//!     cargo run --release --manifest-path bench/relay_floor/Cargo.toml -- MODE STREAMS SECONDS
//!
//! STREAMS streams of 172-byte datagrams (a 20 ms G.711 RTP packet), 50 a second each,
//! as SIPp's `rtp_stream` sends them: a generator thread sends stream k to relay socket
//! A_k; the relay thread reads A_k and sends each datagram from socket B_k to sink S_k,
//! which nobody reads (SIPp never reads the RTP it is sent either; the kernel drops what
//! does not fit). Two streams are one call of `bench/run`'s recorded load (100 datagrams
//! a second relayed per call). MODE:
//!
//! - `epoll`: the system calls threering's media threads make: `epoll_wait`, one
//!   `recvmmsg` per ready socket, one `sendto` per datagram.
//! - `uring`: io_uring instead of readiness: one `recvmsg` kept queued per socket, and a
//!   `sendmsg` queued for each datagram read, all submitted and reaped with one
//!   `io_uring_enter` per round (no system call per datagram).
//!
//! After 2 s of warm-up, over SECONDS - 2 s: the relay thread's CPU (user + system,
//! `CLOCK_THREAD_CPUTIME_ID`) divided by the datagrams it relayed. Prints one JSON
//! object. Loopback only; bounded by STREAMS (at most 8192) and SECONDS (3 to 300).

use io_uring::{opcode, types, IoUring};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PACKET: usize = 172;
const BUFFER: usize = 1501;
const WARM_UP: Duration = Duration::from_secs(2);
const FRAME: Duration = Duration::from_millis(20);
/// The generator spreads each 20 ms frame's sends over this many slices (0.1 ms each):
/// stream k is sent in slice k mod `SLICES`. SIPp's calls start one after another, so
/// their streams' packets arrive spread over the frame too, not in bursts; a burst would
/// hand the relay several datagrams per wake and understate the floor at light load.
/// (`FLOOR_SLICES` overrides it, to see that effect.)
const SLICES: usize = 200;
const RECV_BATCH: usize = 16;

fn main() {
    if let Err(message) = run() {
        eprintln!("relay_floor: {message}");
        std::process::exit(2);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Epoll,
    Uring,
}

struct Sockets {
    /// The relay's receiving sockets (A_k).
    relay_in: Vec<UdpSocket>,
    /// The relay's sending sockets (B_k).
    relay_out: Vec<UdpSocket>,
    /// Where B_k sends (S_k's address).
    sinks: Vec<SocketAddr>,
    /// Kept open so that the sinks' ports stay theirs.
    _sink_sockets: Vec<UdpSocket>,
}

/// What the relay thread measured over the window after the warm-up.
struct Window {
    packets: u64,
    seconds: f64,
    /// The relay thread's CPU, user and system.
    cpu_s: f64,
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, streams, seconds] = args.as_slice() else {
        return Err("usage: relay_floor epoll|uring STREAMS SECONDS".into());
    };
    let mode = match mode.as_str() {
        "epoll" => Mode::Epoll,
        "uring" => Mode::Uring,
        other => return Err(format!("unknown mode {other:?} (epoll or uring)")),
    };
    let streams: usize = streams
        .parse()
        .ok()
        .filter(|n| (1..=8192).contains(n))
        .ok_or("STREAMS must be 1 to 8192")?;
    let seconds: u64 = seconds
        .parse()
        .ok()
        .filter(|s| (3..=300).contains(s))
        .ok_or("SECONDS must be 3 to 300")?;
    raise_fd_limit(4 * streams + 64)?;

    let bind = || UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"));
    let mut sockets = Sockets {
        relay_in: Vec::with_capacity(streams),
        relay_out: Vec::with_capacity(streams),
        sinks: Vec::with_capacity(streams),
        _sink_sockets: Vec::with_capacity(streams),
    };
    let mut senders = Vec::with_capacity(streams);
    for _ in 0..streams {
        let sink = bind()?;
        sockets
            .sinks
            .push(sink.local_addr().map_err(|e| e.to_string())?);
        sockets._sink_sockets.push(sink);
        let relay_in = bind()?;
        relay_in.set_nonblocking(true).map_err(|e| e.to_string())?;
        let target = relay_in.local_addr().map_err(|e| e.to_string())?;
        sockets.relay_in.push(relay_in);
        sockets.relay_out.push(bind()?);
        senders.push((bind()?, target));
    }

    // The relay ends its window itself, at its deadline, while the generator still sends:
    // stopping both at once would count the relay's last idle wait in the window.
    let stop = Arc::new(AtomicBool::new(false));
    let generator = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || generate(&senders, &stop))
    };
    let run_for = Duration::from_secs(seconds);
    let relay = std::thread::spawn(move || match mode {
        Mode::Epoll => relay_epoll(&sockets, Meter::new(run_for)),
        Mode::Uring => relay_uring(&sockets, Meter::new(run_for)),
    });
    let window = relay.join().map_err(|_| "the relay panicked");
    stop.store(true, Ordering::Relaxed);
    let sent = generator.join().map_err(|_| "the generator panicked")?;
    let window = window??;

    let packets = window.packets.max(1) as f64;
    let nominal_pps = streams as f64 / FRAME.as_secs_f64();
    let pps = window.packets as f64 / window.seconds;
    let cpu_us_per_packet = (window.cpu_s * 1e6 / packets * 1000.0).round() / 1000.0;
    println!(
        "{{\"mode\": \"{}\", \"streams\": {streams}, \"seconds\": {seconds}, \"sent\": {sent}, \
         \"packets\": {}, \"window_s\": {:.2}, \"pps\": {pps:.0}, \"nominal_pps\": {nominal_pps:.0}, \
         \"rate_held\": {}, \"cpu_us_per_packet\": {cpu_us_per_packet}}}",
        if mode == Mode::Epoll { "epoll" } else { "uring" },
        window.packets,
        window.seconds,
        pps >= nominal_pps * 0.98,
    );
    Ok(())
}

fn raise_fd_limit(needed: usize) -> Result<(), String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err("getrlimit failed".into());
        }
        if limit.rlim_cur < needed as libc::rlim_t {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max.min(needed as libc::rlim_t),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    if (limit.rlim_cur as usize) < needed {
        return Err(format!(
            "{needed} file descriptors needed, the limit is {}",
            limit.rlim_cur
        ));
    }
    Ok(())
}

/// Sends one datagram per stream every 20 ms until `stop`; returns how many it sent.
fn generate(senders: &[(UdpSocket, SocketAddr)], stop: &AtomicBool) -> u64 {
    let packet = [0x80u8; PACKET];
    let start = Instant::now();
    let slices = std::env::var("FLOOR_SLICES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=1000).contains(n))
        .unwrap_or(SLICES);
    let slice = FRAME / slices as u32;
    let mut sent = 0;
    for step in 0u32.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let due = start + slice * step;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for (socket, target) in senders.iter().skip(step as usize % slices).step_by(slices) {
            if socket.send_to(&packet, target).is_ok() {
                sent += 1;
            }
        }
    }
    sent
}

/// This thread's CPU time so far, user and system, in seconds.
fn thread_cpu() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// Counts the relayed datagrams, takes the thread's CPU at the end of the warm-up and at
/// the end, and says when the run is over.
struct Meter {
    started: Instant,
    end: Instant,
    packets: u64,
    at_warm: Option<(Instant, u64, f64)>,
}

impl Meter {
    fn new(run_for: Duration) -> Meter {
        let started = Instant::now();
        Meter {
            started,
            end: started + run_for,
            packets: 0,
            at_warm: None,
        }
    }

    fn running(&self) -> bool {
        Instant::now() < self.end
    }

    /// How long the relay may wait for datagrams: at most 100 ms, and not past the end.
    fn wait(&self) -> Duration {
        self.end
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(100))
    }

    fn tick(&mut self) {
        if self.at_warm.is_none() && self.started.elapsed() >= WARM_UP {
            self.at_warm = Some((Instant::now(), self.packets, thread_cpu()));
        }
    }

    fn window(self) -> Result<Window, String> {
        let (since, packets, cpu) = self.at_warm.ok_or("the run ended in its warm-up")?;
        Ok(Window {
            packets: self.packets - packets,
            seconds: since.elapsed().as_secs_f64(),
            cpu_s: thread_cpu() - cpu,
        })
    }
}

fn relay_epoll(sockets: &Sockets, mut meter: Meter) -> Result<Window, String> {
    // SAFETY: plain system calls on descriptors this function owns or borrows; the event
    // and message arrays outlive the calls that fill them.
    unsafe {
        let epoll = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        if epoll < 0 {
            return Err("epoll_create1 failed".into());
        }
        for (k, socket) in sockets.relay_in.iter().enumerate() {
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: k as u64,
            };
            if libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, socket.as_raw_fd(), &mut event) != 0 {
                return Err("epoll_ctl failed".into());
            }
        }
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        let mut buffers = vec![[0u8; BUFFER]; RECV_BATCH];
        let mut sources: [libc::sockaddr_storage; RECV_BATCH] = std::mem::zeroed();
        let mut iovecs: [libc::iovec; RECV_BATCH] = std::mem::zeroed();
        let mut headers: [libc::mmsghdr; RECV_BATCH] = std::mem::zeroed();
        while meter.running() {
            let wait_ms = meter.wait().as_millis() as i32;
            let ready = libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, wait_ms);
            for event in &events[..ready.max(0) as usize] {
                let k = event.u64 as usize;
                for j in 0..RECV_BATCH {
                    iovecs[j] = libc::iovec {
                        iov_base: buffers[j].as_mut_ptr().cast(),
                        iov_len: BUFFER,
                    };
                    headers[j].msg_hdr.msg_iov = &mut iovecs[j];
                    headers[j].msg_hdr.msg_iovlen = 1;
                    headers[j].msg_hdr.msg_name = std::ptr::from_mut(&mut sources[j]).cast();
                    headers[j].msg_hdr.msg_namelen =
                        size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                }
                let read = libc::recvmmsg(
                    sockets.relay_in[k].as_raw_fd(),
                    headers.as_mut_ptr(),
                    RECV_BATCH as u32,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                );
                for j in 0..read.max(0) as usize {
                    let datagram = &buffers[j][..headers[j].msg_len as usize];
                    if sockets.relay_out[k]
                        .send_to(datagram, sockets.sinks[k])
                        .is_ok()
                    {
                        meter.packets += 1;
                    }
                }
            }
            meter.tick();
        }
        libc::close(epoll);
        meter.window()
    }
}

/// One stream's buffers for the io_uring relay: the datagram in flight and the two
/// message headers that point at it.
struct UringStream {
    buffer: [u8; BUFFER],
    iovec: libc::iovec,
    source: libc::sockaddr_storage,
    received: libc::msghdr,
    sent: libc::msghdr,
    sink: libc::sockaddr_in,
}

const SEND_TAG: u64 = 1 << 32;

fn relay_uring(sockets: &Sockets, mut meter: Meter) -> Result<Window, String> {
    let streams = sockets.relay_in.len();
    let entries = (streams as u32).next_power_of_two().clamp(64, 4096);
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(4 * entries.max(streams as u32))
        .build(entries)
        .map_err(|e| format!("io_uring_setup: {e}"))?;
    let mut streams_state: Vec<UringStream> = Vec::with_capacity(streams);
    for sink in &sockets.sinks {
        let SocketAddr::V4(sink) = sink else {
            return Err("sinks are IPv4".into());
        };
        streams_state.push(UringStream {
            buffer: [0; BUFFER],
            // SAFETY: all-zero is a valid value for these plain C structs; the pointers in
            // them are set below, once the vector no longer moves.
            iovec: unsafe { std::mem::zeroed() },
            source: unsafe { std::mem::zeroed() },
            received: unsafe { std::mem::zeroed() },
            sent: unsafe { std::mem::zeroed() },
            sink: libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: sink.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*sink.ip()).to_be(),
                },
                sin_zero: [0; 8],
            },
        });
    }
    // Leaked: the kernel writes into these buffers for as long as reads are queued, which
    // is until the process exits, on every path out of this function (an error included).
    let state: &mut [UringStream] = streams_state.leak();
    for stream in state.iter_mut() {
        stream.iovec = libc::iovec {
            iov_base: stream.buffer.as_mut_ptr().cast(),
            iov_len: BUFFER,
        };
        stream.received.msg_iov = &mut stream.iovec;
        stream.received.msg_iovlen = 1;
        stream.received.msg_name = std::ptr::from_mut(&mut stream.source).cast();
        stream.sent.msg_iov = &mut stream.iovec;
        stream.sent.msg_iovlen = 1;
        stream.sent.msg_name = std::ptr::from_mut(&mut stream.sink).cast();
        stream.sent.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    }
    let fds_in: Vec<RawFd> = sockets.relay_in.iter().map(|s| s.as_raw_fd()).collect();
    let fds_out: Vec<RawFd> = sockets.relay_out.iter().map(|s| s.as_raw_fd()).collect();

    let queue = |ring: &mut IoUring, entry: io_uring::squeue::Entry| {
        // SAFETY: every entry points into `state`, which is leaked: never moved or freed.
        while unsafe { ring.submission().push(&entry) }.is_err() {
            ring.submit().map_err(|e| format!("io_uring_enter: {e}"))?;
        }
        Ok::<(), String>(())
    };
    let receive = |stream: &mut UringStream, k: usize| {
        stream.iovec.iov_len = BUFFER;
        stream.received.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        opcode::RecvMsg::new(types::Fd(fds_in[k]), &mut stream.received)
            .build()
            .user_data(k as u64)
    };
    for (k, stream) in state.iter_mut().enumerate() {
        queue(&mut ring, receive(stream, k))?;
    }
    let mut done = Vec::with_capacity(streams);
    while meter.running() {
        let timeout = types::Timespec::from(meter.wait());
        let wait = types::SubmitArgs::new().timespec(&timeout);
        match ring.submitter().submit_with_args(1, &wait) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(e) => return Err(format!("io_uring_enter: {e}")),
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(tag, result) in &done {
            let k = (tag & (SEND_TAG - 1)) as usize;
            let stream = &mut state[k];
            if tag & SEND_TAG != 0 || result <= 0 {
                // The send is done (or the read failed): read the next datagram.
                if tag & SEND_TAG != 0 && result > 0 {
                    meter.packets += 1;
                }
                queue(&mut ring, receive(stream, k))?;
            } else {
                stream.iovec.iov_len = result as usize;
                let send = opcode::SendMsg::new(types::Fd(fds_out[k]), &stream.sent)
                    .build()
                    .user_data(SEND_TAG | k as u64);
                queue(&mut ring, send)?;
            }
        }
        meter.tick();
    }
    meter.window()
}
