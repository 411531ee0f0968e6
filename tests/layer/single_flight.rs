//! In-process single-flight: concurrent misses on one key make one inner
//! call, and survive the request leading them going away.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use http::StatusCode;
use tokio::sync::Notify;
use tower_tagged_cache::{
    Store, TaggedCacheLayer,
    testing::{Call, PausableStore},
};

use super::{Inner, Seen, gated_origin_first, get, send, stack, support, user_rule};

/// An origin whose first call blocks until released; later calls answer at
/// once. Returns the service, the call counter, "first call entered" and
/// "release the first call".
#[allow(clippy::type_complexity)]
fn gated_origin() -> (impl Inner, Arc<AtomicUsize>, Arc<Notify>, Arc<Notify>) {
    gated_origin_first(StatusCode::OK)
}

/// N concurrent misses on one key make one inner call; all get its body.
async fn concurrent_misses_make_one_inner_call<St: Store>(store: St) {
    const N: usize = 40;
    let store = PausableStore::new(store);
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(user_rule())
        .unwrap();
    let (origin, calls, entered, release) = gated_origin();
    let svc = stack(layer, origin);
    let mut requests = tokio::task::JoinSet::new();
    let spawn = |requests: &mut tokio::task::JoinSet<Seen>| {
        let mut svc = svc.clone();
        requests.spawn(async move { send(&mut svc, get("/users/1")).await });
    };
    spawn(&mut requests);
    entered.notified().await;
    for _ in 1..N {
        spawn(&mut requests);
    }
    // Every request has looked up (and missed) before the first call ends:
    // without single-flight each would call the inner service.
    store.until_completed(Call::Lookup, N).await;
    release.notify_one();
    let seen = requests.join_all().await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one inner call for {N} misses"
    );
    for s in &seen {
        assert_eq!(s.body, "computed by call #1");
        assert!(
            [
                "tower-tagged-cache; fwd=miss; stored",
                "tower-tagged-cache; hit; detail=coalesced",
                "tower-tagged-cache; hit"
            ]
            .contains(&s.cache_status()),
            "{}",
            s.cache_status()
        );
    }
    store.until_completed(Call::Put, 1).await;
}

/// When the first request goes away mid-call, the ones waiting on it still
/// get responses: they call the inner service themselves.
async fn followers_survive_a_cancelled_leader<St: Store>(store: St) {
    let layer = TaggedCacheLayer::new(store).rule(user_rule()).unwrap();
    let (origin, calls, entered, _release) = gated_origin();
    let svc = stack(layer, origin);
    let leader = {
        let mut svc = svc.clone();
        tokio::spawn(async move { send(&mut svc, get("/users/1")).await })
    };
    entered.notified().await;
    let mut followers = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let mut svc = svc.clone();
        followers.spawn(async move { send(&mut svc, get("/users/1")).await });
    }
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    leader.abort();
    let seen = followers.join_all().await;
    assert_eq!(seen.len(), 5);
    for s in &seen {
        assert_eq!(s.status, StatusCode::OK);
        assert!(s.body.starts_with(b"computed by call #"), "{:?}", s.body);
    }
    assert!(calls.load(Ordering::SeqCst) >= 2);
}

support::every_store!(
    concurrent_misses_make_one_inner_call,
    followers_survive_a_cancelled_leader,
);
