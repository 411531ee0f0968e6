//! The store conformance suite (DESIGN.md §3-§4).
//!
//! Every check is written once, generic over [`Backend`] (a [`Store`] plus the
//! few ways a test reaches behind its back), and run against both
//! [`MemoryStore`] and [`RedisStore`] (a private `redis-server`, or
//! `REDIS_URL`) by the `conformance!` macro: each check `foo` becomes the tests
//! `foo::memory` and `foo::redis`, and with the `bb8` feature `foo::bb8` (the
//! same Redis store through a `bb8-redis` pool).
//!
//! Then the hazards every tag cache has met (evicted versions, concurrent
//! bumps, concurrent seeding, lookups racing a bump, key concatenation, slow
//! writers), and last the Redis-only checks (one round trip per lookup,
//! `NOSCRIPT`, untrusted version bytes, one `EXEC` per bump, version TTLs).
//!
//! A note on counting round trips: Redis counts the commands a script runs in
//! `INFO commandstats` *and* in `total_commands_processed` (checked against
//! Redis 7.0: one `EVAL` running `GET` and `MGET` adds 3 to both). So "one
//! client command per lookup" is measured with `MONITOR` on a private server,
//! where a script's inner calls are marked `[0 lua]` and client commands carry
//! the client's address.

mod support;

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::task::JoinSet;
use tower_tagged_cache::{
    FragmentedKey, MemoryStore, RedisStore, Store, Tag, Version,
    store::{EntryKey, Lookup},
};

use support::Redis;

/// A TTL that outlives every test.
const LONG: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A store under test plus the ways a test reaches behind its back.
trait Backend: Sized {
    type S: Store;

    async fn start() -> Self;

    fn store(&self) -> &Self::S;

    /// Drops the versions of `tags` as an eviction would, leaving every entry
    /// in place.
    async fn evict_versions(&self, tags: &[Tag]);

    /// Whether the store still holds bytes for `key` (reachable or not).
    async fn holds_entry(&self, key: &EntryKey) -> bool;
}

struct Memory(MemoryStore);

impl Backend for Memory {
    type S = MemoryStore;

    async fn start() -> Self {
        Self(MemoryStore::new())
    }

    fn store(&self) -> &MemoryStore {
        &self.0
    }

    async fn evict_versions(&self, tags: &[Tag]) {
        self.0.forget_versions(tags);
    }

    async fn holds_entry(&self, _key: &EntryKey) -> bool {
        // No per-key peek behind the lookup: the checks that use this store
        // one entry, so any weight left means it is still there.
        self.0.weighted_size() > 0
    }
}

struct RedisBackend {
    redis: Redis,
    store: RedisStore,
}

impl RedisBackend {
    /// The version key of a plain tag, spelled out from the documented layout
    /// (`{prefix}:t:{name}:{instance}`), not from the crate's code.
    fn version_key(&self, tag: &Tag) -> String {
        format!("{}:t:{}:{}", self.redis.prefix, tag.name(), tag.instance())
    }
}

impl RedisBackend {
    /// The Redis store through a bb8 pool of a few connections (so that the
    /// concurrent checks use several).
    #[cfg(feature = "bb8")]
    async fn start_bb8() -> Self {
        let redis = Redis::start();
        let store = redis.bb8_store(4).await;
        assert!(store.pool().is_some() && store.connection().is_none());
        Self { redis, store }
    }
}

impl Backend for RedisBackend {
    type S = RedisStore;

    async fn start() -> Self {
        let redis = Redis::start();
        let store = redis.store().await;
        Self { redis, store }
    }

    fn store(&self) -> &RedisStore {
        &self.store
    }

    async fn evict_versions(&self, tags: &[Tag]) {
        let mut raw = self.redis.raw().await;
        let mut del = redis::cmd("DEL");
        for tag in tags {
            del.arg(self.version_key(tag));
        }
        let removed: usize = del.query_async(&mut raw).await.expect("DEL");
        assert_eq!(
            removed,
            tags.len(),
            "the version keys of {tags:?} are not where the documented layout puts them"
        );
    }

    async fn holds_entry(&self, key: &EntryKey) -> bool {
        let mut raw = self.redis.raw().await;
        redis::cmd("EXISTS")
            .arg(key.as_str())
            .query_async::<bool>(&mut raw)
            .await
            .expect("EXISTS")
    }
}

/// Generates, for each check, a module with one test per store.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$check(Memory::start().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$check(RedisBackend::start().await).await;
            }

            #[cfg(feature = "bb8")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bb8() {
                super::$check(RedisBackend::start_bb8().await).await;
            }
        }
    )*};
}

conformance!(
    cold_lookup_seeds_once,
    put_then_lookup_round_trips,
    delete_removes_one_entry,
    put_ttl_expires,
    bump_misses_only_its_tags,
    bump_of_many_tags_changes_all,
    bump_epoch_misses_everything,
    versions_of_unseen_tag_is_none,
    odd_and_long_instances_stay_distinct,
    evicted_version_never_resurrects_entries,
    concurrent_bumps_all_land,
    concurrent_cold_lookups_agree,
    lookups_racing_a_bump_never_undo_it,
    vary_and_lookalikes_never_share,
    slow_writer_is_unreachable,
);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn tag(s: &str) -> Tag {
    s.parse().expect("valid tag")
}

fn key<'a>(base: &str, tags: impl IntoIterator<Item = &'a Tag>) -> FragmentedKey {
    let mut b = FragmentedKey::builder(base, 1, "");
    for t in tags {
        b.push_tag(t.clone());
    }
    b.finish()
}

/// Entry bytes that are not text: NUL, 0xff, CR/LF, and a label.
fn payload(label: &str) -> Bytes {
    let mut v = vec![0u8, 0xff, b'\r', b'\n', 0x80];
    v.extend_from_slice(label.as_bytes());
    v.push(0);
    Bytes::from(v)
}

async fn lookup<S: Store>(store: &S, key: &FragmentedKey) -> Lookup {
    store.lookup(key).await.expect("lookup")
}

async fn put<S: Store>(store: &S, l: &Lookup, bytes: Bytes) {
    store
        .put(l.entry_key.clone(), bytes, LONG)
        .await
        .expect("put");
}

