use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use redis::{
    Client, IntoConnectionInfo, Script, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
    io::tcp::TcpSettings,
};

use self::conn::{Conn, Connector, Request};
use super::{DEFAULT_PREFIX, DEFAULT_VERSION_TTL, EntryKey, Lease, Lookup, Store};
use crate::{
    Error,
    key::{self, FragmentedKey, Tag, Version},
};

mod conn;

/// Reads the versions, seeds missing ones with the client's candidates, builds
/// the entry key exactly as `FragmentedKey::entry_id` does and reads the entry:
/// one round trip.
///
/// KEYS: the epoch key, then one version key per tag.
/// ARGV[1]: `{prefix}:e:{static hex}:`; ARGV[2]: version TTL in seconds;
/// ARGV[3..]: one fresh candidate per key, or none: then a missing version
/// makes the script answer `[nil]` without writing anything.
///
/// `16:` is spelt out for the usual 16-byte versions, because turning a Lua
/// number into a string goes through `printf` and costs more than the rest
/// of the loop (measured with `redis-benchmark -P 4`: 15% more lookups/s).
const LOOKUP_LUA: &str = r"
local vs = redis.call('MGET', unpack(KEYS))
local parts = {}
for i = 1, #KEYS do
  local v = vs[i]
  if not v then
    v = ARGV[i + 2]
    if not v then
      return {false}
    end
    redis.call('SET', KEYS[i], v, 'EX', ARGV[2])
    vs[i] = v
  end
  local n = #v
  if n == 16 then
    parts[2 * i - 1] = '16:'
  else
    parts[2 * i - 1] = n .. ':'
  end
  parts[2 * i] = v
end
local entry = redis.call('GET', ARGV[1] .. redis.sha1hex(table.concat(parts)))
return {entry, unpack(vs)}
";

/// Deletes a lease only while it still holds the caller's token.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Default deadline of one Redis command: 500 ms.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// Default deadline of one connection attempt: 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest lease the store takes: one hour.
const MAX_LEASE_MS: u64 = 3_600_000;

/// How many static keys the store remembers the last versions of (about
/// 100 bytes each, plus 16 per tag).
const MAX_GUESSES: u64 = 50_000;

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
    /// warm lookup.
    guesses: moka::sync::Cache<[u8; 32], Arc<[Version]>>,
}

/// Configures and connects a [`RedisStore`]. See [`RedisStore::builder`].
pub struct RedisStoreBuilder {
    url: Result<redis::ConnectionInfo, redis::RedisError>,
    prefix: String,
    version_ttl: Duration,
    command_timeout: Duration,
    connect_timeout: Duration,
    nodelay: bool,
    #[cfg(feature = "bb8")]
    pool_size: Option<u32>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RedisStoreBuilder");
        d.field("addr", &self.url.as_ref().map(|i| i.addr().to_string()))
            .field("prefix", &self.prefix)
            .field("version_ttl", &self.version_ttl)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("tcp_nodelay", &self.nodelay);
        #[cfg(feature = "bb8")]
        d.field("bb8_pool", &self.pool_size);
        d.finish()
    }
}

impl RedisStoreBuilder {
    /// The prefix of every key this store writes. Defaults to `ttc`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a tag version lives after it was seeded or bumped. Defaults
    /// to seven days. An expired version only costs misses.
    pub fn version_ttl(mut self, ttl: Duration) -> Self {
        self.version_ttl = ttl;
        self
    }

