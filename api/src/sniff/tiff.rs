//! The TIFF reader: the header's byte order and directory offset, the directory captured
//! as the file streams by (it may sit anywhere), and ImageWidth/ImageLength from it.

use super::{Dimensions, HEAD_BYTES};

/// TIFF directory entries kept: tags are sorted, and width (256) and height (257) come first
/// after at most a few lower tags.
const TIFF_ENTRIES: usize = 32;
const TIFF_WINDOW: usize = 2 + 12 * TIFF_ENTRIES;

/// A TIFF's first directory, captured in order as the file streams by when it lies past the
/// head: its offset and bytes.
#[derive(Debug, Default)]
pub(super) struct DirectoryCapture(Option<(u64, Vec<u8>)>);

impl DirectoryCapture {
    /// Looks at the next `chunk`, which starts at offset `start`; `head` is the file's start
    /// as gathered so far.
    pub(super) fn feed(&mut self, head: &[u8], start: u64, chunk: &[u8]) {
        if self.0.is_none()
            && let Some((_, ifd)) = tiff_header(head)
            && ifd + TIFF_WINDOW as u64 > HEAD_BYTES as u64
        {
            self.0 = Some((ifd, Vec::new()));
        }
        if let Some((ifd, window)) = &mut self.0 {
            let end = start + chunk.len() as u64;
            let want_from = *ifd + window.len() as u64;
            let want_to = *ifd + TIFF_WINDOW as u64;
            let from = want_from.max(start);
            let to = want_to.min(end);
            // Bytes are captured only in order, from the directory's start.
            if from == want_from && from < to {
                let lo = usize::try_from(from - start).unwrap_or(usize::MAX);
                let hi = usize::try_from(to - start).unwrap_or(usize::MAX);
                if let Some(bytes) = chunk.get(lo..hi) {
                    window.extend_from_slice(bytes);
                }
            }
        }
    }

    /// The dimensions from the captured directory, or from `head` when it holds the directory.
    pub(super) fn dimensions(&self, head: &[u8]) -> Option<Dimensions> {
        let (big_endian, ifd) = tiff_header(head)?;
        let dir: &[u8] = match &self.0 {
            Some((_, window)) => window,
            None => head.get(usize::try_from(ifd).ok()?..)?,
        };
        tiff_ifd_dimensions(dir, big_endian)
    }
}

/// Byte order and the first directory's offset of a (classic, not Big) TIFF.
fn tiff_header(head: &[u8]) -> Option<(bool, u64)> {
    let big_endian = match head.get(..4)? {
        b"II*\0" => false,
        b"MM\0*" => true,
        _ => return None,
    };
    let offset = read_u32(head.get(4..8)?, big_endian);
    Some((big_endian, u64::from(offset)))
}

fn read_u16(b: &[u8], big_endian: bool) -> u16 {
    let pair = [b[0], b[1]];
    if big_endian {
        u16::from_be_bytes(pair)
    } else {
        u16::from_le_bytes(pair)
    }
}

fn read_u32(b: &[u8], big_endian: bool) -> u32 {
    let quad = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(quad)
    } else {
        u32::from_le_bytes(quad)
    }
}

/// ImageWidth (256) and ImageLength (257) from a directory: SHORT or LONG values, which
/// always fit in the entry itself.
fn tiff_ifd_dimensions(dir: &[u8], big_endian: bool) -> Option<Dimensions> {
    let count = usize::from(read_u16(dir.get(..2)?, big_endian)).min(TIFF_ENTRIES);
    let (mut width, mut height) = (None, None);
    for entry in dir.get(2..)?.chunks_exact(12).take(count) {
        let tag = read_u16(&entry[0..2], big_endian);
        let value = match read_u16(&entry[2..4], big_endian) {
            3 => u32::from(read_u16(&entry[8..10], big_endian)),
            4 => read_u32(&entry[8..12], big_endian),
            _ => continue,
        };
        match tag {
            256 => width = Some(value),
            257 => height = Some(value),
            _ => {}
        }
    }
    Some(Dimensions {
        width: width?,
        height: height?,
    })
}
