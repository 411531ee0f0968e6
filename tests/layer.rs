//! The layer end to end over a tower service, against both stores.

mod support;

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use support::scripted::{Scripted, Step};
use tokio::sync::Notify;
use tower::{Service, ServiceExt, service_fn, util::BoxCloneService};
use tower_tagged_cache::{
    CacheRule, Invalidator, Store, TaggedCacheLayer, VaryOn, WriteRule,
    layer::ResponseBody,
    testing::{Call, PausableStore},
    tower_layer::Layer,
};

/// What the tests put behind the layer.
trait Inner:
    Service<Request<Full<Bytes>>, Response = Response<Scripted>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static
{
}

impl<T> Inner for T where
    T: Service<
            Request<Full<Bytes>>,
            Response = Response<Scripted>,
            Error = Infallible,
            Future: Send,
        > + Clone
        + Send
        + 'static
{
}

type Svc = BoxCloneService<Request<Full<Bytes>>, Response<ResponseBody<Scripted>>, Infallible>;

/// What a test sees of one response.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl Seen {
    fn cache_status(&self) -> &str {
        self.headers
            .get("cache-status")
            .map(|v| v.to_str().unwrap())
            .unwrap_or("<none>")
    }
}

async fn send(svc: &mut Svc, req: Request<Full<Bytes>>) -> Seen {
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let collected = body.collect().await.expect("body");
    Seen {
        status: parts.status,
        headers: parts.headers,
        trailers: collected.trailers().cloned(),
        body: collected.to_bytes(),
    }
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).unwrap()
}

/// Wraps an origin function with a call counter.
fn origin<F>(calls: Arc<AtomicUsize>, f: F) -> impl Inner
where
    F: Fn(Request<Full<Bytes>>, usize) -> Response<Scripted> + Clone + Send + Sync + 'static,
{
    service_fn(move |req| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let f = f.clone();
        async move { Ok::<_, Infallible>(f(req, n)) }
    })
}

fn stack<St: Store>(layer: TaggedCacheLayer<St>, inner: impl Inner) -> Svc {
    BoxCloneService::new(layer.layer(inner))
}

fn user_rule() -> CacheRule {
    CacheRule::get("/users/{id}")
        .tags(["User:{id}"])
        .ttl(Duration::from_secs(60))
}

/// The common start: an observed store, an inner-call counter and a layer
/// with the `/users/{id}` rule.
fn fixture<St: Store>(
    store: St,
) -> (
    PausableStore<St>,
    Arc<AtomicUsize>,
    TaggedCacheLayer<PausableStore<St>>,
) {
    let store = PausableStore::new(store);
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(user_rule())
        .unwrap();
    (store, Arc::new(AtomicUsize::new(0)), layer)
}

/// An origin that answers `call #n for <path>`.
fn counting(calls: &Arc<AtomicUsize>) -> impl Inner {
    origin(calls.clone(), |req, n| {
        Response::new(Scripted::full(format!("call #{n} for {}", req.uri())))
    })
}

