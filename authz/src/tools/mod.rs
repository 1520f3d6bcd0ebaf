//! The policy authors' tools behind `authz check|explain|test|diff|fmt`: each reads a policy
//! directory into the same snapshot the server uses and decides through the same core.

pub mod coverage;
pub mod diff;
pub mod explain;
pub mod fmt;
pub mod test;
pub mod watch;
