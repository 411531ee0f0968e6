//! The Redis store: the [`RedisStore`] handle and its [`Store`]
//! implementation. The rest lives in submodules:
//!
//! - `builder`: [`RedisStoreBuilder`], the default timeouts, and
//!   `RedisStore::connect` and `RedisStore::builder`;
//! - `conn`: the connection (multiplexed `ConnectionManager` or bb8 pool);
//! - `script`: the Lua scripts and the call of the lookup script;
//! - `guess`: the warm one-`MGET` lookup under the versions last seen;
//! - `reply`: decoding of untrusted replies (lookups, versions, `INFO`).

use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use redis::{Script, Value, aio::ConnectionManager};

use self::{
    conn::{Conn, Request},
    guess::{Guess, MAX_GUESSES},
    reply::{count_of, entry_of, info_field, info_text, version_of},
    script::{LOOKUP_LUA, RELEASE_LUA},
};
use super::{DEFAULT_PREFIX, DEFAULT_VERSION_TTL, EntryKey, Lease, Lookup, Store, StoreStats};
use crate::{
    clock,
    error::Error,
    key::{self, FragmentedKey, Tag, Version},
};

mod builder;
mod conn;
mod guess;
mod reply;
mod script;

pub use self::builder::{DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, RedisStoreBuilder};

/// The longest lease the store takes: one hour.
const MAX_LEASE_MS: u64 = 3_600_000;

/// The most tags one lookup may carry (Lua's `unpack` has a stack limit).
const MAX_TAGS_PER_LOOKUP: usize = 1000;

/// A store in Redis, shared by every app server that points at it.
///
/// By default it talks to Redis through one multiplexed
/// [`ConnectionManager`](redis::aio::ConnectionManager): every request of the
/// process shares one connection, pipelined, which reconnects by itself.
/// `TCP_NODELAY` is set, and connect and command timeouts are explicit.
/// That is the default because concurrent requests ride the one connection
/// together, while a pool pays a checkout per call and carries one request
/// per connection at a time. With the `bb8` feature the store can go through
/// a `bb8-redis` pool instead (`RedisStoreBuilder::bb8_pool`,
/// `RedisStore::from_bb8_pool`), for apps that already run one and to keep
/// the choice measured (`cargo bench --bench load`).
///
/// A lookup is **one round trip** and one command:
///
/// - **Warm** (this process has looked the key up before): one `MGET` of the
///   epoch and tag versions and of the entry under the versions last seen
///   for this key. `MGET` reads every key at one instant, so when the
///   versions it returns equal that guess, the entry it returns is exactly
///   the one under the current versions. A plain `MGET` costs Redis about a
///   sixth of the script below (`INFO commandstats`: ~1 µs against ~6 µs).
/// - **Otherwise** (first sight of the key in this process, a version
///   changed, or one is missing): a Lua script, called by SHA (`EVALSHA`,
///   loaded again on `NOSCRIPT`), reads the versions, builds the entry key
///   and reads the entry, and the store remembers the versions for next
///   time. A lookup that follows a bump elsewhere is the `MGET` then the
///   script: two round trips, once per bump.
///
/// The script is first sent without version candidates; when it meets a
/// missing version (a tag never seen, or its version expired) it answers
/// `[nil]`, and the store asks again with fresh random candidates, which the
/// script writes only where a version is still missing. The script touches a key it
/// builds itself, which standalone Redis allows; Redis Cluster does not.
///
/// Key layout (readable in `redis-cli`), with the default prefix `ttc`:
/// `ttc:epoch`, `ttc:t:User:42` (versions) and `ttc:e:<hex>:<hex>` (entries);
/// see the [`key` module](crate::key#store-layout).
///
/// ```no_run
/// # async fn run() -> Result<(), tower_tagged_cache::Error> {
/// use std::time::Duration;
/// use tower_tagged_cache::RedisStore;
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379/")
///     .prefix("myapp")
///     .command_timeout(Duration::from_millis(200))
///     .connect()
///     .await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    entry_prefix: String,
    epoch_key: String,
    version_ttl_secs: u64,
    lookup: Script,
    release: Script,
    /// The versions each static key was last seen with, for the one-`MGET`
    /// warm lookup, and when this process last gave them a whole TTL again.
    guesses: moka::sync::Cache<[u8; 32], Arc<Guess>>,
}

impl RedisStore {
    /// Uses a connection manager you configured yourself, with the default
    /// prefix and version TTL.
    pub fn from_manager(conn: ConnectionManager) -> Self {
        Self::with_conn(
            Conn::Manager(conn),
            DEFAULT_PREFIX.to_owned(),
            DEFAULT_VERSION_TTL,
        )
    }

