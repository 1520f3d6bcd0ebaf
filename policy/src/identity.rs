//! The user's identity as the proxy asserts it: one email header, validated and normalized.
//! Only plain ASCII addr-specs are accepted; anything a proxy would not produce is refused.

use std::fmt;
use std::str::FromStr;

use email_address::{EmailAddress, Options};

/// Longest address accepted (RFC 5321 path limit less the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;

/// A validated, normalized email address (domain lower-cased).
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
    /// Validates raw header bytes as an addr-spec and normalizes the domain to lower case.
    pub fn parse_bytes(raw: &[u8]) -> Result<Self, EmailError> {
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
        let local = parsed.local_part();
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
    fn normalizes_domain_only() {
        let e: Email = "Alice.Smith@Example.COM"
            .parse()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(e.as_str(), "Alice.Smith@example.com");
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
