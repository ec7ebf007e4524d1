//! A minimal POSIX ustar writer and header parser: exactly what a bundle needs.
//!
//! Every archive written here holds regular files only (typeflag `'0'`), each with a
//! 512-byte header, its data, zero padding up to the next 512-byte boundary, and two
//! zero blocks at the end. Names live in the 100-byte `name` field only (the `prefix`
//! field stays empty), so a name is at most [`NAME_MAX`] bytes. Sizes are 11 octal
//! digits, so a member is at most [`SIZE_MAX`] bytes (8 GiB - 1).
//!
//! The writer hashes every byte it emits, so the SHA-256 of the whole `.tar` is known
//! without reading the file back.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

/// A tar block.
pub(crate) const BLOCK: usize = 512;

/// Longest member name: the ustar `name` field (the `prefix` field is never used).
pub(crate) const NAME_MAX: usize = 100;

/// Largest member: 11 octal digits in the `size` field.
pub(crate) const SIZE_MAX: u64 = 0o777_7777_7777;

// Field offsets and lengths of the ustar header (POSIX.1-1988 / IEEE Std 1003.1).
const NAME: (usize, usize) = (0, 100);
const MODE: (usize, usize) = (100, 8);
const UID: (usize, usize) = (108, 8);
const GID: (usize, usize) = (116, 8);
const SIZE: (usize, usize) = (124, 12);
const MTIME: (usize, usize) = (136, 12);
const CHKSUM: (usize, usize) = (148, 8);
const TYPEFLAG: usize = 156;
const MAGIC: (usize, usize) = (257, 6);
const VERSION: (usize, usize) = (263, 2);
const DEVMAJOR: (usize, usize) = (329, 8);
const DEVMINOR: (usize, usize) = (337, 8);
const PREFIX: (usize, usize) = (345, 155);

/// Writes `value` as zero-padded octal filling all but the last byte of the field,
/// which is NUL (the classic `%0*o\0` form every tar reads).
fn put_octal(block: &mut [u8; BLOCK], (at, len): (usize, usize), value: u64) {
    let digits = format!("{value:0width$o}", width = len - 1);
    debug_assert_eq!(digits.len(), len - 1, "octal field overflow");
    block[at..at + len - 1].copy_from_slice(digits.as_bytes());
    block[at + len - 1] = 0;
}

/// The header checksum: the byte sum of the block with the checksum field read as
/// eight spaces.
fn checksum(block: &[u8; BLOCK]) -> u64 {
    let (at, len) = CHKSUM;
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (at..at + len).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum()
}

/// Builds the header of a regular file: mode 0644, uid/gid 0, the given size and mtime.
/// The caller has checked `name` (non-empty, at most [`NAME_MAX`] bytes, no NUL) and
/// `size` (at most [`SIZE_MAX`]).
pub(crate) fn file_header(name: &str, size: u64, mtime: u64) -> [u8; BLOCK] {
    debug_assert!(!name.is_empty() && name.len() <= NAME_MAX && !name.contains('\0'));
    debug_assert!(size <= SIZE_MAX);
    let mut block = [0u8; BLOCK];
    block[..name.len()].copy_from_slice(name.as_bytes());
    put_octal(&mut block, MODE, 0o644);
    put_octal(&mut block, UID, 0);
    put_octal(&mut block, GID, 0);
    put_octal(&mut block, SIZE, size);
    put_octal(&mut block, MTIME, mtime.min(0o777_7777_7777));
    block[TYPEFLAG] = b'0';
    block[MAGIC.0..MAGIC.0 + MAGIC.1].copy_from_slice(b"ustar\0");
    block[VERSION.0..VERSION.0 + VERSION.1].copy_from_slice(b"00");
    put_octal(&mut block, DEVMAJOR, 0);
    put_octal(&mut block, DEVMINOR, 0);
    // Checksum: six octal digits, NUL, space.
    let sum = checksum(&block);
    let text = format!("{sum:06o}\0 ");
    block[CHKSUM.0..CHKSUM.0 + CHKSUM.1].copy_from_slice(text.as_bytes());
    block
}

/// Zero bytes needed after `size` bytes of data to reach a block boundary.
pub(crate) fn padding(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 {
        0
    } else {
        BLOCK - rem
    }
}

