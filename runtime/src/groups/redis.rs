//! The shared cache in Redis: memberships every replica reads and writes, and a channel that
//! carries flushes to every replica. Any Redis failure sends the lookup to the directory.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::CachedGroups;
use crate::config::RedisConfig;
use crate::metrics::{Metrics, OpLabels, ResultLabels};
use ipm_policy::groups::is_valid_group_name;
use ipm_policy::identity::Email;

mod entry;

pub use entry::EntrySeal;
use entry::{MAX_CLOCK_SKEW, StoredEntry};

/// How long a replica waits before subscribing again after losing the channel.
const RESUBSCRIBE_MAX_DELAY: Duration = Duration::from_secs(5);
/// How often an idle subscription proves it is still connected.
const SUBSCRIPTION_PING: Duration = Duration::from_secs(15);
/// Flush counters outlive every entry they could void by at least this much.
const MIN_FLUSH_MARK_LIFETIME: Duration = Duration::from_secs(86_400);

/// A flush announced to every replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flush {
    User(Email),
    All,
}

impl Flush {
    fn message(&self) -> String {
        match self {
            Self::User(u) => format!("user:{u}"),
            Self::All => "all".into(),
        }
    }

    fn parse(message: &str) -> Option<Self> {
        if message == "all" {
            return Some(Self::All);
        }
        message.strip_prefix("user:")?.parse().ok().map(Self::User)
    }
}

/// The flush counters seen before a fetch. An entry written with older counters than the
/// current ones was fetched before a flush and is ignored, however late it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushTag {
    user: u64,
    all: u64,
}

/// What Redis holds for a user.
#[derive(Debug, Clone)]
pub struct SharedRead {
    /// A membership written since the last flush, fresh or not.
    pub entry: Option<CachedGroups>,
    pub tag: FlushTag,
}

/// Why Redis could not serve. The messages never carry `REDIS_URL`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisCacheError {
    #[error("REDIS_URL is not a usable Redis URL ({0})")]
    Url(String),
    #[error("redis did not answer within {0} ms")]
    Timeout(u128),
    #[error("redis: {0}")]
    Redis(String),
    #[error("REDIS_HMAC_KEY is not a usable HMAC key")]
    Key,
}

/// Memberships shared by every replica through one Redis.
pub struct RedisCache {
    client: redis::Client,
    conn: ConnectionManager,
    seal: EntrySeal,
    prefix: String,
    timeout: Duration,
    /// How long Redis keeps an entry: the TTL plus the stale grace.
    keep_for: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("keep_for", &self.keep_for)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisCache {
    /// Prepares the connection without opening it: authz starts, and answers from the
    /// directory, while Redis is down.
    pub fn new(
        config: &RedisConfig,
        keep_for: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RedisCacheError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| RedisCacheError::Url(format!("{:?}", e.kind())))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .map_err(|e| RedisCacheError::Redis(e.to_string()))?;
        Ok(Self {
            client,
            conn,
            seal: EntrySeal::new(config.hmac_key.expose())?,
            prefix: config.key_prefix.clone(),
            timeout: config.timeout,
            keep_for,
            metrics,
        })
    }

    fn entry_key(&self, user: &Email) -> String {
        format!("{}groups:{user}", self.prefix)
    }

    fn user_flushes_key(&self, user: &Email) -> String {
        format!("{}flushes:{user}", self.prefix)
    }

    fn all_flushes_key(&self) -> String {
        format!("{}flushes", self.prefix)
    }

    /// The channel flushes are announced on.
    pub fn channel(&self) -> String {
        format!("{}flush", self.prefix)
    }