async fn version_of<S: Store>(store: &S, t: &Tag) -> Option<Version> {
    let mut v = store
        .versions(std::slice::from_ref(t))
        .await
        .expect("versions");
    assert_eq!(v.len(), 1);
    v.pop().unwrap()
}

async fn versions_of<S: Store>(store: &S, tags: &[Tag]) -> Vec<Option<Version>> {
    let v = store.versions(tags).await.expect("versions");
    assert_eq!(v.len(), tags.len(), "one answer per tag");
    v
}

// ---------------------------------------------------------------------------
// Conformance: the Store contract
// ---------------------------------------------------------------------------

/// A cold lookup seeds the epoch and one version per tag (in the key's tag
/// order) and finds nothing; a second lookup sees the same versions and key.
async fn cold_lookup_seeds_once<B: Backend>(b: B) {
    let store = b.store();
    // Given out of order and with a duplicate: the key sorts and de-duplicates.
    let (u, o, d) = (tag("User:42"), tag("Org:7"), tag("Dashboard"));
    let k = key("profile", [&u, &o, &d, &u]);
    assert_eq!(k.tags().len(), 3);

    assert_eq!(versions_of(store, k.tags()).await, vec![None, None, None]);

    let first = lookup(store, &k).await;
    assert!(first.entry.is_none(), "a cold key has no entry");
    assert_eq!(
        first.versions.len(),
        1 + k.tags().len(),
        "epoch + one per tag"
    );
    for v in &first.versions {
        assert!(!v.as_bytes().is_empty(), "a seeded version is never empty");
    }
    let distinct: HashSet<_> = first.versions.iter().collect();
    assert_eq!(
        distinct.len(),
        first.versions.len(),
        "each version is its own fresh token: {:?}",
        first.versions
    );
    // The tag versions are in the key's tag order: the same as versions().
    let seeded: Vec<Option<Version>> = first.versions[1..].iter().cloned().map(Some).collect();
    assert_eq!(versions_of(store, k.tags()).await, seeded);

    let second = lookup(store, &k).await;
    assert_eq!(
        second.versions, first.versions,
        "seeding only happens when absent"
    );
    assert_eq!(second.entry_key, first.entry_key);
    assert!(second.entry.is_none());

    // Another key sharing a tag sees the same version of it, and the same epoch.
    let other = lookup(store, &key("other", [&o])).await;
    assert_eq!(other.versions[0], first.versions[0], "one epoch per store");
    let o_pos = k.tags().iter().position(|t| *t == o).unwrap();
    assert_eq!(other.versions[1], first.versions[1 + o_pos]);
}

/// What is put under a lookup's entry key comes back byte for byte. On Redis
/// this proves the script derives the same entry key as Rust's
/// `FragmentedKey::entry_id`, since the put goes to the Rust-derived key and
/// the lookup reads the script-derived one.
/// `delete` removes exactly the entry named, and deleting again is fine.
async fn delete_removes_one_entry<B: Backend>(b: B) {
    let store = b.store();
    let a = FragmentedKey::builder("del-a", 1, "")
        .tag(tag("User:1"))
        .finish();
    let other = FragmentedKey::builder("del-b", 1, "")
        .tag(tag("User:1"))
        .finish();
    let la = lookup(store, &a).await;
    put(store, &la, payload("a")).await;
    let lo = lookup(store, &other).await;
    put(store, &lo, payload("b")).await;
    store.delete(la.entry_key.clone()).await.expect("delete");
    assert!(lookup(store, &a).await.entry.is_none());
    assert_eq!(lookup(store, &other).await.entry, Some(payload("b")));
    store.delete(la.entry_key).await.expect("deleting twice");
}

async fn put_then_lookup_round_trips<B: Backend>(b: B) {
    let store = b.store();
    let (u, d) = (tag("User:42"), tag("Dashboard"));
    let tagless = FragmentedKey::builder("home", 3, "g1")
        .vary("accept", Some(b"text/html"))
        .finish();
    let tagged = FragmentedKey::builder("profile", 1, "")
        .vary("path", Some(b"/users/42"))
        .tag(u.clone())
        .tag(d.clone())
        .finish();
    let mut big = vec![0u8; 256 * 1024];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    for (k, bytes) in [(&tagless, payload("home")), (&tagged, Bytes::from(big))] {
        let miss = lookup(store, k).await;
        assert!(miss.entry.is_none());
        assert!(
            miss.entry_key
                .as_str()
                .ends_with(&format!(":e:{}", k.entry_id(&miss.versions))),
            "{:?} is not derived from entry_id",
            miss.entry_key
        );
        put(store, &miss, bytes.clone()).await;
        let hit = lookup(store, k).await;
        assert_eq!(hit.versions, miss.versions);
        assert_eq!(hit.entry_key, miss.entry_key);
        assert_eq!(
            hit.entry.as_ref(),
            Some(&bytes),
            "entry bytes are identical"
        );
    }
    // Overwriting the entry replaces it.
    let l = lookup(store, &tagged).await;
    put(store, &l, payload("v2")).await;
    assert_eq!(lookup(store, &tagged).await.entry, Some(payload("v2")));
}

/// An entry lives for its own TTL: a short one is gone after it, a long one
/// put beside it is not.
async fn put_ttl_expires<B: Backend>(b: B) {
    let store = b.store();
    let t = tag("User:42");
    let short_key = key("short", [&t]);
    let long_key = key("long", [&t]);
    let ttl = Duration::from_secs(1);

    let short = lookup(store, &short_key).await;
    store
        .put(short.entry_key.clone(), payload("short"), ttl)
        .await
        .expect("put");
    let long = lookup(store, &long_key).await;
    put(store, &long, payload("long")).await;
    assert_eq!(
        lookup(store, &short_key).await.entry,
        Some(payload("short")),
        "the entry is there before its TTL"
    );

    tokio::time::sleep(ttl + Duration::from_millis(300)).await;

    let after = lookup(store, &short_key).await;
    assert_eq!(after.versions, short.versions, "nothing was bumped");
    assert!(after.entry.is_none(), "the entry outlived its 1 s TTL");
    assert_eq!(lookup(store, &long_key).await.entry, Some(payload("long")));
}

