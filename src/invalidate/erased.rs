//! The store behind an [`Invalidator`](super::Invalidator), with its type
//! erased: one handle type whatever the store, so that a handler cannot ask
//! its request extensions for an invalidator of the wrong store.
//!
//! [`Store`] returns `impl Future` and is not object safe; [`WriteStore`] is
//! the object-safe subset an invalidator needs, implemented for
//! [`Guarded`] (so every call keeps its deadline and circuit breaker), with
//! boxed futures.

use std::{any::Any, fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use super::outbox::{Invalidation, Outbox};
use crate::{
    error::Error,
    key::{Tag, Version},
    store::{Guarded, Store},
};

/// A boxed `Send` future borrowing the store for `'a`.
pub(super) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an [`Invalidator`](super::Invalidator) calls on its guarded store.
pub(super) trait WriteStore: Send + Sync + 'static {
    /// [`Store::bump`], guarded, queued in the outbox when it fails.
    fn invalidate<'a>(&'a self, tags: &'a [Tag]) -> BoxFuture<'a, Invalidation>;

    /// [`Store::versions`], guarded.
    fn versions<'a>(
        &'a self,
        tags: &'a [Tag],
    ) -> BoxFuture<'a, Result<Vec<Option<Version>>, Error>>;

    /// [`Store::epoch`], guarded.
    fn epoch(&self) -> BoxFuture<'_, Result<Option<Version>, Error>>;

    /// [`Store::bump_epoch`], guarded, queued in the outbox when it fails.
    fn invalidate_epoch(&self) -> BoxFuture<'_, Invalidation>;

    /// The outbox of failed bumps.
    fn outbox(&self) -> &Arc<Outbox>;

    /// The same store and circuit breaker under another deadline.
    fn with_timeout(&self, timeout: Duration) -> Arc<dyn WriteStore>;

    /// The store itself, to downcast to its type.
    fn as_any(&self) -> &dyn Any;

    /// The store's type name, the deadline and the breaker.
    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<St: Store> WriteStore for Guarded<St> {
    fn invalidate<'a>(&'a self, tags: &'a [Tag]) -> BoxFuture<'a, Invalidation> {
        Box::pin(Guarded::invalidate(self, tags))
    }

    fn versions<'a>(
        &'a self,
        tags: &'a [Tag],
    ) -> BoxFuture<'a, Result<Vec<Option<Version>>, Error>> {
        Box::pin(Guarded::versions(self, tags))
    }

    fn epoch(&self) -> BoxFuture<'_, Result<Option<Version>, Error>> {
        Box::pin(Guarded::epoch(self))
    }

    fn invalidate_epoch(&self) -> BoxFuture<'_, Invalidation> {
        Box::pin(Guarded::invalidate_epoch(self))
    }

    fn outbox(&self) -> &Arc<Outbox> {
        Guarded::outbox(self)
    }

    fn with_timeout(&self, timeout: Duration) -> Arc<dyn WriteStore> {
        Arc::new(self.clone().with_timeout(timeout))
    }

    fn as_any(&self) -> &dyn Any {
        self.store()
    }

    fn debug(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("store", &std::any::type_name::<St>())
            .field("timeout", &self.timeout())
            .field("breaker", self.breaker())
            .finish()
    }
}

impl fmt::Debug for dyn WriteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.debug(f)
    }
}
