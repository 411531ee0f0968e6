//! Fleet-wide single-flight (`CacheRule::lease`), on Redis: two layers on one
//! store stand for two app servers (each has its own in-process flights).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::StatusCode;
use tokio::sync::Notify;
use tower_tagged_cache::{
    CacheRule, TaggedCacheLayer,
    testing::{Call, PausableStore},
};

use super::{Inner, Seen, Svc, counting, gated_origin_first, get, send, stack, support, user_rule};

/// Two app servers A and B (two layers on one store, a 30 s lease on the
/// user rule): sends `path` to A and waits until A's inner call runs (A took
/// the lease before calling it), then to B and waits until B was refused
/// the lease (B now waits for A's entry). Also returns B.
async fn a_leads_b_waits(
    store: &PausableStore<tower_tagged_cache::RedisStore>,
    origin: impl Inner,
    entered: &Notify,
    path: &'static str,
) -> (
    tokio::task::JoinHandle<Seen>,
    tokio::task::JoinHandle<Seen>,
    Svc,
) {
    let instance = || {
        let layer = TaggedCacheLayer::new(store.clone())
            .rule(user_rule().lease(Duration::from_secs(30)))
            .unwrap();
        stack(layer, origin.clone())
    };
    let run = |mut svc: Svc| tokio::spawn(async move { send(&mut svc, get(path)).await });
    let (a, b) = (instance(), instance());
    let first = run(a);
    entered.notified().await;
    let second = run(b.clone());
    store.until_refused_leases(1).await;
    (first, second, b)
}

/// A miss on a second app server waits for the first one's entry instead of
/// calling its own inner service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_makes_one_inner_call_across_app_servers() {
    let redis = support::Redis::start();
    let store = PausableStore::new(redis.store().await);
    let (origin, calls, entered, release) = gated_origin_first(StatusCode::OK);
    let (first, second, _) = a_leads_b_waits(&store, origin, &entered, "/users/7").await;
    release.notify_one();
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(first.body, "computed by call #1");
    assert_eq!(first.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(second.body, "computed by call #1");
    assert_eq!(
        second.cache_status(),
        "tower-tagged-cache; hit; detail=coalesced"
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one inner call in the fleet"
    );
    // The lease was given back once the entry was stored.
    store.until_completed(Call::ReleaseLease, 1).await;
}

/// A lease holder whose response is not storable gives the lease back at
/// once: the waiting app server computes its own, long before the lease
/// (30 s) would run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_given_back_without_an_entry_lets_the_next_server_compute() {
    let redis = support::Redis::start();
    let store = PausableStore::new(redis.store().await);
    let (origin, calls, entered, release) = gated_origin_first(StatusCode::SERVICE_UNAVAILABLE);
    let (first, second, _) = a_leads_b_waits(&store, origin, &entered, "/users/8").await;
    release.notify_one();
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    let second = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the waiting server computed before the lease ran out")
        .unwrap();
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, "computed by call #2");
    assert_eq!(
        second.cache_status(),
        "tower-tagged-cache; fwd=miss; stored"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Rules without a lease never ask for one; hits never do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_and_lease_free_rules_take_no_lease() {
    let redis = support::Redis::start();
    let store = PausableStore::new(redis.store().await);
    let calls = Arc::new(AtomicUsize::new(0));
    let leased = TaggedCacheLayer::new(store.clone())
        .rule(user_rule().lease(Duration::from_secs(30)))
        .unwrap();
    let mut leased = stack(leased, counting(&calls));
    let plain = TaggedCacheLayer::new(store.clone())
        .rule(CacheRule::get("/plain/{id}").ttl(Duration::from_secs(60)))
        .unwrap();
    let mut plain = stack(plain, counting(&calls));
    send(&mut plain, get("/plain/1")).await;
    assert_eq!(
        (store.completed(Call::AcquireLease), store.refused_leases()),
        (0, 0)
    );
    send(&mut leased, get("/users/9")).await;
    assert_eq!(
        (store.completed(Call::AcquireLease), store.refused_leases()),
        (1, 0)
    );
    store.until_completed(Call::Put, 2).await;
    let hit = send(&mut leased, get("/users/9")).await;
    assert_eq!(hit.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(
        (store.completed(Call::AcquireLease), store.refused_leases()),
        (1, 0),
        "a hit takes no lease"
    );
}

/// When the request leading on one app server goes away while it waits for
/// another server's lease, its followers do not all call the origin: one of
/// them leads and waits in its place, and all are served the entry the
/// lease holder stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_a_cancelled_lease_waiter_keep_waiting() {
    let redis = support::Redis::start();
    let store = PausableStore::new(redis.store().await);
    let (origin, calls, entered, release) = gated_origin_first(StatusCode::OK);
    let (first, waiter, b) = a_leads_b_waits(&store, origin, &entered, "/users/10").await;
    // Three more requests on B: they follow B's waiting leader.
    let before = store.completed(Call::Lookup);
    let mut followers = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let mut b = b.clone();
        followers.spawn(async move { send(&mut b, get("/users/10")).await });
    }
    // Their lookups are done; joining the flight follows at once. (The
    // waiting leader's own checks count as lookups too, so give the
    // followers a moment: with or without it, every outcome but one inner
    // call is a failure.)
    store.until_completed(Call::Lookup, before + 3).await;
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    waiter.abort();
    release.notify_one();
    assert_eq!(first.await.unwrap().body, "computed by call #1");
    for seen in followers.join_all().await {
        assert_eq!(seen.status, StatusCode::OK);
        assert_eq!(seen.body, "computed by call #1", "{}", seen.cache_status());
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one inner call in the fleet"
    );
}