/// `bump` replaces the versions of its tags only: their keys miss, a key on
/// other tags still hits.
async fn bump_misses_only_its_tags<B: Backend>(b: B) {
    let store = b.store();
    let (u42, u43, org) = (tag("User:42"), tag("User:43"), tag("Org:7"));
    let k42 = key("profile", [&u42, &org]);
    let k43 = key("profile", [&u43, &org]);
    let l42 = lookup(store, &k42).await;
    let l43 = lookup(store, &k43).await;
    put(store, &l42, payload("42")).await;
    put(store, &l43, payload("43")).await;
    let before = versions_of(store, &[u42.clone(), u43.clone(), org.clone()]).await;

    store.bump(std::slice::from_ref(&u42)).await.expect("bump");

    let after = versions_of(store, &[u42.clone(), u43.clone(), org.clone()]).await;
    assert!(after[0].is_some(), "a bumped tag has a version");
    assert_ne!(after[0], before[0], "the bumped tag's version changed");
    assert_eq!(after[1], before[1], "an untouched tag keeps its version");
    assert_eq!(after[2], before[2], "an untouched tag keeps its version");

    let m42 = lookup(store, &k42).await;
    assert!(m42.entry.is_none(), "a key on the bumped tag misses");
    assert_ne!(m42.entry_key, l42.entry_key);
    assert_eq!(m42.versions[0], l42.versions[0], "the epoch did not move");
    assert_eq!(lookup(store, &k43).await.entry, Some(payload("43")));
}

/// One `bump` of N tags replaces all N versions.
async fn bump_of_many_tags_changes_all<B: Backend>(b: B) {
    let store = b.store();
    let tags: Vec<Tag> = (0..20).map(|i| tag(&format!("Item:{i}"))).collect();
    let bystander = tag("Item:bystander");
    let all = key("list", &tags);
    let single: Vec<FragmentedKey> = tags.iter().map(|t| key("one", [t])).collect();
    let l = lookup(store, &all).await;
    put(store, &l, payload("all")).await;
    for k in &single {
        let l = lookup(store, k).await;
        put(store, &l, payload("one")).await;
    }
    let kb = key("one", [&bystander]);
    let lb = lookup(store, &kb).await;
    put(store, &lb, payload("bystander")).await;
    let before = versions_of(store, &tags).await;
    assert!(before.iter().all(Option::is_some));

    store.bump(&tags).await.expect("bump");

    let after = versions_of(store, &tags).await;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(a.is_some(), "tag {i} has a version after the bump");
        assert_ne!(a, b, "tag {i} was not bumped");
    }
    assert!(lookup(store, &all).await.entry.is_none());
    for (i, k) in single.iter().enumerate() {
        assert!(
            lookup(store, k).await.entry.is_none(),
            "key of tag {i} hits"
        );
    }
    assert_eq!(lookup(store, &kb).await.entry, Some(payload("bystander")));
    // Bumping nothing is fine and changes nothing.
    store.bump(&[]).await.expect("empty bump");
    assert_eq!(versions_of(store, &tags).await, after);
}

/// `bump_epoch` makes every stored entry miss, tagged or not, without
/// touching tag versions.
async fn bump_epoch_misses_everything<B: Backend>(b: B) {
    let store = b.store();
    let (u, o) = (tag("User:42"), tag("Org:7"));
    let keys = [key("a", []), key("b", [&u]), key("c", [&u, &o])];
    let mut before = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let l = lookup(store, k).await;
        put(store, &l, payload(&i.to_string())).await;
        assert!(lookup(store, k).await.entry.is_some());
        before.push(l);
    }
    let tag_versions = versions_of(store, &[u.clone(), o.clone()]).await;
    let epoch = store.epoch().await.expect("epoch");
    assert_eq!(
        epoch.as_ref(),
        Some(&before[0].versions[0]),
        "epoch() reads the seeded epoch"
    );

    store.bump_epoch().await.expect("bump_epoch");
    let bumped = store.epoch().await.expect("epoch").expect("still there");
    assert_ne!(Some(bumped.clone()), epoch);

    for (k, b) in keys.iter().zip(&before) {
        let l = lookup(store, k).await;
        assert!(l.entry.is_none(), "an entry survived bump_epoch");
        assert_ne!(l.versions[0], b.versions[0], "the epoch changed");
        assert_eq!(l.versions[0], bumped, "lookups use the bumped epoch");
        assert_eq!(l.versions[1..], b.versions[1..], "tag versions untouched");
        assert_ne!(l.entry_key, b.entry_key);
    }
    assert_eq!(versions_of(store, &[u, o]).await, tag_versions);
}

/// `versions` answers `None` for a tag never seen, in the position of that
/// tag, and never seeds; versions are opaque bytes, compared as they are.
async fn versions_of_unseen_tag_is_none<B: Backend>(b: B) {
    let store = b.store();
    assert!(store.versions(&[]).await.expect("versions").is_empty());
    let (seen, unseen, seen2) = (tag("User:1"), tag("User:never"), tag("Dashboard"));
    assert_eq!(version_of(store, &unseen).await, None);
    // versions() does not seed.
    assert_eq!(version_of(store, &unseen).await, None);

    let l = lookup(store, &key("k", [&seen, &seen2])).await;
    let got = versions_of(store, &[seen.clone(), unseen.clone(), seen2.clone()]).await;
    assert_eq!(got[1], None, "an unseen tag between seen ones is None");
    let pos = |t: &Tag| {
        1 + key("k", [&seen, &seen2])
            .tags()
            .iter()
            .position(|x| x == t)
            .unwrap()
    };
    assert_eq!(got[0].as_ref(), Some(&l.versions[pos(&seen)]));
    assert_eq!(got[2].as_ref(), Some(&l.versions[pos(&seen2)]));
    // Opaque: the same bytes whichever way they are read.
    assert_eq!(
        got[0].as_ref().unwrap().as_bytes(),
        l.versions[pos(&seen)].as_bytes()
    );
    assert_eq!(
        Version::from_bytes(got[0].as_ref().unwrap().as_bytes().to_vec()),
        l.versions[pos(&seen)]
    );

    // A bump of an unseen tag gives it a version.
    store
        .bump(std::slice::from_ref(&unseen))
        .await
        .expect("bump");
    assert!(version_of(store, &unseen).await.is_some());
}

