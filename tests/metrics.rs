//! The `metrics` feature: exact counts for each decision, recorded by a
//! `DebuggingRecorder` that only this test's thread sees; and the example's
//! Prometheus endpoint.
#![cfg(all(feature = "metrics", feature = "memory", feature = "redis"))]

use crate::support;

#[allow(unreachable_pub)]
#[path = "../examples/metrics.rs"]
mod metrics_example;

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{Service, ServiceExt, service_fn, util::BoxCloneService};
use tower_tagged_cache::{
    CacheRule, MemoryStore, Store, TagCache, TaggedCacheLayer, WriteRule,
    layer::ResponseBody,
    testing::{Call, Fault, FaultyStore, PausableStore},
    tower_layer::Layer,
};

type Svc = BoxCloneService<Request<Full<Bytes>>, Response<ResponseBody<Full<Bytes>>>, Infallible>;

/// What a test recorded: counters and the number of observations of each
/// histogram, keyed `name{label=value,...}` (labels sorted by name).
#[derive(Debug, Default)]
struct Recorded {
    counters: BTreeMap<String, u64>,
    histograms: BTreeMap<String, usize>,
}

/// Runs `test` on a current-thread runtime, with a fresh recorder as this
/// thread's `metrics` recorder: everything the layer records (spawned store
/// writes included) lands in it, and no other test's metrics do.
fn recorded<F: Future<Output = ()>>(test: impl FnOnce() -> F) -> Recorded {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || rt.block_on(test()));
    let mut out = Recorded::default();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = if labels.is_empty() {
            key.name().to_owned()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        match value {
            DebugValue::Counter(n) => {
                out.counters.insert(name, n);
            }
            DebugValue::Histogram(values) => {
                out.histograms.insert(name, values.len());
            }
            DebugValue::Gauge(_) => panic!("unexpected gauge {name}"),
        }
    }
    out
}

fn expected<const N: usize, T: Copy>(entries: [(&str, T); N]) -> BTreeMap<String, T> {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// `GET/PUT /users/{id}` cached under `User:{id}`; the origin sets a cookie
/// for user 3, and answers after `delay`.
fn service<St: Store>(store: St, calls: Arc<AtomicUsize>, delay: Duration) -> Svc {
    let layer = TaggedCacheLayer::new(store)
        .rule(
            CacheRule::get("/users/{id}")
                .name("user")
                .tags(["User:{id}"]),
        )
        .unwrap()
        .rule(
            WriteRule::put("/users/{id}")
                .name("user_update")
                .invalidates(["User:{id}"]),
        )
        .unwrap();
    BoxCloneService::new(layer.layer(service_fn(move |req: Request<Full<Bytes>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(delay).await;
            let mut res = Response::new(Full::new(Bytes::from(format!("at {}", req.uri()))));
            if req.uri().path() == "/users/3" {
                res.headers_mut()
                    .insert("set-cookie", "session=1".parse().unwrap());
            }
            Ok::<_, Infallible>(res)
        }
    })))
}

/// Sends a request, reads the whole body, returns `cache-status`.
async fn send(svc: &mut Svc, method: Method, uri: &str, cookie: bool) -> String {
    let mut req = Request::builder().method(method).uri(uri);
    if cookie {
        req = req.header("cookie", "a=b");
    }
    let req = req.body(Full::default()).unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
    res.into_body().collect().await.unwrap();
    status
}

