//! What a store can tell about itself: [`StoreStats`].

/// What a store can tell about itself, as the
/// [admin service](crate::admin)'s `/stats` prints it.
///
/// Every field is optional: `None` means the store does not keep or cannot
/// tell that figure (a store that does not implement [`Store::stats`] knows
/// nothing). Stores differ in what they count, so each field says what the
/// built-in stores put there. Fields may be added: build one with
/// `StoreStats::default()` and set what your store knows.
///
/// ```
/// use tower_tagged_cache::store::StoreStats;
///
/// let mut stats = StoreStats::default();
/// stats.entries = Some(12);
/// assert_eq!(stats.used_bytes, None);
/// ```
///
/// [`Store::stats`]: super::Store::stats
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Stored responses (entries) held, reachable or not. `MemoryStore`:
    /// its entries; `RedisStore`: unknown (counting them would scan).
    pub entries: Option<u64>,
    /// Tag versions held (the epoch included). `MemoryStore` only.
    pub versions: Option<u64>,
    /// Keys in the store's database, of every kind and every owner: entries,
    /// versions, leases and keys of other applications. `RedisStore`:
    /// `DBSIZE`.
    pub keys: Option<u64>,
    /// Bytes in use. `MemoryStore`: what its entries and versions weigh
    /// (their bytes plus what each costs the cache); `RedisStore`: the whole
    /// server's `used_memory`.
    pub used_bytes: Option<u64>,
    /// The byte budget. `MemoryStore`: its `max_bytes`; `RedisStore`:
    /// `maxmemory`, where `0` means no limit.
    pub max_bytes: Option<u64>,
    /// Reads that found what they looked for. `RedisStore`: every key read
    /// of the server that found its key (`keyspace_hits`: versions, entries,
    /// other applications). `MemoryStore`: unknown (the layer's own counters
    /// give hits per rule, without a counter every lookup would write).
    pub hits: Option<u64>,
    /// Reads that found nothing: key reads that missed (`RedisStore`,
    /// `keyspace_misses`).
    pub misses: Option<u64>,
    /// Entries (or keys) evicted to make room. `MemoryStore`: entries
    /// evicted for the byte budget; `RedisStore`: `evicted_keys`.
    pub evictions: Option<u64>,
}
