//! Rules attached where axum routes are declared (`route_rules`): their
//! pattern is the route's `MatchedPath`, on every store; rules that do not
//! fit their route pass through, and the layer's own rules are checked
//! against the app's routes.
#![cfg(feature = "axum")]

use crate::support;

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    Router,
    body::Body,
    extract::Path,
    response::Redirect,
    routing::{get, post},
};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::{ServiceExt, service_fn};
use tower_tagged_cache::{
    CacheRule, MemoryStore, Rule, Store, TaggedCacheLayer, WriteRule,
    testing::{Call, PausableStore},
    tower_layer::Layer,
};

const STORED: &str = "tower-tagged-cache; fwd=miss; stored";
const HIT: &str = "tower-tagged-cache; hit";
const INVALIDATED: &str = "tower-tagged-cache; fwd=bypass; detail=invalidated";

struct Reply {
    status: StatusCode,
    cache_status: String,
    body: String,
}

async fn send(app: &Router, method: Method, path: &str) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let cache_status = res
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        cache_status,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// `/users/{id}` with the rules on the route itself; the handler's answer
/// carries a call counter, so a hit shows the stored one.
fn users(cache: &TaggedCacheLayer<PausableStore<impl Store>>, calls: &Arc<AtomicUsize>) -> Router {
    let show = {
        let calls = calls.clone();
        move |Path(id): Path<u64>| async move {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            format!("user {id}, call {n}")
        }
    };
    let rules = cache
        .route_rules([
            Rule::from(CacheRule::matched().tags(["User:{id}"])),
            Rule::from(WriteRule::matched(Method::PUT).invalidates(["User:{id}"])),
        ])
        .unwrap();
    Router::new().route(
        "/users/{id}",
        get(show).put(|| async { "updated" }).route_layer(rules),
    )
}

async fn rules_take_the_pattern_of_their_route<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = TaggedCacheLayer::new(store.clone());
    let app = users(&cache, &calls);

    let first = send(&app, Method::GET, "/users/1").await;
    assert_eq!(first.cache_status, STORED);
    store.until_completed(Call::Put, 1).await;
    let again = send(&app, Method::GET, "/users/1").await;
    assert_eq!(
        (again.cache_status.as_str(), again.body.as_str()),
        (HIT, first.body.as_str())
    );
    // The placeholder is filled from the route's parameter.
    assert_eq!(
        send(&app, Method::GET, "/users/2").await.cache_status,
        STORED
    );
    store.until_completed(Call::Put, 2).await;

    // The write rule on the same route bumps User:1 only.
    let write = send(&app, Method::PUT, "/users/1").await;
    assert_eq!(
        (write.status, write.cache_status.as_str()),
        (StatusCode::OK, INVALIDATED)
    );
    let after = send(&app, Method::GET, "/users/1").await;
    assert_eq!(after.cache_status, STORED);
    assert_ne!(after.body, first.body);
    assert_eq!(send(&app, Method::GET, "/users/2").await.cache_status, HIT);
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Bumping the tag from elsewhere reaches the route's entries.
    store.until_completed(Call::Put, 3).await;
    cache.invalidator().invalidate(["User:2"]).await.unwrap();
    assert_eq!(
        send(&app, Method::GET, "/users/2").await.cache_status,
        STORED
    );
}

async fn nested_routes_use_their_parameters<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = TaggedCacheLayer::new(store.clone());
    // The same routes under two prefixes: axum's matched paths differ
    // (`/v1/users/{id}`, `/v2/users/{id}`) and so do the keys, though the
    // path the nested router sees is `/users/1` in both.
    let app = Router::new()
        .nest("/v1", users(&cache, &calls))
        .nest("/v2", users(&cache, &calls));
    let v1 = send(&app, Method::GET, "/v1/users/1").await;
    assert_eq!(v1.cache_status, STORED);
    store.until_completed(Call::Put, 1).await;
    let v2 = send(&app, Method::GET, "/v2/users/1").await;
    assert_eq!(v2.cache_status, STORED);
    assert_ne!(v1.body, v2.body);
    store.until_completed(Call::Put, 2).await;
    assert_eq!(send(&app, Method::GET, "/v1/users/1").await.body, v1.body);
    // One tag for both: a write through v1 reaches v2's entry too.
    assert_eq!(
        send(&app, Method::PUT, "/v1/users/1").await.cache_status,
        INVALIDATED
    );
    assert_eq!(
        send(&app, Method::GET, "/v2/users/1").await.cache_status,
        STORED
    );
}

