//! `authz fmt`: Cedar files in the layout of `cedar-policy-formatter` (the formatter Cedar's
//! own CLI uses), written by rename so a watching server never reads half a file.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::PolicySet;
use cedar_policy_formatter::{Config, policies_str_to_pretty};

use ipm_policy::diagnostics::Problem;

/// Why a file could not be formatted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FormatError {
    /// Cedar's parse errors, rendered with the source line.
    #[error("{}", .0.iter().map(|p| p.rendered.clone()).collect::<Vec<_>>().join("\n"))]
    Parse(Vec<Problem>),
    #[error("{file}: the formatter refused the file: {message}")]
    Formatter { file: String, message: String },
    #[error("{file}: {message}")]
    Io { file: String, message: String },
}

/// The formatted text of one Cedar file. `file` is used only in messages.
pub fn format_text(file: &str, text: &str) -> Result<String, FormatError> {
    if let Err(errs) = PolicySet::from_str(text) {
        return Err(FormatError::Parse(
            errs.iter()
                .map(|e| Problem::from_diagnostic(file, text, e))
                .collect(),
        ));
    }
    policies_str_to_pretty(text, &Config::default()).map_err(|e| FormatError::Formatter {
        file: file.to_string(),
        message: format!("{e:#}"),
    })
}

/// The Cedar files at `path`: the file itself, or the `*.cedar` files directly inside the
/// folder (the ones the policy loader reads).
pub fn cedar_files(path: &Path) -> Result<Vec<PathBuf>, FormatError> {
    let io = |e: std::io::Error| FormatError::Io {
        file: path.display().to_string(),
        message: e.to_string(),
    };
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && name.ends_with(".cedar") && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Formats one file in place; returns whether it changed. With `check`, nothing is written.
pub fn format_file(path: &Path, check: bool) -> Result<bool, FormatError> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| FormatError::Io {
        file: shown.clone(),
        message: e.to_string(),
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    let formatted = format_text(&shown, &text)?;
    if formatted == text {
        return Ok(false);
    }
    if !check {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Hidden, so the policy loader never reads the temporary file.
        let tmp = path.with_file_name(format!(".{name}.fmt.tmp"));
        std::fs::write(&tmp, &formatted).map_err(io)?;
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = std::fs::set_permissions(&tmp, meta.permissions());
        }
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_keeps_ids_and_comments() {
        let text = "// who may read\n@id(\"r\") permit(principal,action==Action::\"Read\",resource) when {resource has group&&principal in resource.group};";
        let out = format_text("p.cedar", text).unwrap();
        assert!(out.contains("// who may read"), "{out}");
        assert!(out.contains("@id(\"r\")"), "{out}");
        assert!(out.contains("action == Action::\"Read\""), "{out}");
        assert_eq!(format_text("p.cedar", &out).unwrap(), out, "idempotent");
    }

    #[test]
    fn parse_errors_carry_the_place() {
        let Err(FormatError::Parse(problems)) = format_text(
            "p.cedar",
            "permit (principal,\naction, resource) when { 1 + };\n",
        ) else {
            panic!("a broken file must not format");
        };
        assert_eq!(problems[0].line, Some(2));
    }
}