#[test]
fn each_decision_is_counted_once() {
    let got = recorded(|| async {
        let store = PausableStore::new(MemoryStore::new());
        let mut svc = service(store.clone(), Arc::default(), Duration::ZERO);
        let mut get = async |uri: &str| send(&mut svc, Method::GET, uri, false).await;
        assert_eq!(
            get("/users/1").await,
            "tower-tagged-cache; fwd=miss; stored"
        );
        store.until_completed(Call::Put, 1).await;
        assert_eq!(get("/users/1").await, "tower-tagged-cache; hit");
        assert_eq!(get("/users/1").await, "tower-tagged-cache; hit");
        assert_eq!(
            get("/users/3").await,
            "tower-tagged-cache; fwd=miss; detail=set-cookie"
        );
        assert_eq!(
            get("/elsewhere").await,
            "tower-tagged-cache; fwd=bypass; detail=no-rule"
        );
        assert_eq!(
            send(&mut svc, Method::HEAD, "/users/2", false).await,
            "tower-tagged-cache; fwd=miss; detail=head"
        );
        assert_eq!(
            send(&mut svc, Method::GET, "/users/1", true).await,
            "tower-tagged-cache; fwd=bypass; detail=cookie"
        );
        assert_eq!(
            send(&mut svc, Method::PUT, "/users/1", false).await,
            "tower-tagged-cache; fwd=bypass; detail=invalidated"
        );
        assert_eq!(
            send(&mut svc, Method::GET, "/users/1", false).await,
            "tower-tagged-cache; fwd=miss; stored"
        );
        store.until_completed(Call::Put, 2).await;
        assert_eq!(
            send(&mut svc, Method::GET, "/users/1", false).await,
            "tower-tagged-cache; hit"
        );
    });
    assert_eq!(
        got.counters,
        expected([
            (
                "tower_tagged_cache_requests_total{outcome=hit,rule=user}",
                3
            ),
            (
                "tower_tagged_cache_requests_total{outcome=miss,rule=user}",
                4
            ),
            (
                "tower_tagged_cache_requests_total{outcome=bypass,rule=user}",
                1
            ),
            ("tower_tagged_cache_requests_total{outcome=bypass,rule=}", 1),
            (
                "tower_tagged_cache_requests_total{outcome=invalidated,rule=user_update}",
                1
            ),
            (
                "tower_tagged_cache_bypass_total{reason=cookie,rule=user}",
                1
            ),
            ("tower_tagged_cache_bypass_total{reason=no-rule,rule=}", 1),
            (
                "tower_tagged_cache_not_stored_total{reason=head,rule=user}",
                1
            ),
            (
                "tower_tagged_cache_not_stored_total{reason=set-cookie,rule=user}",
                1
            ),
            ("tower_tagged_cache_stored_total{rule=user}", 2),
            // `User:1` and the URI's own tag, in one round trip.
            ("tower_tagged_cache_invalidations_total{scope=tags}", 1),
            ("tower_tagged_cache_invalidated_tags_total", 2),
        ])
    );
    // A GET miss looks up twice (once more before calling the origin, in
    // case a concurrent miss stored it meanwhile); a hit or a HEAD once.
    assert_eq!(
        got.histograms,
        expected([
            ("tower_tagged_cache_store_duration_seconds{op=lookup}", 10),
            ("tower_tagged_cache_store_duration_seconds{op=put}", 2),
            ("tower_tagged_cache_store_duration_seconds{op=bump}", 1),
        ])
    );
}

#[test]
fn concurrent_misses_join_one_flight() {
    let calls = Arc::new(AtomicUsize::new(0));
    let got = recorded(|| async {
        let store = PausableStore::new(MemoryStore::new());
        let svc = service(store.clone(), calls.clone(), Duration::from_millis(50));
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..5 {
            let mut svc = svc.clone();
            requests.spawn(async move { send(&mut svc, Method::GET, "/users/1", false).await });
        }
        let mut statuses = requests.join_all().await;
        statuses.sort();
        assert_eq!(
            statuses,
            [
                "tower-tagged-cache; fwd=miss; stored",
                "tower-tagged-cache; hit; detail=coalesced",
                "tower-tagged-cache; hit; detail=coalesced",
                "tower-tagged-cache; hit; detail=coalesced",
                "tower-tagged-cache; hit; detail=coalesced",
            ]
        );
        // The leader's store write is counted once it is done.
        store.until_completed(Call::Put, 1).await;
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        got.counters,
        expected([
            (
                "tower_tagged_cache_requests_total{outcome=miss,rule=user}",
                1
            ),
            (
                "tower_tagged_cache_requests_total{outcome=coalesced,rule=user}",
                4
            ),
            ("tower_tagged_cache_single_flight_joins_total{rule=user}", 4),
            ("tower_tagged_cache_stored_total{rule=user}", 1),
        ])
    );
}

#[test]
fn store_errors_and_the_breaker() {
    let store = FaultyStore::always(MemoryStore::new(), Fault::Error);
    let got = recorded(|| async {
        let layer = TaggedCacheLayer::new(store.clone())
            .circuit_breaker(2, Duration::from_secs(60))
            .rule(
                CacheRule::get("/users/{id}")
                    .name("user")
                    .tags(["User:{id}"]),
            )
            .unwrap();
        let invalidator = layer.invalidator();
        let mut svc: Svc = BoxCloneService::new(layer.layer(service_fn(|_| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("uncached"))))
        })));
        for want in ["store-error", "store-error", "store-unavailable"] {
            assert_eq!(
                send(&mut svc, Method::GET, "/users/1", false).await,
                format!("tower-tagged-cache; fwd=bypass; detail={want}")
            );
        }
        // The layer's invalidator shares the open breaker: its bump is
        // queued without reaching the store, and without a store error
        // counted.
        let skipped = invalidator.invalidate(["User:1"]).await.unwrap();
        assert!(skipped.is_queued());
        // A handle of its own reaches the store: its error is counted, and
        // its bump queued in its own outbox.
        let own = tower_tagged_cache::Invalidator::new(store.clone())
            .invalidate(["User:1"])
            .await
            .unwrap();
        assert!(own.is_queued());
        // The fenced tag is not even looked up.
        assert_eq!(
            send(&mut svc, Method::GET, "/users/1", false).await,
            "tower-tagged-cache; fwd=bypass; detail=pending-invalidation"
        );
    });
    assert_eq!(store.calls(), 3);
    assert_eq!(
        got.counters,
        expected([
            (
                "tower_tagged_cache_requests_total{outcome=bypass,rule=user}",
                4
            ),
            (
                "tower_tagged_cache_bypass_total{reason=store-error,rule=user}",
                2
            ),
            (
                "tower_tagged_cache_bypass_total{reason=store-unavailable,rule=user}",
                1
            ),
            (
                "tower_tagged_cache_bypass_total{reason=pending-invalidation,rule=user}",
                1
            ),
            ("tower_tagged_cache_outbox_total{event=queued}", 2),
            (
                "tower_tagged_cache_store_errors_total{kind=error,op=lookup}",
                2
            ),
            (
                "tower_tagged_cache_store_errors_total{kind=error,op=bump}",
                1
            ),
            ("tower_tagged_cache_circuit_breaker_opened_total", 1),
        ])
    );
    assert_eq!(
        got.histograms,
        expected([
            ("tower_tagged_cache_store_duration_seconds{op=lookup}", 2),
            ("tower_tagged_cache_store_duration_seconds{op=bump}", 1),
        ])
    );
}

