//! Micro benches and side-by-side floors.
//!
//! ```text
//! cargo bench --bench layer                 # everything (starts a private redis-server)
//! cargo bench --bench layer -- middleware   # one group
//! cargo bench --bench layer -- variants     # Vary variants on the memory store
//! ```
//!
//! Each `middleware/*` and `quickstart/*` group puts the cached path beside its
//! floor in the same run, so ratios, not absolute times, are what to compare.

#[path = "../tests/support/mod.rs"]
mod support;

#[allow(unreachable_pub, missing_docs)]
#[path = "../examples/quickstart/quickstart.rs"]
mod quickstart;

use std::{
    convert::Infallible,
    hint::black_box,
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tokio::runtime::Runtime;
use tower::{Service, ServiceExt, service_fn};
use tower_tagged_cache::{
    CacheRule, FragmentedKey, Invalidator, MemoryStore, Store, Tag, TaggedCacheLayer,
    tower_layer::Layer,
};

fn body_1k() -> Bytes {
    Bytes::from(vec![b'x'; 1024])
}

fn key_derivation(c: &mut Criterion) {
    let mut g = c.benchmark_group("key");
    let tags = [
        Tag::new("User", 42).unwrap(),
        Tag::new("Org", 7).unwrap(),
        Tag::new("Dashboard", "").unwrap(),
    ];
    g.bench_function("derive_3_tags_2_vary", |b| {
        b.iter(|| {
            let mut k = FragmentedKey::builder("user_detail", 1, "");
            k.push_vary(":path", Some(b"/users/42"));
            k.push_vary("header:accept-language", Some(b"en-GB"));
            for t in &tags {
                k.push_tag(t.clone());
            }
            black_box(k.finish())
        })
    });
    g.finish();
}

/// One cached route with three tags over an inner service returning 1 KiB.
async fn warm_service<St: Store>(
    store: St,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<tower_tagged_cache::layer::ResponseBody<Full<Bytes>>>,
    Error = Infallible,
    Future: Send,
> + Clone {
    let layer = TaggedCacheLayer::new(store)
        .rule(CacheRule::get("/users/{id}").tags(["User:{id}", "Org:1", "Dashboard"]))
        .unwrap();
    let svc = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(body_1k())))
    }));
    // Fill the entry and wait until it is readable.
    let start = Instant::now();
    loop {
        let res = svc.clone().oneshot(get("/users/1")).await.unwrap();
        let hit = res.headers()["cache-status"] == "tower-tagged-cache; hit";
        res.into_body().collect().await.unwrap();
        if hit {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never became a hit"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    svc
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).unwrap()
}

/// A full hit through the service beside the floor: a service that returns
/// the same bytes from memory, or that does one Redis GET of a fixed key.
fn middleware(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut g = c.benchmark_group("middleware");

    let floor_static = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(body_1k())))
    });
    g.bench_function("floor_static", |b| {
        b.to_async(&rt).iter(|| async {
            let res = floor_static.oneshot(get("/users/1")).await.unwrap();
            black_box(res.into_body().collect().await.unwrap().to_bytes())
        })
    });
    let memory = rt.block_on(warm_service(MemoryStore::new()));
    g.bench_function("hit_memory", |b| {
        b.to_async(&rt).iter(|| async {
            let res = memory.clone().oneshot(get("/users/1")).await.unwrap();
            black_box(res.into_body().collect().await.unwrap().to_bytes())
        })
    });
    // The same hit with the crate's telemetry collected as in production:
    // metrics into a Prometheus recorder, events and spans under a
    // subscriber that keeps `info` and above. (Both are set for this thread
    // only; a hit runs on it, inside `block_on`.)
    #[cfg(feature = "metrics")]
    {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            g.bench_function("hit_memory_metrics", |b| {
                b.to_async(&rt).iter(|| async {
                    let res = memory.clone().oneshot(get("/users/1")).await.unwrap();
                    black_box(res.into_body().collect().await.unwrap().to_bytes())
                })
            });
        });
    }
    #[cfg(feature = "tracing")]
    {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            g.bench_function("hit_memory_tracing_info", |b| {
                b.to_async(&rt).iter(|| async {
                    let res = memory.clone().oneshot(get("/users/1")).await.unwrap();
                    black_box(res.into_body().collect().await.unwrap().to_bytes())
                })
            });
        });
    }

    let redis = support::Redis::start();
    let (store, conn) = rt.block_on(async {
        let store = redis.store().await;
        let mut conn = store
            .connection()
            .expect("a store built without bb8_pool has a connection manager");
        let _: () = redis::cmd("SET")
            .arg("floor:key")
            .arg(&body_1k()[..])
            .query_async(&mut conn)
            .await
            .unwrap();
        (store, conn)
    });
    let floor_redis = service_fn(move |_req: Request<Full<Bytes>>| {
        let mut conn = conn.clone();
        async move {
            let bytes: Vec<u8> = redis::cmd("GET")
                .arg("floor:key")
                .query_async(&mut conn)
                .await
                .unwrap();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(bytes))))
        }
    });
    g.bench_function("floor_redis_get", |b| {
        b.to_async(&rt).iter(|| async {
            let res = floor_redis.clone().oneshot(get("/users/1")).await.unwrap();
            black_box(res.into_body().collect().await.unwrap().to_bytes())
        })
    });
    let on_redis = rt.block_on(warm_service(store));
    g.bench_function("hit_redis", |b| {
        b.to_async(&rt).iter(|| async {
            let res = on_redis.clone().oneshot(get("/users/1")).await.unwrap();
            black_box(res.into_body().collect().await.unwrap().to_bytes())
        })
    });
    g.finish();
    drop(redis);
}

