//! What an upload is, judged from its bytes (never from the filename or the client's claimed
//! type), and its width and height read from the header without decoding the image.

mod svg;
mod tiff;

/// Bytes looked at to decide the type: every signature, and an SVG's prologue.
pub const SNIFF_BYTES: usize = 4096;
/// The window dimensions are read from. A JPEG's size follows its metadata segments (EXIF,
/// ICC profiles), which rarely reach this far; a TIFF's directory may sit anywhere and is
/// captured separately as it streams by.
pub const HEAD_BYTES: usize = 1 << 20;

/// The image types the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Png,
    Jpeg,
    Gif,
    Webp,
    Tiff,
    Avif,
    /// Scripts can hide in SVG: refused unless `IMAGE_ALLOW_SVG` is set.
    Svg,
}

impl ImageType {
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
            Self::Tiff => "image/tiff",
            Self::Avif => "image/avif",
            Self::Svg => "image/svg+xml",
        }
    }
}

/// The accepted types, for messages.
pub const ACCEPTED: &str = "PNG, JPEG, GIF, WebP, TIFF or AVIF";

/// Width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimensions {
    pub width: u32,
    pub height: u32,
}

/// The type of a file from its first bytes (up to `SNIFF_BYTES`; fewer only when the file
/// is shorter). `None` for anything else.
pub fn sniff(head: &[u8]) -> Option<ImageType> {
    let starts = |sig: &[u8]| head.starts_with(sig);
    if starts(b"\x89PNG\r\n\x1a\n") {
        Some(ImageType::Png)
    } else if starts(b"\xff\xd8\xff") {
        Some(ImageType::Jpeg)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some(ImageType::Gif)
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        Some(ImageType::Webp)
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some(ImageType::Tiff)
    } else if is_avif(head) {
        Some(ImageType::Avif)
    } else if svg::is_svg(head) {
        Some(ImageType::Svg)
    } else {
        None
    }
}

/// An ISO-BMFF file whose `ftyp` box names an AVIF brand (HEIC and other brands are not AVIF).
fn is_avif(head: &[u8]) -> bool {
    if head.get(4..8) != Some(b"ftyp") {
        return false;
    }
    let Some(size) = head
        .get(0..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return false;
    };
    let end = usize::try_from(size).unwrap_or(usize::MAX).min(head.len());
    let brand = |b: &[u8]| b == b"avif" || b == b"avis";
    // The major brand, then the compatible brands after the minor version.
    head.get(8..12).is_some_and(brand)
        || head
            .get(16..end)
            .is_some_and(|brands| brands.chunks_exact(4).any(brand))
}

/// Collects what dimensions are read from while an upload streams through: the first
/// `HEAD_BYTES`, and for a TIFF the directory its header points at. Memory stays bounded.
#[derive(Debug)]
pub struct HeaderProbe {
    kind: ImageType,
    head: Vec<u8>,
    /// Bytes seen so far.
    offset: u64,
    tiff: tiff::DirectoryCapture,
}

impl HeaderProbe {
    pub fn new(kind: ImageType) -> Self {
        Self {
            kind,
            head: Vec::new(),
            offset: 0,
            tiff: tiff::DirectoryCapture::default(),
        }
    }

    /// Feeds the next bytes of the file, in order.
    pub fn feed(&mut self, chunk: &[u8]) {
        let start = self.offset;
        self.offset += chunk.len() as u64;
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        if self.kind == ImageType::Tiff {
            self.tiff.feed(&self.head, start, chunk);
        }
    }

    /// The dimensions, once the whole file has been fed; `None` when the header does not
    /// give them (a broken or truncated image). An SVG without plain `width`/`height` or
    /// `viewBox` has none either, which is allowed.
    pub fn dimensions(&self) -> Option<Dimensions> {
        let dims = match self.kind {
            ImageType::Tiff => self.tiff.dimensions(&self.head),
            ImageType::Svg => svg::dimensions(&self.head),
            _ => imagesize::blob_size(&self.head).ok().and_then(|s| {
                Some(Dimensions {
                    width: u32::try_from(s.width).ok()?,
                    height: u32::try_from(s.height).ok()?,
                })
            }),
        }?;
        (dims.width > 0 && dims.height > 0).then_some(dims)
    }
}

#[cfg(test)]
pub mod samples {
    //! Tiny valid headers of each accepted type, for tests.

    /// A PNG signature and IHDR chunk for `width` × `height`, then `padding` zero bytes.
    pub fn png(width: u32, height: u32, padding: usize) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        v.extend_from_slice(&width.to_be_bytes());
        v.extend_from_slice(&height.to_be_bytes());
        v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        v.resize(v.len() + padding, 0);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(kind: ImageType, bytes: &[u8], chunk: usize) -> Option<Dimensions> {
        let mut p = HeaderProbe::new(kind);
        for c in bytes.chunks(chunk.max(1)) {
            p.feed(c);
        }
        p.dimensions()
    }

