//! Write paths: the [`Invalidator`] handle.
//!
//! Bumping a tag replaces its version in the store; every cached response
//! whose key included the tag is a miss from then on. Nothing is deleted: old
//! entries expire by TTL.
//!
//! # Bump after the commit, not before
//!
//! Bump once the write is durable. A bump that lands before the commit lets a
//! reader that runs in between recompute the *old* data and store it under
//! the *new* version, where it stays until its TTL. Invalidation rules on the
//! layer ([`WriteRule::put`](crate::WriteRule::put) and friends) bump only
//! after the handler answered 2xx; in a handler, call
//! [`Invalidator::invalidate`] after the transaction committed.

#[cfg(any(feature = "outbox-sqlite", feature = "outbox-postgres"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "outbox-sqlite", feature = "outbox-postgres")))
)]
pub mod durable;
mod erased;
mod outbox;
mod registry;

use std::{fmt, future::Future, sync::Arc, time::Duration};

pub(crate) use self::outbox::Outbox;
pub use self::outbox::{DEFAULT_OUTBOX_CAPACITY, Invalidation};
#[doc(inline)]
pub use self::registry::{
    Event, Model, ModelRegistry, Registration, aggregate_tag, list_tag, model_tag,
};

use self::erased::WriteStore;
use crate::{
    error::Error,
    key::{IntoTag, Version},
    store::{Guarded, Store},
};

/// Default deadline of an invalidation (and of a [`TagCache`](crate::TagCache)
/// call): 1 s.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A cheap-`Clone` handle that bumps tags; `Send + Sync`, no lock needed.
///
/// Get one from [`TaggedCacheLayer::invalidator`](crate::TaggedCacheLayer::invalidator)
/// or [`TagCache::invalidator`](crate::TagCache::invalidator), build one over
/// a store with [`new`](Self::new), or take it from the request extensions in
/// a handler behind the layer.
///
/// There is one `Invalidator` type whatever the store: the store's type is
/// erased when the handle is made. A handler behind a layer on any store
/// extracts `axum::Extension<Invalidator>` and finds the layer's handle;
/// there is no store type to get wrong, so no request fails at run time for
/// naming the wrong one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_tagged_cache::Error> {
/// use tower_tagged_cache::{Invalidator, MemoryStore, Tag};
///
/// let invalidator = Invalidator::new(MemoryStore::new());
/// assert_eq!(invalidator.tag_version("User:42").await?, None);
/// invalidator.invalidate(["User:42", "Dashboard"]).await?;
/// let v1 = invalidator.tag_version("User:42").await?.unwrap();
/// invalidator.invalidate([Tag::new("User", 42)?]).await?;
/// assert_ne!(invalidator.tag_version("User:42").await?.unwrap(), v1);
/// # Ok(()) }
/// ```
///
/// Its store calls go through the same deadline and circuit breaker as the
/// layer's when it comes from the layer: while the breaker is open, a bump
/// fails at once with [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable)
/// instead of waiting on a store that is down.
#[derive(Clone)]
pub struct Invalidator {
    /// The guarded store every call goes through, its type erased.
    store: Arc<dyn WriteStore>,
    models: Arc<ModelRegistry>,
}

impl Invalidator {
    /// A handle over `store`, with a circuit breaker and a model registry of
    /// its own (shared by its clones).
    pub fn new<St: Store>(store: St) -> Self {
        Self::from_parts(Guarded::new(store, DEFAULT_TIMEOUT), Arc::default())
    }

    /// A handle on a guarded store (its deadline, and a breaker its clones
    /// share) and a model registry that others share (the layer's, the
    /// value cache's).
    pub(crate) fn from_parts<St: Store>(store: Guarded<St>, models: Arc<ModelRegistry>) -> Self {
        Self {
            store: Arc::new(store),
            models,
        }
    }

    /// The model registry: register model types, then report their
    /// lifecycle events ([`saved`](Self::saved), ...). Shared by every clone
    /// of this handle. See [`ModelRegistry`].
    pub fn models(&self) -> &ModelRegistry {
        &self.models
    }

