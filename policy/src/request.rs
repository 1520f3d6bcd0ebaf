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

/// A request to decide, in protocol-neutral terms.
#[derive(Debug, Clone, Copy)]
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
