//! Behaviour that only shows over real HTTP/1.1 (hyper on loopback): trailers
//! on the miss and hit paths, and nested axum routers sharing one store.

use crate::support;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use support::scripted::{Scripted, Step};
use tower::service_fn;
use tower_tagged_cache::{
    CacheRule, MemoryStore, Store, TaggedCacheLayer,
    testing::{Call, PausableStore},
};

struct Seen {
    cache_status: String,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

async fn fetch(url: &str) -> Seen {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::get(url)
        .header("te", "trailers")
        .body(Full::default())
        .unwrap();
    let res = client.request(req).await.unwrap();
    let cache_status = res.headers()["cache-status"].to_str().unwrap().to_owned();
    let collected = res.into_body().collect().await.unwrap();
    Seen {
        cache_status,
        trailers: collected.trailers().cloned(),
        body: collected.to_bytes(),
    }
}

async fn trailers_survive_both_paths<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let origin = {
        let calls = calls.clone();
        service_fn(move |_req: Request<axum::body::Body>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                trailers.insert("grpc-message", HeaderValue::from_static("ok"));
                // HTTP/1.1 sends only the trailers the `Trailer` header names.
                let mut res = Response::new(Scripted::steps([
                    Step::Data(Bytes::from_static(b"streamed ")),
                    Step::Data(Bytes::from_static(b"payload")),
                    Step::Trailers(trailers),
                ]));
                res.headers_mut().insert(
                    "trailer",
                    HeaderValue::from_static("grpc-status, grpc-message"),
                );
                Ok::<_, Infallible>(res)
            }
        })
    };
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(CacheRule::get("/items/{id}").tags(["Item:{id}"]))
        .unwrap();
    let base = support::serve(
        Router::new()
            .route_service("/items/{id}", origin)
            .layer(layer),
    )
    .await;
    let url = format!("{base}/items/1");

    let miss = fetch(&url).await;
    assert_eq!(miss.cache_status, "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(miss.body, "streamed payload");
    assert_eq!(
        miss.trailers.as_ref().expect("trailers on the miss")["grpc-status"],
        "0"
    );
    // hyper stops polling after the trailers frame: the write must not wait
    // for an end of stream that never comes.
    store.until_completed(Call::Put, 1).await;

    let hit = fetch(&url).await;
    assert_eq!(hit.cache_status, "tower-tagged-cache; hit");
    assert_eq!(hit.body, "streamed payload");
    let trailers = hit.trailers.expect("trailers on the hit");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

support::every_store!(trailers_survive_both_paths);

/// Nested routers see their paths without the prefix; with one store and the
/// same rule, their namespaces keep the admin page away from the public one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_routers_on_one_store_stay_apart() {
    let store = PausableStore::new(MemoryStore::new());
    let section = |label: &'static str| {
        let layer = TaggedCacheLayer::new(store.clone())
            .namespace(label)
            .rule(CacheRule::get("/users/{id}").tags(["User:{id}"]))
            .unwrap();
        Router::new()
            .route(
                "/users/{id}",
                axum::routing::get(move || async move { format!("{label} view") }),
            )
            .layer(layer)
    };
    let app = Router::new()
        .nest("/admin", section("admin"))
        .nest("/public", section("public"));
    let base = support::serve(app).await;

    let admin = fetch(&format!("{base}/admin/users/1")).await;
    assert_eq!(admin.body, "admin view");
    store.until_completed(Call::Put, 1).await;
    let public = fetch(&format!("{base}/public/users/1")).await;
    assert_eq!(public.cache_status, "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(public.body, "public view");
    store.until_completed(Call::Put, 2).await;
    assert_eq!(
        fetch(&format!("{base}/admin/users/1")).await.body,
        "admin view"
    );
    assert_eq!(
        fetch(&format!("{base}/public/users/1")).await.body,
        "public view"
    );
}
