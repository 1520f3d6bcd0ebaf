//! A request in protocol-neutral terms, as every adapter hands it to the core, and the first,
//! pure step of every decision: the proxy's secret and the user's identity.

use std::net::IpAddr;

use crate::denial::Denial;
use crate::identity::Email;
use crate::secret::SecretSet;

/// A header as the adapter found it: absent, present once, or present more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderField<'a> {
    Missing,
    One(&'a [u8]),
    Many,
}

impl<'a> HeaderField<'a> {
    /// Builds a field from every value a header map holds for one name.
    pub fn from_values<I: IntoIterator<Item = &'a [u8]>>(values: I) -> Self {
        let mut it = values.into_iter();
        match (it.next(), it.next()) {
            (None, _) => Self::Missing,
            (Some(v), None) => Self::One(v),
            (Some(_), Some(_)) => Self::Many,
        }
    }

    pub fn text(self) -> Option<&'a str> {
        match self {
            Self::One(v) => std::str::from_utf8(v).ok(),
            _ => None,
        }
    }
}

/// A request to decide, in protocol-neutral terms. Its `Debug` shows the secret as
/// `[redacted]`, so a request can be logged whole.
#[derive(Clone, Copy)]
pub struct AuthzRequest<'a> {
    /// The original request's method.
    pub method: HeaderField<'a>,
    /// The original request's URI (path and query).
    pub uri: HeaderField<'a>,
    /// The user's email header.
    pub user: HeaderField<'a>,
    /// The proxy's shared secret header.
    pub secret: HeaderField<'a>,
    /// The client's address, when the proxy sends one.
    pub client_ip: Option<IpAddr>,
}

/// How `Debug` shows a field: its text, or only whether it is there.
struct Shown<'a>(HeaderField<'a>, bool);

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.0, self.1) {
            (HeaderField::One(_), true) => f.write_str("One([redacted])"),
            (HeaderField::One(v), false) => f
                .debug_tuple("One")
                .field(&String::from_utf8_lossy(v))
                .finish(),
            (other, _) => other.fmt(f),
        }
    }
}

impl std::fmt::Debug for AuthzRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzRequest")
            .field("method", &Shown(self.method, false))
            .field("uri", &Shown(self.uri, false))
            .field("user", &Shown(self.user, false))
            .field("secret", &Shown(self.secret, true))
            .field("client_ip", &self.client_ip)
            .finish()
    }
}

/// Validates the secret and the user header. Pure: the first step of every decision.
pub fn authenticate(secrets: Option<&SecretSet>, req: &AuthzRequest<'_>) -> Result<Email, Denial> {
    if let Some(secrets) = secrets {
        match req.secret {
            HeaderField::Missing => return Err(Denial::MissingSecret),
            HeaderField::Many => return Err(Denial::DuplicateSecret),
            HeaderField::One(v) if !secrets.verify(v) => return Err(Denial::InvalidSecret),
            HeaderField::One(_) => {}
        }
    }
    match req.user {
        HeaderField::Missing => Err(Denial::MissingUser),
        HeaderField::Many => Err(Denial::DuplicateUser),
        HeaderField::One(v) => Email::parse_bytes(v).map_err(Denial::InvalidUser),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = "proxy-secret-0123456789";
        let req = AuthzRequest {
            method: HeaderField::One(b"GET"),
            uri: HeaderField::One(b"/api/projects"),
            user: HeaderField::One(b"alice@example.com"),
            secret: HeaderField::One(secret.as_bytes()),
            client_ip: None,
        };
        // The bytes as a derived `Debug` of `&[u8]` would list them.
        let as_numbers: String = secret
            .bytes()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",");
        for shown in [format!("{req:?}"), format!("{req:#?}")] {
            let compact: String = shown.chars().filter(|c| !c.is_whitespace()).collect();
            assert!(!shown.contains(secret), "{shown}");
            assert!(!compact.contains(&as_numbers), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        let missing = AuthzRequest {
            secret: HeaderField::Missing,
            ..req
        };
        assert!(format!("{missing:?}").contains("secret: Missing"));
    }
}