    fn wh(width: u32, height: u32) -> Option<Dimensions> {
        Some(Dimensions { width, height })
    }

    #[test]
    fn signatures_decide_the_type() {
        assert_eq!(sniff(&samples::png(1, 1, 0)), Some(ImageType::Png));
        assert_eq!(sniff(b"\xff\xd8\xff\xe0"), Some(ImageType::Jpeg));
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), Some(ImageType::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageType::Webp));
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Some(ImageType::Tiff));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Some(ImageType::Tiff));
        assert_eq!(
            sniff(b"\0\0\0\x1cftypmif1\0\0\0\0mif1avifmiaf"),
            Some(ImageType::Avif)
        );
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), None);
        assert_eq!(sniff(b"II+\0"), None, "BigTIFF");
        assert_eq!(sniff(b"%PDF-1.7"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"<html><svg>"), None);
    }

    #[test]
    fn svg_is_recognised_behind_its_prologue() {
        for svg in [
            &b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"[..],
            b"\xef\xbb\xbf  <?xml version=\"1.0\"?>\n<!-- hi -->\n<!DOCTYPE svg>\n<svg>",
            b"<SVG onload=alert(1)>",
        ] {
            assert_eq!(sniff(svg), Some(ImageType::Svg), "{svg:?}");
        }
        assert_eq!(sniff(b"<svgfoo>"), None);
        assert_eq!(sniff(b"<?xml unterminated"), None);
    }

    #[test]
    fn dimensions_come_from_headers_in_any_chunking() {
        let png = samples::png(640, 480, 5000);
        for chunk in [1, 7, 4096, 1 << 20] {
            assert_eq!(dims(ImageType::Png, &png, chunk), wh(640, 480));
        }
        let gif = b"GIF89a\x20\x03\x58\x02\0\0\0;";
        assert_eq!(dims(ImageType::Gif, gif, 3), wh(800, 600));
        // A JPEG whose size (SOF0) follows a 60 KiB APP1 segment.
        let mut jpeg = b"\xff\xd8\xff\xe1\xea\x62".to_vec();
        jpeg.resize(jpeg.len() + 0xea62 - 2, 0);
        jpeg.extend_from_slice(
            b"\xff\xc0\0\x11\x08\x01\xe0\x02\x80\x03\x01\x22\0\x02\x11\x01\x03\x11\x01",
        );
        jpeg.extend_from_slice(b"\xff\xd9");
        assert_eq!(dims(ImageType::Jpeg, &jpeg, 1000), wh(640, 480));
        assert_eq!(dims(ImageType::Png, &png[..20], 8), None, "truncated");
        assert_eq!(dims(ImageType::Png, &samples::png(0, 5, 0), 8), None);
    }

    fn tiff(big_endian: bool, ifd_at: u32, width: u32, height: u16) -> Vec<u8> {
        let u16b = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32b = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut v = if big_endian {
            b"MM\0*".to_vec()
        } else {
            b"II*\0".to_vec()
        };
        v.extend_from_slice(&u32b(ifd_at));
        v.resize(ifd_at as usize, 0xaa);
        v.extend_from_slice(&u16b(3));
        // NewSubfileType, ImageWidth (LONG), ImageLength (SHORT, left-justified).
        for (tag, ty, value) in [(254u16, 4u16, u32b(0)), (256, 4, u32b(width))] {
            v.extend_from_slice(&u16b(tag));
            v.extend_from_slice(&u16b(ty));
            v.extend_from_slice(&u32b(1));
            v.extend_from_slice(&value);
        }
        v.extend_from_slice(&u16b(257));
        v.extend_from_slice(&u16b(3));
        v.extend_from_slice(&u32b(1));
        v.extend_from_slice(&u16b(height));
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&u32b(0));
        v
    }

    #[test]
    fn tiff_directories_are_found_near_and_far() {
        for big in [false, true] {
            let near = tiff(big, 8, 70000, 300);
            assert_eq!(dims(ImageType::Tiff, &near, 5), wh(70000, 300));
            // The directory after the image data, past the head window.
            let far = tiff(big, (HEAD_BYTES + 12345) as u32, 1024, 768);
            for chunk in [1000, 65536, 1 << 20] {
                assert_eq!(dims(ImageType::Tiff, &far, chunk), wh(1024, 768), "{chunk}");
            }
            let cut = &far[..far.len() - 20];
            assert_eq!(dims(ImageType::Tiff, cut, 4096), None);
        }
    }

    #[test]
    fn svg_dimensions_are_optional() {
        let svg = |s: &str| dims(ImageType::Svg, s.as_bytes(), 16);
        assert_eq!(svg(r#"<svg width="120" height='80px'>"#), wh(120, 80));
        assert_eq!(svg(r#"<svg viewBox="0 0 300.4 150">"#), wh(300, 150));
        assert_eq!(svg(r#"<svg width="100%" height="50%">"#), None);
        assert_eq!(svg(r#"<svg data-width="5" data-height="6">"#), None);
    }
}
