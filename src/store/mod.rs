//! Where tag versions and stored responses live.
//!
//! A [`Store`] keeps two kinds of data: the version of each tag (and of the
//! global epoch), and entries (encoded responses) under entry keys derived
//! from those versions. [`MemoryStore`] is the embedded default;
//! [`RedisStore`] shares one cache across a fleet of app servers.
//!
//! Every store passes the same conformance suite (`testing::conformance`,
//! feature `testing`):
//!
//! - [`lookup`](Store::lookup) returns the current versions, seeding missing
//!   ones with fresh random tokens (only if still absent), and the entry under
//!   the derived key, if any. On Redis this is one round trip: one `MGET`
//!   when the versions are the ones this process saw last, else one script
//!   call (one more round trip after a bump elsewhere, or to seed).
//! - [`put`](Store::put) stores entry bytes under a key with a TTL.
//! - [`bump`](Store::bump) replaces the versions of N tags at once (one round
//!   trip on Redis) with fresh random tokens: no read-modify-write, no lost
//!   update, and an evicted version can never come back as an old value.
//! - [`versions`](Store::versions) reads versions without seeding.
//! - [`delete`](Store::delete) removes one entry.
//! - [`stats`](Store::stats) says what the store can tell about itself
//!   (entries, memory, hits and misses), for the
//!   [admin service](crate::admin); a store that does not implement it
//!   knows nothing.
//!
//! # Implementing a store
//!
//! A store outside this crate implements [`Store`] with what this module and
//! [`key`](crate::key) export: [`EntryKey::new`] derives the entry key from
//! the versions a lookup read, [`Version::random`] makes the fresh tokens
//! that seeding and bumping write, [`Tag::storage_id`] names a tag's version
//! in a bounded, injective way, [`Lease`] answers the lease methods, and
//! [`Error::store`], [`Error::timeout`] and [`Error::protocol`] report
//! failures. A store that wraps another forwards every method, the lease
//! methods included. The `testing` feature's conformance suite
//! (`tower_tagged_cache::testing::conformance`) checks the result; the
//! `custom_store` example runs it on a store written outside the crate.

use std::{fmt, future::Future, time::Duration};

use bytes::Bytes;

pub(crate) use crate::telemetry::Op;
use crate::{
    error::Error,
    key::{FragmentedKey, Tag, Version},
};

pub(crate) mod checksum;
pub(crate) mod entry;
mod guard;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod stats;
pub(crate) mod variants;

pub(crate) use self::guard::Guarded;
#[cfg(feature = "memory")]
#[doc(inline)]
pub use self::memory::{DEFAULT_MAX_BYTES, MemoryStore, MemoryStoreBuilder};
#[cfg(feature = "redis")]
#[doc(inline)]
pub use self::redis::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, RedisStore, RedisStoreBuilder,
};
#[doc(inline)]
pub use self::stats::StoreStats;

/// The store the handles' type parameter defaults to: [`MemoryStore`], so
/// that `TaggedCacheLayer` or `TagCache` alone name the embedded store's.
/// Other stores are named: `TaggedCacheLayer<RedisStore>`.
/// [`Invalidator`](crate::Invalidator) has no store parameter: it is one
/// type whatever the store.
///
/// ```
/// use tower_tagged_cache::{Invalidator, MemoryStore, TaggedCacheLayer};
///
/// let layer: TaggedCacheLayer = TaggedCacheLayer::new(MemoryStore::new());
/// let invalidator: Invalidator = layer.invalidator();
/// # let _ = invalidator;
/// ```
#[cfg(feature = "memory")]
pub type DefaultStore = MemoryStore;

/// Without the `memory` feature there is no default store: name one.
#[cfg(not(feature = "memory"))]
pub type DefaultStore = NoDefaultStore;

/// Stands where no default store exists (the `memory` feature is off); it
/// is not a [`Store`], so a handle that names no store does not compile.
#[cfg(not(feature = "memory"))]
#[derive(Debug, Clone, Copy)]
pub enum NoDefaultStore {}

/// Default prefix of every store key.
pub const DEFAULT_PREFIX: &str = "ttc";

/// Default lifetime of a tag version: seven days (plus up to an eighth, at
/// random), given again by every bump and kept alive by reads.
pub const DEFAULT_VERSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The full store key of one entry, as derived by a [`Store::lookup`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EntryKey(String);

impl EntryKey {
    /// The key of `key`'s entry under `versions` (the epoch version, then
    /// one per tag in [`FragmentedKey::tags`] order, as in
    /// [`Lookup::versions`]): `prefix` followed by
    /// [`key.entry_id(versions)`](FragmentedKey::entry_id). The built-in
    /// stores use the prefix `{store prefix}:e:`.
    ///
    /// ```
    /// use tower_tagged_cache::{Tag, key::{FragmentedKey, Version}, store::EntryKey};
    ///
    /// let key = FragmentedKey::builder("user", 1, "").tag(Tag::new("User", 42)?).finish();
    /// let versions = [Version::from_bytes("e"), Version::from_bytes("u")];
    /// let entry = EntryKey::new("app:e:", &key, &versions);
    /// assert_eq!(entry.as_str(), format!("app:e:{}", key.entry_id(&versions)));
    /// # Ok::<(), tower_tagged_cache::ConfigError>(())
    /// ```
    pub fn new(prefix: &str, key: &FragmentedKey, versions: &[Version]) -> Self {
        let mut s = String::with_capacity(prefix.len() + 105);
        s.push_str(prefix);
        key.write_entry_id(&mut s, versions);
        Self(s)
    }

    /// The key as the store writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as an owned `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryKey({})", self.0)
    }
}

