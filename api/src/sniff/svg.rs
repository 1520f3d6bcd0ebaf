//! SVG, the one text format: an XML document whose root is `<svg`, and its size from the
//! root's `width`/`height` or `viewBox` attributes.

use super::{Dimensions, SNIFF_BYTES};

/// An XML document whose root element is `<svg`, after an optional BOM, XML declaration,
/// comments and doctype.
pub(super) fn is_svg(head: &[u8]) -> bool {
    let mut rest = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    loop {
        rest = trim_start(rest);
        let next = if rest.starts_with(b"<?") {
            skip_to(rest, b"?>")
        } else if rest.starts_with(b"<!--") {
            skip_to(rest, b"-->")
        } else if rest.starts_with(b"<!") {
            skip_to(rest, b">")
        } else {
            let tag = rest.get(..4).map(|t| t.to_ascii_lowercase());
            let after = rest.get(4).copied();
            return tag.as_deref() == Some(b"<svg")
                && after.is_none_or(|c| c.is_ascii_whitespace() || c == b'>' || c == b'/');
        };
        match next {
            Some(n) => rest = n,
            None => return false,
        }
    }
}

/// What follows the first `end` in `from`.
fn skip_to<'a>(from: &'a [u8], end: &[u8]) -> Option<&'a [u8]> {
    from.windows(end.len())
        .position(|w| w == end)
        .map(|i| &from[i + end.len()..])
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let Some((first, rest)) = s.split_first() {
        if !first.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    s
}

/// `width` and `height` of the root `<svg>` when they are plain numbers (or pixels), else
/// the size of its `viewBox`.
pub(super) fn dimensions(head: &[u8]) -> Option<Dimensions> {
    let text = String::from_utf8_lossy(&head[..SNIFF_BYTES.min(head.len())]);
    let start = text.find("<svg")?;
    let tag = &text[start..start + text[start..].find('>')?];
    let attr = |name: &str| {
        let mut rest = tag;
        while let Some(i) = rest.find(name) {
            let before = rest[..i].chars().last();
            let after = &rest[i + name.len()..];
            rest = after;
            if !before.is_some_and(char::is_whitespace) {
                continue;
            }
            let after = after.trim_start().strip_prefix('=')?.trim_start();
            let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let value = &after[1..];
            return value.find(quote).map(|end| &value[..end]);
        }
        None
    };
    let number = |v: &str| -> Option<u32> {
        let v = v.trim();
        let v = v.strip_suffix("px").unwrap_or(v);
        let n: f64 = v.parse().ok()?;
        (n.is_finite() && n > 0.0 && n < f64::from(u32::MAX)).then(|| n.round() as u32)
    };
    if let (Some(w), Some(h)) = (
        attr("width").and_then(number),
        attr("height").and_then(number),
    ) {
        return Some(Dimensions {
            width: w,
            height: h,
        });
    }
    let view: Vec<&str> = attr("viewBox")?
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .collect();
    match view.as_slice() {
        [_, _, w, h] => Some(Dimensions {
            width: number(w)?,
            height: number(h)?,
        }),
        _ => None,
    }
}