#[test]
fn store_timeouts() {
    let got = recorded(|| async {
        let layer = TaggedCacheLayer::new(FaultyStore::always(MemoryStore::new(), Fault::Hang))
            .store_timeout(Duration::from_millis(20))
            .rule(
                CacheRule::get("/users/{id}")
                    .name("user")
                    .tags(["User:{id}"]),
            )
            .unwrap();
        let mut svc: Svc = BoxCloneService::new(layer.layer(service_fn(|_| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("uncached"))))
        })));
        assert_eq!(
            send(&mut svc, Method::GET, "/users/1", false).await,
            "tower-tagged-cache; fwd=bypass; detail=store-timeout"
        );
    });
    assert_eq!(
        got.counters,
        expected([
            (
                "tower_tagged_cache_requests_total{outcome=bypass,rule=user}",
                1
            ),
            (
                "tower_tagged_cache_bypass_total{reason=store-timeout,rule=user}",
                1
            ),
            (
                "tower_tagged_cache_store_errors_total{kind=timeout,op=lookup}",
                1
            ),
        ])
    );
}

#[test]
fn value_cache_reads() {
    let got = recorded(|| async {
        let cache = TagCache::new(MemoryStore::new());
        let ttl = Duration::from_secs(60);
        let load = || async { "Ada".to_owned() };
        let first: String = cache
            .get_or_set_with_tags("profile", ["User:1"], ttl, load)
            .await
            .unwrap();
        let again: String = cache
            .get_or_set_with_tags("profile", ["User:1"], ttl, || async { unreachable!() })
            .await
            .unwrap();
        assert_eq!((first.as_str(), again.as_str()), ("Ada", "Ada"));
        let other: Option<String> = cache.get_with_tags("other", ["User:1"]).await.unwrap();
        assert_eq!(other, None);
        cache.invalidator().invalidate(["User:1"]).await.unwrap();
    });
    assert_eq!(
        got.counters,
        expected([
            ("tower_tagged_cache_value_lookups_total{outcome=miss}", 2),
            ("tower_tagged_cache_value_lookups_total{outcome=hit}", 1),
            ("tower_tagged_cache_invalidations_total{scope=tags}", 1),
            ("tower_tagged_cache_invalidated_tags_total", 1),
        ])
    );
}

/// The example's `/metrics`, over HTTP: Prometheus text with the layer's
/// counters. (The only test here that installs the global recorder.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_serves_prometheus_text() {
    let handle = metrics_example::install_recorder().expect("install the recorder");
    let base = support::serve(metrics_example::app(handle).unwrap()).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let get = |path: &str| {
        let uri: http::Uri = format!("{base}{path}").parse().unwrap();
        let client = client.clone();
        async move {
            let res = client.get(uri).await.expect("request");
            let cache_status = res
                .headers()
                .get("cache-status")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (cache_status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let (status, body) = get("/users/1").await;
    assert_eq!(
        status.as_deref(),
        Some("tower-tagged-cache; fwd=miss; stored")
    );
    assert_eq!(body, "user 1\n");
    // The entry is stored just after the response: ask until it is a hit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while get("/users/1").await.0.as_deref() != Some("tower-tagged-cache; hit") {
        assert!(tokio::time::Instant::now() < deadline, "never a hit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, text) = get("/metrics").await;
    assert_eq!(status, None, "/metrics is outside the layer");
    assert!(
        text.contains("# TYPE tower_tagged_cache_requests_total counter"),
        "{text}"
    );
    let hits = text
        .lines()
        .find(|l| {
            l.starts_with("tower_tagged_cache_requests_total{")
                && l.contains(r#"rule="user_detail""#)
                && l.contains(r#"outcome="hit""#)
        })
        .unwrap_or_else(|| panic!("no hit counter in\n{text}"));
    let n: u64 = hits.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{hits}");
    assert!(
        text.contains("# TYPE tower_tagged_cache_store_duration_seconds histogram"),
        "{text}"
    );
}