/// Instances from requests are untrusted: long ones (10 KB) and ones with odd
/// bytes work, and every one keeps its own version and entry.
async fn odd_and_long_instances_stay_distinct<B: Backend>(b: B) {
    let store = b.store();
    let long = "x".repeat(10 * 1024);
    let long_other_end = format!("{}y", "x".repeat(10 * 1024 - 1));
    let instances: Vec<String> = vec![
        "42".into(),
        long.clone(),
        long_other_end,
        format!("{long}x"),
        " ".into(),
        "a b".into(),
        "\r\n".into(),
        "a\r\nDEL *".into(),
        "{".into(),
        "{x}".into(),
        "}".into(),
        ":".into(),
        "4:2".into(),
        "#".into(),
        "é".into(),
        "日本".into(),
        "🙂".into(),
        "\0".into(),
        String::new(),
        "*".into(),
    ];
    let tags: Vec<Tag> = instances
        .iter()
        .map(|i| Tag::new("User", i).expect("any instance is valid"))
        .collect();
    let keys: Vec<FragmentedKey> = tags.iter().map(|t| key("odd", [t])).collect();
    for (i, k) in keys.iter().enumerate() {
        let l = lookup(store, k).await;
        assert!(l.entry.is_none());
        put(store, &l, payload(&i.to_string())).await;
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            lookup(store, k).await.entry,
            Some(payload(&i.to_string())),
            "instance #{i} lost its entry"
        );
    }
    let versions = versions_of(store, &tags).await;
    let distinct: HashSet<_> = versions
        .iter()
        .map(|v| v.clone().expect("seeded"))
        .collect();
    assert_eq!(distinct.len(), tags.len(), "two instances share a version");

    // Bumping each in turn misses its own key only: no two instances share a
    // version key (a shared one would make a later key miss early).
    for (i, (t, k)) in tags.iter().zip(&keys).enumerate() {
        store.bump(std::slice::from_ref(t)).await.expect("bump");
        assert!(
            lookup(store, k).await.entry.is_none(),
            "bumping instance #{i} ({:?}) did not reach its key",
            instances[i].chars().take(20).collect::<String>()
        );
        for (j, later) in keys.iter().enumerate().skip(i + 1) {
            assert!(
                lookup(store, later).await.entry.is_some(),
                "bumping instance #{i} made instance #{j} miss: they share a version"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Hazards every tag cache has met
// ---------------------------------------------------------------------------

/// A version evicted and re-seeded never brings an old entry back: the store
/// still holds it, but no lookup reaches it.
async fn evicted_version_never_resurrects_entries<B: Backend>(b: B) {
    let store = b.store();
    let t = tag("User:42");
    let k = key("profile", [&t]);
    let old = lookup(store, &k).await;
    put(store, &old, payload("old")).await;
    assert!(lookup(store, &k).await.entry.is_some());

    for round in 0..3 {
        b.evict_versions(std::slice::from_ref(&t)).await;
        assert_eq!(version_of(store, &t).await, None, "round {round}: evicted");

        let l = lookup(store, &k).await;
        assert!(
            l.entry.is_none(),
            "round {round}: an old entry came back after its version was re-seeded"
        );
        assert_ne!(
            l.versions[1], old.versions[1],
            "round {round}: re-seeded to the old value"
        );
        assert_ne!(l.entry_key, old.entry_key);
        assert_eq!(version_of(store, &t).await.as_ref(), Some(&l.versions[1]));
    }
    assert!(
        b.holds_entry(&old.entry_key).await,
        "the old entry is still stored (the check above would be vacuous otherwise)"
    );
}

/// 500 concurrent bumps of one tag all succeed, none is lost to a
/// read-modify-write, and the old version never comes back.
async fn concurrent_bumps_all_land<B: Backend>(b: B) {
    const BUMPS: usize = 500;
    const OBSERVERS: usize = 4;
    let store = b.store().clone();
    let t = tag("User:42");
    let k = key("profile", [&t]);

    let first = lookup(&store, &k).await;
    put(&store, &first, payload("before the bumps")).await;
    let mut pre = HashSet::new();
    for _ in 0..5 {
        pre.insert(lookup(&store, &k).await.versions[1].clone());
        pre.insert(version_of(&store, &t).await.expect("seeded"));
    }
    assert_eq!(pre.len(), 1, "the version moved with no bump: {pre:?}");

    let done = Arc::new(AtomicBool::new(false));
    let mut observers = JoinSet::new();
    for _ in 0..OBSERVERS {
        let (store, k, t, done) = (store.clone(), k.clone(), t.clone(), done.clone());
        observers.spawn(async move {
            let mut seen = Vec::new();
            while !done.load(Ordering::Acquire) && seen.len() < 20_000 {
                let l = store.lookup(&k).await.expect("lookup during bumps");
                seen.push(l.versions[1].clone());
                let v = store
                    .versions(std::slice::from_ref(&t))
                    .await
                    .expect("versions during bumps");
                seen.push(
                    v.into_iter()
                        .next()
                        .flatten()
                        .expect("a bump never leaves the tag without a version"),
                );
                tokio::task::yield_now().await;
            }
            seen
        });
    }

    let mut bumps = JoinSet::new();
    for _ in 0..BUMPS {
        let (store, t) = (store.clone(), t.clone());
        bumps.spawn(async move { store.bump(std::slice::from_ref(&t)).await });
    }
    let mut ok = 0;
    while let Some(r) = bumps.join_next().await {
        r.expect("bump task panicked").expect("bump failed");
        ok += 1;
    }
    assert_eq!(ok, BUMPS);
    done.store(true, Ordering::Release);

    let mut observed = 0;
    while let Some(seen) = observers.join_next().await {
        let seen = seen.expect("observer panicked");
        observed += seen.len();
        // Once an observer saw a bumped version, the old one never returns.
        if let Some(first_new) = seen.iter().position(|v| !pre.contains(v)) {
            assert!(
                seen[first_new..].iter().all(|v| !pre.contains(v)),
                "the pre-bump version came back after a bump was observed"
            );
        }
    }
    assert!(observed > 0, "the observers never ran");

    let last = version_of(&store, &t)
        .await
        .expect("a version after the bumps");
    assert!(
        !pre.contains(&last),
        "after {BUMPS} bumps the version is still a pre-bump one: {last:?}"
    );
    let after = lookup(&store, &k).await;
    assert_eq!(after.versions[1], last, "lookup and versions() agree");
    assert!(
        after.entry.is_none(),
        "an entry stored before the bumps is still served"
    );
}

/// Runs `f(0)`, ..., `f(n - 1)` on `n` OS threads released together, each
/// driving its future on the test's runtime, so the calls truly overlap (a
/// 2-worker runtime alone rarely interleaves the memory store's short
/// critical sections).
async fn all_at_once<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut + Sync,
    Fut: Future<Output = T>,
    T: Send,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(|| {
        let start = std::sync::Barrier::new(n);
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..n)
                .map(|i| {
                    let (f, start, handle) = (&f, &start, &handle);
                    s.spawn(move || {
                        start.wait();
                        handle.block_on(f(i))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("a racing thread panicked"))
                .collect()
        })
    })
}

/// Many requests hitting one cold key at once agree on one seeded version per
/// tag: seeding writes only if absent, so no request derives a key no one
/// else will look under, and none overwrites another's seed.
async fn concurrent_cold_lookups_agree<B: Backend>(b: B) {
    const THREADS: usize = 8;
    let store = b.store();
    for round in 0..40 {
        let tags = [tag(&format!("User:{round}")), tag(&format!("Org:{round}"))];
        let k = key("profile", &tags);
        let seen: HashSet<Vec<Version>> = all_at_once(THREADS, |_| async {
            let mut seen = Vec::new();
            for _ in 0..4 {
                seen.push(store.lookup(&k).await.expect("lookup").versions);
            }
            seen
        })
        .await
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(
            seen.len(),
            1,
            "round {round}: concurrent cold lookups saw different versions: {seen:?}"
        );
        let agreed = seen.into_iter().next().unwrap();
        let now: Vec<Option<Version>> = agreed[1..].iter().cloned().map(Some).collect();
        assert_eq!(versions_of(store, k.tags()).await, now, "round {round}");
    }
}

/// Lookups running while a bump lands never write an old version back: a
/// lookup started after the bump returned misses, and so does every lookup
/// once the racing ones are done.
async fn lookups_racing_a_bump_never_undo_it<B: Backend>(b: B) {
    const READERS: usize = 7;
    let store = b.store();
    let t = tag("User:42");
    let k = key("profile", [&t]);
    for round in 0..40 {
        let old = lookup(store, &k).await;
        put(store, &old, payload("old")).await;
        let results = all_at_once(READERS + 1, |i| {
            let (t, k) = (&t, &k);
            async move {
                if i == READERS {
                    store.bump(std::slice::from_ref(t)).await.expect("bump");
                    Some(store.lookup(k).await.expect("lookup after the bump"))
                } else {
                    for _ in 0..8 {
                        store.lookup(k).await.expect("racing lookup");
                    }
                    None
                }
            }
        })
        .await;
        let right_after = results.into_iter().flatten().next().unwrap();
        assert!(
            right_after.entry.is_none() && right_after.versions[1] != old.versions[1],
            "round {round}: a lookup started after the bump returned saw the old version"
        );
        let settled = lookup(store, &k).await;
        assert_ne!(
            settled.versions[1], old.versions[1],
            "round {round}: a racing lookup wrote the pre-bump version back"
        );
        assert!(
            settled.entry.is_none(),
            "round {round}: the old entry is back"
        );
    }
}

/// Different vary-on values, and inputs that concatenate alike, never share
/// an entry: stored under one, a lookup of the other misses.
async fn vary_and_lookalikes_never_share<B: Backend>(b: B) {
    let store = b.store();
    let user = tag("User:42");
    let vary = |v: Option<&[u8]>| {
        FragmentedKey::builder("profile", 1, "")
            .vary("accept-language", v)
            .tag(user.clone())
            .finish()
    };
    let groups: Vec<(&str, Vec<FragmentedKey>)> = vec![
        (
            "vary values",
            vec![
                vary(Some(b"en")),
                vary(Some(b"fr")),
                vary(None),
                vary(Some(b"")),
            ],
        ),
        (
            "vary name/value split",
            vec![
                FragmentedKey::builder("p", 1, "")
                    .vary("ab", Some(b"c"))
                    .finish(),
                FragmentedKey::builder("p", 1, "")
                    .vary("a", Some(b"bc"))
                    .finish(),
            ],
        ),
        (
            "tag name/instance split",
            vec![
                key("p", [&tag("User_4:2")]),
                key("p", [&tag("User:4_2")]),
                key("p", [&tag("User_4_2")]),
            ],
        ),
        (
            "tag name/instance boundary",
            vec![key("p", [&tag("Ab:c")]), key("p", [&tag("A:bc")])],
        ),
        (
            "two tags vs one",
            vec![
                key("p", [&tag("A:1"), &tag("B:2")]),
                key("p", [&Tag::new("A", "1B:2").unwrap()]),
            ],
        ),
        (
            // Request values bleeding into the next vary part: equal when the
            // parts are joined without lengths.
            "adjacent vary values",
            vec![
                FragmentedKey::builder("p", 1, "")
                    .vary("h1", Some(b"a"))
                    .vary("h2", Some(b"vh2\x01b"))
                    .finish(),
                FragmentedKey::builder("p", 1, "")
                    .vary("h1", Some(b"avh2\x01"))
                    .vary("h2", Some(b"b"))
                    .finish(),
            ],
        ),
        (
            "base/group split",
            vec![
                FragmentedKey::builder("ab", 1, "c").finish(),
                FragmentedKey::builder("a", 1, "bc").finish(),
            ],
        ),
        (
            "key version",
            vec![
                FragmentedKey::builder("p", 1, "").finish(),
                FragmentedKey::builder("p", 2, "").finish(),
            ],
        ),
    ];
    for (what, keys) in &groups {
        // Stored under the first only: every other one misses.
        let l0 = lookup(store, &keys[0]).await;
        put(store, &l0, payload("first")).await;
        for (i, k) in keys.iter().enumerate().skip(1) {
            let l = lookup(store, k).await;
            assert!(l.entry.is_none(), "{what}: key #{i} shares key #0's entry");
            assert_ne!(l.entry_key, l0.entry_key, "{what}: key #{i}");
        }
        // Stored under all: each reads its own.
        for (i, k) in keys.iter().enumerate() {
            let l = lookup(store, k).await;
            put(store, &l, payload(&format!("{what} {i}"))).await;
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                lookup(store, k).await.entry,
                Some(payload(&format!("{what} {i}"))),
                "{what}: key #{i} reads another key's entry"
            );
        }
    }
    // Lookalike tags also keep separate versions.
    let (a, b) = (tag("User_4:2"), tag("User:4_2"));
    let vb = version_of(store, &b).await;
    store.bump(std::slice::from_ref(&a)).await.expect("bump");
    assert_eq!(
        version_of(store, &b).await,
        vb,
        "User_4:2 and User:4_2 share a version"
    );
}

/// A slow request read the versions, a bump landed, then it stored its
/// response under the key it derived first: nobody reaches that response.
async fn slow_writer_is_unreachable<B: Backend>(b: B) {
    let store = b.store();
    let t = tag("User:42");
    let k = key("profile", [&t]);
    let slow = lookup(store, &k).await;
    assert!(slow.entry.is_none());

    store.bump(std::slice::from_ref(&t)).await.expect("bump");
    // The slow request finishes and stores what it computed from old data.
    put(store, &slow, payload("stale")).await;

    let next = lookup(store, &k).await;
    assert!(
        next.entry.is_none(),
        "the slow writer's stale response is served"
    );
    assert_ne!(next.versions[1], slow.versions[1]);
    assert_ne!(next.entry_key, slow.entry_key);
    // The fresh request stores under the new key, which is what is served.
    put(store, &next, payload("fresh")).await;
    assert_eq!(lookup(store, &k).await.entry, Some(payload("fresh")));
}

// ---------------------------------------------------------------------------
// Redis only
// ---------------------------------------------------------------------------

async fn client_addr(conn: &mut impl redis::aio::ConnectionLike) -> String {
    let info: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(conn)
        .await
        .expect("CLIENT INFO");
    info.split_whitespace()
        .find_map(|f| f.strip_prefix("addr="))
        .expect("addr= in CLIENT INFO")
        .to_owned()
}

/// A warm lookup is one client command: an `MGET` of the versions and of
/// the entry under the versions the store last saw. Without that guess (a
/// fresh store handle) it is one `EVALSHA`, whose `MGET` and `GET` run
/// server-side; with a stale guess, the `MGET` and then the `EVALSHA`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lookup_is_one_round_trip() {
    let redis = Redis::start_private();
    let store = redis.store().await;
    let mut conn = store
        .connection()
        .expect("a store built without bb8_pool has a connection manager");
    let store_addr = client_addr(&mut conn).await;
    lookup_is_one_round_trip(&redis, &store, &store_addr, &redis.store().await).await;
}