    /// Uses a `bb8-redis` pool you configured yourself, with the default
    /// prefix, version TTL and command timeout.
    ///
    /// Each call takes a connection from the pool, and a connection that
    /// broke is replaced in the background, as with
    /// [`RedisStoreBuilder::bb8_pool`]. bb8 sends a `PING` on every checkout
    /// unless the pool was built with `test_on_check_out(false)`, which makes
    /// every store call two round trips; `bb8_pool` builds one without it.
    #[cfg(feature = "bb8")]
    pub fn from_bb8_pool(pool: bb8::Pool<bb8_redis::RedisConnectionManager>) -> Self {
        let conn = Conn::Pool {
            pool,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        };
        Self::with_conn(conn, DEFAULT_PREFIX.to_owned(), DEFAULT_VERSION_TTL)
    }

    fn with_conn(conn: Conn, prefix: String, version_ttl: Duration) -> Self {
        Self {
            conn,
            inner: Arc::new(Inner {
                entry_prefix: key::entry_key_prefix(&prefix),
                epoch_key: key::epoch_key(&prefix),
                prefix,
                version_ttl_secs: version_ttl.as_secs().max(1),
                lookup: Script::new(LOOKUP_LUA),
                release: Script::new(RELEASE_LUA),
                guesses: moka::sync::Cache::new(MAX_GUESSES),
            }),
        }
    }

    /// The key prefix of this store.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The underlying connection manager, for commands of your own; `None`
    /// when the store goes through a bb8 pool (feature `bb8`, see
    /// `RedisStore::pool`).
    pub fn connection(&self) -> Option<ConnectionManager> {
        match &self.conn {
            Conn::Manager(manager) => Some(manager.clone()),
            #[cfg(feature = "bb8")]
            Conn::Pool { .. } => None,
        }
    }

    /// The underlying bb8 pool, for commands of your own; `None` when the
    /// store goes through the connection manager (see
    /// [`connection`](Self::connection)).
    #[cfg(feature = "bb8")]
    pub fn pool(&self) -> Option<bb8::Pool<bb8_redis::RedisConnectionManager>> {
        match &self.conn {
            Conn::Pool { pool, .. } => Some(pool.clone()),
            Conn::Manager(_) => None,
        }
    }

    fn set_version_cmd(&self, pipe: &mut redis::Pipeline, key: &str) {
        pipe.cmd("SET")
            .arg(key)
            .arg(Version::random().as_bytes())
            .arg("EX")
            .arg(self.version_life())
            .ignore();
    }

    /// A version's lifetime in seconds: the TTL plus up to an eighth more,
    /// at random, so versions made together expire apart.
    pub(super) fn version_life(&self) -> u64 {
        let ttl = self.inner.version_ttl_secs;
        ttl + rand::random::<u64>() % (ttl / 8).max(1)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("connection", &self.conn.kind())
            .field("prefix", &self.inner.prefix)
            .field("version_ttl_secs", &self.inner.version_ttl_secs)
            .finish_non_exhaustive()
    }
}

