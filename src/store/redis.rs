use std::{fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use redis::{
    Client, IntoConnectionInfo, Script, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
    io::tcp::TcpSettings,
};

use super::{DEFAULT_PREFIX, DEFAULT_VERSION_TTL, EntryKey, Lookup, Store};
use crate::{
    Error,
    key::{self, FragmentedKey, Tag, Version},
};

/// Reads the versions, seeds missing ones with the client's candidates, builds
/// the entry key exactly as `FragmentedKey::entry_id` does and reads the entry:
/// one round trip.
///
/// KEYS: the epoch key, then one version key per tag.
/// ARGV[1]: `{prefix}:e:{static hex}:`; ARGV[2]: version TTL in seconds;
/// ARGV[3..]: one fresh candidate per key.
const LOOKUP_LUA: &str = r"
local vs = redis.call('MGET', unpack(KEYS))
local parts = {}
for i = 1, #KEYS do
  local v = vs[i]
  if not v then
    v = ARGV[i + 2]
    redis.call('SET', KEYS[i], v, 'EX', ARGV[2])
    vs[i] = v
  end
  parts[i] = #v .. ':' .. v
end
local entry = redis.call('GET', ARGV[1] .. redis.sha1hex(table.concat(parts)))
return {entry, unpack(vs)}
";

/// Default deadline of one Redis command: 500 ms.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// Default deadline of one connection attempt: 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The most tags one lookup may carry (Lua's `unpack` has a stack limit).
const MAX_TAGS_PER_LOOKUP: usize = 1000;

/// A store in Redis, shared by every app server that points at it.
///
/// Talks to Redis through one multiplexed
/// [`ConnectionManager`](redis::aio::ConnectionManager): every request of the
/// process shares one connection, pipelined, which reconnects by itself.
/// `TCP_NODELAY` is set, and connect and command timeouts are explicit.
///
/// A lookup is **one round trip**: a Lua script, called by SHA (`EVALSHA`,
/// loaded again on `NOSCRIPT`), reads the versions, seeds the missing ones,
/// builds the entry key and reads the entry. The script touches a key it
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
    conn: ConnectionManager,
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    entry_prefix: String,
    epoch_key: String,
    version_ttl_secs: u64,
    lookup: Script,
}

/// Configures and connects a [`RedisStore`]. See [`RedisStore::builder`].
pub struct RedisStoreBuilder {
    url: Result<redis::ConnectionInfo, redis::RedisError>,
    prefix: String,
    version_ttl: Duration,
    command_timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("addr", &self.url.as_ref().map(|i| i.addr().to_string()))
            .field("prefix", &self.prefix)
            .field("version_ttl", &self.version_ttl)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
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
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects, failing when Redis cannot be reached now.
    ///
    /// # Errors
    ///
    /// When the URL is invalid or the first connection fails.
    pub async fn connect(self) -> Result<RedisStore, Error> {
        let (client, config, prefix, version_ttl) = self.parts()?;
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(RedisStore::from_manager_with(conn, prefix, version_ttl))
    }

    /// Builds the store without connecting: the connection is made on first
    /// use, so an app can start while Redis is down and serve uncached
    /// until it is back.
    ///
    /// # Errors
    ///
    /// When the URL is invalid.
    pub fn connect_lazy(self) -> Result<RedisStore, Error> {
        let (client, config, prefix, version_ttl) = self.parts()?;
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisStore::from_manager_with(conn, prefix, version_ttl))
    }

    fn parts(self) -> Result<(Client, ConnectionManagerConfig, String, Duration), Error> {
        let info = self.url?;
        let info = info.set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let client = Client::open(info)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.command_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        Ok((client, config, self.prefix, self.version_ttl))
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
        }
    }

    /// Uses a connection manager you configured yourself, with the default
    /// prefix and version TTL.
    pub fn from_manager(conn: ConnectionManager) -> Self {
        Self::from_manager_with(conn, DEFAULT_PREFIX.to_owned(), DEFAULT_VERSION_TTL)
    }

    fn from_manager_with(conn: ConnectionManager, prefix: String, version_ttl: Duration) -> Self {
        Self {
            conn,
            inner: Arc::new(Inner {
                entry_prefix: key::entry_key_prefix(&prefix),
                epoch_key: key::epoch_key(&prefix),
                prefix,
                version_ttl_secs: version_ttl.as_secs().max(1),
                lookup: Script::new(LOOKUP_LUA),
            }),
        }
    }

    /// The key prefix of this store.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The underlying connection, for commands of your own.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
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
            .field("prefix", &self.inner.prefix)
            .field("version_ttl_secs", &self.inner.version_ttl_secs)
            .finish_non_exhaustive()
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
        let mut invocation = self.inner.lookup.prepare_invoke();
        invocation.key(&self.inner.epoch_key);
        for tag in tags {
            invocation.key(key::version_key(&self.inner.prefix, tag));
        }
        let mut entry_arg = self.inner.entry_prefix.clone();
        entry_arg.push_str(&key.static_hex());
        entry_arg.push(':');
        invocation.arg(entry_arg).arg(self.inner.version_ttl_secs);
        for _ in 0..=tags.len() {
            invocation.arg(Version::random().as_bytes());
        }
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = invocation.invoke_async(&mut conn).await?;
        if reply.len() != tags.len() + 2 {
            return Err(Error::protocol(format!(
                "lookup script returned {} values, expected {}",
                reply.len(),
                tags.len() + 2
            )));
        }
        let mut reply = reply.into_iter();
        let entry = match reply.next() {
            Some(Value::BulkString(b)) => Some(Bytes::from(b)),
            Some(Value::Nil) | None => None,
            Some(other) => {
                return Err(Error::protocol(format!(
                    "expected an entry or nil, got {other:?}"
                )));
            }
        };
        let versions = reply.map(version_of).collect::<Result<Vec<_>, _>>()?;
        let entry_key = EntryKey::new(&self.inner.entry_prefix, key, &versions);
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
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(key.as_str())
            .arg(&value[..])
            .arg("PX")
            .arg(ms)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn delete(&self, key: EntryKey) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(key.as_str())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
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
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn epoch(&self) -> Result<Option<Version>, Error> {
        let mut conn = self.conn.clone();
        let value: Value = redis::cmd("GET")
            .arg(&self.inner.epoch_key)
            .query_async(&mut conn)
            .await?;
        match value {
            Value::Nil => Ok(None),
            other => version_of(other).map(Some),
        }
    }

    async fn bump_epoch(&self) -> Result<(), Error> {
        let mut pipe = redis::pipe();
        self.set_version_cmd(&mut pipe, &self.inner.epoch_key);
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn versions<'a>(&'a self, tags: &'a [Tag]) -> Result<Vec<Option<Version>>, Error> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for tag in tags {
            cmd.arg(key::version_key(&self.inner.prefix, tag));
        }
        let mut conn = self.conn.clone();
        let reply: Vec<Value> = cmd.query_async(&mut conn).await?;
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
}