    /// Runs one Redis call with the timeout; a failure is counted and logged here.
    async fn call<T, F>(&self, op: &'static str, f: F) -> Result<T, RedisCacheError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let result = match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisCacheError::Redis(e.to_string())),
            Err(_) => Err(RedisCacheError::Timeout(self.timeout.as_millis())),
        };
        if let Err(e) = &result {
            self.metrics
                .redis_errors
                .get_or_create(&OpLabels { op })
                .inc();
            tracing::warn!(target: "authz::redis", op, error = %e, "redis failed; the directory answers instead");
        }
        result
    }

    /// The user's entry and the flush counters, in one round trip. An entry whose MAC does not
    /// verify, or dated after `now` (plus a small skew), is counted and treated as absent.
    pub async fn get(&self, user: &Email, now: Duration) -> Result<SharedRead, RedisCacheError> {
        let key = self.entry_key(user);
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("MGET");
        cmd.arg(&key)
            .arg(self.user_flushes_key(user))
            .arg(self.all_flushes_key());
        let (raw, user_flushes, all_flushes): (Option<String>, Option<u64>, Option<u64>) =
            self.call("get", cmd.query_async(&mut conn)).await?;
        let tag = FlushTag {
            user: user_flushes.unwrap_or(0),
            all: all_flushes.unwrap_or(0),
        };
        let entry = raw.and_then(|raw| self.read_entry(user, &key, &raw, tag, now));
        Ok(SharedRead { entry, tag })
    }

    fn reject(&self, result: &'static str) {
        self.metrics
            .redis_rejected_entries
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    fn read_entry(
        &self,
        user: &Email,
        key: &str,
        raw: &str,
        tag: FlushTag,
        now: Duration,
    ) -> Option<CachedGroups> {
        // Never log the entry: whoever wrote it chose its content.
        let Some(json) = self.seal.open(key, raw) else {
            self.reject("bad_mac");
            tracing::warn!(target: "authz::redis", user = user.as_str(), "ignoring a shared entry whose MAC does not verify (not written with REDIS_HMAC_KEY)");
            return None;
        };
        let e = match serde_json::from_str::<StoredEntry>(json) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(target: "authz::redis", user = user.as_str(), error = %e, "ignoring an unreadable shared entry");
                return None;
            }
        };
        // Written by a fetch that began before a flush.
        if e.user_flushes != tag.user || e.all_flushes != tag.all {
            return None;
        }
        let fetched_at = Duration::from_millis(e.fetched_at_ms);
        if fetched_at > now.saturating_add(MAX_CLOCK_SKEW) {
            self.reject("future");
            tracing::warn!(target: "authz::redis", user = user.as_str(), ahead_ms = millis(fetched_at - now), "ignoring a shared entry dated in the future");
            return None;
        }
        if !e.groups.iter().all(|g| is_valid_group_name(g)) {
            tracing::warn!(target: "authz::redis", user = user.as_str(), "ignoring a shared entry with an invalid group name");
            return None;
        }
        let mut groups = e.groups;
        groups.sort_unstable();
        groups.dedup();
        Some(CachedGroups {
            groups: groups.into(),
            fetched_at,
        })
    }

    /// Shares a membership fetched with the counters in `tag`.
    pub async fn put(
        &self,
        user: &Email,
        tag: FlushTag,
        entry: &CachedGroups,
    ) -> Result<(), RedisCacheError> {
        if self.keep_for.is_zero() {
            return Ok(());
        }
        let stored = StoredEntry {
            groups: entry.groups.to_vec(),
            fetched_at_ms: millis(entry.fetched_at),
            user_flushes: tag.user,
            all_flushes: tag.all,
        };
        let json =
            serde_json::to_string(&stored).map_err(|e| RedisCacheError::Redis(e.to_string()))?;
        let key = self.entry_key(user);
        let value = self.seal.seal(&key, &json);
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(value)
            .arg("PX")
            .arg(millis(self.keep_for).max(1));
        self.call("put", cmd.query_async::<()>(&mut conn)).await
    }

    /// Voids the user's entry on every replica: the counter first (so a late write from a
    /// fetch in flight is ignored), then the entry, then the announcement, all in one step.
    pub async fn flush_user(&self, user: &Email) -> Result<(), RedisCacheError> {
        let counter = self.user_flushes_key(user);
        let lifetime = millis((self.keep_for * 2).max(MIN_FLUSH_MARK_LIFETIME));
        let mut pipe = redis::pipe();
        pipe.atomic()
            .incr(&counter, 1)
            .ignore()
            .pexpire(&counter, i64::try_from(lifetime).unwrap_or(i64::MAX))
            .ignore()
            .del(self.entry_key(user))
            .ignore()
            .publish(self.channel(), Flush::User(user.clone()).message())
            .ignore();
        let mut conn = self.conn.clone();
        self.call("flush", pipe.query_async::<()>(&mut conn)).await
    }

    /// Voids every entry on every replica.
    pub async fn flush_all(&self) -> Result<(), RedisCacheError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .incr(self.all_flushes_key(), 1)
            .ignore()
            .publish(self.channel(), Flush::All.message())
            .ignore();
        let mut conn = self.conn.clone();
        self.call("flush", pipe.query_async::<()>(&mut conn)).await
    }

    /// Listens for flushes until aborted, subscribing again after any loss. Each (re)subscribe
    /// first flushes everything through `on_flush`: announcements may have been missed.
    pub fn subscribe(
        &self,
        on_flush: Arc<dyn Fn(&Flush) + Send + Sync>,
    ) -> tokio::task::AbortHandle {
        let client = self.client.clone();
        let channel = self.channel();
        let timeout = self.timeout;
        let metrics = self.metrics.clone();
        let task = tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                let mut subscribed = false;
                let e = listen(
                    &client,
                    &channel,
                    timeout,
                    on_flush.as_ref(),
                    &mut subscribed,
                )
                .await;
                if subscribed {
                    delay = Duration::from_millis(100);
                }
                metrics
                    .redis_errors
                    .get_or_create(&OpLabels { op: "subscribe" })
                    .inc();
                tracing::warn!(target: "authz::redis", error = %e, retry_ms = millis(delay), "no flush channel; subscribing again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RESUBSCRIBE_MAX_DELAY);
            }
        });
        task.abort_handle()
    }
}

