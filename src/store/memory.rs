use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
    time::Instant,
};

use bytes::Bytes;
use moka::{Expiry, notification::RemovalCause, ops::compute::Op, sync::Cache};

use super::{DEFAULT_PREFIX, DEFAULT_VERSION_TTL, EntryKey, Lookup, Store, StoreStats};
use crate::{
    clock,
    error::Error,
    key::{self, FragmentedKey, Tag, Version},
};

/// Default byte budget of a [`MemoryStore`]'s entries: 64 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Default number of tag versions a [`MemoryStore`] keeps at most (within
/// its byte budget).
const DEFAULT_MAX_VERSIONS: u64 = 1_000_000;

/// What one entry costs beyond its key and encoded response: the cache's
/// node, its hash table slot, its expiry timer and the allocations around
/// them (measured with `cargo bench --bench memory_flood`).
const ENTRY_OVERHEAD: u32 = 512;

/// What one tag version costs beyond its key: the version itself and the
/// cache's bookkeeping, as for entries.
const VERSION_WEIGHT: u32 = 16 + 400;

/// The embedded, in-process store (the default).
///
/// Entries live in a [moka](https://docs.rs/moka) cache, each with its own
/// TTL; tag versions live in a second cache, with the version TTL. Both are
/// bounded by one byte budget, each item weighed with what it really costs
/// (its bytes plus the cache's bookkeeping), versions taking at most a
/// quarter. Evicting a version only costs misses: a re-seeded version is a
/// fresh random token, so no old entry comes back.
///
/// `MemoryStore` is a cheap-`Clone` handle: clones share the same caches, no
/// lock needed. It serves one process; use [`RedisStore`](crate::RedisStore)
/// to share a cache across app servers.
///
/// ```
/// use tower_tagged_cache::MemoryStore;
///
/// let store = MemoryStore::builder().max_bytes(16 * 1024 * 1024).build();
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Cache<String, Stored>,
    versions: Cache<String, Held>,
    version_ttl_ms: u64,
    epoch_key: String,
    prefix: String,
    entry_prefix: String,
    max_bytes: u64,
    /// Entries evicted for the byte budget.
    evictions: Arc<AtomicU64>,
}

/// A tag version and when it expires on the crate's clock. A version that
/// is read stays alive (see [`MemoryStore::version`]); versions seeded or
/// bumped together expire apart (see [`version_expiry`]).
#[derive(Clone)]
struct Held {
    version: Version,
    expires_at_ms: u64,
}

/// When a version seeded or bumped (or refreshed by a read) at `now_ms`
/// expires: its TTL plus up to an eighth more, at random, so versions
/// created in the same instant (a deploy, a cold start) never expire in
/// the same instant.
pub(crate) fn version_expiry(now_ms: u64, ttl_ms: u64) -> u64 {
    let jitter = rand::random::<u64>() % (ttl_ms / 8).max(1);
    now_ms.saturating_add(ttl_ms).saturating_add(jitter)
}

#[derive(Clone)]
struct Stored {
    bytes: Bytes,
    ttl: Duration,
    /// When the entry stops being served, on the crate's clock (which a
    /// paused tokio clock moves); moka evicts it around then on its own.
    expires_at_ms: u64,
}

struct PerEntryTtl;

impl Expiry<String, Stored> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, value: &Stored, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        value: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Builds a [`MemoryStore`]. See [`MemoryStore::builder`].
#[derive(Debug, Clone)]
pub struct MemoryStoreBuilder {
    max_bytes: u64,
    max_versions: u64,
    version_ttl: Duration,
    prefix: String,
}

impl MemoryStoreBuilder {
    /// The byte budget of the store: entries and tag versions together,
    /// each weighed with what it costs the cache beyond its bytes (so a
    /// flood of small responses or of distinct URLs stays near the budget).
    /// Versions get at most a quarter of it. Defaults to 64 MiB.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// How many tag versions to keep at most; they also stay within a
    /// quarter of [`max_bytes`](Self::max_bytes), whichever is smaller.
    /// Evicting a version only costs misses. Defaults to one million.
    pub fn max_versions(mut self, max_versions: u64) -> Self {
        self.max_versions = max_versions;
        self
    }

    /// How long a tag version lives after it was seeded, bumped or last
    /// read (plus up to an eighth more, at random, so that versions made
    /// together never expire together). A version read in the second half
    /// of its life lives a whole TTL again: hot tags never expire. Defaults
    /// to seven days.
    pub fn version_ttl(mut self, ttl: Duration) -> Self {
        self.version_ttl = ttl;
        self
    }