    /// The deadline of one command. Defaults to 500 ms.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The deadline of one connection attempt. Defaults to 1 s.
    ///
    /// With a bb8 pool (feature `bb8`), also how long a call waits for a
    /// pooled connection (bb8's `connection_timeout`).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets `TCP_NODELAY` on the connection (the default: `true`). With it
    /// every command leaves at once, which keeps a lone request's latency
    /// down. Without it (Nagle's algorithm) the kernel holds a small write
    /// while an earlier one is unacknowledged, so commands of concurrent
    /// requests on the one multiplexed connection leave together: more
    /// throughput under load (the load bench measured about 10% more hits/s),
    /// at the price of a delay when a write waits on a delayed ACK, for
    /// instance a large entry written in several segments.
    pub fn tcp_nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Talks to Redis through a `bb8-redis` pool of at most `max_size`
    /// connections instead of the multiplexed `ConnectionManager` (see
    /// [`RedisStore`] for why the manager is the default).
    ///
    /// The pool keeps a lookup at one command: it sends no `PING` when a
    /// connection is checked out (bb8's `test_on_check_out` is off). Instead,
    /// a connection whose command failed as broken (Redis restarted, say) is
    /// replaced in the background, as the manager does. A call waits up to the
    /// [connect timeout](Self::connect_timeout) for a connection, and the
    /// [command timeout](Self::command_timeout) for the reply (bb8-redis
    /// opens its connections with the `redis` crate's own 500 ms response
    /// timeout, so a longer command timeout has no effect). The connections
    /// have `TCP_NODELAY` set, as the manager's. A `max_size` of 0 is taken
    /// as 1.
    ///
    /// Defaults to off: one multiplexed `ConnectionManager`.
    #[cfg(feature = "bb8")]
    pub fn bb8_pool(mut self, max_size: u32) -> Self {
        self.pool_size = Some(max_size.max(1));
        self
    }

    /// Connects, failing when Redis cannot be reached now.
    ///
    /// # Errors
    ///
    /// When the URL is invalid or the first connection fails.
    pub async fn connect(self) -> Result<RedisStore, Error> {
        let (connector, prefix, version_ttl) = self.parts()?;
        let conn = connector.connect().await?;
        Ok(RedisStore::with_conn(conn, prefix, version_ttl))
    }

    /// Builds the store without connecting: the connection is made on first
    /// use, so an app can start while Redis is down and serve uncached
    /// until it is back.
    ///
    /// # Errors
    ///
    /// When the URL is invalid; with a bb8 pool (feature `bb8`), also when
    /// called outside a Tokio runtime (bb8 spawns a task when the pool is
    /// built).
    pub fn connect_lazy(self) -> Result<RedisStore, Error> {
        let (connector, prefix, version_ttl) = self.parts()?;
        let conn = connector.connect_lazy()?;
        Ok(RedisStore::with_conn(conn, prefix, version_ttl))
    }