/// What a [`Store::lookup`] found.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The key the response must be stored under: derived from the versions
    /// below, never re-derived later.
    pub entry_key: EntryKey,
    /// The epoch version followed by one version per tag, in the key's tag
    /// order.
    pub versions: Vec<Version>,
    /// The stored bytes, if there was an entry.
    pub entry: Option<Bytes>,
}

/// A place for tag versions and entries.
///
/// Implementations are cheap-`Clone` handles (clones share the same data, no
/// lock needed by callers) and never panic on bad bytes from a server.
pub trait Store: Clone + Send + Sync + 'static {
    /// Reads (seeding when missing) the versions of the epoch and of the key's
    /// tags, derives the entry key and reads the entry.
    fn lookup<'a>(
        &'a self,
        key: &'a FragmentedKey,
    ) -> impl Future<Output = Result<Lookup, Error>> + Send + 'a;

    /// Stores an entry for `ttl`.
    fn put(
        &self,
        key: EntryKey,
        value: Bytes,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_;

    /// Removes an entry (a no-op when there is none).
    fn delete(&self, key: EntryKey) -> impl Future<Output = Result<(), Error>> + Send + '_;

    /// Replaces the versions of `tags` with fresh random ones, all at once.
    fn bump<'a>(&'a self, tags: &'a [Tag]) -> impl Future<Output = Result<(), Error>> + Send + 'a;

    /// The current epoch version (`None`: never seeded).
    fn epoch(&self) -> impl Future<Output = Result<Option<Version>, Error>> + Send + '_;

    /// Replaces the epoch: every entry of this store becomes unreachable.
    fn bump_epoch(&self) -> impl Future<Output = Result<(), Error>> + Send + '_;

    /// Reads the versions of `tags` (`None` where a tag has none yet).
    fn versions<'a>(
        &'a self,
        tags: &'a [Tag],
    ) -> impl Future<Output = Result<Vec<Option<Version>>, Error>> + Send + 'a;

    /// A new lease on computing the entry under `key`, for fleet-wide
    /// single-flight ([`CacheRule::lease`](crate::CacheRule::lease)): the
    /// store key it will live under and a fresh token naming its holder. It
    /// is not taken yet: that is [`acquire_lease`](Self::acquire_lease).
    /// Choosing the token first lets a caller whose acquire timed out (it
    /// may have reached the store) still give the lease back.
    ///
    /// A store that only one process uses has nothing to coordinate: the
    /// defaults grant every lease (in-process single-flight already makes one
    /// inner call per key). [`RedisStore`] keeps leases with `SET NX PX`. A
    /// store that wraps another must forward these three methods, or fleet
    /// single-flight silently stops coordinating.
    fn new_lease(&self, key: &EntryKey) -> Lease {
        let _ = key;
        Lease::local()
    }

    /// Takes `lease` for `ttl` if no one holds it: `true` when this caller
    /// holds it now, `false` while another does.
    fn acquire_lease<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Error>> + Send + 'a {
        let _ = (lease, ttl);
        std::future::ready(Ok(true))
    }

    /// Gives a lease back early, if its token still holds it (a lease that
    /// ran out and was taken by another stays theirs).
    fn release_lease(&self, lease: Lease) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        let _ = lease;
        std::future::ready(Ok(()))
    }

    /// What the store can tell about itself (entries, memory, hits and
    /// misses), for the [admin service](crate::admin)'s `/stats`; never
    /// called on the request path. The default knows nothing (every field
    /// `None`). A store that wraps another forwards it.
    fn stats(&self) -> impl Future<Output = Result<StoreStats, Error>> + Send + '_ {
        std::future::ready(Ok(StoreStats::default()))
    }
}

/// A lease on computing one entry (see [`Store::new_lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The store key of the lease and the holder's token; `None` for a
    /// lease that needs no release.
    held: Option<(String, Version)>,
}

impl Lease {
    /// A lease that coordinates nothing (a single-process store).
    pub fn local() -> Self {
        Self { held: None }
    }

    /// A lease kept under `key` with this holder's `token`.
    pub fn held(key: String, token: Version) -> Self {
        Self {
            held: Some((key, token)),
        }
    }

    /// The store key and token, if the lease lives in the store.
    pub fn parts(&self) -> Option<(&str, &Version)> {
        self.held.as_ref().map(|(k, t)| (k.as_str(), t))
    }
}
