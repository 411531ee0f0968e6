//! The store under test, and the optional way behind its back.

use std::{fmt, future::Future, pin::Pin};

use crate::{key::Tag, store::EntryKey, store::Store};

/// A fresh store for one check, and optionally a [`Backdoor`] into it.
///
/// See the [module docs](super) for an example.
pub struct Subject<S> {
    store: S,
    backdoor: Option<Box<dyn ErasedBackdoor>>,
}

impl<S: Store> Subject<S> {
    /// A store with no backdoor: the checks that need one are skipped, and
    /// the report says so.
    pub fn new(store: S) -> Self {
        Self {
            store,
            backdoor: None,
        }
    }

    /// Adds the way behind the store's back that some checks need. It must
    /// reach the same data as the store (for example a second connection to
    /// the same server and key prefix).
    pub fn with_backdoor(mut self, backdoor: impl Backdoor) -> Self {
        self.backdoor = Some(Box::new(backdoor));
        self
    }

    /// The store under test.
    pub fn store(&self) -> &S {
        &self.store
    }

    pub(super) fn backdoor(&self) -> Option<&dyn ErasedBackdoor> {
        self.backdoor.as_deref()
    }
}

impl<S: fmt::Debug> fmt::Debug for Subject<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subject")
            .field("store", &self.store)
            .field("backdoor", &self.backdoor.is_some())
            .finish()
    }
}

/// What a check may do behind a store's back, for the checks that the
/// [`Store`] methods alone cannot make (today: `evicted_version_never_resurrects_entries`).
///
/// `MemoryStore` implements it (pass a clone of the store under test). For
/// Redis, a second connection does: `DEL` of the version keys, `EXISTS` of the
/// entry key.
pub trait Backdoor: Send + Sync + 'static {
    /// Drops the versions of `tags` as an eviction would, leaving every entry
    /// in place.
    fn evict_versions<'a>(&'a self, tags: &'a [Tag]) -> impl Future<Output = ()> + Send + 'a;

    /// Whether the store still holds bytes under `key`, reachable or not.
    fn holds_entry<'a>(&'a self, key: &'a EntryKey) -> impl Future<Output = bool> + Send + 'a;
}

#[cfg(feature = "memory")]
impl Backdoor for crate::store::MemoryStore {
    async fn evict_versions<'a>(&'a self, tags: &'a [Tag]) {
        self.forget_versions(tags);
    }

    async fn holds_entry<'a>(&'a self, key: &'a EntryKey) -> bool {
        crate::store::MemoryStore::holds_entry(self, key)
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Backdoor`] made object-safe, so that [`Subject`] has one type parameter.
pub(super) trait ErasedBackdoor: Send + Sync {
    fn evict_versions<'a>(&'a self, tags: &'a [Tag]) -> BoxFuture<'a, ()>;
    fn holds_entry<'a>(&'a self, key: &'a EntryKey) -> BoxFuture<'a, bool>;
}

impl<B: Backdoor> ErasedBackdoor for B {
    fn evict_versions<'a>(&'a self, tags: &'a [Tag]) -> BoxFuture<'a, ()> {
        Box::pin(Backdoor::evict_versions(self, tags))
    }

    fn holds_entry<'a>(&'a self, key: &'a EntryKey) -> BoxFuture<'a, bool> {
        Box::pin(Backdoor::holds_entry(self, key))
    }
}
