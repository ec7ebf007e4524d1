//! The recorder threads: a few OS threads that serve every recording of the daemon.
//!
//! A thread per recording wakes 50 times a second per call, and at a thousand calls the
//! context switches cost more CPU than the decoding and writing they do (measured with
//! `bench/relay_cpu`: the recorder threads took 58 % of the daemon's CPU at 400 calls,
//! most of it in the scheduler). So recordings share a small fixed set of threads, one per
//! core (at most [`MAX_THREADS`]), each of which takes the packets of all its recordings
//! and writes their frames on one tick every [`TICK`], and handles a stop as soon as the
//! handle asks. A recording stays on the thread it was given (round-robin) until it ends.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::OnceLock;
use std::time::Instant;

use super::{RecordingError, Worker, TICK};

/// Recorder threads at most, whatever the core count: each mostly waits on the page
/// cache and `fsync`, a few keep up with thousands of calls.
const MAX_THREADS: usize = 4;

/// What a recorder thread is told.
pub(super) enum Job {
    /// Serve this recording from now on.
    Add(Box<Worker>),
    /// Look at the recordings' control channels now (a stop was asked).
    Wake,
}

/// Wakes the thread serving a recording.
#[derive(Debug, Clone)]
pub(super) struct Waker(std_mpsc::Sender<Job>);

impl Waker {
    pub(super) fn wake(&self) {
        // A thread that is gone has nothing to wake.
        let _ = self.0.send(Job::Wake);
    }
}

struct Pool {
    threads: Vec<std_mpsc::Sender<Job>>,
    next: AtomicUsize,
}

static POOL: OnceLock<Result<Pool, String>> = OnceLock::new();

fn start_pool() -> Result<Pool, String> {
    let count = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, MAX_THREADS);
    let mut threads = Vec::with_capacity(count);
    for _ in 0..count {
        let (jobs, incoming) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("recorder".to_string())
            .spawn(move || run(incoming))
            .map_err(|e| format!("cannot start: {e}"))?;
        threads.push(jobs);
    }
    Ok(Pool {
        threads,
        next: AtomicUsize::new(0),
    })
}

/// Hands a recording to a recorder thread (starting the threads the first time).
pub(super) fn serve(worker: Worker) -> Result<Waker, RecordingError> {
    let pool = POOL
        .get_or_init(start_pool)
        .as_ref()
        .map_err(|e| RecordingError::Thread(e.clone()))?;
    let index = pool.next.fetch_add(1, Ordering::Relaxed) % pool.threads.len();
    let thread = &pool.threads[index];
    thread
        .send(Job::Add(Box::new(worker)))
        .map_err(|_| RecordingError::Thread("the recorder thread has ended".to_string()))?;
    Ok(Waker(thread.clone()))
}

/// A recorder thread: ticks every [`TICK`] over all its recordings, and ends those whose
/// handle asked for a stop (or went away) as soon as it hears of it.
fn run(jobs: std_mpsc::Receiver<Job>) {
    let mut workers: Vec<Worker> = Vec::new();
    // Positions in `workers` of the recordings with a checkpoint to sync this tick.
    let mut due: Vec<usize> = Vec::new();
    let mut next_tick = Instant::now() + TICK;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match jobs.recv_timeout(wait) {
            Ok(Job::Add(worker)) => workers.push(*worker),
            Ok(Job::Wake) | Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            // The pool lives as long as the process: never reached.
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let mut i = 0;
        while i < workers.len() {
            match workers[i].stop_request() {
                Some(stop) => workers.swap_remove(i).finish(stop),
                None => i += 1,
            }
        }
        let now = Instant::now();
        if now < next_tick {
            continue;
        }
        due.clear();
        for (i, worker) in workers.iter_mut().enumerate() {
            if worker.tick(now) {
                due.push(i);
            }
        }
        if !due.is_empty() {
            // A sync round costs about as much for all the files as for one: bring forward
            // the checkpoints that are half due, so that a thread's recordings settle into
            // about one round per interval.
            // `due` holds positions in increasing order: one pass skips them.
            let (first_due, mut skip) = (due.len(), 0);
            for (i, worker) in workers.iter_mut().enumerate() {
                if skip < first_due && due[skip] == i {
                    skip += 1;
                } else if worker.engine.checkpoint_due(now, true)
                    && worker.engine.prepare_checkpoint(now)
                {
                    due.push(i);
                }
            }
            sync_checkpoints(&mut workers, &due);
        }
        next_tick += TICK;
        if next_tick <= now {
            // Behind by more than a tick (a slow disk): catch up from now, not in a burst.
            next_tick = now + TICK;
        }
    }
}

/// Makes the prepared checkpoints of `due` (positions in `workers`) durable: one
/// `syncfs(2)` per file system that holds two or more of them (at 400 recorded calls,
/// `sync_data` on each file every second was 7 % of the daemon's CPU in `bench/relay_cpu`),
/// else `sync_data` on the file. If a `syncfs` fails, each of its files is synced on its
/// own, so that the failing one is the one that stops (its error also comes back from
/// that file's own next sync, at the latest when the recording closes).
fn sync_checkpoints(workers: &mut [Worker], due: &[usize]) {
    let mut by_device: Vec<(Option<u64>, usize)> = due
        .iter()
        .map(|&i| (workers[i].engine.device(), i))
        .collect();
    by_device.sort_unstable();
    for group in by_device.chunk_by(|a, b| a.0 == b.0) {
        let together = group.len() > 1
            && group[0].0.is_some()
            && match workers[group[0].1].engine.sync_filesystem() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        files = group.len(),
                        "syncfs failed; syncing the recordings one by one"
                    );
                    false
                }
            };
        if !together {
            for &(_, i) in group {
                workers[i].engine.sync();
            }
        }
    }
}