/// Through a bb8 pool too: checking a connection out sends nothing (no
/// `PING`), so a warm lookup is still one command.
#[cfg(feature = "bb8")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb8_lookup_is_one_round_trip() {
    let redis = Redis::start_private();
    // One connection: the one asked for its address is the one the store uses.
    let store = redis.bb8_store(1).await;
    let pool = store.pool().expect("a bb8 store has a pool");
    let store_addr = client_addr(&mut *pool.get().await.expect("pooled connection")).await;
    lookup_is_one_round_trip(&redis, &store, &store_addr, &redis.bb8_store(1).await).await;
}

/// What one `call` sends to Redis, seen with `MONITOR`: the client commands
/// (whole lines) and the commands scripts ran (names).
async fn watch<T>(redis: &Redis, call: impl Future<Output = T>) -> (T, Vec<String>, Vec<String>) {
    let mut raw = redis.raw().await;
    let mut monitor = support::Monitor::start(redis).await;
    let out = call.await;
    redis::cmd("ECHO")
        .arg("conformance-sentinel")
        .query_async::<String>(&mut raw)
        .await
        .expect("ECHO");
    let seen = monitor.until("conformance-sentinel").await;
    let (script, client): (Vec<String>, Vec<String>) =
        seen.into_iter().partition(|l| l.contains(" [0 lua] "));
    let script = script
        .iter()
        .filter_map(|l| l.split(" [0 lua] ").nth(1))
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_ascii_lowercase)
        .collect();
    (out, client, script)
}

