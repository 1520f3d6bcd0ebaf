//! The shared secret the proxy injects, and its constant-time check.
//! Secrets are kept only as SHA-256 digests so neither their bytes nor their length can leak.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Smallest secret accepted outside debug mode, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// A secret value. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The secrets authz accepts: the current one and, during a rotation, the previous one.
#[derive(Clone)]
pub struct SecretSet {
    current: [u8; 32],
    previous: Option<[u8; 32]>,
}

impl std::fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSet")
            .field("current", &"[redacted]")
            .field("previous", &self.previous.map(|_| "[redacted]"))
            .finish()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl SecretSet {
    pub fn new(current: &Secret, previous: Option<&Secret>) -> Self {
        Self {
            current: digest(current.expose()),
            previous: previous.map(|p| digest(p.expose())),
        }
    }

    /// True when `candidate` equals the current or the previous secret.
    /// Both digests are always compared, so timing does not tell which one matched.
    pub fn verify(&self, candidate: &[u8]) -> bool {
        let d = digest(candidate);
        let current = d.ct_eq(&self.current);
        let previous = self
            .previous
            .as_ref()
            .map_or(subtle::Choice::from(0), |p| d.ct_eq(p));
        bool::from(current | previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_current_and_previous_only() {
        let set = SecretSet::new(&Secret::new("current"), Some(&Secret::new("previous")));
        assert!(set.verify(b"current"));
        assert!(set.verify(b"previous"));
        assert!(!set.verify(b"Current"));
        assert!(!set.verify(b""));
        let single = SecretSet::new(&Secret::new("current"), None);
        assert!(!single.verify(b"previous"));
    }

    #[test]
    fn debug_never_shows_bytes() {
        let s = Secret::new("super-secret-value");
        let set = SecretSet::new(&s, Some(&s));
        assert!(!format!("{s:?}{set:?}").contains("super"));
    }
}
