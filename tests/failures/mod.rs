//! Failure policy and Redis specifics: fail open on store errors, timeouts and
//! a dead or frozen Redis; one command per hit; corrupt entries.

use crate::support;

use crate::quickstart_app as quickstart;

mod fault_proxy;
mod faults;
mod frozen_redis;
mod lost_bumps;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use support::Redis;
use tower::{Service, ServiceExt, service_fn, util::BoxCloneService};
use tower_tagged_cache::{
    CacheRule, MemoryStore, Store, TaggedCacheLayer, WriteRule,
    layer::ResponseBody,
    store::RedisStoreBuilder,
    testing::{Call, Fault, FaultyStore, PausableStore},
    tower_layer::Layer,
};

type Svc = BoxCloneService<Request<Full<Bytes>>, Response<ResponseBody<Full<Bytes>>>, Infallible>;

fn service<St: Store>(layer: TaggedCacheLayer<St>, calls: Arc<AtomicUsize>) -> Svc {
    let layer = layer
        .rule(CacheRule::get("/users/{id}").tags(["User:{id}", "Org:1", "Dashboard"]))
        .unwrap();
    BoxCloneService::new(layer.layer(service_fn(move |req: Request<Full<Bytes>>| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "call #{n} for {}",
                req.uri()
            )))))
        }
    })))
}

