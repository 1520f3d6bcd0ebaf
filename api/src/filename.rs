//! Filenames as clients send them, made safe to store and show, and sent back in a
//! `Content-Disposition` header that no quote, NUL, CR/LF or `../` can break out of.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Longest stored filename, in characters.
pub const MAX_FILENAME_CHARS: usize = 255;
/// The name of a file sent without a usable one.
pub const DEFAULT_FILENAME: &str = "image";

/// RFC 8187 `attr-char`: everything else is percent-encoded in `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Invisible characters that reorder or hide text (`photo\u{202e}gnp.exe`).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// The name to store: the last path segment (a client's `C:\dir\` or `../` is dropped), no
/// control or invisible characters, trimmed, at most `MAX_FILENAME_CHARS`. Unicode and
/// quotes are kept: they are escaped where the name is sent, never trusted as a path.
pub fn clean_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .take(MAX_FILENAME_CHARS)
        .collect();
    let name = kept.trim();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        DEFAULT_FILENAME.to_string()
    } else {
        name.to_string()
    }
}

/// `attachment; filename="…"; filename*=UTF-8''…`: a plain-ASCII fallback for old clients
/// (anything else becomes `_`) and the exact name, percent-encoded. Always a valid header.
pub fn content_disposition(filename: &str) -> String {
    let name = clean_filename(filename);
    let fallback: String = name
        .chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '_',
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(&name, ATTR_CHAR)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_control_characters_are_dropped() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\Users\\me\\cat.png"), "cat.png");
        assert_eq!(clean_filename(".."), DEFAULT_FILENAME);
        assert_eq!(clean_filename("../"), DEFAULT_FILENAME);
        assert_eq!(clean_filename(""), DEFAULT_FILENAME);
        assert_eq!(clean_filename("a\0b\r\nc.png"), "abc.png");
        assert_eq!(clean_filename("photo\u{202e}gnp.exe"), "photognp.exe");
        assert_eq!(
            clean_filename("  été \"quoted\".png "),
            "été \"quoted\".png"
        );
        assert_eq!(
            clean_filename(&"é".repeat(300)).chars().count(),
            MAX_FILENAME_CHARS
        );
    }

    #[test]
    fn dispositions_cannot_break_out() {
        assert_eq!(
            content_disposition("cat.png"),
            "attachment; filename=\"cat.png\"; filename*=UTF-8''cat.png"
        );
        assert_eq!(
            content_disposition("a\"; filename=evil.html\r\nX-Evil: 1"),
            "attachment; filename=\"a_; filename=evil.htmlX-Evil: 1\"; \
             filename*=UTF-8''a%22%3B%20filename%3Devil.htmlX-Evil%3A%201"
        );
        assert_eq!(
            content_disposition("日本\\語.png"),
            "attachment; filename=\"_.png\"; filename*=UTF-8''%E8%AA%9E.png",
            "the backslash splits the path"
        );
        let d = content_disposition("naïve 📷.jpg");
        assert!(
            d.starts_with("attachment; filename=\"na_ve _.jpg\"; "),
            "{d}"
        );
        assert!(
            d.ends_with("filename*=UTF-8''na%C3%AFve%20%F0%9F%93%B7.jpg"),
            "{d}"
        );
        for raw in ["\0", "a\nb", "\"", "../../x", "\u{7f}", "%00"] {
            let d = content_disposition(raw);
            assert!(
                warp::http::HeaderValue::from_str(&d).is_ok(),
                "{raw:?}: {d}"
            );
            assert_eq!(d.matches('"').count(), 2, "{d}");
        }
    }
}
