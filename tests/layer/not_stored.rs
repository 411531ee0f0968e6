//! Responses that pass through without being stored: statuses and headers
//! that forbid it, bodies that fail, run over the size limit or stop short
//! of their `Content-Length`.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};
use tower_tagged_cache::{
    Store, TaggedCacheLayer,
    testing::{Call, PausableStore},
};

use super::{
    fixture, get, origin, send, stack,
    support::{
        self,
        scripted::{Scripted, Step},
    },
    user_rule,
};

/// Each response the origin sends for a path, and the `detail=` that says
/// why it was not stored.
type Case = (
    &'static str,
    u16,
    Option<(&'static str, &'static str)>,
    &'static str,
);

const UNSTORABLE: [Case; 7] = [
    ("/users/404", 404, None, "status"),
    ("/users/500", 500, None, "status"),
    (
        "/users/cookie",
        200,
        Some(("set-cookie", "s=1")),
        "set-cookie",
    ),
    (
        "/users/nostore",
        200,
        Some(("cache-control", "no-store")),
        "no-store",
    ),
    (
        "/users/private",
        200,
        Some(("cache-control", "private, max-age=60")),
        "private",
    ),
    (
        "/users/zero",
        200,
        Some(("cache-control", "max-age=0")),
        "max-age",
    ),
    ("/users/varystar", 200, Some(("vary", "*")), "vary"),
];

async fn unstorable_responses_pass_through<St: Store>(store: St) {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TaggedCacheLayer::new(store).rule(user_rule()).unwrap();
    let inner = origin(calls.clone(), |req, n| {
        let (_, status, header, _) = UNSTORABLE
            .iter()
            .find(|(path, ..)| *path == req.uri().path())
            .expect("a scripted path");
        let mut res = Response::new(Scripted::full(format!("call #{n}")));
        *res.status_mut() = StatusCode::from_u16(*status).unwrap();
        if let Some((name, value)) = header {
            res.headers_mut()
                .insert(*name, HeaderValue::from_static(value));
        }
        res
    });
    let mut svc = stack(layer, inner);
    for (path, _, _, detail) in UNSTORABLE {
        let before = calls.load(Ordering::SeqCst);
        for _ in 0..2 {
            let seen = send(&mut svc, get(path)).await;
            assert_eq!(
                seen.cache_status(),
                format!("tower-tagged-cache; fwd=miss; detail={detail}"),
                "{path}"
            );
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            before + 2,
            "{path} was served from cache"
        );
    }
}

async fn incomplete_and_oversized_bodies_are_not_stored<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TaggedCacheLayer::new(store.clone())
        .max_body_size(64)
        .rule(user_rule())
        .unwrap();
    let inner = origin(calls.clone(), |req, _| match req.uri().path() {
        "/users/broken" => Response::new(Scripted::steps([
            Step::Data(Bytes::from_static(b"half a bo")),
            Step::Error("connection reset"),
        ])),
        "/users/big-streamed" => Response::new(Scripted::steps(
            (0..10).map(|_| Step::Data(Bytes::from(vec![b'x'; 10]))),
        )),
        "/users/big-declared" => Response::new(Scripted::full(vec![b'y'; 100])),
        _ => unreachable!(),
    });
    let mut svc = stack(layer, inner);

    // A body that fails mid-stream reaches the client as an error and is
    // never stored.
    for _ in 0..2 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(get("/users/broken"))
            .await
            .unwrap();
        assert!(res.into_body().collect().await.is_err());
    }
    // Over the limit, found while streaming: served whole, not stored.
    for _ in 0..2 {
        let seen = send(&mut svc, get("/users/big-streamed")).await;
        assert_eq!(seen.body.len(), 100);
    }
    // Over the limit, known from the size hint: said up front.
    let seen = send(&mut svc, get("/users/big-declared")).await;
    assert_eq!(
        seen.cache_status(),
        "tower-tagged-cache; fwd=miss; detail=too-large"
    );
    assert_eq!(seen.body.len(), 100);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(store.completed(Call::Put), 0);
}

/// A body that ends cleanly but short of its `Content-Length` is a cut-off
/// response: served as it came, never stored.
async fn bodies_short_of_their_length_are_not_stored<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let inner = origin(calls.clone(), |req, n| {
        if req.uri().path() == "/users/short" {
            let mut res = Response::new(Scripted::steps([Step::Data(Bytes::from_static(b"half"))]));
            res.headers_mut()
                .insert("content-length", HeaderValue::from_static("10"));
            res
        } else {
            Response::new(Scripted::full(format!("call #{n}")))
        }
    });
    let mut svc = stack(layer, inner);
    let short = send(&mut svc, get("/users/short")).await;
    assert_eq!(short.body, "half");
    // A complete response after it is stored; the short one never was.
    send(&mut svc, get("/users/full")).await;
    store.until_completed(Call::Put, 1).await;
    let again = send(&mut svc, get("/users/short")).await;
    assert_eq!(again.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        send(&mut svc, get("/users/full")).await.cache_status(),
        "tower-tagged-cache; hit"
    );
    assert_eq!(store.completed(Call::Put), 1);
}

support::every_store!(
    unstorable_responses_pass_through,
    incomplete_and_oversized_bodies_are_not_stored,
    bodies_short_of_their_length_are_not_stored,
);