/// Writes a tar stream to `out`, hashing and counting every byte.
///
/// The caller drives it member by member: [`TarWriter::header`], then exactly `size`
/// bytes of [`TarWriter::data`], then [`TarWriter::end_member`]; [`TarWriter::finish`]
/// writes the end-of-archive blocks.
pub(crate) struct TarWriter<W: Write> {
    out: W,
    hasher: Sha256,
    bytes: u64,
    mtime: u64,
    /// Size declared by the open member's header and bytes of data written since.
    open: Option<(u64, u64)>,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W, mtime: u64) -> Self {
        Self {
            out,
            hasher: Sha256::new(),
            bytes: 0,
            mtime,
            open: None,
        }
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Starts a member of `size` bytes.
    pub(crate) fn header(&mut self, name: &str, size: u64) -> io::Result<()> {
        debug_assert!(self.open.is_none(), "previous member not ended");
        let block = file_header(name, size, self.mtime);
        self.emit(&block)?;
        self.open = Some((size, 0));
        Ok(())
    }

    /// Writes data of the open member; never more than its header declared.
    pub(crate) fn data(&mut self, chunk: &[u8]) -> io::Result<()> {
        let (size, written) = self.open.expect("data outside a member");
        let after = written + chunk.len() as u64;
        if after > size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "member data longer than its header says",
            ));
        }
        self.emit(chunk)?;
        self.open = Some((size, after));
        Ok(())
    }

    /// Ends the open member: checks its length and pads to the block boundary.
    pub(crate) fn end_member(&mut self) -> io::Result<()> {
        let (size, written) = self.open.take().expect("no member to end");
        if written != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "member data shorter than its header says",
            ));
        }
        let zeros = [0u8; BLOCK];
        self.emit(&zeros[..padding(size)])
    }

    /// A whole member from memory.
    #[cfg(test)]
    pub(crate) fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.header(name, data.len() as u64)?;
        self.data(data)?;
        self.end_member()
    }

    /// Writes the two zero blocks that end the archive and hands back the output, the
    /// lowercase hex SHA-256 of everything written, and its length.
    pub(crate) fn finish(mut self) -> io::Result<(W, String, u64)> {
        debug_assert!(self.open.is_none(), "last member not ended");
        self.emit(&[0u8; 2 * BLOCK])?;
        Ok((self.out, hex::encode(self.hasher.finalize()), self.bytes))
    }
}

/// What a header block says, as far as a bundle cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// `prefix/name` when the prefix field is used, else `name`.
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) typeflag: u8,
}

/// Why a header block cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderError {
    /// The stored checksum does not match the block (or is unreadable).
    Checksum { stored: Option<u64>, computed: u64 },
    /// The size field is not an octal number.
    Size,
    /// Not a ustar (POSIX or GNU) header.
    Magic,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Checksum {
                stored: Some(stored),
                computed,
            } => write!(
                f,
                "bad header checksum: header says {stored:o}, block sums to {computed:o}"
            ),
            HeaderError::Checksum {
                stored: None,
                computed,
            } => write!(
                f,
                "bad header checksum: unreadable field, block sums to {computed:o}"
            ),
            HeaderError::Size => f.write_str("unreadable size field in header"),
            HeaderError::Magic => f.write_str("not a ustar header"),
        }
    }
}

/// Reads an octal field: optional leading spaces, octal digits, then NUL or spaces.
fn get_octal(block: &[u8; BLOCK], (at, len): (usize, usize)) -> Option<u64> {
    let field = &block[at..at + len];
    let text: &[u8] = {
        let start = field.iter().position(|&b| b != b' ')?;
        let rest = &field[start..];
        let end = rest
            .iter()
            .position(|&b| b == 0 || b == b' ')
            .unwrap_or(rest.len());
        if rest[end..].iter().any(|&b| b != 0 && b != b' ') {
            return None;
        }
        &rest[..end]
    };
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| match b {
        b'0'..=b'7' => acc.checked_mul(8)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// The NUL-terminated text of a field (lossy UTF-8).
fn get_text(block: &[u8; BLOCK], (at, len): (usize, usize)) -> String {
    let field = &block[at..at + len];
    let end = field.iter().position(|&b| b == 0).unwrap_or(len);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The name a header carries, checksum or not (for naming a bad header in reports).
pub(crate) fn raw_name(block: &[u8; BLOCK]) -> String {
    get_text(block, NAME)
}

/// Parses and checks a header block that is not all zeros.
pub(crate) fn parse_header(block: &[u8; BLOCK]) -> Result<Header, HeaderError> {
    let computed = checksum(block);
    let stored = get_octal(block, CHKSUM);
    if stored != Some(computed) {
        return Err(HeaderError::Checksum { stored, computed });
    }
    let magic = &block[MAGIC.0..MAGIC.0 + MAGIC.1];
    if magic != b"ustar\0" && magic != b"ustar " {
        return Err(HeaderError::Magic);
    }
    let size = get_octal(block, SIZE).ok_or(HeaderError::Size)?;
    let name = get_text(block, NAME);
    let prefix = get_text(block, PREFIX);
    let name = if prefix.is_empty() || magic != b"ustar\0" {
        name
    } else {
        format!("{prefix}/{name}")
    };
    Ok(Header {
        name,
        size,
        typeflag: block[TYPEFLAG],
    })
}
