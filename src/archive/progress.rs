//! A progress display for batch archiving from the command line.
//!
//! On a terminal it redraws one line in place:
//! `[#####-----] 3/10 T-20261123-0001  12.3 MiB` (the bar counts finished items plus
//! the byte fraction of the current one; `3/10` is the item being written; the size is
//! what has been written of it). When stderr is not a terminal (a log file, a pipe) it
//! prints one plain line per finished item instead, so logs stay readable.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

/// Width of the bar between the brackets.
const BAR_WIDTH: usize = 10;

/// Terminal redraws closer together than this are skipped (byte updates come every
/// 64 KiB); item changes always redraw.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Progress of a batch of items (bundles), drawn on stderr.
pub struct ProgressBar {
    out: Box<dyn Write + Send>,
    tty: bool,
    total_items: u64,
    started_items: u64,
    done_items: u64,
    current: String,
    bytes_done: u64,
    bytes_total: u64,
    last_draw: Option<Instant>,
    /// A terminal line is on screen and not yet ended with a newline.
    line_open: bool,
}

/// `12.3 MiB`, `512 B`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

impl ProgressBar {
    /// A display for `total_items` items on stderr; a bar when stderr is a terminal,
    /// plain lines otherwise.
    pub fn new(total_items: u64) -> Self {
        let tty = io::stderr().is_terminal();
        Self::with_output(total_items, Box::new(io::stderr()), tty)
    }

    /// A display on `out`, drawn as a bar when `tty`.
    pub(crate) fn with_output(total_items: u64, out: Box<dyn Write + Send>, tty: bool) -> Self {
        Self {
            out,
            tty,
            total_items,
            started_items: 0,
            done_items: 0,
            current: String::new(),
            bytes_done: 0,
            bytes_total: 0,
            last_draw: None,
            line_open: false,
        }
    }

    /// The next item (e.g. a ticket id) starts.
    pub fn item_started(&mut self, name: &str) {
        self.started_items += 1;
        self.current = name.to_owned();
        self.bytes_done = 0;
        self.bytes_total = 0;
        self.draw(true);
    }

    /// Bytes of the current item written so far, out of its total; fits the
    /// `write_bundle` progress callback.
    pub fn bytes(&mut self, done: u64, total: u64) {
        self.bytes_done = done;
        self.bytes_total = total;
        self.draw(false);
    }

    /// The current item finished successfully.
    pub fn item_done(&mut self) {
        self.done_items += 1;
        if self.tty {
            self.draw(true);
        } else {
            let line = format!(
                "[{}/{}] {}  {}\n",
                self.done_items,
                self.total_items,
                self.current,
                human_bytes(self.bytes_done)
            );
            let _ = self.out.write_all(line.as_bytes());
            let _ = self.out.flush();
        }
    }

    /// Prints a line (e.g. why an item failed) without garbling the bar.
    pub fn message(&mut self, text: &str) {
        if self.line_open {
            let _ = self.out.write_all(b"\r\x1b[K");
            self.line_open = false;
        }
        let _ = writeln!(self.out, "{text}");
        if self.tty && self.started_items > 0 {
            self.draw(true);
        }
        let _ = self.out.flush();
    }

    /// Draws the final state and ends the line.
    pub fn finish(mut self) {
        if self.tty {
            self.draw(true);
        }
        self.end_line();
    }

    fn end_line(&mut self) {
        if self.line_open {
            let _ = self.out.write_all(b"\n");
            let _ = self.out.flush();
            self.line_open = false;
        }
    }

    /// The terminal line for the current state (without `\r` and erase).
    pub(crate) fn line(&self) -> String {
        let fraction = if self.total_items == 0 {
            1.0
        } else {
            let current = if self.started_items > self.done_items && self.bytes_total > 0 {
                self.bytes_done.min(self.bytes_total) as f64 / self.bytes_total as f64
            } else {
                0.0
            };
            ((self.done_items as f64 + current) / self.total_items as f64).min(1.0)
        };
        let filled = ((fraction * BAR_WIDTH as f64).floor() as usize).min(BAR_WIDTH);
        format!(
            "[{}{}] {}/{} {}  {}",
            "#".repeat(filled),
            "-".repeat(BAR_WIDTH - filled),
            self.started_items.max(self.done_items),
            self.total_items,
            self.current,
            human_bytes(self.bytes_done)
        )
    }

    fn draw(&mut self, force: bool) {
        if !self.tty {
            return;
        }
        let now = Instant::now();
        if !force {
            if let Some(last) = self.last_draw {
                if now.duration_since(last) < REDRAW_EVERY {
                    return;
                }
            }
        }
        self.last_draw = Some(now);
        let line = format!("\r{}\x1b[K", self.line());
        let _ = self.out.write_all(line.as_bytes());
        let _ = self.out.flush();
        self.line_open = true;
    }
}

impl Drop for ProgressBar {
    /// Leaves the cursor on a fresh line if the batch ended without `finish`.
    fn drop(&mut self) {
        self.end_line();
    }
}

impl std::fmt::Debug for ProgressBar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressBar")
            .field("tty", &self.tty)
            .field("total_items", &self.total_items)
            .field("done_items", &self.done_items)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn progress_bar_lines() {
        #[derive(Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let text = |s: &Shared| String::from_utf8(s.0.lock().unwrap().clone()).unwrap();

        let plain = Shared::default();
        let mut bar = ProgressBar::with_output(2, Box::new(plain.clone()), false);
        bar.item_started("T-1");
        bar.bytes(5 * 1024 * 1024, 10 * 1024 * 1024);
        bar.bytes(12_900_000, 12_900_000);
        bar.item_done();
        bar.item_started("T-2");
        bar.message("T-2: failed");
        bar.finish();
        assert_eq!(text(&plain), "[1/2] T-1  12.3 MiB\nT-2: failed\n");

        let tty = Shared::default();
        let mut bar = ProgressBar::with_output(10, Box::new(tty.clone()), true);
        for i in 0..3 {
            bar.item_started(&format!("T-{i}"));
            bar.item_done();
        }
        bar.item_started("T-20261123-0001");
        bar.bytes(12_900_000, 25_800_000);
        assert_eq!(bar.line(), "[###-------] 4/10 T-20261123-0001  12.3 MiB");
        bar.finish();
        let drawn = text(&tty);
        assert!(
            drawn.starts_with("\r[----------] 1/10 T-0  0 B\x1b[K"),
            "{drawn:?}"
        );
        assert!(drawn.ends_with("\n"));

        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