async fn rules_that_do_not_fit_their_route_pass_through<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = TaggedCacheLayer::new(store.clone());
    let count = {
        let calls = calls.clone();
        move || async move { calls.fetch_add(1, Ordering::SeqCst).to_string() }
    };
    // `{user_id}` is not a parameter of `/users/{id}`.
    let rules = cache
        .route_rules([CacheRule::matched().tags(["User:{user_id}"])])
        .unwrap();
    let fits = cache
        .route_rules([CacheRule::matched().tags(["Team:{id}"])])
        .unwrap();
    let app = Router::new()
        .route("/users/{id}", get(count.clone()).route_layer(rules))
        .route("/teams/{id}", get(count).route_layer(fits));
    for _ in 0..3 {
        let reply = send(&app, Method::GET, "/users/1").await;
        assert_eq!(
            (reply.status, reply.cache_status.as_str()),
            (
                StatusCode::OK,
                "tower-tagged-cache; fwd=bypass; detail=bad-rule"
            )
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // The store was never asked; the other route's rules still work.
    assert_eq!(store.completed(Call::Lookup), 0);
    assert_eq!(
        send(&app, Method::GET, "/teams/1").await.cache_status,
        STORED
    );
    assert!(store.completed(Call::Lookup) > 0);
}

async fn undecodable_parameters_bypass<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let app = users(&TaggedCacheLayer::new(store.clone()), &calls);
    // `%ff` is not UTF-8 once decoded: axum's own `Path` refuses it, and the
    // rule does not key on it either.
    let reply = send(&app, Method::GET, "/users/%ff").await;
    assert_eq!(
        reply.cache_status,
        "tower-tagged-cache; fwd=bypass; detail=bad-path"
    );
    assert_eq!(store.completed(Call::Lookup), 0);
}

/// The admin service's answer to `GET path`.
async fn admin<St: Store>(cache: &TaggedCacheLayer<PausableStore<St>>, path: &str) -> String {
    let res = cache
        .admin()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.into_body()
}

async fn the_admin_service_sees_rules_on_routes<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = TaggedCacheLayer::new(store.clone());
    let app = Router::new().nest("/v1", users(&cache, &calls));
    let explain = "/explain?method=GET&url=/v1/users/1";
    // Before the route's first request, nothing knows its rules, and the
    // explanation says it may not be the whole story.
    let unseen = admin(&cache, explain).await;
    assert!(unseen.lines().any(|l| l == "decision: bypass"), "{unseen}");
    assert!(
        unseen
            .lines()
            .any(|l| l.starts_with("note: rules attached")),
        "{unseen}"
    );

    assert_eq!(
        send(&app, Method::GET, "/v1/users/1").await.cache_status,
        STORED
    );
    store.until_completed(Call::Put, 1).await;
    assert_eq!(
        send(&app, Method::GET, "/v1/users/1").await.cache_status,
        HIT
    );
    // The explanation is the real request's: the nested route's full path,
    // its tag, and the entry that request stored.
    let explained = admin(&cache, explain).await;
    for line in [
        "decision: cache",
        "rule: /v1/users/{id}",
        "entry: stored",
        "cache-status: tower-tagged-cache; hit",
    ] {
        assert!(
            explained.lines().any(|l| l == line),
            "{line} in\n{explained}"
        );
    }
    assert!(
        explained.lines().any(|l| l.starts_with("tag: User:1 ")),
        "{explained}"
    );
    let stats = admin(&cache, "/stats").await;
    let route = stats
        .lines()
        .find(|l| {
            l.starts_with("rule: ")
                && l.contains("route=/v1/users/{id}")
                && l.contains("kind=cache")
        })
        .unwrap_or_else(|| panic!("no line for the route in\n{stats}"));
    assert!(
        route.contains("hits=1 ") && route.contains("misses=1 "),
        "{route}"
    );

    assert_eq!(
        send(&app, Method::PUT, "/v1/users/1").await.cache_status,
        INVALIDATED
    );
    let explained = admin(&cache, explain).await;
    assert!(explained.lines().any(|l| l == "entry: none"), "{explained}");
}