/// The quickstart app over real HTTP on loopback: a hit beside a miss (the
/// miss includes the handler's 20 ms of simulated work).
fn quickstart_http(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let redis = support::Redis::start();
    let mut g = c.benchmark_group("quickstart");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    quickstart_pair(&mut g, &rt, "memory", MemoryStore::new());
    let store = rt.block_on(redis.store());
    quickstart_pair(&mut g, &rt, "redis", store);
    g.finish();
}

async fn fetch(client: &Client<HttpConnector, Full<Bytes>>, url: &str) -> String {
    let req = Request::builder()
        .method(Method::GET)
        .uri(url)
        .body(Full::default())
        .unwrap();
    let res = client.request(req).await.unwrap();
    let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
    res.into_body().collect().await.unwrap();
    status
}

fn quickstart_pair<St: Store>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    name: &str,
    store: St,
) {
    let (base, invalidator) = rt.block_on(start_quickstart(store));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = format!("{base}/users/1");
    rt.block_on(async {
        while fetch(&client, &url).await != "tower-tagged-cache; hit" {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    g.bench_function(BenchmarkId::new("hit", name), |b| {
        b.to_async(rt).iter(|| async {
            let status = fetch(&client, &url).await;
            assert_eq!(status, "tower-tagged-cache; hit");
            black_box(status)
        })
    });
    g.bench_function(BenchmarkId::new("miss", name), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (client, url, invalidator) = (&client, &url, &invalidator);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    invalidator.invalidate(["User:1"]).await.unwrap();
                    let start = Instant::now();
                    let status = fetch(client, url).await;
                    total += start.elapsed();
                    assert_eq!(status, "tower-tagged-cache; fwd=miss; stored");
                }
                // Let the last store write land before the next benchmark.
                tokio::time::sleep(Duration::from_millis(5)).await;
                total
            }
        })
    });
}

/// Rule matching: a GET that matches no rule goes through the layer
/// untouched; its cost over the bare service is finding that out, among 1
/// or 50 rules (matchit routes by path, so the count should hardly matter).
fn rule_matching(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut g = c.benchmark_group("rules");
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(body_1k())))
    });
    g.bench_function("floor", |b| {
        b.to_async(&rt).iter(|| async {
            let res = inner.oneshot(get("/health")).await.unwrap();
            black_box(res.into_body().collect().await.unwrap().to_bytes())
        })
    });
    for n in [1usize, 50] {
        let mut layer = TaggedCacheLayer::new(MemoryStore::new());
        for i in 0..n {
            layer = layer
                .rule(
                    CacheRule::get(format!("/api/v1/resource{i}/{{id}}"))
                        .tags([format!("R{i}:{{id}}")]),
                )
                .unwrap();
        }
        let svc = layer.layer(inner);
        g.bench_function(BenchmarkId::new("no_match", n), |b| {
            b.to_async(&rt).iter(|| async {
                let res = svc.clone().oneshot(get("/health")).await.unwrap();
                black_box(res.into_body().collect().await.unwrap().to_bytes())
            })
        });
    }
    g.finish();
}

/// Vary variants on the memory store (issue 11): a hit on a response that
/// does not vary beside hits on the newest (1st) and the oldest (8th) of 8
/// variants stored under one key (`Vary: x-lang`).
fn variants(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut g = c.benchmark_group("variants");
    let with_lang = |lang: Option<&str>| {
        let mut req = Request::get("/users/1");
        if let Some(lang) = lang {
            req = req.header("x-lang", lang);
        }
        req.body(Full::default()).unwrap()
    };
    let layer = || {
        TaggedCacheLayer::new(MemoryStore::new())
            .rule(CacheRule::get("/users/{id}").tags(["User:{id}", "Org:1", "Dashboard"]))
            .unwrap()
    };
    let plain = rt.block_on(warm_service(MemoryStore::new()));
    g.bench_function("hit_plain", |b| {
        b.to_async(&rt).iter(|| async {
            let res = plain.clone().oneshot(with_lang(None)).await.unwrap();
            black_box(res.into_body().collect().await.unwrap().to_bytes())
        })
    });
    let varied = layer().layer(service_fn(|_req: Request<Full<Bytes>>| async {
        let mut res = Response::new(Full::new(body_1k()));
        res.headers_mut()
            .insert("vary", http::HeaderValue::from_static("x-lang"));
        Ok::<_, Infallible>(res)
    }));
    let langs: Vec<String> = (0..8).map(|i| format!("l{i}")).collect();
    rt.block_on(async {
        // l0 is stored first (the 8th variant), l7 last (the 1st).
        for lang in &langs {
            let start = Instant::now();
            loop {
                let res = varied.clone().oneshot(with_lang(Some(lang))).await.unwrap();
                let hit = res.headers()["cache-status"] == "tower-tagged-cache; hit";
                res.into_body().collect().await.unwrap();
                if hit {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "{lang} never a hit"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    for (name, lang) in [("hit_1_of_8", &langs[7]), ("hit_8_of_8", &langs[0])] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let res = varied.clone().oneshot(with_lang(Some(lang))).await.unwrap();
                assert_eq!(res.headers()["cache-status"], "tower-tagged-cache; hit");
                black_box(res.into_body().collect().await.unwrap().to_bytes())
            })
        });
    }
    g.finish();
}

async fn start_quickstart<St: Store>(store: St) -> (String, Invalidator) {
    let invalidator = Invalidator::new(store.clone());
    let app = quickstart::app(store, quickstart::Db::seeded()).unwrap();
    (support::serve(app).await, invalidator)
}

criterion_group!(
    benches,
    key_derivation,
    rule_matching,
    middleware,
    variants,
    quickstart_http
);
criterion_main!(benches);
