//! The connection behind a [`RedisStore`](super::RedisStore): the multiplexed
//! `ConnectionManager` (the default) or a `bb8-redis` pool, and the one helper,
//! [`Conn::query`], through which every command, pipeline and script goes.

#[cfg(feature = "bb8")]
use std::time::Duration;

use redis::{
    Client, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisResult, Script, ScriptInvocation,
    ServerErrorKind,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
};

use crate::error::Error;

/// The pool type [`RedisStore::from_bb8_pool`](super::RedisStore::from_bb8_pool) takes.
#[cfg(feature = "bb8")]
pub(super) type Bb8Pool = bb8::Pool<bb8_redis::RedisConnectionManager>;

/// What one store call sends: a command, a pipeline or a script.
pub(super) enum Request<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
    /// Sent as `EVALSHA`, and loaded again on `NOSCRIPT` (same connection).
    Script(&'a ScriptInvocation<'a>),
    /// An `EVALSHA` built in place (no per-argument buffers, for the hot
    /// lookup), with the script to load on `NOSCRIPT` before one retry.
    EvalSha(&'a Cmd, &'a Script),
}

impl Request<'_> {
    async fn send<T: FromRedisValue>(self, conn: &mut impl ConnectionLike) -> RedisResult<T> {
        match self {
            Self::Cmd(cmd) => cmd.query_async(conn).await,
            Self::Pipe(pipe) => pipe.query_async(conn).await,
            Self::Script(script) => script.invoke_async(conn).await,
            Self::EvalSha(evalsha, script) => match evalsha.query_async(conn).await {
                Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.prepare_invoke().load_async(conn).await?;
                    evalsha.query_async(conn).await
                }
                other => other,
            },
        }
    }
}

/// The connection of one store; cheap to clone (handles on shared state).
#[derive(Clone)]
pub(super) enum Conn {
    /// One multiplexed connection shared by every call; it applies its own
    /// response timeout and reconnects by itself.
    Manager(ConnectionManager),
    /// A pooled connection per call, under `command_timeout`; a connection
    /// that broke is replaced in the background.
    #[cfg(feature = "bb8")]
    Pool {
        pool: Bb8Pool,
        command_timeout: Duration,
    },
}

impl Conn {
    /// Sends `req` and reads its reply: the only way the store talks to Redis.
    pub(super) async fn query<T: FromRedisValue>(&self, req: Request<'_>) -> Result<T, Error> {
        match self {
            // A clone is a handle on the same multiplexed connection.
            Self::Manager(manager) => Ok(req.send(&mut manager.clone()).await?),
            #[cfg(feature = "bb8")]
            Self::Pool {
                pool,
                command_timeout,
            } => {
                // Waits up to the pool's `connection_timeout` for a connection.
                // Owned, so that a broken one can be repaired in a task.
                let mut conn = pool.get_owned().await?;
                // Not `store::deadline`: that one is the caller's, around
                // the whole call (and records it).
                let reply = match tokio::time::timeout(*command_timeout, req.send(&mut *conn)).await
                {
                    Ok(reply) => reply,
                    Err(_) => return Err(Error::timeout()),
                };
                if let Err(err) = &reply
                    && err.is_unrecoverable_error()
                {
                    // bb8-redis never reports a connection as broken (and the
                    // pool sends no `PING` on checkout), so the pool would
                    // hand this one out again and again. Replace it in place,
                    // in the background, as the `ConnectionManager` does; it
                    // goes back to the pool when done (still broken if Redis
                    // is not back, to be tried again by the next call).
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        if let Ok(fresh) = pool.dedicated_connection().await {
                            *conn = fresh;
                        }
                    });
                }
                Ok(reply?)
            }
        }
    }

    /// What this connection is, for `Debug`.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Manager(_) => "ConnectionManager",
            #[cfg(feature = "bb8")]
            Self::Pool { .. } => "bb8 pool",
        }
    }
}

/// A connection to make, as configured by the builder.
pub(super) enum Connector {
    Manager {
        client: Client,
        config: ConnectionManagerConfig,
    },
    #[cfg(feature = "bb8")]
    Pool {
        builder: bb8::Builder<bb8_redis::RedisConnectionManager>,
        manager: bb8_redis::RedisConnectionManager,
        command_timeout: Duration,
    },
}

impl Connector {
    /// Connects now, failing when Redis cannot be reached.
    pub(super) async fn connect(self) -> Result<Conn, Error> {
        match self {
            Self::Manager { client, config } => Ok(Conn::Manager(
                ConnectionManager::new_with_config(client, config).await?,
            )),
            #[cfg(feature = "bb8")]
            Self::Pool {
                builder,
                manager,
                command_timeout,
            } => {
                let pool = builder.build(manager).await?;
                // bb8 opens no connection up front (no `min_idle`): take one
                // now, so that `connect` fails on an unreachable Redis as it
                // does with the manager. It goes back to the pool, warm.
                drop(pool.get().await?);
                Ok(Conn::Pool {
                    pool,
                    command_timeout,
                })
            }
        }
    }

    /// Connects on first use.
    pub(super) fn connect_lazy(self) -> Result<Conn, Error> {
        match self {
            Self::Manager { client, config } => Ok(Conn::Manager(
                ConnectionManager::new_lazy_with_config(client, config)?,
            )),
            #[cfg(feature = "bb8")]
            Self::Pool {
                builder,
                manager,
                command_timeout,
            } => {
                // bb8 spawns its reaper task when the pool is built, which
                // would panic outside a Tokio runtime.
                if let Err(err) = tokio::runtime::Handle::try_current() {
                    return Err(Error::new(crate::error::ErrorKind::Store, err));
                }
                Ok(Conn::Pool {
                    pool: builder.build_unchecked(manager),
                    command_timeout,
                })
            }
        }
    }
}