/// Sends a GET and returns `(status, cache-status, body)`.
async fn get(svc: &mut Svc, uri: &str) -> (u16, String, Bytes) {
    let req = Request::get(uri).body(Full::default()).unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    let status = res.status().as_u16();
    let cache = res.headers()["cache-status"].to_str().unwrap().to_owned();
    (
        status,
        cache,
        res.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn store_errors_fail_open_and_trip_the_breaker() {
    let store = FaultyStore::always(MemoryStore::new(), Fault::Error);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TaggedCacheLayer::new(store.clone()).circuit_breaker(3, Duration::from_secs(60));
    let invalidator = layer.invalidator();
    let mut svc = service(layer, calls.clone());
    for i in 1..=3 {
        let (status, cache, body) = get(&mut svc, "/users/1").await;
        assert_eq!(status, 200);
        assert_eq!(cache, "tower-tagged-cache; fwd=bypass; detail=store-error");
        assert_eq!(body, format!("call #{i} for /users/1"));
    }
    assert_eq!(store.calls(), 3);
    // The breaker is open: the store is not called, the site still answers.
    let (status, cache, _) = get(&mut svc, "/users/1").await;
    assert_eq!(
        (status, cache.as_str()),
        (
            200,
            "tower-tagged-cache; fwd=bypass; detail=store-unavailable"
        )
    );
    assert_eq!(store.calls(), 3);
    // A bump the store does not take is queued, and the caller is told.
    // The layer's invalidator goes through the layer's breaker: open, it
    // queues at once without calling the store.
    let bump = invalidator.invalidate(["User:1"]).await.unwrap();
    assert!(bump.is_queued());
    assert_eq!(invalidator.pending(), 1);
    assert_eq!(store.calls(), 3);
    // Meanwhile nothing that depends on the tag is served from the cache,
    // and the fence is decided before the store is asked.
    let (status, cache, _) = get(&mut svc, "/users/1").await;
    assert_eq!(
        (status, cache.as_str()),
        (
            200,
            "tower-tagged-cache; fwd=bypass; detail=pending-invalidation"
        )
    );
    assert_eq!(store.calls(), 3);
    // A handle of its own reaches the store, fails, and queues in its own
    // outbox.
    let own = tower_tagged_cache::Invalidator::new(store.clone());
    assert!(own.invalidate(["User:1"]).await.unwrap().is_queued());
    assert_eq!(store.calls(), 4);
}

#[tokio::test]
async fn a_hanging_store_costs_one_deadline() {
    let store = FaultyStore::always(MemoryStore::new(), Fault::Hang);
    let calls = Arc::new(AtomicUsize::new(0));
    let deadline = Duration::from_millis(100);
    let layer = TaggedCacheLayer::new(store)
        .store_timeout(deadline)
        .circuit_breaker(2, Duration::from_secs(60));
    let invalidator = layer.invalidator();
    let mut svc = service(layer, calls);
    for _ in 0..2 {
        let started = Instant::now();
        let (status, cache, _) = get(&mut svc, "/users/1").await;
        let took = started.elapsed();
        assert_eq!(
            (status, cache.as_str()),
            (200, "tower-tagged-cache; fwd=bypass; detail=store-timeout")
        );
        assert!(took >= deadline && took < deadline * 10, "took {took:?}");
    }
    let started = Instant::now();
    let (_, cache, _) = get(&mut svc, "/users/1").await;
    assert_eq!(
        cache,
        "tower-tagged-cache; fwd=bypass; detail=store-unavailable"
    );
    assert!(
        started.elapsed() < deadline,
        "an open breaker does not wait"
    );
    // The layer's invalidator shares its breaker: an open breaker queues
    // the bump at once instead of waiting on a store that hangs.
    let started = Instant::now();
    let bump = invalidator.invalidate(["User:1"]).await.unwrap();
    assert!(bump.is_queued());
    assert!(
        started.elapsed() < deadline,
        "an open breaker does not wait"
    );
}

#[tokio::test(start_paused = true)]
async fn a_half_open_breaker_sends_one_probe() {
    let store = FaultyStore::always(MemoryStore::new(), Fault::Hang);
    let cooldown = Duration::from_millis(50);
    let layer = TaggedCacheLayer::new(store.clone())
        .store_timeout(Duration::from_millis(300))
        .circuit_breaker(1, cooldown);
    let svc = service(layer, Arc::default());
    let (_, cache, _) = get(&mut svc.clone(), "/users/1").await;
    assert_eq!(
        cache,
        "tower-tagged-cache; fwd=bypass; detail=store-timeout"
    );
    // The cooldown is what is under test: the paused clock moves past it.
    tokio::time::advance(cooldown * 2).await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut svc = svc.clone();
        requests.spawn(async move { get(&mut svc, "/users/1").await.1 });
    }
    let mut details = requests.join_all().await;
    details.sort();
    let probes = details
        .iter()
        .filter(|d| d.ends_with("store-timeout"))
        .count();
    assert_eq!(probes, 1, "{details:?}");
    assert_eq!(store.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_bump_after_a_write_is_queued_fenced_and_applied_once_the_store_heals() {
    let store = FaultyStore::new(MemoryStore::new());
    let layer = TaggedCacheLayer::new(store.clone())
        .circuit_breaker(1000, Duration::from_secs(60))
        .rule(WriteRule::put("/users/{id}").invalidates(["User:{id}"]))
        .unwrap();
    let invalidator = layer.invalidator();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = service(layer, calls.clone());
    let (_, cache, _) = get(&mut svc, "/users/1").await;
    assert_eq!(cache, "tower-tagged-cache; fwd=miss; stored");
    let v1 = invalidator.tag_version("User:1").await.unwrap();

    store.fail_from_now(Call::Bump, Fault::Error);
    let req = Request::put("/users/1").body(Full::default()).unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    assert_eq!(res.status(), 200, "the write itself succeeded");
    assert_eq!(
        res.headers()["cache-status"],
        "tower-tagged-cache; fwd=bypass; detail=invalidation-queued"
    );
    // The store still holds the old version and its entry; this process
    // serves neither while the bump waits. Other keys are served as usual.
    for _ in 0..3 {
        let (_, cache, body) = get(&mut svc, "/users/1").await;
        assert_eq!(
            cache,
            "tower-tagged-cache; fwd=bypass; detail=pending-invalidation"
        );
        assert!(!body.ends_with(b"#1 for /users/1"), "{body:?}");
    }
    let (_, cache, _) = get(&mut svc, "/users/2").await;
    assert_eq!(cache, "tower-tagged-cache; fwd=miss; stored");
    // Retried with backoff (the paused clock runs the sleeps) while the
    // store keeps failing: still pending, never dropped.
    let failed_before = store.faults();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(store.faults() > failed_before + 3, "the outbox retries");
    assert_eq!(invalidator.pending(), 2, "the rule's tag and the URI's");
    assert_eq!(invalidator.tag_version("User:1").await.unwrap(), v1);

    store.heal();
    tokio::time::timeout(Duration::from_secs(2), invalidator.drained())
        .await
        .expect("the outbox drains once the store takes bumps again");
    assert_eq!(invalidator.pending(), 0);
    assert_ne!(invalidator.tag_version("User:1").await.unwrap(), v1);
    let (_, cache, _) = get(&mut svc, "/users/1").await;
    assert_eq!(cache, "tower-tagged-cache; fwd=miss; stored");
    // Stored after the last frame: found stored, or joined in flight.
    let (_, cache, _) = get(&mut svc, "/users/1").await;
    assert!(cache.starts_with("tower-tagged-cache; hit"), "{cache}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_redis_fails_open_then_caching_resumes() {
    support::trace_init();
    let mut redis = Redis::start_private();
    let store = redis.store().await;
    let mut svc = fails_open_while_dead(&mut redis, store).await;
    redis.restart();
    caching_resumes(&mut svc).await;
}

/// Through a bb8 pool (`RedisStoreBuilder::bb8_pool`), a dead Redis fails
/// open as with the manager, and caching resumes once it is back: with one
/// pooled connection, only if the store replaced the connection that broke
/// (bb8 neither tests it on checkout nor learns from bb8-redis that it broke).
#[cfg(feature = "bb8")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb8_dead_redis_fails_open_then_caching_resumes() {
    support::trace_init();
    let mut redis = Redis::start_private();
    let store = redis.bb8_store(1).await;
    let mut svc = fails_open_while_dead(&mut redis, store).await;
    redis.restart();
    caching_resumes(&mut svc).await;
}

/// Stores one response through `store`, kills Redis, then checks that
/// requests are still answered, by the inner service, within the store
/// deadline. Returns the service, for the caller to restart Redis.
async fn fails_open_while_dead<St: Store>(redis: &mut Redis, store: St) -> Svc {
    let deadline = Duration::from_millis(200);
    let layer = TaggedCacheLayer::new(store)
        .store_timeout(deadline)
        .circuit_breaker(3, Duration::from_millis(200));
    let mut svc = service(layer, Arc::default());

    let (_, cache, _) = get(&mut svc, "/users/1").await;
    assert_eq!(cache, "tower-tagged-cache; fwd=miss; stored");

    redis.kill();
    for _ in 0..6 {
        let started = Instant::now();
        let (status, cache, body) = get(&mut svc, "/users/1").await;
        let took = started.elapsed();
        assert_eq!(status, 200);
        assert!(
            cache.starts_with("tower-tagged-cache; fwd=bypass; detail=store-"),
            "{cache}"
        );
        assert!(body.starts_with(b"call #"));
        assert!(
            took < deadline + Duration::from_millis(300),
            "took {took:?}"
        );
    }
    svc
}

/// Polls until the layer serves hits again: nothing signals that a Redis
/// connection is back, so this waits on the observable outcome (15 s at most).
async fn caching_resumes(svc: &mut Svc) {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, cache, _) = get(svc, "/users/1").await;
        assert_eq!(status, 200);
        if cache == "tower-tagged-cache; hit" {
            return;
        }
        assert!(
            Instant::now() < until,
            "caching did not resume; last: {cache}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_store_lets_the_app_start_while_redis_is_down() {
    lazy_store_starts_while_redis_is_down(|builder| builder).await;
}

/// The same with a lazy bb8 pool: it opens connections once Redis is back.
#[cfg(feature = "bb8")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_bb8_store_lets_the_app_start_while_redis_is_down() {
    lazy_store_starts_while_redis_is_down(|builder| builder.bb8_pool(2)).await;
}

async fn lazy_store_starts_while_redis_is_down(
    configure: impl FnOnce(RedisStoreBuilder) -> RedisStoreBuilder,
) {
    let mut redis = Redis::start_private();
    redis.kill();
    let builder = tower_tagged_cache::RedisStore::builder(redis.url())
        .command_timeout(Duration::from_millis(200));
    let store = configure(builder)
        .connect_lazy()
        .expect("a lazy store needs no server");
    let layer = TaggedCacheLayer::new(store)
        .store_timeout(Duration::from_millis(200))
        .circuit_breaker(3, Duration::from_millis(200));
    let mut svc = service(layer, Arc::default());
    let (status, cache, _) = get(&mut svc, "/users/1").await;
    assert_eq!(status, 200);
    assert!(
        cache.starts_with("tower-tagged-cache; fwd=bypass; detail=store-"),
        "{cache}"
    );
    redis.restart();
    caching_resumes(&mut svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_is_one_redis_command() {
    let redis = Redis::start_private();
    hit_is_one_redis_command(&redis, redis.store().await).await;
}

/// Through a bb8 pool too: no `PING` on checkout, nothing else per hit.
#[cfg(feature = "bb8")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bb8_hit_is_one_redis_command() {
    let redis = Redis::start_private();
    hit_is_one_redis_command(&redis, redis.bb8_store(4).await).await;
}

/// Counts, with `INFO commandstats`, the commands that 20 hits through the
/// layer on `store` (on `redis`) cost.
async fn hit_is_one_redis_command<St: Store>(redis: &Redis, store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = service(TaggedCacheLayer::new(store.clone()), calls.clone());
    let (_, cache, _) = get(&mut svc, "/users/1").await;
    assert_eq!(cache, "tower-tagged-cache; fwd=miss; stored");
    store.until_completed(Call::Put, 1).await;
    let mut raw = redis.raw().await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut raw)
        .await
        .unwrap();
    const HITS: u64 = 20;
    for _ in 0..HITS {
        assert_eq!(get(&mut svc, "/users/1").await.1, "tower-tagged-cache; hit");
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut raw)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for line in info.lines().filter_map(|l| l.strip_prefix("cmdstat_")) {
        let (name, rest) = line.split_once(":calls=").unwrap();
        let n: u64 = rest.split(',').next().unwrap().parse().unwrap();
        if !name.starts_with("config") && name != "info" {
            seen.push((name.to_owned(), n));
        }
    }
    seen.sort();
    // A warm hit is one MGET of the versions and of the entry under them
    // (the miss before went through the lookup script and left the guess).
    assert_eq!(seen, [("mget".to_owned(), HITS)], "{info}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_entries_are_misses_and_get_overwritten() {
    let redis = Redis::start();
    let store = PausableStore::new(redis.store().await);
    let calls = Arc::new(AtomicUsize::new(0));
    // Without single-flight: a miss right after a store write could join
    // the flight that wrote it (still ending) and be served its response,
    // which is right, but not what this test is about.
    let layer = TaggedCacheLayer::new(store.clone()).single_flight_wait(Duration::ZERO);
    let mut svc = service(layer, calls.clone());
    get(&mut svc, "/users/1").await;
    store.until_completed(Call::Put, 1).await;
    let mut raw = redis.raw().await;
    let pattern = format!("{}:e:*", redis.prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut raw)
        .await
        .unwrap();
    let [key] = &keys[..] else {
        panic!("expected one entry, found {keys:?}")
    };
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(ttl_ms > 0 && ttl_ms <= 300_000, "entry TTL {ttl_ms} ms");
    let garbage: [&[u8]; 4] = [b"", b"\x01", b"\xff\xff\xff\xff", b"\x01\x00\xc8garbage"];
    for (i, garbage) in garbage.into_iter().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(garbage)
            .query_async(&mut raw)
            .await
            .unwrap();
        let before = calls.load(Ordering::SeqCst);
        let (status, cache, _) = get(&mut svc, "/users/1").await;
        assert_eq!(
            (status, cache.as_str()),
            (200, "tower-tagged-cache; fwd=miss; stored")
        );
        assert_eq!(calls.load(Ordering::SeqCst), before + 1);
        // Each miss rewrites the entry under the same key.
        store.until_completed(Call::Put, i + 2).await;
        let (_, cache, body) = get(&mut svc, "/users/1").await;
        assert_eq!(cache, "tower-tagged-cache; hit");
        assert_eq!(body, format!("call #{} for /users/1", before + 1));
    }
}
