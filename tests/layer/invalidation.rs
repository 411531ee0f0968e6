//! Invalidation: a bump during a slow request, write rules, writes whose
//! parameters do not parse, and the invalidator handlers find in their
//! request (`axum::Extension<Invalidator>` on every store).

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Extension, Router,
    extract::Path,
    routing::{get as get_route, post},
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::Notify;
use tower::{ServiceExt, service_fn};
use tower_tagged_cache::{
    Invalidator, Store, TaggedCacheLayer, WriteRule,
    invalidate::{Model, list_tag},
    testing::{Call, PausableStore},
};

use super::{
    counting, fixture, get, origin, send, stack,
    support::{self, scripted::Scripted},
    user_rule,
};

/// The hazard of every tag cache: a bump that lands while a slow request is
/// computing. The slow response was read from old data and must not be
/// served after the bump.
async fn bump_during_slow_request_is_not_undone<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let db = Arc::new(Mutex::new("old name".to_owned()));
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(user_rule())
        .unwrap();
    let invalidator = layer.invalidator();
    let inner = {
        let (db, entered, release, calls) =
            (db.clone(), entered.clone(), release.clone(), calls.clone());
        service_fn(move |_req: Request<Full<Bytes>>| {
            let (db, entered, release) = (db.clone(), entered.clone(), release.clone());
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let name = db.lock().unwrap().clone();
                if n == 1 {
                    // The first request read the old data; now it is slow.
                    entered.notify_one();
                    release.notified().await;
                }
                Ok::<_, Infallible>(Response::new(Scripted::full(name)))
            }
        })
    };
    let mut svc = stack(layer, inner);
    let slow = {
        let mut svc = svc.clone();
        tokio::spawn(async move { send(&mut svc, get("/users/1")).await })
    };
    entered.notified().await;
    *db.lock().unwrap() = "new name".to_owned();
    invalidator.invalidate(["User:1"]).await.unwrap();
    release.notify_one();
    let slow = slow.await.unwrap();
    assert_eq!(slow.body, "old name");
    store.until_completed(Call::Put, 1).await; // the slow response was stored, under the old versions

    let next = send(&mut svc, get("/users/1")).await;
    assert_eq!(next.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(next.body, "new name");
    store.until_completed(Call::Put, 2).await;
    let after = send(&mut svc, get("/users/1")).await;
    assert_eq!(after.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(after.body, "new name");
}

async fn write_rules_bump_after_success_only<St: Store>(store: St) {
    let layer = TaggedCacheLayer::new(store)
        .rule(user_rule())
        .unwrap()
        .rule(WriteRule::put("/users/{id}").invalidates(["User:{id}", "Dashboard"]))
        .unwrap();
    let invalidator = layer.invalidator();
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = origin(calls, |req, _| {
        let mut res = Response::new(Scripted::full("ok"));
        if req.uri().path() == "/users/13" {
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        }
        res
    });
    let mut svc = stack(layer, inner);
    let put = |uri: &str| Request::put(uri).body(Full::default()).unwrap();

    assert_eq!(invalidator.tag_version("User:1").await.unwrap(), None);
    let ok = send(&mut svc, put("/users/1")).await;
    assert_eq!(
        ok.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=invalidated"
    );
    let v1 = invalidator
        .tag_version("User:1")
        .await
        .unwrap()
        .expect("bumped");
    let d1 = invalidator
        .tag_version("Dashboard")
        .await
        .unwrap()
        .expect("bumped");
    send(&mut svc, put("/users/1")).await;
    assert_ne!(
        invalidator.tag_version("User:1").await.unwrap().unwrap(),
        v1
    );
    assert_ne!(
        invalidator.tag_version("Dashboard").await.unwrap().unwrap(),
        d1
    );

    // A failed write bumps nothing.
    let d2 = invalidator.tag_version("Dashboard").await.unwrap();
    let failed = send(&mut svc, put("/users/13")).await;
    assert_eq!(failed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        failed.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=method"
    );
    assert_eq!(invalidator.tag_version("User:13").await.unwrap(), None);
    assert_eq!(invalidator.tag_version("Dashboard").await.unwrap(), d2);
}

async fn handlers_find_the_invalidator<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(user_rule())
        .unwrap();
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        if req.method() == http::Method::POST {
            let inv = req
                .extensions()
                .get::<Invalidator>()
                .expect("invalidator extension");
            inv.invalidate(["User:5"]).await.unwrap();
        }
        Ok::<_, Infallible>(Response::new(Scripted::full(format!(
            "{:?}",
            std::time::Instant::now()
        ))))
    });
    let mut svc = stack(layer, inner);
    let first = send(&mut svc, get("/users/5")).await;
    store.until_completed(Call::Put, 1).await;
    assert_eq!(send(&mut svc, get("/users/5")).await.body, first.body);
    let post = Request::post("/admin/flush-user-5")
        .body(Full::default())
        .unwrap();
    // The handler bumped `User:5`; the layer bumped the URI it wrote to.
    assert_eq!(
        send(&mut svc, post).await.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=invalidated"
    );
    let after = send(&mut svc, get("/users/5")).await;
    assert_eq!(after.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_ne!(after.body, first.body);
}

