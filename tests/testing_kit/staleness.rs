//! The staleness checker finds no stale read where the layer invalidates
//! after the write committed (the quickstart, on every store), and finds
//! them where a write invalidates nothing or its data lands after the bump.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::Body,
    extract::State,
    routing::{get, put},
};
use http::Request;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use tower_tagged_cache::{
    CacheRule, MemoryStore, Store, TaggedCacheLayer, WriteRule,
    testing::{Call, PausableStore, StalenessCheck, StalenessReport},
};

use super::{quickstart, support};

/// Reads `GET /users/1`, writes `{"name":"v<n>"}`, and reads the version
/// back from the name (the seeded `User 1` is version 0).
async fn check_quickstart<St: Store>(store: St) -> StalenessReport {
    let app = quickstart::app(store, quickstart::Db::seeded()).unwrap();
    StalenessCheck::new(
        || Request::get("/users/1").body(Body::empty()).unwrap(),
        |n| {
            Request::put("/users/1")
                .header("content-type", "application/json")
                .body(Body::from(format!(r#"{{"name":"v{n}"}}"#)))
                .unwrap()
        },
        |body| {
            let json: serde_json::Value = serde_json::from_slice(body).ok()?;
            json["name"].as_str()?.strip_prefix('v')?.parse().ok()
        },
    )
    .readers(4)
    .writes(20)
    .run(app)
    .await
}

async fn quickstart_serves_no_stale_read<St: Store>(store: St) {
    let report = check_quickstart(store).await;
    report.assert_clean();
    assert!(report.hits() > 0, "the cache was not exercised: {report}");
    assert_eq!(report.writes(), 20);
    assert_eq!((report.failed_reads(), report.failed_writes()), (0, 0));
}

support::every_store!(quickstart_serves_no_stale_read);

/// A resource that is a number: `GET /item` shows it, `PUT /item/value`
/// sets it (another URI, so the layer's per-URI invalidation of unsafe
/// requests does not reach `/item`). Cached under `Item`; the write rule
/// invalidates `Item` when `invalidates`.
/// With `late_commit`, a write's data lands only with the next write (a
/// write-behind queue), that is after the layer's bump.
fn item_app<St: Store>(store: St, invalidates: bool, late_commit: bool) -> Router {
    #[derive(Default)]
    struct Item {
        shown: u64,
        queued: Option<u64>,
    }
    let mut cache = TaggedCacheLayer::new(store)
        .rule(CacheRule::get("/item").tags(["Item"]))
        .unwrap();
    if invalidates {
        cache = cache
            .rule(WriteRule::put("/item/value").invalidates(["Item"]))
            .unwrap();
    }
    Router::new()
        .route(
            "/item",
            get(|State(item): State<Arc<Mutex<Item>>>| async move {
                item.lock().unwrap().shown.to_string()
            }),
        )
        .route(
            "/item/value",
            put(
                move |State(item): State<Arc<Mutex<Item>>>, body: String| async move {
                    let n: u64 = body.parse().unwrap();
                    let mut item = item.lock().unwrap();
                    if late_commit {
                        if let Some(queued) = item.queued.replace(n) {
                            item.shown = queued;
                        }
                    } else {
                        item.shown = n;
                    }
                    body
                },
            ),
        )
        .with_state(Arc::default())
        .layer(cache)
}

/// Reads `/item` while writing 1, 2, 3, ... to `/item/value`.
async fn check_item(app: Router) -> StalenessReport {
    StalenessCheck::new(
        || Request::get("/item").body(Body::empty()).unwrap(),
        |n| {
            Request::put("/item/value")
                .body(Body::from(n.to_string()))
                .unwrap()
        },
        |body| std::str::from_utf8(body).ok()?.parse().ok(),
    )
    .readers(4)
    .writes(20)
    .run(app)
    .await
}

/// Caches the item's first answer and waits until it is stored.
async fn warm(app: &mut Router, store: &PausableStore<MemoryStore>) {
    let res = ServiceExt::<Request<Body>>::ready(app)
        .await
        .unwrap()
        .call(Request::get("/item").body(Body::empty()).unwrap())
        .await
        .unwrap();
    res.into_body().collect().await.unwrap();
    store.until_completed(Call::Put, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_app_has_no_stale_read() {
    let store = PausableStore::new(MemoryStore::new());
    let mut app = item_app(store.clone(), true, false);
    warm(&mut app, &store).await;
    let report = check_item(app).await;
    report.assert_clean();
    assert!(report.hits() > 0, "{report}");
}

/// Without an invalidation the item cached before the first write is
/// served after every write: the read right after each write is stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_invalidates_nothing_is_caught() {
    let store = PausableStore::new(MemoryStore::new());
    let mut app = item_app(store.clone(), false, false);
    warm(&mut app, &store).await;
    let report = check_item(app).await;
    assert!(!report.is_clean());
    assert!(report.stale_reads().len() >= 20, "{report}");
    let first = &report.stale_reads()[0];
    assert_eq!(first.saw, 0, "{report}");
    assert_eq!(
        first.cache_status.as_deref(),
        Some("tower-tagged-cache; hit"),
        "{report}"
    );
    let panic = std::panic::catch_unwind(|| report.assert_clean())
        .expect_err("assert_clean passes stale reads");
    let panic = panic.downcast_ref::<String>().expect("a message");
    assert!(
        panic.contains("stale: read version 0 after write"),
        "{panic}"
    );
}

/// Data that lands after the bump (here: with the next write) is stale
/// whatever the cache does: the read right after each write sees the one
/// before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_committed_after_the_bump_is_caught() {
    let store = PausableStore::new(MemoryStore::new());
    let mut app = item_app(store.clone(), true, true);
    warm(&mut app, &store).await;
    let report = check_item(app).await;
    assert!(report.stale_reads().len() >= 20, "{report}");
    assert!(
        report.stale_reads().iter().all(|s| s.saw < s.acknowledged),
        "{report}"
    );
}
