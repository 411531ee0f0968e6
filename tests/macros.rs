//! `#[tagged_cache]`: behaviour on the memory store, and compile errors.
#![cfg(feature = "macros")]

use std::{
    sync::{
        LazyLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tower_tagged_cache::{MemoryStore, TagCache, tagged_cache};

static CACHE: LazyLock<TagCache<MemoryStore>> = LazyLock::new(|| TagCache::new(MemoryStore::new()));

fn cache() -> &'static TagCache<MemoryStore> {
    &CACHE
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Profile {
    id: u64,
    lang: String,
    call: usize,
}

static PROFILE_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A doc comment and attributes are kept.
#[tagged_cache(
    cache = CACHE,
    ttl = 60,
    tags = ["User:{user_id}", "Dashboard"],
    vary_on = [lang],
    name = "profile",
    version = 2,
)]
#[allow(clippy::needless_pass_by_value)]
pub async fn profile(user_id: u64, lang: String) -> Profile {
    let call = PROFILE_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    Profile {
        id: user_id,
        lang,
        call,
    }
}

fn calls(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

#[tokio::test]
async fn caches_per_tag_args_and_vary_on_and_invalidates() {
    let first = profile(1, "en".into()).await;
    assert_eq!(first.call, 1);
    assert_eq!(
        profile(1, "en".into()).await,
        first,
        "served from the cache"
    );
    assert_eq!(calls(&PROFILE_CALLS), 1);

    // Another vary_on value: another key.
    let fr = profile(1, "fr".into()).await;
    assert_eq!((fr.lang.as_str(), fr.call), ("fr", 2));
    assert_eq!(profile(1, "fr".into()).await, fr);
    // Another tag argument: another key.
    let other = profile(2, "en".into()).await;
    assert_eq!((other.id, other.call), (2, 3));
    assert_eq!(calls(&PROFILE_CALLS), 3);

    // Bumping User:1 reaches both languages of user 1, not user 2.
    CACHE.invalidator().invalidate(["User:1"]).await.unwrap();
    assert_eq!(profile(1, "en".into()).await.call, 4);
    assert_eq!(profile(1, "fr".into()).await.call, 5);
    assert_eq!(profile(2, "en".into()).await, other);
    assert_eq!(profile(1, "en".into()).await.call, 4);

    // A constant tag reaches them all.
    CACHE.invalidator().invalidate(["Dashboard"]).await.unwrap();
    assert_eq!(profile(2, "en".into()).await.call, 6);
    assert_eq!(calls(&PROFILE_CALLS), 6);
}

static KEYED_CALLS: AtomicUsize = AtomicUsize::new(0);

#[tagged_cache(cache = cache(), ttl = 60, tags = ["Item:{id}"], name = "item")]
async fn item_v1(id: u32) -> (u32, usize) {
    (id, KEYED_CALLS.fetch_add(1, Ordering::SeqCst))
}

#[tagged_cache(cache = cache(), ttl = 60, tags = ["Item:{id}"], name = "item")]
async fn item_v1_again(id: u32) -> (u32, usize) {
    (id, KEYED_CALLS.fetch_add(1, Ordering::SeqCst))
}

#[tagged_cache(cache = cache(), ttl = 60, tags = ["Item:{id}"], name = "item", version = 2)]
async fn item_v2(id: u32) -> (u32, usize) {
    (id, KEYED_CALLS.fetch_add(1, Ordering::SeqCst))
}

#[tagged_cache(cache = cache(), ttl = 60, tags = ["Item:{id}"], name = "item2")]
async fn item_renamed(id: u32) -> (u32, usize) {
    (id, KEYED_CALLS.fetch_add(1, Ordering::SeqCst))
}

#[tagged_cache(cache = cache(), ttl = 60, tags = ["Item:{id}"], name = "item", group = "g")]
async fn item_grouped(id: u32) -> (u32, usize) {
    (id, KEYED_CALLS.fetch_add(1, Ordering::SeqCst))
}

#[tokio::test]
async fn name_version_and_group_make_the_key() {
    assert_eq!(item_v1(7).await, (7, 0));
    // Same name, version, group and tags: the same key, whatever the function.
    assert_eq!(item_v1_again(7).await, (7, 0));
    assert_eq!(item_v2(7).await, (7, 1));
    assert_eq!(item_v2(7).await, (7, 1));
    assert_eq!(item_renamed(7).await, (7, 2));
    assert_eq!(item_grouped(7).await, (7, 3));
    assert_eq!(item_v1(7).await, (7, 0));
    assert_eq!(calls(&KEYED_CALLS), 4);
}

static DEFAULT_CALLS: AtomicUsize = AtomicUsize::new(0);

mod a {
    use super::*;

    #[tagged_cache(cache = CACHE, ttl = std::time::Duration::from_secs(60))]
    pub(crate) async fn same_name() -> usize {
        DEFAULT_CALLS.fetch_add(1, Ordering::SeqCst)
    }
}

mod b {
    use super::*;

    #[tagged_cache(cache = CACHE, ttl = 60)]
    pub(crate) async fn same_name() -> usize {
        DEFAULT_CALLS.fetch_add(1, Ordering::SeqCst) + 100
    }
}

#[tokio::test]
async fn default_name_is_the_function_path() {
    assert_eq!(a::same_name().await, 0);
    assert_eq!(b::same_name().await, 101);
    assert_eq!(a::same_name().await, 0);
    assert_eq!(b::same_name().await, 101);
}

#[derive(Debug)]
struct Failure;

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failure")
    }
}