async fn static_routes_are_explained_before_parameter_routes<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let cache = TaggedCacheLayer::new(store.clone());
    let me = cache
        .route_rules([CacheRule::matched().name("me").tags(["Me"])])
        .unwrap();
    let by_id = cache
        .route_rules([CacheRule::matched().name("by-id").tags(["User:{id}"])])
        .unwrap();
    let app = Router::new()
        .route(
            "/users/{id}",
            get(|| async { "someone" }).route_layer(by_id),
        )
        .route("/users/me", get(|| async { "me" }).route_layer(me));
    // The parameter route is seen first; axum still routes `/users/me` to
    // the static one, and so does the explanation.
    assert_eq!(
        send(&app, Method::GET, "/users/1").await.cache_status,
        STORED
    );
    assert_eq!(
        send(&app, Method::GET, "/users/me").await.cache_status,
        STORED
    );
    store.until_completed(Call::Put, 2).await;
    assert_eq!(send(&app, Method::GET, "/users/me").await.cache_status, HIT);
    let explained = admin(&cache, "/explain?method=GET&url=/users/me").await;
    for line in [
        "rule: me",
        "tag: ",
        "entry: stored",
        "cache-status: tower-tagged-cache; hit",
    ] {
        assert!(
            explained.lines().any(|l| l.starts_with(line)),
            "{line} in\n{explained}"
        );
    }
    assert!(!explained.contains("User:"), "{explained}");
}

async fn the_layer_around_the_router_knows_the_routes_rules<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    // Per-URI bumps only for URIs some rule caches: the route's rules count.
    let cache = TaggedCacheLayer::new(store.clone()).invalidate_unnamed_routes(false);
    let rename = |Path(id): Path<u64>| async move { Redirect::to(&format!("/users/{id}")) };
    let app = users(&cache, &calls)
        .route("/users/{id}/rename", post(rename))
        .layer(cache.clone());
    let first = send_all(&app, Method::GET, "/users/7").await;
    // One member: the route's rules answered, the outer layer adds none.
    assert_eq!(first, [STORED]);
    store.until_completed(Call::Put, 1).await;
    assert_eq!(send_all(&app, Method::GET, "/users/7").await, [HIT]);
    // A write no rule names, redirecting to the cached page: the outer
    // layer bumps the page's per-URI tag, since a route's rule caches it.
    let renamed = send(&app, Method::POST, "/users/7/rename").await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER);
    assert_eq!(renamed.cache_status, INVALIDATED);
    assert_eq!(send_all(&app, Method::GET, "/users/7").await, [STORED]);
}

/// Every `cache-status` value of the answer to `method path`.
async fn send_all(app: &Router, method: Method, path: &str) -> Vec<String> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let statuses = res
        .headers()
        .get_all("cache-status")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    // Read to the end: a response is stored after its last frame.
    res.into_body().collect().await.unwrap();
    statuses
}

support::every_store!(
    static_routes_are_explained_before_parameter_routes,
    the_layer_around_the_router_knows_the_routes_rules,
    the_admin_service_sees_rules_on_routes,
    rules_take_the_pattern_of_their_route,
    nested_routes_use_their_parameters,
    rules_that_do_not_fit_their_route_pass_through,
    undecodable_parameters_bypass,
);

#[test]
fn route_rules_take_only_rules_without_a_pattern() {
    let cache = TaggedCacheLayer::new(MemoryStore::new());
    let err = cache
        .route_rules([CacheRule::get("/users/{id}").tags(["User:{id}"])])
        .unwrap_err();
    assert!(err.to_string().contains("matched(..)"), "{err}");
    let err = TaggedCacheLayer::new(MemoryStore::new())
        .rule(CacheRule::matched().tags(["User:{id}"]))
        .unwrap_err();
    assert!(err.to_string().contains("route_rules"), "{err}");
}

#[tokio::test]
async fn outside_an_axum_router_nothing_matches() {
    let store = PausableStore::new(MemoryStore::new());
    let rules = TaggedCacheLayer::new(store.clone())
        .route_rules([CacheRule::matched().tags(["Page"])])
        .unwrap();
    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::from("page")))
    });
    let res = rules
        .layer(inner)
        .oneshot(Request::get("/page").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        res.headers()["cache-status"],
        "tower-tagged-cache; fwd=bypass; detail=no-rule"
    );
    assert_eq!(store.completed(Call::Lookup), 0);
}

#[test]
fn rules_of_the_layer_are_checked_against_the_routes() {
    let layer = TaggedCacheLayer::new(MemoryStore::new())
        .rule(CacheRule::get("/post/{id}").tags(["Post:{id}"]))
        .unwrap()
        .rule(WriteRule::put("/post/{id}").invalidates(["Post:{id}"]))
        .unwrap()
        .rule(CacheRule::get("/users/{id}").tags(["User:{id}"]))
        .unwrap();
    assert_eq!(
        layer.unmatched_rules(["/posts/{id}", "/users/{user_id}"]),
        ["GET /post/{id}", "PUT /post/{id}"]
    );
    assert!(
        layer
            .unmatched_rules(["/post/{id}", "/users/{id}"])
            .is_empty()
    );
}