impl Store for RedisStore {
    async fn lookup<'a>(&'a self, key: &'a FragmentedKey) -> Result<Lookup, Error> {
        let tags = key.tags();
        if tags.len() > MAX_TAGS_PER_LOOKUP {
            return Err(Error::protocol(format!(
                "a lookup may carry at most {MAX_TAGS_PER_LOOKUP} tags, got {}",
                tags.len()
            )));
        }
        if let Some(found) = self.guessed_lookup(key).await? {
            return Ok(found);
        }
        // A lookup through the script carries no candidates at first. When a
        // version is missing the script answers `[nil]` without writing, and
        // the lookup runs again with one fresh candidate per version (once
        // per tag lifetime).
        let mut reply = self.invoke_lookup(key, false).await?;
        if reply.len() == 1 {
            reply = self.invoke_lookup(key, true).await?;
        }
        if reply.len() != tags.len() + 2 {
            return Err(Error::protocol(format!(
                "lookup script returned {} values, expected {}",
                reply.len(),
                tags.len() + 2
            )));
        }
        let mut reply = reply.into_iter();
        let entry = entry_of(reply.next())?;
        let versions = reply.map(version_of).collect::<Result<Vec<_>, _>>()?;
        let entry_key = EntryKey::new(&self.inner.entry_prefix, key, &versions);
        // The script gave versions in the second half of their life a whole
        // TTL again.
        self.inner.guesses.insert(
            *key.static_digest(),
            Arc::new(Guess {
                versions: versions.clone().into_boxed_slice(),
                refreshed_at_ms: clock::now_ms(),
            }),
        );
        Ok(Lookup {
            entry_key,
            versions,
            entry,
        })
    }

    async fn put(&self, key: EntryKey, value: Bytes, ttl: Duration) -> Result<(), Error> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return Ok(());
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(key.as_str()).arg(&value[..]).arg("PX").arg(ms);
        self.conn.query(Request::Cmd(&cmd)).await
    }

    async fn delete(&self, key: EntryKey) -> Result<(), Error> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key.as_str());
        self.conn.query(Request::Cmd(&cmd)).await
    }

    async fn bump<'a>(&'a self, tags: &'a [Tag]) -> Result<(), Error> {
        if tags.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for tag in tags {
            self.set_version_cmd(&mut pipe, &key::version_key(&self.inner.prefix, tag));
        }
        self.conn.query(Request::Pipe(&pipe)).await
    }

    async fn epoch(&self) -> Result<Option<Version>, Error> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(&self.inner.epoch_key);
        let value: Value = self.conn.query(Request::Cmd(&cmd)).await?;
        match value {
            Value::Nil => Ok(None),
            other => version_of(other).map(Some),
        }
    }

    async fn bump_epoch(&self) -> Result<(), Error> {
        let mut pipe = redis::pipe();
        self.set_version_cmd(&mut pipe, &self.inner.epoch_key);
        self.conn.query(Request::Pipe(&pipe)).await
    }

    async fn versions<'a>(&'a self, tags: &'a [Tag]) -> Result<Vec<Option<Version>>, Error> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for tag in tags {
            cmd.arg(key::version_key(&self.inner.prefix, tag));
        }
        let reply: Vec<Value> = self.conn.query(Request::Cmd(&cmd)).await?;
        if reply.len() != tags.len() {
            return Err(Error::protocol("MGET returned the wrong number of values"));
        }
        reply
            .into_iter()
            .map(|v| match v {
                Value::Nil => Ok(None),
                other => version_of(other).map(Some),
            })
            .collect()
    }

    /// `{prefix}:l:{entry id}` with a random token.
    fn new_lease(&self, key: &EntryKey) -> Lease {
        let id = key
            .as_str()
            .strip_prefix(self.inner.entry_prefix.as_str())
            .unwrap_or(key.as_str());
        Lease::held(format!("{}:l:{id}", self.inner.prefix), Version::random())
    }

    /// `SET <lease key> <token> NX PX <ttl>`.
    async fn acquire_lease<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> Result<bool, Error> {
        let Some((lease_key, token)) = lease.parts() else {
            return Ok(true);
        };
        let ms = u64::try_from(ttl.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_LEASE_MS);
        let mut cmd = redis::cmd("SET");
        cmd.arg(lease_key)
            .arg(token.as_bytes())
            .arg("NX")
            .arg("PX")
            .arg(ms);
        let reply: Value = self.conn.query(Request::Cmd(&cmd)).await?;
        match reply {
            Value::Okay => Ok(true),
            Value::Nil => Ok(false),
            other => Err(Error::protocol(format!(
                "SET NX answered {other:?}, expected OK or nil"
            ))),
        }
    }

    async fn release_lease(&self, lease: Lease) -> Result<(), Error> {
        let Some((key, token)) = lease.parts() else {
            return Ok(());
        };
        let mut invocation = self.inner.release.prepare_invoke();
        invocation.key(key).arg(token.as_bytes());
        let _: Value = self.conn.query(Request::Script(&invocation)).await?;
        Ok(())
    }

    /// What Redis tells, in one round trip (`INFO memory`, `INFO stats`,
    /// `DBSIZE`): the server's `used_memory`, `maxmemory`, `keyspace_hits`,
    /// `keyspace_misses` and `evicted_keys`, and the keys of the database.
    /// These are the server's and the database's figures, not only this
    /// store's. Entries are not counted (that would scan).
    async fn stats(&self) -> Result<StoreStats, Error> {
        let mut pipe = redis::pipe();
        pipe.cmd("INFO").arg("memory");
        pipe.cmd("INFO").arg("stats");
        pipe.cmd("DBSIZE");
        let reply: Vec<Value> = self.conn.query(Request::Pipe(&pipe)).await?;
        let [memory, stats, dbsize] = reply.as_slice() else {
            return Err(Error::protocol(format!(
                "INFO, INFO, DBSIZE answered {} replies, expected 3",
                reply.len()
            )));
        };
        let (memory, stats) = (info_text(memory)?, info_text(stats)?);
        Ok(StoreStats {
            entries: None,
            versions: None,
            keys: Some(count_of(dbsize)?),
            used_bytes: info_field(memory, "used_memory"),
            max_bytes: info_field(memory, "maxmemory"),
            hits: info_field(stats, "keyspace_hits"),
            misses: info_field(stats, "keyspace_misses"),
            evictions: info_field(stats, "evicted_keys"),
        })
    }
}