fn parse(s: &str) -> Result<u32, Failure> {
    s.parse().map_err(|_| Failure)
}

static GENERIC_CALLS: AtomicUsize = AtomicUsize::new(0);

// Generics, `where`, references, `?` and early `return` in the body, a
// placeholder amid literal text and literal braces.
#[tagged_cache(
    cache = &*CACHE,
    ttl = Duration::from_secs(30),
    tags = ["Stats:daily_{who}_{day}", "Lit:{{x}}_{day}", "Plain:{{y}}"],
    vary_on = [input],
)]
async fn parsed<W>(who: &W, day: u8, input: &str) -> Result<u32, String>
where
    W: std::fmt::Display + ?Sized,
{
    GENERIC_CALLS.fetch_add(1, Ordering::SeqCst);
    if input.is_empty() {
        return Err(format!("{who}: empty"));
    }
    let n = parse(input).map_err(|e| e.to_string())?;
    Ok(n + u32::from(day))
}

#[tokio::test]
async fn generic_functions_with_references_and_early_returns() {
    assert_eq!(parsed("ada", 1, "41").await, Ok(42));
    assert_eq!(parsed("ada", 1, "41").await, Ok(42));
    assert_eq!(parsed("ada", 1, "x").await, Err("failure".into()));
    assert_eq!(parsed(&7, 1, "").await, Err("7: empty".into()));
    assert_eq!(parsed(&7, 1, "").await, Err("7: empty".into()));
    assert_eq!(calls(&GENERIC_CALLS), 3);
    CACHE
        .invalidator()
        .invalidate(["Stats:daily_ada_1"])
        .await
        .unwrap();
    assert_eq!(parsed("ada", 1, "41").await, Ok(42));
    assert_eq!(parsed(&7, 1, "").await, Err("7: empty".into()));
    assert_eq!(calls(&GENERIC_CALLS), 4);
    CACHE.invalidator().invalidate(["Lit:{x}_1"]).await.unwrap();
    assert_eq!(parsed(&7, 1, "").await, Err("7: empty".into()));
    assert_eq!(calls(&GENERIC_CALLS), 5);
    CACHE.invalidator().invalidate(["Plain:{y}"]).await.unwrap();
    assert_eq!(parsed(&7, 1, "").await, Err("7: empty".into()));
    assert_eq!(calls(&GENERIC_CALLS), 6);
}

static METHOD_CALLS: AtomicUsize = AtomicUsize::new(0);

struct Repo {
    cache: TagCache<MemoryStore>,
}

impl Repo {
    #[tagged_cache(cache = &self.cache, ttl = 60, tags = ["Order:{id}"])]
    async fn order(&self, id: u64) -> u64 {
        METHOD_CALLS.fetch_add(1, Ordering::SeqCst);
        id * 10
    }
}

#[tokio::test]
async fn methods_with_a_self_receiver() {
    let repo = Repo {
        cache: TagCache::new(MemoryStore::new()),
    };
    assert_eq!(repo.order(3).await, 30);
    assert_eq!(repo.order(3).await, 30);
    assert_eq!(calls(&METHOD_CALLS), 1);
    repo.cache
        .invalidator()
        .invalidate(["Order:3"])
        .await
        .unwrap();
    assert_eq!(repo.order(3).await, 30);
    assert_eq!(calls(&METHOD_CALLS), 2);
}

#[test]
fn the_future_is_send() {
    fn is_send<T: Send>(_: &T) {}
    is_send(&profile(1, "en".into()));
    is_send(&parsed("x", 1, "1"));
}
