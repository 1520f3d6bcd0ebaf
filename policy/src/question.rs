//! A question put to Cedar and its answer: what the decision, its memo and its observers share.

use std::net::IpAddr;

use cedar_policy::Entity;

use crate::identity::Email;
use crate::routes::RouteMatch;

/// What Cedar is asked about.
#[derive(Debug, Clone)]
pub struct CedarQuery<'a> {
    pub user: &'a Email,
    pub groups: &'a [String],
    pub route: &'a RouteMatch,
    pub method: &'a str,
    /// The request path without its query string.
    pub path: &'a str,
    pub client_ip: Option<IpAddr>,
    /// Entities a resolver found for the resource (a project and its group, say).
    pub resource_entities: &'a [Entity],
}

/// Cedar's answer, with the policies that decided it and any evaluation errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CedarVerdict {
    pub allowed: bool,
    pub policies: Vec<String>,
    pub errors: Vec<String>,
}

/// Why a query could not even be put to Cedar.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot build the Cedar request: {0}")]
pub struct QueryError(pub String);