/// The command name and the number of words of a `MONITOR` line.
fn command_of(line: &str) -> (String, usize) {
    let name = support::monitor_client_command(line).unwrap_or_default();
    (name, line.matches("\" \"").count() + 1)
}

/// Watches warm lookups of `store` (whose connection has `store_addr`) and
/// of `fresh`, a second handle on the same keys that has seen nothing yet.
async fn lookup_is_one_round_trip(
    redis: &Redis,
    store: &RedisStore,
    store_addr: &str,
    fresh: &RedisStore,
) {
    let (u, o) = (tag("User:42"), tag("Org:7"));
    let k = key("profile", [&u, &o]);
    // Warm: the script is loaded and the versions are seeded.
    let l = lookup(store, &k).await;
    put(store, &l, payload("warm")).await;

    let (hit, client, script) = watch(redis, lookup(store, &k)).await;
    assert_eq!(hit.entry, Some(payload("warm")));
    assert_eq!(hit.versions, l.versions);
    assert_eq!(hit.entry_key, l.entry_key);
    assert_eq!(client.len(), 1, "one lookup sent {client:#?}");
    // MGET, the epoch, 2 tags and the entry.
    assert_eq!(
        command_of(&client[0]),
        ("mget".to_owned(), 5),
        "{}",
        client[0]
    );
    assert!(
        client[0].contains(&format!("[0 {store_addr}]")),
        "the command came from another connection than the store's: {}",
        client[0]
    );
    assert!(script.is_empty(), "{script:?}");

    // No guess yet: the script, without version candidates.
    let (hit, client, script) = watch(redis, lookup(fresh, &k)).await;
    assert_eq!(hit.entry, Some(payload("warm")));
    assert_eq!(hit.versions, l.versions);
    assert_eq!(client.len(), 1, "one lookup sent {client:#?}");
    // EVALSHA, its SHA, the key count, 3 keys, the entry prefix, the TTL.
    assert_eq!(
        command_of(&client[0]),
        ("evalsha".to_owned(), 8),
        "{}",
        client[0]
    );
    assert!(
        script.iter().any(|c| c == "get"),
        "the entry read is not inside the script: {script:?}"
    );

    // A bump the store did not see: its guess is stale, so the MGET is
    // followed by the script, and the lookup finds the new versions.
    store.bump(std::slice::from_ref(&u)).await.unwrap();
    let (after, client, _) = watch(redis, lookup(fresh, &k)).await;
    assert_eq!(after.entry, None);
    assert_ne!(after.versions, l.versions);
    let names: Vec<String> = client.iter().map(|l| command_of(l).0).collect();
    assert_eq!(names, ["mget", "evalsha"], "{client:#?}");
}

