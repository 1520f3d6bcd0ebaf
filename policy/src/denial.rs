//! Why a request was denied: the single source of every status and error body the adapters
//! answer with. No denial is ever a 2xx.

use serde::Serialize;

use crate::identity::EmailError;

/// Why a request was denied. The single source of every status authz answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    MissingSecret,
    DuplicateSecret,
    InvalidSecret,
    MissingUser,
    DuplicateUser,
    InvalidUser(EmailError),
    MissingOriginalRequest,
    NoRoute,
    PolicyDenied,
    PolicyError,
    GroupsUnavailable,
    ResourceUnavailable,
    /// A policy denial on a resource the caller may not even see, answered as if it did not
    /// exist, by a proxy that can answer 404 (Envoy; see `Enforcer::authorize_concealed`).
    NotFound,
}

/// The three kinds of "no".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialKind {
    Unauthenticated,
    Forbidden,
    /// Forbidden, and not even shown to exist.
    NotFound,
    Unavailable,
}

impl DenialKind {
    pub fn status(self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Unavailable => 503,
        }
    }

    pub fn error(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Unavailable => "unavailable",
        }
    }
}

impl Denial {
    pub fn kind(self) -> DenialKind {
        match self {
            Self::MissingSecret
            | Self::DuplicateSecret
            | Self::InvalidSecret
            | Self::MissingUser
            | Self::DuplicateUser
            | Self::InvalidUser(_) => DenialKind::Unauthenticated,
            Self::MissingOriginalRequest
            | Self::NoRoute
            | Self::PolicyDenied
            | Self::PolicyError => DenialKind::Forbidden,
            Self::NotFound => DenialKind::NotFound,
            Self::GroupsUnavailable | Self::ResourceUnavailable => DenialKind::Unavailable,
        }
    }

    pub fn status(self) -> u16 {
        self.kind().status()
    }

    /// A stable, machine-readable reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingSecret => "missing_proxy_secret",
            Self::DuplicateSecret => "duplicate_proxy_secret",
            Self::InvalidSecret => "invalid_proxy_secret",
            Self::MissingUser => "missing_user",
            Self::DuplicateUser => "duplicate_user",
            Self::InvalidUser(_) => "invalid_user",
            Self::MissingOriginalRequest => "missing_original_request",
            Self::NoRoute => "no_route",
            Self::PolicyDenied => "policy_denied",
            Self::PolicyError => "policy_error",
            Self::GroupsUnavailable => "groups_unavailable",
            Self::ResourceUnavailable => "resource_unavailable",
            Self::NotFound => "not_found",
        }
    }

    /// The JSON body every adapter sends with a denial.
    pub fn body(self) -> String {
        #[derive(Serialize)]
        struct Body {
            error: &'static str,
            reason: &'static str,
        }
        serde_json::to_string(&Body {
            error: self.kind().error(),
            reason: self.reason(),
        })
        .unwrap_or_default()
    }
}
