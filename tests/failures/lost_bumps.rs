//! No invalidation is lost to an outage: the quickstart over real HTTP on a
//! Redis that is killed while a user is renamed, then comes back with its
//! data (the old page and the old version included). The bump waits in the
//! outbox, reads that depend on it are fenced, and no GET after the restart
//! shows the old name.

use super::{quickstart, support};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use http::{Method, StatusCode};
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_while_redis_is_down_is_never_undone_by_its_return() {
    support::trace_init();
    let mut redis = support::Redis::start_private();
    let store = redis.store().await;
    let app = quickstart::app(store, quickstart::Db::seeded()).unwrap();
    let client = Arc::new(support::JsonClient::new(support::serve(app).await));

    // The old page is stored, and served.
    let first = client.send(Method::GET, "/users/5", None).await;
    assert_eq!(first.cache_status, "tower-tagged-cache; fwd=miss; stored");
    let hit = client.send(Method::GET, "/users/5", None).await;
    assert!(hit.cache_status.starts_with("tower-tagged-cache; hit"));
    assert_eq!(hit.json["name"], "User 5");

    // Redis goes away with the old page and the old version on disk.
    redis.kill_keeping_data();
    let put = client
        .send(
            Method::PUT,
            "/users/5",
            Some(r#"{"name":"Renamed"}"#.to_owned()),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "the write itself succeeds");
    assert_eq!(
        put.cache_status,
        "tower-tagged-cache; fwd=bypass; detail=invalidation-queued"
    );
    let down = client.send(Method::GET, "/users/5", None).await;
    assert_eq!(down.json["name"], "Renamed");

    // Redis returns with its data: readers hammer the page from the first
    // moment, concurrently, and none may see the old name.
    redis.restart();
    let back = Instant::now();
    let mut readers = JoinSet::new();
    for _ in 0..8 {
        let client = client.clone();
        readers.spawn(async move {
            let mut details = Vec::new();
            while back.elapsed() < Duration::from_secs(3) {
                let get = client.send(Method::GET, "/users/5", None).await;
                assert_eq!(get.status, StatusCode::OK);
                assert_eq!(
                    get.json["name"],
                    "Renamed",
                    "the old name came back {:?} after Redis did ({})",
                    back.elapsed(),
                    get.cache_status
                );
                details.push(get.cache_status);
            }
            details
        });
    }
    let details: Vec<String> = readers.join_all().await.into_iter().flatten().collect();
    // The outbox drained and caching came back: the renamed page is stored
    // and served from the cache again.
    assert!(
        details
            .iter()
            .any(|d| d.starts_with("tower-tagged-cache; hit")),
        "caching never came back: {:?}",
        &details[details.len().saturating_sub(5)..]
    );
    let fenced = details
        .iter()
        .filter(|d| d.ends_with("detail=pending-invalidation"))
        .count();
    eprintln!(
        "{} reads in the 3 s after Redis returned: {fenced} fenced, {} hits",
        details.len(),
        details.iter().filter(|d| d.contains("; hit")).count()
    );
}