/// After `SCRIPT FLUSH` a lookup reloads the script and still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_noscript_recovery() {
    // Private: SCRIPT FLUSH is server-wide, and the SCRIPT LOAD count must be
    // this store's alone.
    let redis = Redis::start_private();
    let store = redis.store().await;
    let mut raw = redis.raw().await;
    let k = key("profile", [&tag("User:42")]);
    let l = lookup(&store, &k).await;
    put(&store, &l, payload("kept")).await;
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async::<()>(&mut raw)
        .await
        .expect("SCRIPT FLUSH");
    let load = support::command_calls(&mut raw, "script|load").await;

    // A fresh handle has no guess of the versions: it needs the script.
    let store = redis.store().await;
    let after = lookup(&store, &k).await;
    assert_eq!(
        after.entry,
        Some(payload("kept")),
        "lookup after SCRIPT FLUSH"
    );
    assert_eq!(after.versions, l.versions);
    assert_eq!(
        support::command_calls(&mut raw, "script|load").await,
        load + 1,
        "the script was not reloaded (or the lookup did not go through it)"
    );
    // And it keeps working without reloading again.
    let again = lookup(&store, &k).await;
    assert_eq!(again.entry, Some(payload("kept")));
    assert_eq!(
        support::command_calls(&mut raw, "script|load").await,
        load + 1
    );
}

/// Versions are untrusted bytes: a version key holding binary garbage still
/// gives a working lookup, and put/lookup round-trips under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_binary_version_bytes_work() {
    let redis = Redis::start();
    let store = redis.store().await;
    let mut raw = redis.raw().await;
    let t = tag("User:42");
    let k = key("profile", [&t, &tag("Org:7")]);
    let pos = 1 + k.tags().iter().position(|x| *x == t).unwrap();
    let version_key = format!("{}:t:User:42", redis.prefix);
    let seeded = lookup(&store, &k).await;

    let odd: [&[u8]; 5] = [
        b"\xff\x00zz",
        b"",
        b"3:abc",
        b"\r\n$-1\r\n",
        &[0xc3, 0x28, 0xa0, 0xa1],
    ];
    let mut keys_seen = HashSet::new();
    keys_seen.insert(seeded.entry_key.clone());
    for bytes in odd {
        redis::cmd("SET")
            .arg(&version_key)
            .arg(bytes)
            .query_async::<()>(&mut raw)
            .await
            .expect("SET version");
        let l = store.lookup(&k).await.unwrap_or_else(|e| {
            panic!("lookup failed on version bytes {bytes:?}: {e}");
        });
        assert_eq!(l.versions[pos].as_bytes(), bytes, "version read back as is");
        assert_eq!(version_of(&store, &t).await.unwrap().as_bytes(), bytes);
        assert!(l.entry.is_none(), "a changed version must miss ({bytes:?})");
        assert!(keys_seen.insert(l.entry_key.clone()), "entry key reused");
        put(&store, &l, payload("odd version")).await;
        let hit = lookup(&store, &k).await;
        assert_eq!(
            hit.entry,
            Some(payload("odd version")),
            "Lua and Rust disagree on the entry key under version {bytes:?}"
        );
        assert_eq!(hit.entry_key, l.entry_key);
    }

    // Versions that concatenate alike under two tags: ("a", "bc") then
    // ("ab", "c") must give different entry keys, in Lua as in Rust.
    let other_key = format!("{}:t:Org:7", redis.prefix);
    let o_pos = 1 + k.tags().iter().position(|x| *x == tag("Org:7")).unwrap();
    let mut set_versions = async |vu: &[u8], vo: &[u8]| {
        redis::cmd("MSET")
            .arg(&version_key)
            .arg(vu)
            .arg(&other_key)
            .arg(vo)
            .query_async::<()>(&mut raw)
            .await
            .expect("MSET versions");
    };
    let (first, second) = if pos < o_pos {
        ((&b"a"[..], &b"bc"[..]), (&b"ab"[..], &b"c"[..]))
    } else {
        ((&b"bc"[..], &b"a"[..]), (&b"c"[..], &b"ab"[..]))
    };
    set_versions(first.0, first.1).await;
    let l = lookup(&store, &k).await;
    put(&store, &l, payload("a|bc")).await;
    assert_eq!(lookup(&store, &k).await.entry, Some(payload("a|bc")));
    set_versions(second.0, second.1).await;
    let l2 = lookup(&store, &k).await;
    assert!(
        l2.entry.is_none(),
        "versions (a, bc) and (ab, c) share an entry"
    );
    assert_ne!(l2.entry_key, l.entry_key);
}

/// A bump of N tags is one `MULTI`/`EXEC` transaction sent at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_bump_of_many_tags_is_one_exec() {
    const N: usize = 25;
    let redis = Redis::start_private();
    let store = redis.store().await;
    let mut raw = redis.raw().await;
    let tags: Vec<Tag> = (0..N).map(|i| tag(&format!("Item:{i}"))).collect();
    let all = key("list", &tags);
    lookup(&store, &all).await;
    let before = versions_of(&store, &tags).await;

    let exec = support::command_calls(&mut raw, "exec").await;
    let multi = support::command_calls(&mut raw, "multi").await;
    let set = support::command_calls(&mut raw, "set").await;
    let evalsha = support::command_calls(&mut raw, "evalsha").await;

    store.bump(&tags).await.expect("bump");

    assert_eq!(support::command_calls(&mut raw, "exec").await, exec + 1);
    assert_eq!(support::command_calls(&mut raw, "multi").await, multi + 1);
    assert_eq!(
        support::command_calls(&mut raw, "set").await,
        set + N as u64,
        "one SET per tag"
    );
    assert_eq!(support::command_calls(&mut raw, "evalsha").await, evalsha);
    let after = versions_of(&store, &tags).await;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(a.is_some() && a != b, "tag {i} not bumped");
    }
}

