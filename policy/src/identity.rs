//! The user's identity as the proxy asserts it: one email header, validated and normalized.
//! Only plain ASCII addr-specs are accepted; anything a proxy would not produce is refused.
//!
//! The domain is always lower-cased. The local part is too unless the process was told
//! otherwise (`EMAIL_LOCAL_PART_CASE=sensitive`): most directories and identity providers
//! treat `Alice@` and `alice@` as one account, so two principals for them would let a
//! per-user `forbid` be evaded by case. Every address the services meet (the header, the
//! groups file, cache keys, flushes, the API's rows) goes through [`Email`], so one setting
//! holds everywhere.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use email_address::{EmailAddress, Options};

/// Longest address accepted (RFC 5321 path limit less the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;

/// How the local part of an address compares (`EMAIL_LOCAL_PART_CASE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalPartCase {
    /// `insensitive` (the default): the whole address is lower-cased.
    #[default]
    Insensitive,
    /// `sensitive`: the local part is kept as sent, for directories where case tells
    /// accounts apart.
    Sensitive,
}

static SENSITIVE: AtomicBool = AtomicBool::new(false);

/// Sets how every address parsed from now on compares; the services call it once at start,
/// before anything is parsed.
pub fn set_local_part_case(case: LocalPartCase) {
    SENSITIVE.store(case == LocalPartCase::Sensitive, Ordering::Relaxed);
}

/// The process's setting (see [`set_local_part_case`]).
pub fn local_part_case() -> LocalPartCase {
    if SENSITIVE.load(Ordering::Relaxed) {
        LocalPartCase::Sensitive
    } else {
        LocalPartCase::Insensitive
    }
}

/// A validated, normalized email address (domain lower-cased, and the local part too unless
/// [`LocalPartCase::Sensitive`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

/// Why an email value was refused. The messages never echo the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("the email is empty")]
    Empty,
    #[error("the email is longer than {MAX_EMAIL_LEN} bytes")]
    TooLong,
    #[error("the email contains bytes outside printable ASCII")]
    NotPrintableAscii,
    #[error("the email uses a quoted local part, a comment or a domain literal")]
    Unsupported,
    #[error("the email is not a valid RFC 5322 addr-spec")]
    Invalid,
}

impl Email {
    /// Validates raw header bytes as an addr-spec and normalizes it under the process's
    /// [`local_part_case`].
    pub fn parse_bytes(raw: &[u8]) -> Result<Self, EmailError> {
        Self::parse_with(raw, local_part_case())
    }

    /// Validates raw bytes as an addr-spec and normalizes it: the domain to lower case, and
    /// the local part too when `case` is [`LocalPartCase::Insensitive`].
    pub fn parse_with(raw: &[u8], case: LocalPartCase) -> Result<Self, EmailError> {
        if raw.is_empty() {
            return Err(EmailError::Empty);
        }
        if raw.len() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        // Printable ASCII only: no CR/LF, NUL, spaces or raw UTF-8 (IDN domains arrive as xn--).
        if !raw.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(EmailError::NotPrintableAscii);
        }
        let text = std::str::from_utf8(raw).map_err(|_| EmailError::NotPrintableAscii)?;
        // Quoted local parts, comments and domain literals are legal RFC 5322 but no identity
        // provider emits them, and each is a way to smuggle look-alike identities.
        if text.contains(['"', '(', ')', '[', ']', '\\', '<', '>', ',', ';']) {
            return Err(EmailError::Unsupported);
        }
        let options = Options::default()
            .without_domain_literal()
            .with_required_tld();
        let options = Options {
            allow_display_text: false,
            ..options
        };
        let parsed =
            EmailAddress::parse_with_options(text, options).map_err(|_| EmailError::Invalid)?;
        let local = match case {
            LocalPartCase::Insensitive => parsed.local_part().to_ascii_lowercase(),
            LocalPartCase::Sensitive => parsed.local_part().to_string(),
        };
        let domain = parsed.domain().to_ascii_lowercase();
        if domain
            .split('.')
            .any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-'))
        {
            return Err(EmailError::Invalid);
        }
        Ok(Self(format!("{local}@{domain}")))
    }
}

impl FromStr for Email {
    type Err = EmailError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_bytes(s.as_bytes())
    }
}

impl<'de> serde::Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: EmailError| serde::de::Error::custom(format!("`{s}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_the_whole_address_unless_told_the_local_part_is_sensitive() {
        let parse = |case| {
            Email::parse_with(b"Alice.Smith@Example.COM", case)
                .map(|e| e.as_str().to_string())
                .unwrap_or_else(|e| unreachable!("{e}"))
        };
        assert_eq!(parse(LocalPartCase::Insensitive), "alice.smith@example.com");
        assert_eq!(parse(LocalPartCase::Sensitive), "Alice.Smith@example.com");
        // The process default is insensitive.
        let e: Email = "Alice.Smith@Example.COM"
            .parse()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(e.as_str(), "alice.smith@example.com");
    }

    #[test]
    fn refuses_hostile_values() {
        let long = format!("{}@example.com", "a".repeat(10_000));
        let cases: Vec<(&[u8], EmailError)> = vec![
            (b"", EmailError::Empty),
            (
                b"alice@example.com\r\nX-Injected: 1",
                EmailError::NotPrintableAscii,
            ),
            (b"alice@exa\0mple.com", EmailError::NotPrintableAscii),
            (long.as_bytes(), EmailError::TooLong),
            (
                b"\"alice smith\"@example.com",
                EmailError::NotPrintableAscii,
            ),
            (b"\"alice\"@example.com", EmailError::Unsupported),
            ("alice@bücher.de".as_bytes(), EmailError::NotPrintableAscii),
            (b"alice@[127.0.0.1]", EmailError::Unsupported),
            (b"Alice <alice@example.com>", EmailError::NotPrintableAscii),
            (b"alice(comment)@example.com", EmailError::Unsupported),
            (
                b"alice@example.com,bob@example.com",
                EmailError::Unsupported,
            ),
            (b"alice", EmailError::Invalid),
            (b"alice@localhost", EmailError::Invalid),
            (b"@example.com", EmailError::Invalid),
            (b"alice@@example.com", EmailError::Invalid),
            (b"alice@-example.com", EmailError::Invalid),
        ];
        for (raw, want) in cases {
            assert_eq!(
                Email::parse_bytes(raw),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn accepts_punycode_and_plus() {
        assert!(Email::parse_bytes(b"bob+photos@xn--bcher-kva.de").is_ok());
    }
}
