//! The media threads: a few OS threads, each with a tokio runtime of its own, that run the
//! relay tasks of every call.
//!
//! On the daemon's shared (multi-thread) runtime, a datagram's wake-up often lands on one
//! worker while the other is parked, and the scheduler unparks it to share the work: a
//! futex wake and two context switches for a task that then runs for a few microseconds.
//! At 100 recorded calls that was about 15 % of the daemon's samples (`bench/relay_cpu`),
//! which is why the cost per packet fell as the load grew. Here each thread polls its own
//! reactor and runs its own tasks, so a datagram wakes exactly the thread whose socket it
//! reached, and the media path never queues behind SIP or HTTP work.
//!
//! A session stays on the thread it was given until it ends: its sockets are registered
//! with that thread's reactor. New sessions go to the thread with the fewest. Call control
//! talks to a session from its own runtime through channels and tokens, which work across
//! runtimes; only its relay task runs here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// Media threads at most, whatever the core count.
pub const MAX_THREADS: usize = 16;

/// The media threads of a daemon. Cheap to clone: clones share the threads, which stop
/// when the last clone is dropped or at [`MediaThreads::shutdown`].
#[derive(Debug, Clone)]
pub struct MediaThreads {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    threads: Vec<Thread>,
    /// Cancelled to stop every thread; the sessions still on them are dropped with their
    /// runtime, which closes their sockets and gives their ports back.
    stop: CancellationToken,
}

#[derive(Debug)]
struct Thread {
    handle: Handle,
    /// Sessions placed on this thread that have not ended.
    sessions: Arc<AtomicUsize>,
    /// Cancelled by the thread as its last act, after its runtime (and every session on
    /// it) is gone.
    ended: CancellationToken,
}

/// A session's place on a media thread: its runtime, and one of the thread's session
/// count, given back when this is dropped (with the relay task that holds it).
#[derive(Debug)]
pub(crate) struct Seat {
    pub(crate) handle: Handle,
    sessions: Option<Arc<AtomicUsize>>,
}

impl Seat {
    /// A seat on the runtime of the caller (tests, tools): nothing is counted.
    pub(crate) fn current(handle: Handle) -> Seat {
        Seat {
            handle,
            sessions: None,
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(sessions) = &self.sessions {
            sessions.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl MediaThreads {
    /// Starts `count` media threads (at least one, at most [`MAX_THREADS`]).
    pub fn start(count: usize) -> std::io::Result<MediaThreads> {
        let count = count.clamp(1, MAX_THREADS);
        let stop = CancellationToken::new();
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let ended = CancellationToken::new();
            let (stop_here, ended_here) = (stop.clone(), ended.clone());
            let spawned = std::thread::Builder::new()
                .name("media".to_string())
                .spawn(move || {
                    runtime.block_on(stop_here.cancelled());
                    drop(runtime);
                    ended_here.cancel();
                });
            if let Err(error) = spawned {
                // The threads already running stop with `stop`.
                stop.cancel();
                return Err(error);
            }
            tracing::trace!(index, "media thread started");
            threads.push(Thread {
                handle,
                sessions: Arc::new(AtomicUsize::new(0)),
                ended,
            });
        }
        Ok(MediaThreads {
            inner: Arc::new(Inner { threads, stop }),
        })
    }

    /// One media thread per core (at most [`MAX_THREADS`]): they share the cores with the
    /// recorder threads, SIP and HTTP, and mostly wait in the reactor.
    pub fn start_per_core() -> std::io::Result<MediaThreads> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        MediaThreads::start(cores)
    }

    /// How many threads there are.
    pub fn count(&self) -> usize {
        self.inner.threads.len()
    }

    /// The sessions on each thread now.
    pub fn sessions(&self) -> Vec<usize> {
        self.inner
            .threads
            .iter()
            .map(|t| t.sessions.load(Ordering::Relaxed))
            .collect()
    }

    /// Tasks alive on all the threads' runtimes now (the relays, one per session).
    pub fn alive_tasks(&self) -> usize {
        self.inner
            .threads
            .iter()
            .map(|t| t.handle.metrics().num_alive_tasks())
            .sum()
    }

    /// A seat on the thread with the fewest sessions (the first of those tied).
    pub(crate) fn seat(&self) -> Seat {
        let threads = &self.inner.threads;
        let thread = threads
            .iter()
            .min_by_key(|t| t.sessions.load(Ordering::Relaxed))
            .unwrap_or(&threads[0]);
        thread.sessions.fetch_add(1, Ordering::Relaxed);
        Seat {
            handle: thread.handle.clone(),
            sessions: Some(Arc::clone(&thread.sessions)),
        }
    }

    /// Stops every thread and waits until they have ended. Sessions still running are
    /// dropped with their thread: end the calls first.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        for thread in &self.inner.threads {
            thread.ended.cancelled().await;
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn seats_go_to_the_thread_with_the_fewest_sessions() {
        let threads = MediaThreads::start(3).expect("threads");
        assert_eq!(threads.count(), 3);
        let a = threads.seat();
        let b = threads.seat();
        let c = threads.seat();
        assert_eq!(threads.sessions(), [1, 1, 1]);
        drop(b);
        assert_eq!(threads.sessions(), [1, 0, 1]);
        let d = threads.seat();
        assert_eq!(threads.sessions(), [1, 1, 1]);
        let e = threads.seat();
        assert_eq!(threads.sessions(), [2, 1, 1]);
        drop((a, c, d, e));
        assert_eq!(threads.sessions(), [0, 0, 0]);
        threads.shutdown().await;
    }

    #[tokio::test]
    async fn tasks_run_on_the_media_threads_and_stop_with_them() {
        let threads = MediaThreads::start(2).expect("threads");
        let seat = threads.seat();
        let name = seat
            .handle
            .spawn(async { std::thread::current().name().map(str::to_string) })
            .await
            .expect("task");
        assert_eq!(name.as_deref(), Some("media"));
        // A task that would run forever is dropped when its thread stops.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        seat.handle.spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        // The finished task leaves the count shortly after its output was taken.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while threads.alive_tasks() != 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "alive tasks: {} (the pending one only expected)",
                threads.alive_tasks()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::timeout(Duration::from_secs(5), threads.shutdown())
            .await
            .expect("threads stop");
        assert!(rx.await.is_err(), "the pending task was dropped");
    }

    #[test]
    fn the_count_is_bounded() {
        assert_eq!(MediaThreads::start(0).expect("threads").count(), 1);
        let many = MediaThreads::start(MAX_THREADS + 5).expect("threads");
        assert_eq!(many.count(), MAX_THREADS);
    }
}