    /// The deadline of one call. Defaults to 1 s (the layer's store timeout
    /// for handles it makes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.store = self.store.with_timeout(timeout);
        self
    }

    /// Bumps every tag, in one store round trip. Either way, a request
    /// that starts after this returned never sees an entry stored under the
    /// old versions:
    ///
    /// - [applied](Invalidation::is_applied): the bump is in the store;
    /// - [queued](Invalidation::is_queued): the store failed, timed out or
    ///   is skipped by the open circuit breaker. The bump waits in this
    ///   handle's outbox and is re-applied with backoff until it lands
    ///   (a bump that timed out may have landed too: applying it again only
    ///   draws another version). Until then, this process serves nothing
    ///   cached that depends on these tags (`detail=pending-invalidation`).
    ///   Other processes see the bump once it lands; for a bump that must
    ///   survive this process, see the durable outbox in the
    ///   [write paths guide](crate::guide::write_paths).
    ///
    /// # Errors
    ///
    /// When a tag is invalid (nothing is bumped).
    pub async fn invalidate<I>(&self, tags: I) -> Result<Invalidation, Error>
    where
        I: IntoIterator,
        I::Item: IntoTag,
    {
        let tags = crate::key::into_tags(tags)?;
        Ok(self.store.invalidate(&tags).await)
    }

    /// Waits until every bump queued in this handle's outbox before the
    /// call is applied (at once when none is). Bound it with a timeout if
    /// the store may stay away.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use tower_tagged_cache::{Invalidator, MemoryStore};
    ///
    /// let invalidator = Invalidator::new(MemoryStore::new());
    /// invalidator.drained().await;
    /// assert_eq!(invalidator.pending(), 0);
    /// # }
    /// ```
    pub async fn drained(&self) {
        self.store.outbox().drained().await;
    }

    /// Bumps waiting in the outbox: distinct tags, plus one for a pending
    /// epoch bump.
    pub fn pending(&self) -> usize {
        self.store.outbox().pending()
    }

    /// The current version of a tag, `None` when it has none yet.
    ///
    /// # Errors
    ///
    /// When the tag is invalid, or the store failed or timed out.
    pub async fn tag_version(&self, tag: impl IntoTag) -> Result<Option<Version>, Error> {
        let tag = [tag.into_tag()?];
        let mut versions = self.store.versions(&tag).await?;
        Ok(versions.pop().flatten())
    }

    /// Replaces the global epoch: every entry in the store becomes
    /// unreachable at once. Queued like [`invalidate`](Self::invalidate)
    /// when the store does not take it; a pending epoch bump fences every
    /// entry in this process.
    pub async fn bump_epoch(&self) -> Invalidation {
        self.store.invalidate_epoch().await
    }

    /// The current epoch version (`None`: never seeded).
    ///
    /// # Errors
    ///
    /// When the store failed or timed out.
    pub async fn epoch(&self) -> Result<Option<Version>, Error> {
        self.store.epoch().await
    }

    /// Runs `write` (say, a transaction's commit) and bumps `tags` only if it
    /// succeeded: the safe order, because a bump before the commit lets a
    /// reader cache the old data under the new version.
    ///
    /// # Errors
    ///
    /// [`WriteError::Write`] when the write failed (nothing was bumped),
    /// [`WriteError::Invalidate`] when a tag is invalid. A bump the store
    /// does not take is queued, not an error.
    pub async fn write_then_invalidate<T, E, W, I>(
        &self,
        write: W,
        tags: I,
    ) -> Result<T, WriteError<E>>
    where
        W: Future<Output = Result<T, E>>,
        I: IntoIterator,
        I::Item: IntoTag,
    {
        let value = write.await.map_err(WriteError::Write)?;
        self.invalidate(tags)
            .await
            .map_err(WriteError::Invalidate)?;
        Ok(value)
    }

    /// The store, when it is an `St` (`None` when it is another type: the
    /// handle does not carry its store's type).
    ///
    /// ```
    /// use tower_tagged_cache::{Invalidator, MemoryStore};
    ///
    /// let invalidator = Invalidator::new(MemoryStore::new());
    /// let store: &MemoryStore = invalidator.store().expect("a memory store");
    /// # let _ = store;
    /// ```
    pub fn store<St: Store>(&self) -> Option<&St> {
        self.store.as_any().downcast_ref()
    }
}

/// The error of [`Invalidator::write_then_invalidate`] and
/// [`Invalidator::after_commit`].
#[derive(Debug)]
pub enum WriteError<E> {
    /// The write failed; nothing was bumped.
    Write(E),
    /// The write succeeded but nothing was bumped (an invalid tag, a model
    /// that is not registered).
    Invalidate(Error),
}

impl<E: fmt::Display> fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Write(e) => write!(f, "write failed: {e}"),
            WriteError::Invalidate(e) => write!(f, "write succeeded but invalidation failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for WriteError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WriteError::Write(e) => Some(e),
            WriteError::Invalidate(e) => Some(e),
        }
    }
}

impl fmt::Debug for Invalidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invalidator")
            .field("store", &self.store)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_a_handle<T: Clone + Send + Sync + fmt::Debug + 'static>() {}

    #[test]
    fn one_handle_type_whatever_the_store() {
        is_a_handle::<Invalidator>();
    }

    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn the_erased_store_is_still_reachable_and_named() {
        use crate::MemoryStore;

        let invalidator = Invalidator::new(MemoryStore::new()).timeout(Duration::from_millis(250));
        assert!(invalidator.store::<MemoryStore>().is_some());
        #[cfg(feature = "redis")]
        assert!(invalidator.store::<crate::RedisStore>().is_none());
        let debug = format!("{invalidator:?}");
        assert!(debug.contains("MemoryStore"), "{debug}");
        assert!(debug.contains("250ms"), "{debug}");

        // Clones and re-timed handles share the store.
        let other = invalidator.clone().timeout(Duration::from_secs(3));
        invalidator.invalidate(["User:1"]).await.unwrap();
        let v = invalidator.tag_version("User:1").await.unwrap();
        assert!(v.is_some());
        assert_eq!(other.tag_version("User:1").await.unwrap(), v);
        assert_eq!(other.epoch().await.unwrap(), None);
        assert!(other.bump_epoch().await.is_applied());
        assert!(invalidator.epoch().await.unwrap().is_some());
    }
}
