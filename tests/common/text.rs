//! Text for reports and messages (tails of logs, bytes shown escaped), tokens unique
//! within the test process, and the RFC 4475 torture corpus on disk.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::TORTURE_DIR;

/// The last `max` bytes of `text`, cut at a character boundary.
pub fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

pub fn read_lossy(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Bytes shown as text for an assertion message: printable ASCII kept, the rest escaped.
pub fn show_bytes(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n\n"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > max {
        let _ = write!(out, "... ({} bytes in all)", bytes.len());
    }
    out
}

static UNIQUE: AtomicU64 = AtomicU64::new(1);

/// A token unique within this test process (for branches, tags and Call-IDs).
pub fn unique_token() -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    format!("{}x{n}", std::process::id())
}

// ---------------------------------------------------------------------------------------
// The RFC 4475 torture corpus
// ---------------------------------------------------------------------------------------

/// The torture corpus (`TORTURE_DIR/*.dat`), sorted; fails unless all 50 files are there.
pub fn torture_files() -> Vec<PathBuf> {
    let dir = Path::new(TORTURE_DIR);
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the torture corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("read_dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 50,
        "expected the 50 RFC 4475 .dat files in {}, found {}",
        dir.display(),
        files.len()
    );
    files
}