async fn miss_hit_invalidate<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let invalidator = layer.invalidator();
    let mut svc = stack(layer, counting(&calls));

    let first = send(&mut svc, get("/users/42")).await;
    assert_eq!(first.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(first.body, "call #1 for /users/42");
    store.until_completed(Call::Put, 1).await;

    let second = send(&mut svc, get("/users/42")).await;
    assert_eq!(second.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(second.body, first.body);
    assert_eq!(second.status, StatusCode::OK);
    let age: u64 = second.headers["age"].to_str().unwrap().parse().unwrap();
    assert!(age <= 5, "age {age}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Another user is another entry.
    let other = send(&mut svc, get("/users/7")).await;
    assert_eq!(other.body, "call #2 for /users/7");
    store.until_completed(Call::Put, 2).await;

    invalidator.invalidate(["User:42"]).await.unwrap();
    let third = send(&mut svc, get("/users/42")).await;
    assert_eq!(third.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(third.body, "call #3 for /users/42");
    // User:7 was not touched.
    let other_again = send(&mut svc, get("/users/7")).await;
    assert_eq!(other_again.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(other_again.body, "call #2 for /users/7");
}

async fn head_uses_the_get_entry<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let mut svc = stack(layer, counting(&calls));
    let head = || Request::head("/users/1").body(Full::default()).unwrap();

    // A HEAD miss goes to the origin and stores nothing.
    let cold = send(&mut svc, head()).await;
    assert_eq!(
        cold.cache_status(),
        "tower-tagged-cache; fwd=miss; detail=head"
    );
    let first = send(&mut svc, get("/users/1")).await;
    assert_eq!(first.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    store.until_completed(Call::Put, 1).await;
    assert_eq!(
        store.completed(Call::Put),
        1,
        "the HEAD miss stored nothing"
    );

    let warm = send(&mut svc, head()).await;
    assert_eq!(warm.cache_status(), "tower-tagged-cache; hit");
    assert!(warm.body.is_empty());
    assert_eq!(warm.headers["content-length"], first.body.len().to_string());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

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

/// A response's `Vary` on a header the rule does not name is learned: the
/// entry remembers the request's value and serves only requests that match.
async fn learned_vary_keeps_variants_apart<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let inner = origin(calls.clone(), |req, n| {
        let lang = req
            .headers()
            .get("accept-language")
            .map(|v| v.to_str().unwrap().to_owned());
        let mut res = Response::new(Scripted::full(format!("#{n} in {lang:?}")));
        res.headers_mut()
            .insert("vary", HeaderValue::from_static("Accept-Language"));
        res
    });
    let mut svc = stack(layer, inner);
    let lang = |l: &str| {
        Request::get("/users/1")
            .header("accept-language", l)
            .body(Full::default())
            .unwrap()
    };
    let en = send(&mut svc, lang("en")).await;
    assert_eq!(en.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    store.until_completed(Call::Put, 1).await;
    assert_eq!(send(&mut svc, lang("en")).await.body, en.body);
    let fr = send(&mut svc, lang("fr")).await;
    assert_eq!(
        fr.cache_status(),
        "tower-tagged-cache; fwd=vary-miss; stored"
    );
    assert!(fr.body.ends_with(b"Some(\"fr\")"), "{:?}", fr.body);
    store.until_completed(Call::Put, 2).await;
    let fr_again = send(&mut svc, lang("fr")).await;
    assert_eq!(fr_again.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(fr_again.body, fr.body);
    // One variant at a time: English is recomputed, never served French.
    let en_again = send(&mut svc, lang("en")).await;
    assert!(
        en_again.body.ends_with(b"Some(\"en\")"),
        "{:?}",
        en_again.body
    );
    let absent = send(&mut svc, get("/users/1")).await;
    assert!(absent.body.ends_with(b"None"), "{:?}", absent.body);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
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

async fn trailers_are_stored_and_replayed<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let inner = origin(calls.clone(), |_, _| {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        Response::new(Scripted::steps([
            Step::Data(Bytes::from_static(b"part one, ")),
            Step::Data(Bytes::from_static(b"part two")),
            Step::Trailers(trailers),
        ]))
    });
    let mut svc = stack(layer, inner);
    let miss = send(&mut svc, get("/users/1")).await;
    assert_eq!(miss.body, "part one, part two");
    assert_eq!(miss.trailers.as_ref().unwrap()["grpc-status"], "0");
    store.until_completed(Call::Put, 1).await;
    let hit = send(&mut svc, get("/users/1")).await;
    assert_eq!(hit.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(hit.body, "part one, part two");
    assert_eq!(hit.trailers.as_ref().unwrap()["grpc-status"], "0");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

async fn vary_on_values_never_share_an_entry<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(
            user_rule()
                .vary_on(VaryOn::header("accept-language"))
                .vary_on(VaryOn::from_fn("tenant", |p| {
                    p.headers.get("x-tenant")?.to_str().ok().map(str::to_owned)
                })),
        )
        .unwrap();
    let inner = origin(calls.clone(), |req, n| {
        let lang = req
            .headers()
            .get("accept-language")
            .map(|v| v.to_str().unwrap().to_owned());
        let tenant = req
            .headers()
            .get("x-tenant")
            .map(|v| v.to_str().unwrap().to_owned());
        Response::new(Scripted::full(format!(
            "#{n} lang={lang:?} tenant={tenant:?}"
        )))
    });
    let mut svc = stack(layer, inner);
    let req = |lang: Option<&str>, tenant: Option<&str>| {
        let mut b = Request::get("/users/1");
        if let Some(l) = lang {
            b = b.header("accept-language", l);
        }
        if let Some(t) = tenant {
            b = b.header("x-tenant", t);
        }
        b.body(Full::default()).unwrap()
    };
    let variants = [
        (None, None),
        (Some("en"), None),
        (Some("fr"), None),
        (Some(""), None),
        (Some("en"), Some("a")),
        (Some("en"), Some("b")),
    ];
    let mut bodies = Vec::new();
    for (i, (lang, tenant)) in variants.iter().enumerate() {
        let seen = send(&mut svc, req(*lang, *tenant)).await;
        assert_eq!(
            seen.cache_status(),
            "tower-tagged-cache; fwd=miss; stored",
            "{lang:?} {tenant:?}"
        );
        store.until_completed(Call::Put, i + 1).await;
        bodies.push(seen.body);
    }
    for ((lang, tenant), body) in variants.iter().zip(&bodies) {
        let seen = send(&mut svc, req(*lang, *tenant)).await;
        assert_eq!(seen.cache_status(), "tower-tagged-cache; hit");
        assert_eq!(
            &seen.body, body,
            "{lang:?} {tenant:?} got another variant's body"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), variants.len());
}

async fn credentials_bypass_unless_varied_on<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(user_rule())
        .unwrap()
        .rule(
            CacheRule::get("/me/{id}")
                .tags(["User:{id}"])
                .vary_on(VaryOn::header("authorization")),
        )
        .unwrap();
    let inner = origin(calls.clone(), |req, n| {
        let who = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        Response::new(Scripted::full(format!("#{n} private page of {who:?}")))
    });
    let mut svc = stack(layer, inner);
    let with = |path: &str, header: &str, value: &str| {
        Request::get(path)
            .header(header, value)
            .body(Full::default())
            .unwrap()
    };
    // Warm the shared entry, then make sure credentialed requests neither
    // read it nor write it.
    send(&mut svc, get("/users/1")).await;
    store.until_completed(Call::Put, 1).await;
    let alice = send(&mut svc, with("/users/1", "authorization", "Bearer alice")).await;
    assert_eq!(
        alice.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=authorization"
    );
    assert!(alice.body.ends_with(b"Some(\"Bearer alice\")"));
    let cookie = send(&mut svc, with("/users/1", "cookie", "session=bob")).await;
    assert_eq!(
        cookie.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=cookie"
    );
    let anon = send(&mut svc, get("/users/1")).await;
    assert_eq!(anon.cache_status(), "tower-tagged-cache; hit");
    assert!(
        anon.body.ends_with(b"None"),
        "anonymous got {:?}",
        anon.body
    );

    // A rule that varies on Authorization keeps one entry per credential.
    let a1 = send(&mut svc, with("/me/1", "authorization", "Bearer alice")).await;
    store.until_completed(Call::Put, 2).await;
    let b1 = send(&mut svc, with("/me/1", "authorization", "Bearer bob")).await;
    store.until_completed(Call::Put, 3).await;
    let a2 = send(&mut svc, with("/me/1", "authorization", "Bearer alice")).await;
    let b2 = send(&mut svc, with("/me/1", "authorization", "Bearer bob")).await;
    assert_eq!(a2.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(b2.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(a1.body, a2.body);
    assert_eq!(b1.body, b2.body);
    assert_ne!(a1.body, b1.body);
}

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
        "tower-tagged-cache; fwd=bypass; detail=method"
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
    assert_eq!(invalidator.tag_version("User:13").await.unwrap(), None);
    assert_eq!(invalidator.tag_version("Dashboard").await.unwrap(), d2);
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

async fn handlers_find_the_invalidator<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(user_rule())
        .unwrap();
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        if req.method() == http::Method::POST {
            let inv = req
                .extensions()
                .get::<Invalidator<PausableStore<St>>>()
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
    assert_eq!(
        send(&mut svc, post).await.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=method"
    );
    let after = send(&mut svc, get("/users/5")).await;
    assert_eq!(after.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    assert_ne!(after.body, first.body);
}

async fn percent_encoded_params_share_the_tag<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let invalidator = layer.invalidator();
    let mut svc = stack(layer, counting(&calls));
    send(&mut svc, get("/users/4%32")).await;
    store.until_completed(Call::Put, 1).await;
    assert_eq!(
        send(&mut svc, get("/users/4%32")).await.cache_status(),
        "tower-tagged-cache; hit"
    );
    // `/users/4%32` is user 42 to axum: bumping User:42 must reach it.
    invalidator.invalidate(["User:42"]).await.unwrap();
    assert_eq!(
        send(&mut svc, get("/users/4%32")).await.cache_status(),
        "tower-tagged-cache; fwd=miss; stored"
    );
    let bad = send(&mut svc, get("/users/%ff")).await;
    assert_eq!(
        bad.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=bad-path"
    );
    let none = send(&mut svc, get("/elsewhere")).await;
    assert_eq!(
        none.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=no-rule"
    );
}

async fn query_strings_are_part_of_the_key<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(user_rule())
        .unwrap()
        .rule(
            CacheRule::get("/feed")
                .tags(["Feed"])
                .ignore_query()
                .vary_on(VaryOn::query("page")),
        )
        .unwrap();
    let mut svc = stack(layer, counting(&calls));
    let a = send(&mut svc, get("/users/1?fields=name")).await;
    store.until_completed(Call::Put, 1).await;
    let b = send(&mut svc, get("/users/1?fields=email")).await;
    assert_ne!(a.body, b.body);
    store.until_completed(Call::Put, 2).await;
    // With ignore_query, only the declared parameter counts.
    send(&mut svc, get("/feed?page=2&utm_source=x")).await;
    store.until_completed(Call::Put, 3).await;
    let same = send(&mut svc, get("/feed?utm_source=y&page=2")).await;
    assert_eq!(same.cache_status(), "tower-tagged-cache; hit");
    let other = send(&mut svc, get("/feed?page=3")).await;
    assert_eq!(other.cache_status(), "tower-tagged-cache; fwd=miss; stored");
}

support::every_store!(
    miss_hit_invalidate,
    head_uses_the_get_entry,
    unstorable_responses_pass_through,
    incomplete_and_oversized_bodies_are_not_stored,
    trailers_are_stored_and_replayed,
    learned_vary_keeps_variants_apart,
    bodies_short_of_their_length_are_not_stored,
    vary_on_values_never_share_an_entry,
    credentials_bypass_unless_varied_on,
    bump_during_slow_request_is_not_undone,
    write_rules_bump_after_success_only,
    handlers_find_the_invalidator,
    unparsed_writes_still_invalidate_their_uri,
    concurrent_misses_make_one_inner_call,
    followers_survive_a_cancelled_leader,
    percent_encoded_params_share_the_tag,
    query_strings_are_part_of_the_key,
);

// ---------------------------------------------------------------------------
// Fleet-wide single-flight (`CacheRule::lease`), on Redis: two layers on one
// store stand for two app servers (each has its own in-process flights).
// ---------------------------------------------------------------------------

/// An origin whose first call blocks until released and answers `status`;
/// later calls answer 200 at once.
#[allow(clippy::type_complexity)]
fn gated_origin_first(
    status: StatusCode,
) -> (impl Inner, Arc<AtomicUsize>, Arc<Notify>, Arc<Notify>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let svc = {
        let (calls, entered, release) = (calls.clone(), entered.clone(), release.clone());
        service_fn(move |_req: Request<Full<Bytes>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                let mut res = Response::new(Scripted::full(format!("computed by call #{n}")));
                if n == 1 {
                    entered.notify_one();
                    release.notified().await;
                    *res.status_mut() = status;
                }
                Ok::<_, Infallible>(res)
            }
        })
    };
    (svc, calls, entered, release)
}

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
