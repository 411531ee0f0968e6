//! Leases on each store beyond the shared check: on Redis kept with
//! `SET NX PX` under the documented key; in memory always granted.

use std::time::Duration;

use tower_tagged_cache::{MemoryStore, Store};

use tower_tagged_cache::testing::conformance::util::{key, lookup, tag};

use super::support::Redis;

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