    /// The key prefix (only visible in entry keys). Defaults to `ttc`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Builds the store.
    pub fn build(self) -> MemoryStore {
        let evictions = Arc::new(AtomicU64::new(0));
        let evicted = evictions.clone();
        let versions_budget =
            (self.max_bytes / 4).min(self.max_versions.saturating_mul(u64::from(VERSION_WEIGHT)));
        let entries_budget = self.max_bytes - versions_budget;
        let entries = Cache::builder()
            .max_capacity(entries_budget)
            .weigher(|k: &String, v: &Stored| {
                u32::try_from(k.len() + v.bytes.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    evicted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        // Bounded by count; expiry is checked on read, on the crate's clock.
        let versions = Cache::builder()
            .max_capacity(versions_budget)
            .weigher(|k: &String, _: &Held| {
                u32::try_from(k.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(VERSION_WEIGHT)
            })
            .build();
        MemoryStore {
            inner: Arc::new(Inner {
                entries,
                versions,
                version_ttl_ms: u64::try_from(self.version_ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
                epoch_key: key::epoch_key(&self.prefix),
                entry_prefix: key::entry_key_prefix(&self.prefix),
                prefix: self.prefix,
                max_bytes: self.max_bytes,
                evictions,
            }),
        }
    }
}

impl MemoryStore {
    /// A store with the default limits (64 MiB of entries).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts configuring a store.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            max_bytes: DEFAULT_MAX_BYTES,
            max_versions: DEFAULT_MAX_VERSIONS,
            version_ttl: DEFAULT_VERSION_TTL,
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }

    /// Drops the versions of these tags, as eviction would. Entries stored
    /// under them become unreachable; the next lookup seeds fresh versions.
    /// (The conformance suite's backdoor, `testing::conformance::Backdoor`.)
    #[cfg(feature = "testing")]
    pub(crate) fn forget_versions(&self, tags: &[Tag]) {
        for tag in tags {
            self.inner
                .versions
                .invalidate(&key::version_key(&self.inner.prefix, tag));
        }
    }

    /// Whether an entry is stored under `key`, reachable or not.
    #[cfg(feature = "testing")]
    pub(crate) fn holds_entry(&self, key: &EntryKey) -> bool {
        self.inner.entries.contains_key(key.as_str())
    }

    /// What entries and versions weigh now, against
    /// [`max_bytes`](MemoryStoreBuilder::max_bytes): their bytes plus what
    /// each costs the cache (moka applies pending writes lazily; this runs
    /// them first).
    pub fn weighted_size(&self) -> u64 {
        self.inner.entries.run_pending_tasks();
        self.inner.versions.run_pending_tasks();
        self.inner.entries.weighted_size() + self.inner.versions.weighted_size()
    }

    /// The live version under `key`. A version read in the second half of
    /// its life is given a whole TTL again (one write per key per half TTL),
    /// so tags that are read stay alive.
    fn version(&self, key: &str, now: u64) -> Option<Version> {
        let held = self.inner.versions.get(key)?;
        let left = held
            .expires_at_ms
            .checked_sub(now)
            .filter(|left| *left > 0)?;
        if left < self.inner.version_ttl_ms / 2 {
            self.renew(key, &held.version, now);
        }
        Some(held.version)
    }

    /// Gives `version` a whole TTL again, if it is still the one under
    /// `key`: a bump since the read must never be overwritten by the old
    /// version (its entries would come back). Every write of a version goes
    /// through moka's per-key compute, so this check and a bump never
    /// interleave.
    fn renew(&self, key: &str, version: &Version, now_ms: u64) {
        let expires_at_ms = version_expiry(now_ms, self.inner.version_ttl_ms);
        self.inner
            .versions
            .entry_by_ref(key)
            .and_compute_with(|held| match held {
                Some(held) if held.value().version == *version => Op::Put(Held {
                    version: version.clone(),
                    expires_at_ms,
                }),
                _ => Op::Nop,
            });
    }

    /// Puts a fresh version under `key` (a bump).
    fn hold(&self, key: String, version: Version, now_ms: u64) {
        let expires_at_ms = version_expiry(now_ms, self.inner.version_ttl_ms);
        self.inner.versions.entry(key).and_compute_with(|_| {
            Op::Put(Held {
                version,
                expires_at_ms,
            })
        });
    }

    /// The version under `key`, seeded when missing or expired. The read
    /// comes first because it is the common case and cheaper than an entry
    /// operation (no owned key, no insertion lock).
    fn seeded(&self, key: &str, now: u64) -> Version {
        if let Some(v) = self.version(key, now) {
            return v;
        }
        let ttl_ms = self.inner.version_ttl_ms;
        let result = self
            .inner
            .versions
            .entry_by_ref(key)
            .and_compute_with(|held| {
                let now = clock::now_ms();
                match held {
                    // Seeded (or bumped) by someone else meanwhile: kept.
                    Some(held) if held.value().expires_at_ms > now => Op::Nop,
                    _ => Op::Put(Held {
                        version: Version::random(),
                        expires_at_ms: version_expiry(now, ttl_ms),
                    }),
                }
            });
        match result.into_entry() {
            Some(entry) => entry.into_value().version,
            // Not reachable (the closure keeps or puts a value); a fresh
            // version is safe whatever happened.
            None => Version::random(),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("prefix", &self.inner.prefix)
            .field("entries", &self.inner.entries.entry_count())
            .field("versions", &self.inner.versions.entry_count())
            .finish()
    }
}

impl Store for MemoryStore {
    async fn lookup<'a>(&'a self, key: &'a FragmentedKey) -> Result<Lookup, Error> {
        let mut versions = Vec::with_capacity(key.tags().len() + 1);
        // One clock read for the whole lookup.
        let now = clock::now_ms();
        versions.push(self.seeded(&self.inner.epoch_key, now));
        // One buffer for every version key of this lookup.
        let mut buf = String::with_capacity(128);
        for tag in key.tags() {
            buf.clear();
            key::write_version_key(&mut buf, &self.inner.prefix, tag);
            versions.push(self.seeded(&buf, now));
        }
        let entry_key = EntryKey::new(&self.inner.entry_prefix, key, &versions);
        let entry = self
            .inner
            .entries
            .get(entry_key.as_str())
            .filter(|stored| now < stored.expires_at_ms)
            .map(|stored| stored.bytes);
        Ok(Lookup {
            entry_key,
            versions,
            entry,
        })
    }

    async fn put(&self, key: EntryKey, value: Bytes, ttl: Duration) -> Result<(), Error> {
        if !ttl.is_zero() {
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            let expires_at_ms = clock::now_ms().saturating_add(ttl_ms);
            self.inner.entries.insert(
                key.0,
                Stored {
                    bytes: value,
                    ttl,
                    expires_at_ms,
                },
            );
        }
        Ok(())
    }

    async fn delete(&self, key: EntryKey) -> Result<(), Error> {
        self.inner.entries.invalidate(key.as_str());
        Ok(())
    }

    async fn bump<'a>(&'a self, tags: &'a [Tag]) -> Result<(), Error> {
        let now = clock::now_ms();
        for tag in tags {
            let key = key::version_key(&self.inner.prefix, tag);
            self.hold(key, Version::random(), now);
        }
        Ok(())
    }

    async fn epoch(&self) -> Result<Option<Version>, Error> {
        Ok(self.version(&self.inner.epoch_key, clock::now_ms()))
    }

    async fn bump_epoch(&self) -> Result<(), Error> {
        let key = self.inner.epoch_key.clone();
        self.hold(key, Version::random(), clock::now_ms());
        Ok(())
    }

    async fn versions<'a>(&'a self, tags: &'a [Tag]) -> Result<Vec<Option<Version>>, Error> {
        let now = clock::now_ms();
        Ok(tags
            .iter()
            .map(|tag| self.version(&key::version_key(&self.inner.prefix, tag), now))
            .collect())
    }

    /// Entries, versions, the bytes held and the byte budget, and entries
    /// evicted for the budget. Hits and misses are not kept here (a shared
    /// counter written by every lookup would cost each hit): the layer's
    /// own counters give them, per rule.
    async fn stats(&self) -> Result<StoreStats, Error> {
        let inner = &self.inner;
        inner.entries.run_pending_tasks();
        inner.versions.run_pending_tasks();
        Ok(StoreStats {
            entries: Some(inner.entries.entry_count()),
            versions: Some(inner.versions.entry_count()),
            keys: None,
            used_bytes: Some(inner.entries.weighted_size() + inner.versions.weighted_size()),
            max_bytes: Some(inner.max_bytes),
            hits: None,
            misses: None,
            evictions: Some(inner.evictions.load(Ordering::Relaxed)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stats_count_entries_bytes_and_evictions() {
        let store = MemoryStore::builder().max_bytes(4096).build();
        let empty = store.stats().await.unwrap();
        assert_eq!(empty.entries, Some(0));
        assert_eq!(empty.used_bytes, Some(0));
        assert_eq!(empty.max_bytes, Some(4096));
        assert_eq!(empty.keys, None, "the memory store has no keyspace");

        let key = FragmentedKey::builder("r", 1, "")
            .tag(Tag::new("User", 1).unwrap())
            .finish();
        let miss = store.lookup(&key).await.unwrap();
        let bytes = Bytes::from_static(b"0123456789");
        // The entry, the epoch and User:1, each with what it costs the cache.
        let weight = miss.entry_key.as_str().len()
            + bytes.len()
            + ENTRY_OVERHEAD as usize
            + key::epoch_key(DEFAULT_PREFIX).len()
            + key::version_key(DEFAULT_PREFIX, &Tag::new("User", 1).unwrap()).len()
            + 2 * VERSION_WEIGHT as usize;
        store
            .put(miss.entry_key, bytes, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(store.lookup(&key).await.unwrap().entry.is_some());
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.entries, Some(1));
        assert_eq!(stats.versions, Some(2), "the epoch and User:1");
        assert_eq!(stats.used_bytes, Some(weight as u64));
        assert_eq!(
            (stats.hits, stats.misses),
            (None, None),
            "the layer counts them"
        );
        assert_eq!(stats.evictions, Some(0));

        // Entries past the byte budget are evicted, and counted.
        for i in 0..20 {
            let key = EntryKey(format!("ttc:e:{i}"));
            let value = Bytes::from(vec![0; 1024]);
            store
                .put(key, value, Duration::from_secs(60))
                .await
                .unwrap();
        }
        let stats = store.stats().await.unwrap();
        assert!(stats.used_bytes.unwrap() <= 4096, "{stats:?}");
        assert!(stats.evictions.unwrap() > 0, "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_version_that_is_read_stays_alive() {
        let store = MemoryStore::builder()
            .version_ttl(Duration::from_secs(800))
            .build();
        let (read, idle) = (Tag::new("Read", 1).unwrap(), Tag::new("Idle", 1).unwrap());
        store.bump(&[read.clone(), idle.clone()]).await.unwrap();
        let v = store.versions(std::slice::from_ref(&read)).await.unwrap();
        assert!(v[0].is_some());
        // Read every 300 s for almost four TTLs (jitter included).
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(300)).await;
            assert_eq!(
                store.versions(std::slice::from_ref(&read)).await.unwrap(),
                v
            );
        }
        // The tag nobody read is gone: the next lookup seeds a new version.
        assert_eq!(store.versions(&[idle]).await.unwrap(), [None]);
    }

    #[tokio::test(start_paused = true)]
    async fn versions_made_together_expire_apart() {
        let store = MemoryStore::builder()
            .version_ttl(Duration::from_secs(800))
            .build();
        let tags: Vec<Tag> = (0..200).map(|i| Tag::new("T", i).unwrap()).collect();
        store.bump(&tags).await.unwrap();
        // Past the TTL, inside the jitter (up to an eighth, 100 s): some have
        // expired and some not, where a fixed TTL would expire all at once.
        tokio::time::advance(Duration::from_secs(850)).await;
        let gone = store
            .versions(&tags)
            .await
            .unwrap()
            .iter()
            .filter(|v| v.is_none())
            .count();
        assert!(
            gone > 0 && gone < tags.len(),
            "{gone} of {} expired",
            tags.len()
        );
        // Past the TTL and the whole jitter, every one has expired.
        tokio::time::advance(Duration::from_secs(1000)).await;
        let left = store.versions(&tags).await.unwrap();
        assert!(left.iter().all(Option::is_none));
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_never_undoes_a_bump() {
        let store = MemoryStore::builder()
            .version_ttl(Duration::from_secs(800))
            .build();
        let tag = Tag::new("User", 1).unwrap();
        let key = key::version_key(DEFAULT_PREFIX, &tag);
        store.bump(std::slice::from_ref(&tag)).await.unwrap();
        let old = store.versions(std::slice::from_ref(&tag)).await.unwrap()[0]
            .clone()
            .unwrap();
        // A read in the second half of the version's life, interleaved with
        // a bump: the read saw `old`, the bump wrote a new one, then the
        // read renews what it saw.
        tokio::time::advance(Duration::from_secs(500)).await;
        store.bump(std::slice::from_ref(&tag)).await.unwrap();
        let bumped = store.versions(std::slice::from_ref(&tag)).await.unwrap()[0]
            .clone()
            .unwrap();
        assert_ne!(bumped, old);
        store.renew(&key, &old, clock::now_ms());
        let now = store.versions(std::slice::from_ref(&tag)).await.unwrap();
        assert_eq!(now[0].as_ref(), Some(&bumped), "the bump was undone");
        // Renewing the current version does renew it.
        store.renew(&key, &bumped, clock::now_ms() + 700_000);
        tokio::time::advance(Duration::from_secs(1000)).await;
        let later = store.versions(std::slice::from_ref(&tag)).await.unwrap();
        assert_eq!(later[0].as_ref(), Some(&bumped));
    }
}
