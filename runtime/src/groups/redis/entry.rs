//! What one user's entry in Redis holds, and its seal: an HMAC-SHA256 under `REDIS_HMAC_KEY`
//! over the key name and the JSON, so that whoever can write to Redis cannot grant groups.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::RedisCacheError;

/// How far in the future an entry may be dated: the replicas' clocks disagree a little.
/// Beyond it the entry would stay fresh for ever, so it is ignored.
pub(super) const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);
/// The format tag in front of every stored entry.
const ENTRY_VERSION: &str = "v1";

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredEntry {
    pub(super) groups: Vec<String>,
    pub(super) fetched_at_ms: u64,
    pub(super) user_flushes: u64,
    pub(super) all_flushes: u64,
}

/// Seals and opens stored entries: `v1.<hex HMAC-SHA256>.<json>`, the MAC over the Redis key
/// and the JSON, so that an entry moved to another user's key does not verify either.
#[derive(Clone)]
pub struct EntrySeal {
    mac: Hmac<Sha256>,
}

impl EntrySeal {
    /// A seal keyed with `REDIS_HMAC_KEY`.
    pub fn new(key: &[u8]) -> Result<Self, RedisCacheError> {
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| RedisCacheError::Key)?;
        Ok(Self { mac })
    }

    fn keyed(&self, redis_key: &str, json: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        // The key's length first, so that no (key, json) pair reads as another.
        mac.update(
            &u64::try_from(redis_key.len())
                .unwrap_or(u64::MAX)
                .to_be_bytes(),
        );
        mac.update(redis_key.as_bytes());
        mac.update(json.as_bytes());
        mac
    }

    /// The value to store under `redis_key`.
    pub fn seal(&self, redis_key: &str, json: &str) -> String {
        let tag = self.keyed(redis_key, json).finalize().into_bytes();
        format!("{ENTRY_VERSION}.{}.{json}", hex::encode(tag))
    }

    /// The JSON of `value` if its MAC verifies (compared in constant time), else `None`.
    pub fn open<'a>(&self, redis_key: &str, value: &'a str) -> Option<&'a str> {
        let rest = value.strip_prefix(ENTRY_VERSION)?.strip_prefix('.')?;
        let (tag, json) = rest.split_once('.')?;
        let tag = hex::decode(tag).ok()?;
        self.keyed(redis_key, json).verify_slice(&tag).ok()?;
        Some(json)
    }
}

impl std::fmt::Debug for EntrySeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntrySeal([redacted])")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_entry_opens_only_with_its_key_under_its_name() {
        let seal = EntrySeal::new(b"k").unwrap();
        let json = r#"{"groups":["a"]}"#;
        let value = seal.seal("p:groups:a@x", json);
        assert_eq!(seal.open("p:groups:a@x", &value), Some(json));
        assert_eq!(
            seal.open("p:groups:b@x", &value),
            None,
            "moved to another user"
        );
        assert_eq!(
            EntrySeal::new(b"other")
                .unwrap()
                .open("p:groups:a@x", &value),
            None
        );
        let tampered = value.replace(r#"["a"]"#, r#"["b"]"#);
        assert_eq!(seal.open("p:groups:a@x", &tampered), None);
        for junk in ["", json, "v1.", "v1.zz.{}", "v2.00.{}"] {
            assert_eq!(seal.open("p:groups:a@x", junk), None, "{junk}");
        }
    }
}
