//! [`RedisStoreBuilder`]: the settings of a [`RedisStore`] (URL, key prefix,
//! version TTL, timeouts, `TCP_NODELAY`, optional bb8 pool) and the
//! connection they describe.

use std::{fmt, time::Duration};

use redis::{Client, IntoConnectionInfo, aio::ConnectionManagerConfig, io::tcp::TcpSettings};

use super::{RedisStore, conn::Connector};
use crate::{
    error::Error,
    store::{DEFAULT_PREFIX, DEFAULT_VERSION_TTL},
};

/// Default deadline of one Redis command: 500 ms.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// Default deadline of one connection attempt: 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

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

    /// How long a tag version lives after it was seeded or bumped, plus up to
    /// an eighth more at random (versions made together expire apart). A
    /// version that is read lives on: a lookup through the script gives one
    /// in the second half of its life a whole TTL again, and warm hits do so
    /// in the background once a quarter TTL per key and process. Defaults to
    /// seven days. An expired version only costs misses.
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
}
