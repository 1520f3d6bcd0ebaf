//! A thumbnail from an image's bytes, as a pure function: the header is read and its size
//! judged before anything is decoded (a decompression bomb is refused for the pixels it
//! claims, never found out by allocating them), then a decode under `image::Limits`, scaled to
//! fit `EDGE`, turned upright, encoded as JPEG (PNG when it has transparency).

use std::io::{BufRead, Cursor, Seek};

use image::codecs::jpeg::JpegEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::sniff::ImageType;

/// The longest side of a thumbnail, in pixels: a grid cell at twice the density.
pub const EDGE: u32 = 320;
const JPEG_QUALITY: u8 = 80;
/// Bytes a decoded pixel may take at most: four channels of 16 bits.
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// How large an image a thumbnail is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Width × height.
    pub max_pixels: u64,
}

impl RenderLimits {
    /// The most a decode may allocate for its pixels.
    pub fn max_alloc(self) -> u64 {
        self.max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL)
    }
}

/// Why no thumbnail can be made of an image. Each is for good: the same bytes give the
/// same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// AVIF (no decoder without native libraries) and SVG (never rasterised here).
    #[error("no thumbnails are made of {0} images")]
    Unsupported(&'static str),
    #[error("the image is {width}×{height} pixels, more than the {max} a thumbnail is made from")]
    TooLarge { width: u32, height: u32, max: u64 },
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
    #[error("the thumbnail cannot be encoded: {0}")]
    Encode(String),
}

/// A thumbnail, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// The decoder's format for an accepted type; `Unsupported` for the types decoded nowhere.
pub fn format_of(kind: ImageType) -> Result<ImageFormat, RenderError> {
    match kind {
        ImageType::Png => Ok(ImageFormat::Png),
        ImageType::Jpeg => Ok(ImageFormat::Jpeg),
        ImageType::Gif => Ok(ImageFormat::Gif),
        ImageType::Webp => Ok(ImageFormat::WebP),
        ImageType::Tiff => Ok(ImageFormat::Tiff),
        ImageType::Avif | ImageType::Svg => Err(RenderError::Unsupported(kind.mime())),
    }
}