/// Version keys carry a TTL when seeded, refreshed by a bump; entries carry
/// the TTL they were put with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_version_keys_carry_a_ttl() {
    let redis = Redis::start();
    let version_ttl = Duration::from_secs(3600);
    let store = RedisStore::builder(redis.url())
        .prefix(redis.prefix.clone())
        .version_ttl(version_ttl)
        .connect()
        .await
        .expect("connect");
    let mut raw = redis.raw().await;
    let version_key = format!("{}:t:User:42", redis.prefix);
    let epoch_key = format!("{}:epoch", redis.prefix);
    let ttl_conn = raw.clone();
    let ttl_of = move |k: String| {
        let mut raw = ttl_conn.clone();
        async move {
            redis::cmd("TTL")
                .arg(k)
                .query_async::<i64>(&mut raw)
                .await
                .expect("TTL")
        }
    };

    let t = tag("User:42");
    let k = key("profile", [&t]);
    let l = lookup(&store, &k).await;
    let max = version_ttl.as_secs() as i64;
    let seeded = ttl_of(version_key.clone()).await;
    assert!(
        seeded > 0 && seeded <= max,
        "a seeded version key has TTL {seeded} (want 1..={max})"
    );
    let epoch = ttl_of(epoch_key).await;
    assert!(epoch > 0 && epoch <= max, "epoch TTL {epoch}");

    // Shorten it behind the store's back; a bump must set it afresh.
    redis::cmd("EXPIRE")
        .arg(&version_key)
        .arg(5)
        .query_async::<()>(&mut raw)
        .await
        .expect("EXPIRE");
    assert!(ttl_of(version_key.clone()).await <= 5);
    store.bump(std::slice::from_ref(&t)).await.expect("bump");
    let bumped = ttl_of(version_key.clone()).await;
    assert!(
        bumped > 5 && bumped <= max,
        "a bump did not refresh the TTL: {bumped}"
    );

    // A version key made persistent gets its TTL back on the next bump too.
    redis::cmd("PERSIST")
        .arg(&version_key)
        .query_async::<()>(&mut raw)
        .await
        .expect("PERSIST");
    store.bump(std::slice::from_ref(&t)).await.expect("bump");
    let again = ttl_of(version_key.clone()).await;
    assert!(again > 0 && again <= max, "TTL after bump: {again}");

    // Entries: PTTL within the put TTL.
    let l2 = lookup(&store, &k).await;
    assert_ne!(l2.entry_key, l.entry_key);
    store
        .put(l2.entry_key.clone(), payload("x"), Duration::from_secs(30))
        .await
        .expect("put");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(l2.entry_key.as_str())
        .query_async(&mut raw)
        .await
        .expect("PTTL");
    assert!(pttl > 0 && pttl <= 30_000, "entry PTTL {pttl}");
}

/// Leases on Redis: one holder at a time, given back only by their holder,
/// kept for the TTL asked (`SET NX PX`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_leases_exclude_and_are_released_by_their_holder_only() {
    let redis = Redis::start();
    let store = redis.store().await;
    let l = lookup(&store, &key("leased", [&tag("User:1")])).await;
    let ttl = Duration::from_secs(30);
    let held = store.new_lease(&l.entry_key);
    let (lease_key, _) = held.parts().expect("a Redis lease lives in Redis");
    assert!(lease_key.starts_with(&format!("{}:l:", store.prefix())));
    assert!(
        store.acquire_lease(&held, ttl).await.unwrap(),
        "a free lease is granted"
    );
    let other = store.new_lease(&l.entry_key);
    assert_eq!(other.parts().map(|p| p.0), Some(lease_key));
    assert_ne!(other, held, "each lease has its own token");
    assert!(!store.acquire_lease(&other, ttl).await.unwrap());
    let mut raw = redis.raw().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(lease_key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 30_000, "PTTL {pttl}");
    // Giving back a lease one does not hold changes nothing.
    store.release_lease(other.clone()).await.unwrap();
    assert!(!store.acquire_lease(&other, ttl).await.unwrap());
    // A stranger's lease under the same key (the first ran out and another
    // took it) is not given back by the first holder.
    let _: () = redis::cmd("SET")
        .arg(lease_key)
        .arg("someone-else")
        .query_async(&mut raw)
        .await
        .unwrap();
    store.release_lease(held.clone()).await.unwrap();
    assert!(!store.acquire_lease(&other, ttl).await.unwrap());
    let _: () = redis::cmd("DEL")
        .arg(lease_key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        store.acquire_lease(&other, ttl).await.unwrap(),
        "free again"
    );
    store.release_lease(other).await.unwrap();
    assert!(store.acquire_lease(&held, ttl).await.unwrap());
    // A TTL past what Redis takes is capped, not an error.
    store.release_lease(held.clone()).await.unwrap();
    assert!(store.acquire_lease(&held, Duration::MAX).await.unwrap());
}

/// The memory store serves one process: every lease is granted.
#[tokio::test]
async fn memory_grants_every_lease() {
    let store = MemoryStore::new();
    let l = lookup(&store, &key("leased", [&tag("User:1")])).await;
    let ttl = Duration::from_secs(30);
    let lease = store.new_lease(&l.entry_key);
    assert_eq!(lease.parts(), None);
    assert!(store.acquire_lease(&lease, ttl).await.unwrap());
    assert!(store.acquire_lease(&lease, ttl).await.unwrap());
}

/// A store with Nagle's algorithm on (`tcp_nodelay(false)`) behaves the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_without_nodelay_round_trips() {
    let redis = Redis::start();
    let store = redis
        .builder()
        .tcp_nodelay(false)
        .connect()
        .await
        .expect("connect");
    assert!(format!("{store:?}").contains("RedisStore"));
    let k = key("nagle", [&tag("User:5")]);
    let l = lookup(&store, &k).await;
    put(&store, &l, payload("with nagle")).await;
    let again = lookup(&store, &k).await;
    assert_eq!(again.entry, Some(payload("with nagle")));
    assert_eq!(again.versions, l.versions);
}