    fn parts(self) -> Result<(Connector, String, Duration), Error> {
        let info = self.url?;
        let info = info.set_tcp_settings(TcpSettings::default().set_nodelay(self.nodelay));
        #[cfg(feature = "bb8")]
        if let Some(max_size) = self.pool_size {
            // bb8-redis opens its connections from a `Client` built from this
            // `ConnectionInfo`, so they get the same TCP settings.
            let manager = bb8_redis::RedisConnectionManager::new(info)?;
            let builder = bb8::Pool::builder()
                .max_size(max_size)
                // bb8 panics on a zero timeout.
                .connection_timeout(self.connect_timeout.max(Duration::from_millis(1)))
                .test_on_check_out(false);
            let connector = Connector::Pool {
                builder,
                manager,
                command_timeout: self.command_timeout,
            };
            return Ok((connector, self.prefix, self.version_ttl));
        }
        let client = Client::open(info)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connector = Connector::Manager { client, config };
        Ok((connector, self.prefix, self.version_ttl))
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`) with the default settings.
    ///
    /// # Errors
    ///
    /// When the URL is invalid or Redis cannot be reached now.
    pub async fn connect(url: impl IntoConnectionInfo) -> Result<Self, Error> {
        Self::builder(url).connect().await
    }

    /// Starts configuring a store for `url`.
    pub fn builder(url: impl IntoConnectionInfo) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into_connection_info(),
            prefix: DEFAULT_PREFIX.to_owned(),
            version_ttl: DEFAULT_VERSION_TTL,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            nodelay: true,
            #[cfg(feature = "bb8")]
            pool_size: None,
        }
    }

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
            .arg(self.inner.version_ttl_secs)
            .ignore();
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

impl RedisStore {
    /// The warm lookup: one `MGET` of the versions and of the entry under
    /// the versions this key was last seen with. `MGET` reads all its keys
    /// at one instant, so when the versions read equal the guess the entry
    /// read is the one under the current versions, as the script would have
    /// found. `None` (the script decides) when there is no guess, a version
    /// is missing, or one has changed.
    async fn guessed_lookup(&self, key: &FragmentedKey) -> Result<Option<Lookup>, Error> {
        let tags = key.tags();
        let Some(guess) = self.inner.guesses.get(key.static_digest()) else {
            return Ok(None);
        };
        if guess.len() != tags.len() + 1 {
            return Ok(None);
        }
        let entry_key = EntryKey::new(&self.inner.entry_prefix, key, &guess);
        let mut cmd = redis::Cmd::with_capacity(tags.len() + 3, 64 * (tags.len() + 2) + 128);
        cmd.arg("MGET");
        self.push_version_keys(&mut cmd, tags);
        cmd.arg(entry_key.as_str());
        let reply: Vec<Value> = self.conn.query(Request::Cmd(&cmd)).await?;
        if reply.len() != tags.len() + 2 {
            return Err(Error::protocol(format!(
                "MGET returned {} values, expected {}",
                reply.len(),
                tags.len() + 2
            )));
        }
        let mut reply = reply.into_iter();
        let mut versions = Vec::with_capacity(guess.len());
        for expected in guess.iter() {
            match reply.next() {
                Some(Value::Nil) | None => return Ok(None),
                Some(v) => {
                    let v = version_of(v)?;
                    if v != *expected {
                        return Ok(None);
                    }
                    versions.push(v);
                }
            }
        }
        let entry = entry_of(reply.next())?;
        Ok(Some(Lookup {
            entry_key,
            versions,
            entry,
        }))
    }

    /// Appends the epoch key and the version key of each tag to `cmd`,
    /// through one buffer (`arg` copies it).
    fn push_version_keys(&self, cmd: &mut redis::Cmd, tags: &[Tag]) {
        cmd.arg(self.inner.epoch_key.as_str());
        let mut buf = String::with_capacity(128);
        for tag in tags {
            buf.clear();
            key::write_version_key(&mut buf, &self.inner.prefix, tag);
            cmd.arg(buf.as_str());
        }
    }

    /// Runs the lookup script once, with fresh version candidates or
    /// without (then a missing version answers `[nil]`).
    async fn invoke_lookup(
        &self,
        key: &FragmentedKey,
        with_candidates: bool,
    ) -> Result<Vec<Value>, Error> {
        let tags = key.tags();
        let with = if with_candidates { tags.len() + 1 } else { 0 };
        let mut cmd = redis::Cmd::with_capacity(6 + tags.len() + with, 128 * (tags.len() + 2));
        cmd.arg("EVALSHA")
            .arg(self.inner.lookup.get_hash())
            .arg(tags.len() + 1);
        self.push_version_keys(&mut cmd, tags);
        let mut buf = String::with_capacity(self.inner.entry_prefix.len() + 65);
        buf.push_str(&self.inner.entry_prefix);
        key::push_hex(&mut buf, key.static_digest());
        buf.push(':');
        cmd.arg(buf.as_str()).arg(self.inner.version_ttl_secs);
        for _ in 0..with {
            cmd.arg(Version::random().as_bytes());
        }
        self.conn
            .query(Request::EvalSha(&cmd, &self.inner.lookup))
            .await
    }
}

/// Reads the entry of a lookup reply: bytes or nil.
fn entry_of(value: Option<Value>) -> Result<Option<Bytes>, Error> {
    match value {
        Some(Value::BulkString(b)) => Ok(Some(Bytes::from(b))),
        Some(Value::Nil) | None => Ok(None),
        Some(other) => Err(Error::protocol(format!(
            "expected an entry or nil, got {other:?}"
        ))),
    }
}

/// Reads one version from a script reply; versions are untrusted bytes.
fn version_of(value: Value) -> Result<Version, Error> {
    match value {
        Value::BulkString(b) => Ok(Version::from_bytes(b)),
        Value::SimpleString(s) => Ok(Version::from_bytes(s)),
        other => Err(Error::protocol(format!(
            "expected a version string, got {other:?}"
        ))),
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
        self.inner
            .guesses
            .insert(*key.static_digest(), Arc::from(versions.as_slice()));
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
}