/// Refuses an image of `width` × `height` over the limit, before any decoding.
pub fn check_size(width: u32, height: u32, limits: RenderLimits) -> Result<(), RenderError> {
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(RenderError::TooLarge {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    Ok(())
}

fn undecodable(e: image::ImageError) -> RenderError {
    match e {
        image::ImageError::Limits(_) => RenderError::Undecodable(format!(
            "it needs more memory than a thumbnail may take ({e})"
        )),
        other => RenderError::Undecodable(other.to_string()),
    }
}

/// The thumbnail of the `kind` image in `source`.
pub fn render<R: BufRead + Seek>(
    source: R,
    kind: ImageType,
    limits: RenderLimits,
) -> Result<Rendered, RenderError> {
    let mut reader = ImageReader::with_format(source, format_of(kind)?);
    let mut bounds = Limits::default();
    bounds.max_alloc = Some(limits.max_alloc());
    reader.limits(bounds);
    // Reads the header only.
    let mut decoder = reader.into_decoder().map_err(undecodable)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    // Not every decoder enforces `max_alloc`: the output buffer is checked here too.
    if decoder.total_bytes() > limits.max_alloc() {
        return Err(RenderError::TooLarge {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(undecodable)?;
    if width > EDGE || height > EDGE {
        image = image.thumbnail(EDGE, EDGE);
    }
    image.apply_orientation(orientation);
    encode(&image)
}

fn encode(image: &DynamicImage) -> Result<Rendered, RenderError> {
    let encoding = |e: image::ImageError| RenderError::Encode(e.to_string());
    let mut bytes = Vec::new();
    if image.color().has_alpha() {
        image
            .to_rgba8()
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .map_err(encoding)?;
    } else {
        JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
            .encode_image(&image.to_rgb8())
            .map_err(encoding)?;
    }
    Ok(Rendered {
        bytes,
        width: image.width(),
        height: image.height(),
    })
}

/// The type of a stored thumbnail, from its first bytes.
pub fn mime_of(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::{Duration, Instant};

    use image::{ImageBuffer, Rgb, Rgba};

    use super::*;

    const LIMITS: RenderLimits = RenderLimits {
        max_pixels: 40_000_000,
    };

    fn encoded(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Vec::new();
        image.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    fn photo(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }))
    }

    fn render_bytes(bytes: &[u8], kind: ImageType) -> Result<Rendered, RenderError> {
        render(Cursor::new(bytes), kind, LIMITS)
    }

    /// CRC-32 as PNG chunks need it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }

    /// A PNG that claims `width` × `height` RGBA pixels of 16 bits, with a little data: a
    /// file of a few hundred bytes that would decode to gigabytes.
    fn png_bomb(width: u32, height: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        // A zlib stream of one stored block of zeros: valid, and far too short.
        let mut idat = vec![0x78, 0x01, 0x01, 0x00, 0x01, 0xff, 0xfe];
        idat.extend_from_slice(&[0u8; 256]);
        chunk(&mut out, b"IDAT", &idat);
        chunk(&mut out, b"IEND", &[]);
        out
    }

    #[test]
    fn a_photo_becomes_a_jpeg_that_fits_the_edge() {
        let png = encoded(photo(1200, 800), ImageFormat::Png);
        let thumb = render_bytes(&png, ImageType::Png).unwrap();
        assert_eq!((thumb.width, thumb.height), (EDGE, 213));
        assert_eq!(mime_of(&thumb.bytes), Some("image/jpeg"));
        let back = image::load_from_memory(&thumb.bytes).unwrap();
        assert_eq!((back.width(), back.height()), (EDGE, 213));

        // Small images keep their size; every accepted decoder is there.
        for (format, kind) in [
            (ImageFormat::Jpeg, ImageType::Jpeg),
            (ImageFormat::Gif, ImageType::Gif),
            (ImageFormat::Tiff, ImageType::Tiff),
            (ImageFormat::WebP, ImageType::Webp),
        ] {
            let bytes = encoded(photo(40, 30), format);
            let thumb = render_bytes(&bytes, kind).unwrap();
            assert_eq!((thumb.width, thumb.height), (40, 30), "{format:?}");
        }
    }

    #[test]
    fn transparency_is_kept_as_png() {
        let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(500, 1000, |x, _| {
            Rgba([0, 0, 0, (x % 256) as u8])
        }));
        let thumb = render_bytes(&encoded(rgba, ImageFormat::Png), ImageType::Png).unwrap();
        assert_eq!((thumb.width, thumb.height), (160, EDGE));
        assert_eq!(mime_of(&thumb.bytes), Some("image/png"));
    }

    #[test]
    fn decompression_bombs_are_refused_from_their_header() {
        // 100,000 × 100,000 RGBA16 would be 80 GB; the file is 330 bytes.
        let bomb = png_bomb(100_000, 100_000);
        assert!(bomb.len() < 400);
        let started = Instant::now();
        let refused = render_bytes(&bomb, ImageType::Png);
        assert_eq!(
            refused,
            Err(RenderError::TooLarge {
                width: 100_000,
                height: 100_000,
                max: LIMITS.max_pixels
            })
        );
        // Refused from the header: no time spent decoding.
        assert!(started.elapsed() < Duration::from_secs(1));
        // Just under the pixel limit, the data is too short to be an image: refused as
        // such, without the 16-bit RGBA buffer ever being filled.
        let near = png_bomb(6_000, 6_000);
        assert!(matches!(
            render_bytes(&near, ImageType::Png),
            Err(RenderError::Undecodable(_))
        ));
        // A lower limit refuses it from its header too.
        let tight = RenderLimits {
            max_pixels: 1_000_000,
        };
        assert!(matches!(
            render(Cursor::new(&near), ImageType::Png, tight),
            Err(RenderError::TooLarge { .. })
        ));
    }

    #[test]
    fn other_formats_claiming_huge_sizes_are_refused() {
        // A GIF whose logical screen and first frame are 65,535 × 65,535.
        let mut gif = b"GIF89a\xff\xff\xff\xff\x00\x00\x00".to_vec();
        gif.extend_from_slice(b",\x00\x00\x00\x00\xff\xff\xff\xff\x00\x02\x02\x44\x01\x00;");
        assert!(matches!(
            render_bytes(&gif, ImageType::Gif),
            Err(RenderError::TooLarge { .. } | RenderError::Undecodable(_))
        ));
        // A JPEG's frame header claiming 60,000 × 60,000.
        let mut jpeg = encoded(photo(16, 16), ImageFormat::Jpeg);
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xff, 0xc0])
            .expect("a baseline frame header");
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0xea, 0x60, 0xea, 0x60]);
        assert!(matches!(
            render_bytes(&jpeg, ImageType::Jpeg),
            Err(RenderError::TooLarge {
                width: 60_000,
                height: 60_000,
                ..
            })
        ));
        assert_eq!(check_size(8_000, 5_000, LIMITS), Ok(()));
        assert!(check_size(8_000, 5_001, LIMITS).is_err());
    }

    #[test]
    fn what_cannot_be_decoded_says_so() {
        let png = encoded(photo(64, 64), ImageFormat::Png);
        let cut = &png[..png.len() / 2];
        assert!(matches!(
            render_bytes(cut, ImageType::Png),
            Err(RenderError::Undecodable(_))
        ));
        assert!(matches!(
            render_bytes(b"GIF89a", ImageType::Gif),
            Err(RenderError::Undecodable(_))
        ));
        assert_eq!(
            render_bytes(b"<svg/>", ImageType::Svg),
            Err(RenderError::Unsupported("image/svg+xml"))
        );
        assert_eq!(
            render_bytes(b"....ftypavif", ImageType::Avif),
            Err(RenderError::Unsupported("image/avif"))
        );
    }

    /// A process's resident memory now and at its peak since the peak was last reset, in KiB.
    fn memory() -> (u64, u64) {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    #[test]
    #[ignore = "a measurement: cargo test -p ipm-api --lib large_photo -- --ignored --nocapture"]
    fn a_large_photo_takes_bounded_time_and_memory() {
        let (width, height) = (6000, 4000);
        let jpeg = encoded(photo(width, height), ImageFormat::Jpeg);
        // The peak from here on is the render's (Linux: writing 5 resets it).
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let (before, _) = memory();
        let started = Instant::now();
        let thumb = render_bytes(&jpeg, ImageType::Jpeg).unwrap();
        let took = started.elapsed();
        let (_, peak) = memory();
        let grew = peak.saturating_sub(before) * 1024;
        println!(
            "{width}×{height} JPEG ({} bytes) → {}×{} thumbnail in {took:?}, peak memory +{} MiB \
             ({:.1} bytes a pixel)",
            jpeg.len(),
            thumb.width,
            thumb.height,
            grew >> 20,
            grew as f64 / f64::from(width * height)
        );
        assert!(grew <= u64::from(width * height) * MAX_BYTES_PER_PIXEL);
        let bomb = png_bomb(100_000, 100_000);
        let started = Instant::now();
        assert!(render_bytes(&bomb, ImageType::Png).is_err());
        println!(
            "a {}-byte PNG claiming 100,000 × 100,000 pixels refused in {:?}",
            bomb.len(),
            started.elapsed()
        );
    }
}
