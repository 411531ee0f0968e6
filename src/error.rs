//! Error types.

use std::fmt;

use crate::BoxError;

/// An error from a store or from an invalidation.
///
/// Errors on the request path never reach the client: the layer fails open
/// (see the [crate docs](crate#failure-policy)). Errors from
/// [`Invalidator`](crate::Invalidator) calls are returned, because the caller
/// must know when a bump did not happen.
pub struct Error {
    kind: ErrorKind,
    source: Option<BoxError>,
}

/// What kind of [`Error`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The store could not be reached or answered with an error.
    Store,
    /// The store did not answer within its deadline.
    Timeout,
    /// The store was not called: its circuit breaker is open after repeated
    /// failures (see [`TaggedCacheLayer::circuit_breaker`](crate::TaggedCacheLayer::circuit_breaker)).
    Unavailable,
    /// The store answered with bytes this crate does not understand.
    Protocol,
    /// A tag given at run time is not valid (for example an empty name), or
    /// a model is not registered.
    InvalidTag,
    /// A value could not be serialized.
    Encode,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, source: impl Into<BoxError>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// A store that could not be reached or answered with an error;
    /// `source` says what happened. For [`Store`](crate::Store)
    /// implementations.
    pub fn store(source: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Store, source)
    }

    /// A store call that did not finish in time (for a store whose client
    /// has its own deadline; the layer also applies one around every call).
    pub fn timeout() -> Self {
        Self {
            kind: ErrorKind::Timeout,
            source: None,
        }
    }

    pub(crate) fn unavailable() -> Self {
        Self {
            kind: ErrorKind::Unavailable,
            source: None,
        }
    }

    /// A store answer this crate does not understand: corrupt data, a reply
    /// of the wrong shape. `source` says what was wrong.
    pub fn protocol(source: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Protocol, source)
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// `true` when the store did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Store => "cache store error",
            ErrorKind::Timeout => "cache store timed out",
            ErrorKind::Unavailable => "cache store skipped while its circuit breaker is open",
            ErrorKind::Protocol => "unexpected reply from cache store",
            ErrorKind::InvalidTag => "invalid tag",
            ErrorKind::Encode => "value does not serialize",
        };
        match &self.source {
            Some(source) => write!(f, "{what}: {source}"),
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        if err.is_timeout() {
            Self::new(ErrorKind::Timeout, err)
        } else {
            Self::new(ErrorKind::Store, err)
        }
    }
}

/// A bb8 checkout: no connection within the pool's `connection_timeout` is a
/// timeout; a Redis error is mapped as above.
#[cfg(feature = "bb8")]
impl From<bb8::RunError<redis::RedisError>> for Error {
    fn from(err: bb8::RunError<redis::RedisError>) -> Self {
        match err {
            bb8::RunError::TimedOut => Self::new(ErrorKind::Timeout, err),
            bb8::RunError::User(err) => Self::from(err),
        }
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Self::new(ErrorKind::InvalidTag, err)
    }
}

/// A configuration mistake found while building a rule, a tag or a store.
///
/// These are reported when the application starts, never at request time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    msg: String,
}

impl ConfigError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self { msg: msg.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for ConfigError {}
