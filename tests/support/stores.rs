//! One harness that runs a test on every store: memory, Redis (a private
//! `redis-server`, or `REDIS_URL`) and, with the `bb8` feature, the same Redis
//! store through a `bb8-redis` pool.
//!
//! `every_store!(a, b)` turns each `async fn a<St: Store>(store: St)` of the
//! calling module into the tests `memory::a`, `redis::a` and `bb8::a`.
//! `every_store!(subject: a, b)` passes a conformance
//! [`Subject`](tower_tagged_cache::testing::conformance::Subject) instead: the
//! store with a backdoor into it.

use tower_tagged_cache::{
    MemoryStore, RedisStore, Store, Tag,
    store::EntryKey,
    testing::conformance::{Backdoor, Subject},
};

use super::redis::Redis;

/// A store of one kind, started for one test, with what the test needs to
/// keep alive beside it (the Redis server).
#[allow(async_fn_in_trait)]
pub trait TestStore: Sized {
    type Store: Store;

    /// Starts a fresh store.
    async fn start() -> Self;

    /// A handle on the store.
    fn store(&self) -> Self::Store;

    /// The store and a backdoor into it, for the conformance suite.
    fn subject(self) -> Subject<Self::Store>;
}

/// A fresh [`MemoryStore`]; a clone of it is its backdoor.
pub struct Memory(MemoryStore);

impl TestStore for Memory {
    type Store = MemoryStore;

    async fn start() -> Self {
        Self(MemoryStore::new())
    }

    fn store(&self) -> MemoryStore {
        self.0.clone()
    }

    fn subject(self) -> Subject<MemoryStore> {
        Subject::new(self.0.clone()).with_backdoor(self.0)
    }
}

/// A [`RedisStore`] on its own multiplexed connection, with the test's own
/// key prefix.
pub struct OnRedis {
    pub redis: Redis,
    store: RedisStore,
}

impl TestStore for OnRedis {
    type Store = RedisStore;

    async fn start() -> Self {
        let redis = Redis::start();
        let store = redis.store().await;
        Self { redis, store }
    }

    fn store(&self) -> RedisStore {
        self.store.clone()
    }

    fn subject(self) -> Subject<RedisStore> {
        Subject::new(self.store).with_backdoor(RedisBackdoor(self.redis))
    }
}

/// The Redis store through a bb8 pool of a few connections (so that
/// concurrent tests use several).
#[cfg(feature = "bb8")]
pub struct OnBb8 {
    pub redis: Redis,
    store: RedisStore,
}

#[cfg(feature = "bb8")]
impl TestStore for OnBb8 {
    type Store = RedisStore;

    async fn start() -> Self {
        let redis = Redis::start();
        let store = redis.bb8_store(4).await;
        assert!(store.pool().is_some() && store.connection().is_none());
        Self { redis, store }
    }

    fn store(&self) -> RedisStore {
        self.store.clone()
    }

    fn subject(self) -> Subject<RedisStore> {
        Subject::new(self.store).with_backdoor(RedisBackdoor(self.redis))
    }
}

/// Behind a Redis store's back: a plain connection to its server, and key
/// names spelled out from the documented layout, not from the crate's code.
/// It owns the server, which lives as long as the check.
pub struct RedisBackdoor(pub Redis);

impl RedisBackdoor {
    /// The version key of a plain tag (`{prefix}:t:{name}:{instance}`).
    fn version_key(&self, tag: &Tag) -> String {
        format!("{}:t:{}:{}", self.0.prefix, tag.name(), tag.instance())
    }
}

impl Backdoor for RedisBackdoor {
    async fn evict_versions<'a>(&'a self, tags: &'a [Tag]) {
        let mut raw = self.0.raw().await;
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

    async fn holds_entry<'a>(&'a self, key: &'a EntryKey) -> bool {
        let mut raw = self.0.raw().await;
        redis::cmd("EXISTS")
            .arg(key.as_str())
            .query_async::<bool>(&mut raw)
            .await
            .expect("EXISTS")
    }
}

/// Generates, for each async fn `name` of the calling module, the tests
/// `memory::name`, `redis::name` and (feature `bb8`) `bb8::name`, each on a
/// fresh store of that kind. See the [module docs](self).
#[allow(unused_macros)]
macro_rules! every_store {
    (subject: $($name:ident),* $(,)?) => {
        $crate::support::every_store!(@kinds subject, $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::support::every_store!(@kinds store, $($name),*);
    };
    (@kinds $how:ident, $($name:ident),*) => {
        $crate::support::every_store!(@kind memory, Memory, $how, $($name),*);
        $crate::support::every_store!(@kind redis, OnRedis, $how, $($name),*);
        #[cfg(feature = "bb8")]
        $crate::support::every_store!(@kind bb8, OnBb8, $how, $($name),*);
    };
    (@kind $kind:ident, $ty:ident, $how:ident, $($name:ident),*) => {
        mod $kind {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    use $crate::support::stores::TestStore as _;
                    $crate::support::trace_init();
                    let started = $crate::support::stores::$ty::start().await;
                    $crate::support::every_store!(@call $how, super::$name, started);
                }
            )*
        }
    };
    (@call store, $f:path, $started:ident) => {
        $f($started.store()).await
    };
    (@call subject, $f:path, $started:ident) => {
        $f($started.subject()).await
    };
}
#[allow(unused_imports)]
pub(crate) use every_store;
