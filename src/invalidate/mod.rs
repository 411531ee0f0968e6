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
//! layer ([`CacheRule::put`](crate::CacheRule::put) and friends) bump only
//! after the handler answered 2xx; in a handler, call
//! [`Invalidator::invalidate`] after the transaction committed.

mod registry;

use std::{fmt, time::Duration};

#[doc(inline)]
pub use self::registry::{
    Event, Model, ModelRegistry, Registration, aggregate_tag, list_tag, model_tag,
};

use crate::{
    Error,
    key::{IntoTag, Tag, Version},
    store::{Op, Store},
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
#[derive(Clone)]
pub struct Invalidator<St> {
    store: St,
    timeout: Duration,
}

impl<St: Store> Invalidator<St> {
    /// A handle over `store`.
    pub fn new(store: St) -> Self {
        Self {
            store,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The deadline of one call. Defaults to 1 s (the layer's store timeout
    /// for handles it makes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
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
        self.deadline(Op::Bump(tags.len()), self.store.bump(&tags))
            .await
    }

    /// The current version of a tag, `None` when it has none yet.
    ///
    /// # Errors
    ///
    /// When the tag is invalid, or the store failed or timed out.
    pub async fn tag_version(&self, tag: impl IntoTag) -> Result<Option<Version>, Error> {
        let tag = [tag.into_tag()?];
        let mut versions = self
            .deadline(Op::Versions, self.store.versions(&tag))
            .await?;
        Ok(versions.pop().flatten())
    }

    /// Replaces the global epoch: every entry in the store becomes
    /// unreachable at once.
    ///
    /// # Errors
    ///
    /// When the store failed or timed out.
    pub async fn bump_epoch(&self) -> Result<(), Error> {
        self.deadline(Op::BumpEpoch, self.store.bump_epoch()).await
    }

    /// The current epoch version (`None`: never seeded).
    ///
    /// # Errors
    ///
    /// When the store failed or timed out.
    pub async fn epoch(&self) -> Result<Option<Version>, Error> {
        self.deadline(Op::Epoch, self.store.epoch()).await
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    async fn deadline<T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        crate::store::deadline(op, self.timeout, call).await
    }
}

impl<St: fmt::Debug> fmt::Debug for Invalidator<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invalidator")
            .field("store", &self.store)
            .field("timeout", &self.timeout)
            .finish()
    }
}