struct User {
    id: u64,
}

impl Model for User {
    const TAG: &'static str = "User";
    fn pk(&self) -> String {
        self.id.to_string()
    }
}

/// Status, `cache-status` and body of one request to an axum app.
async fn call_app(app: &Router, req: Request<axum::body::Body>) -> (StatusCode, String, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let cache_status = res
        .headers()
        .get("cache-status")
        .map_or("<none>", |v| v.to_str().unwrap())
        .to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        cache_status,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// An axum handler behind a layer on any store (the Redis store, not only
/// the default memory one) extracts `Extension<Invalidator>`: there is one
/// `Invalidator` type whatever the store, so it finds the layer's handle (its
/// model registry knows `User`) instead of failing with a 500, and its bump
/// reaches the next `GET`.
async fn axum_handlers_extract_the_invalidator<St: Store>(store: St) {
    let layer = TaggedCacheLayer::new(store).rule(user_rule()).unwrap();
    let invalidator = layer.invalidator();
    invalidator.models().register::<User>().unwrap();
    let views = Arc::new(AtomicUsize::new(0));
    let show = move |Path(id): Path<u64>| async move {
        format!(
            "user {id}, view #{}",
            views.fetch_add(1, Ordering::SeqCst) + 1
        )
    };
    let flush = |Path(id): Path<u64>, Extension(invalidator): Extension<Invalidator>| async move {
        // Reported through the layer's model registry: an error if this were
        // any other handle.
        match invalidator.saved(&User { id }).await {
            Ok(bump) if bump.is_applied() => (StatusCode::OK, "flushed".to_owned()),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            Ok(bump) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{bump:?}")),
        }
    };
    let app = Router::new()
        .route("/users/{id}", get_route(show))
        .route("/users/{id}/flush", post(flush))
        .layer(layer);
    let get = || {
        Request::get("/users/7")
            .body(axum::body::Body::empty())
            .unwrap()
    };

    let (status, cache, first) = call_app(&app, get()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache, "tower-tagged-cache; fwd=miss; stored");
    // The response is stored off the response path: ask until it is served
    // from the store.
    let mut cached = None;
    for _ in 0..500 {
        let (_, cache, body) = call_app(&app, get()).await;
        if cache == "tower-tagged-cache; hit" {
            cached = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cached = cached.expect("the first response was never stored");
    assert!(cached.starts_with("user 7, view #"), "{cached}");
    assert_eq!(
        call_app(&app, get()).await,
        (
            StatusCode::OK,
            "tower-tagged-cache; hit".to_owned(),
            cached.clone()
        )
    );
    let before = invalidator.tag_version("User:7").await.unwrap();
    assert!(before.is_some(), "seeded by the lookups");
    let list_before = invalidator.tag_version(list_tag::<User>()).await.unwrap();

    let flush = Request::post("/users/7/flush")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _, body) = call_app(&app, flush).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "flushed"));
    assert_ne!(invalidator.tag_version("User:7").await.unwrap(), before);
    assert_ne!(
        invalidator.tag_version(list_tag::<User>()).await.unwrap(),
        list_before
    );

    // The bump is visible to the next request: a miss, computed again.
    let (status, cache, after) = call_app(&app, get()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache, "tower-tagged-cache; fwd=miss; stored");
    assert_ne!(after, cached);
    assert_ne!(after, first);
}

