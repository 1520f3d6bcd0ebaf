//! ipm-policy: the policy core that authz and ipm-api share. No async runtime, no HTTP, no
//! database, no file watching: only what a decision is.
//!
//! A decision runs as a pure pipeline on one [`PolicySnapshot`]: [`prepare`] (the proxy's
//! secret, the user, the route), then the caller's lookups (groups through a [`GroupSource`],
//! resource entities through an [`EntityResolver`], both built from the one vocabulary in
//! [`entities`]), then [`conclude`], which returns a [`Decision`] that keeps the snapshot it
//! read. Every status comes from [`Denial`]; every log line from [`DecisionRecord`].
//!
//! A question asked directly (AuthZEN: subject, action, resource, context) skips the routes:
//! [`evaluate`] decides it on the snapshot with its entities file, and [`search`] finds which
//! entities or actions a question allows by putting each candidate to that same decision.

pub mod cedar;
pub mod denial;
pub mod diagnostics;
pub mod entities;
pub mod evaluate;
pub mod groups;
pub mod identity;
pub mod memo;
pub mod pipeline;
pub mod question;
pub mod record;
pub mod request;
pub mod routes;
pub mod search;
pub mod secret;
mod settle;
mod slice;
pub mod snapshot;
pub mod store;
pub mod visible;

pub use cedar::{CedarQuery, CedarVerdict, QueryError, decide};
pub use denial::{Denial, DenialKind};
pub use diagnostics::Problem;
pub use entities::{EntityResolver, ImageParent, parse_id, user_entities};
pub use evaluate::{EntityRef, Evaluation, Properties, Semantic, evaluate};
pub use groups::{FileGroups, GroupError, GroupSource, Groups, GroupsFileError};
pub use identity::{Email, EmailError};
pub use pipeline::{Decision, Prepared, conclude, prepare};
pub use record::DecisionRecord;
pub use request::{AuthzRequest, HeaderField, authenticate};
pub use routes::{RouteMatch, RouteTable};
pub use search::{Searched, permitted_actions, permitted_entities, permitted_resources};
pub use secret::{Secret, SecretSet};
pub use slice::PolicyIndex;
pub use snapshot::{LoadError, PolicySnapshot, entity_uid};
pub use store::{PolicyStore, ReloadOutcome};
pub use visible::{ProjectFilter, Set};
