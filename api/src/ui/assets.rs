//! The web UI's files, embedded in the binary: the page and the scripts, styles and icon it
//! loads from `/assets/{version}/`. The version is a hash of them all, so a new build gets new
//! URLs and browsers may keep each version for a year.

use sha2::{Digest, Sha256};
use warp::http::header::HeaderValue;
use warp::hyper::body::Bytes;

/// One file under `/assets/{version}/`.
#[derive(Debug)]
pub struct Asset {
    pub name: &'static str,
    pub mime: &'static str,
    pub bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $mime:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            bytes: include_bytes!(concat!("../../ui/", $name)),
        }
    };
}

/// Every file; the scripts are ES modules that import each other by relative path.
pub const ASSETS: &[Asset] = &[
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("projects.js", JS),
    asset!("project.js", JS),
    asset!("upload.js", JS),
    asset!("viewer.js", JS),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
];

/// The one page, with `{{version}}` where the assets' folder goes.
const PAGE: &str = include_str!("../../ui/index.html");

/// The UI as served: its version, the page and the CSP of both.
#[derive(Debug)]
pub struct Ui {
    pub version: String,
    pub page: Bytes,
    pub csp: HeaderValue,
}

impl Ui {
    /// `csp` is `API_UI_CSP` (the configuration checks it is a valid header value).
    pub fn new(csp: &str) -> Result<Self, String> {
        let mut hash = Sha256::new();
        for a in ASSETS {
            hash.update(a.name.as_bytes());
            hash.update((a.bytes.len() as u64).to_be_bytes());
            hash.update(a.bytes);
        }
        let version = hex::encode(&hash.finalize()[..8]);
        Ok(Self {
            page: Bytes::from(PAGE.replace("{{version}}", &version)),
            csp: HeaderValue::from_str(csp).map_err(|e| format!("API_UI_CSP: {e}"))?,
            version,
        })
    }

    /// The file `name` of this version; an old or unknown version has none.
    pub fn asset(&self, version: &str, name: &str) -> Option<&'static Asset> {
        if version != self.version {
            return None;
        }
        ASSETS.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_this_versions_files_and_nothing_inline() {
        let ui = Ui::new("default-src 'none'").unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(ui.version.len(), 16);
        let page = String::from_utf8_lossy(&ui.page);
        assert!(!page.contains("{{"), "{page}");
        let prefix = format!("/assets/{}/", ui.version);
        for used in ["app.js", "style.css", "icon.svg"] {
            assert!(page.contains(&format!("{prefix}{used}")), "{used}");
        }
        // A strict CSP allows no inline script, style or handler.
        for inline in [
            "<script>",
            "style=",
            "<style",
            " onclick",
            " onload",
            "javascript:",
        ] {
            assert!(!page.contains(inline), "{inline}");
        }
        for a in ASSETS {
            let text = String::from_utf8_lossy(a.bytes);
            for inline in [".innerHTML", "eval(", "new Function", "style="] {
                assert!(!text.contains(inline), "{} uses {inline}", a.name);
            }
        }
        assert!(ui.asset(&ui.version, "app.js").is_some());
        assert!(ui.asset("0000000000000000", "app.js").is_none());
        assert!(ui.asset(&ui.version, "../Cargo.toml").is_none());
    }
}