/// A write whose path parameters do not parse for its rule still
/// invalidates what is stored for its URI.
async fn unparsed_writes_still_invalidate_their_uri<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let layer = layer
        .rule(
            WriteRule::put("/users/{id}")
                .parse_param::<u64>("id")
                .invalidates(["User:{id}"]),
        )
        .unwrap();
    let mut svc = stack(layer, counting(&calls));
    send(&mut svc, get("/users/abc")).await;
    store.until_completed(Call::Put, 1).await;
    assert_eq!(
        send(&mut svc, get("/users/abc")).await.cache_status(),
        "tower-tagged-cache; hit"
    );
    let put = Request::put("/users/abc").body(Full::default()).unwrap();
    send(&mut svc, put).await;
    assert_eq!(
        send(&mut svc, get("/users/abc")).await.cache_status(),
        "tower-tagged-cache; fwd=miss; stored"
    );
}

/// With `invalidate_unnamed_routes(false)`, a write to a URI no cache rule
/// matches makes no store write; URIs a cache rule matches (the target, or a
/// same-host `Location`) are still invalidated.
async fn unnamed_routes_can_skip_the_uri_bump<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let layer = layer.invalidate_unnamed_routes(false);
    let inner = origin(calls, |req, n| {
        let mut res = Response::new(Scripted::full(format!("call #{n}")));
        if req.uri().path() == "/admin/create" {
            res.headers_mut()
                .insert("location", "/users/6".parse().unwrap());
        }
        res
    });
    let mut svc = stack(layer, inner);
    for id in [5, 6] {
        send(&mut svc, get(&format!("/users/{id}"))).await;
    }
    store.until_completed(Call::Put, 2).await;
    let post = |uri: &str| Request::post(uri).body(Full::default()).unwrap();

    let unnamed = send(&mut svc, post("/admin/ping")).await;
    assert_eq!(
        unnamed.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=method"
    );
    assert_eq!(store.completed(Call::Bump), 0, "no store write");
    for id in [5, 6] {
        let seen = send(&mut svc, get(&format!("/users/{id}"))).await;
        assert_eq!(seen.cache_status(), "tower-tagged-cache; hit");
    }

    // A cache rule matches the target: its URI is bumped.
    let named = send(&mut svc, post("/users/5")).await;
    assert_eq!(
        named.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=invalidated"
    );
    assert_eq!(store.completed(Call::Bump), 1);
    let after = send(&mut svc, get("/users/5")).await;
    assert_eq!(after.cache_status(), "tower-tagged-cache; fwd=miss; stored");

    // The target is unnamed, its `Location` is not: only that one.
    let created = send(&mut svc, post("/admin/create")).await;
    assert_eq!(
        created.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=invalidated"
    );
    assert_eq!(store.completed(Call::Bump), 2);
    let after = send(&mut svc, get("/users/6")).await;
    assert_eq!(after.cache_status(), "tower-tagged-cache; fwd=miss; stored");
}

support::every_store!(
    bump_during_slow_request_is_not_undone,
    write_rules_bump_after_success_only,
    handlers_find_the_invalidator,
    axum_handlers_extract_the_invalidator,
    unparsed_writes_still_invalidate_their_uri,
    unnamed_routes_can_skip_the_uri_bump,
);
