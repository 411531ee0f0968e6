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

mod registry;

use std::{fmt, future::Future, sync::Arc, time::Duration};

#[doc(inline)]
pub use self::registry::{
    Event, Model, ModelRegistry, Registration, aggregate_tag, list_tag, model_tag,
};

use crate::{
    error::Error,
    key::{IntoTag, Tag, Version},
    store::{DefaultStore, Guarded, Store},
};

/// Default deadline of an invalidation: 1 s.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A cheap-`Clone` handle that bumps tags; `Send + Sync`, no lock needed.
///
/// Get one from [`TaggedCacheLayer::invalidator`](crate::TaggedCacheLayer::invalidator),
/// build one over a store, or take it from the request extensions in a
/// handler behind the layer.
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
pub struct Invalidator<St = DefaultStore> {
    store: Guarded<St>,
    models: Arc<ModelRegistry>,
}

impl<St: Clone> Clone for Invalidator<St> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            models: self.models.clone(),
        }
    }
}

impl<St: Store> Invalidator<St> {
    /// A handle over `store`, with a circuit breaker and a model registry of
    /// its own (shared by its clones).
    pub fn new(store: St) -> Self {
        Self::from_parts(Guarded::new(store, DEFAULT_TIMEOUT), Arc::default())
    }

    /// A handle on a guarded store and a model registry that others share
    /// (the layer's).
    pub(crate) fn from_parts(store: Guarded<St>, models: Arc<ModelRegistry>) -> Self {
        Self { store, models }
    }

    /// The guarded store every call goes through.
    pub(crate) fn guarded(&self) -> &Guarded<St> {
        &self.store
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

    /// Bumps every tag, in one store round trip. When this returns `Ok`, the
    /// bump is in the store: a request that starts afterwards never sees an
    /// entry stored under the old versions.
    ///
    /// # Errors
    ///
    /// When a tag is invalid, or the store failed or timed out: the bump may
    /// not have happened.
    pub async fn invalidate<I>(&self, tags: I) -> Result<(), Error>
    where
        I: IntoIterator,
        I::Item: IntoTag,
    {
        let tags = tags
            .into_iter()
            .map(IntoTag::into_tag)
            .collect::<Result<Vec<Tag>, _>>()?;
        self.store.bump(&tags).await
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
    /// unreachable at once.
    ///
    /// # Errors
    ///
    /// When the store failed or timed out.
    pub async fn bump_epoch(&self) -> Result<(), Error> {
        self.store.bump_epoch().await
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
    /// [`WriteError::Invalidate`] when it succeeded but the bump did not.
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

    /// The store.
    pub fn store(&self) -> &St {
        self.store.store()
    }
}

/// The error of [`Invalidator::write_then_invalidate`] and
/// [`Invalidator::after_commit`].
#[derive(Debug)]
pub enum WriteError<E> {
    /// The write failed; nothing was bumped.
    Write(E),
    /// The write succeeded, the bump failed: cached data may be stale until
    /// its TTL.
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

impl<St: fmt::Debug> fmt::Debug for Invalidator<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invalidator")
            .field("store", &self.store)
            .finish()
    }
}