/// One subscription, from connecting to losing it; returns why it ended.
async fn listen(
    client: &redis::Client,
    channel: &str,
    timeout: Duration,
    on_flush: &(dyn Fn(&Flush) + Send + Sync),
    subscribed: &mut bool,
) -> RedisCacheError {
    match subscription(client, channel, timeout, on_flush, subscribed).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

async fn subscription(
    client: &redis::Client,
    channel: &str,
    timeout: Duration,
    on_flush: &(dyn Fn(&Flush) + Send + Sync),
    subscribed: &mut bool,
) -> Result<std::convert::Infallible, RedisCacheError> {
    let redis_err = |e: redis::RedisError| RedisCacheError::Redis(e.to_string());
    let timed_out = |_| RedisCacheError::Timeout(timeout.as_millis());
    let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(timed_out)?
        .map_err(redis_err)?;
    tokio::time::timeout(timeout, pubsub.subscribe(channel))
        .await
        .map_err(timed_out)?
        .map_err(redis_err)?;
    *subscribed = true;
    on_flush(&Flush::All);
    tracing::info!(target: "authz::redis", channel, "listening for cache flushes");
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(SUBSCRIPTION_PING);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err(RedisCacheError::Redis("the subscription closed".into()));
                };
                let payload: String = msg.get_payload().unwrap_or_default();
                match Flush::parse(&payload) {
                    Some(flush) => {
                        tracing::info!(target: "authz::redis", flush = %payload, "flush announced");
                        on_flush(&flush);
                    }
                    None => tracing::warn!(target: "authz::redis", "ignoring an unreadable flush announcement"),
                }
            }
            _ = ping.tick() => {
                tokio::time::timeout(timeout, sink.ping::<String>())
                    .await
                    .map_err(timed_out)?
                    .map_err(redis_err)?;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn flush_messages_round_trip() {
        let u: Email = "a+b@example.com".parse().unwrap();
        for f in [Flush::All, Flush::User(u)] {
            assert_eq!(Flush::parse(&f.message()), Some(f));
        }
        assert_eq!(Flush::parse("user:not-an-email"), None);
        assert_eq!(Flush::parse("everything"), None);
    }

    #[test]
    fn tls_urls_are_understood() {
        let client = redis::Client::open("rediss://:pw@redis.internal:6380/0");
        assert!(client.is_ok(), "{:?}", client.err().map(|e| e.kind()));
    }
}
