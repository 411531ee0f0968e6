//! Tags from the query, headers and closures over the request: declared with
//! `param(..)` or `tags_fn(..)`, as easy as path templates, and as precise.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceExt, service_fn, util::BoxCloneService};
use tower_tagged_cache::{
    CacheRule, Invalidator, MemoryStore, Tag, TaggedCacheLayer, VaryOn, WriteRule,
    layer::ResponseBody,
    testing::{Call, PausableStore},
    tower_layer::Layer,
};

type Svc = BoxCloneService<Request<Full<Bytes>>, Response<ResponseBody<Full<Bytes>>>, Infallible>;

struct App {
    svc: Svc,
    store: PausableStore<MemoryStore>,
    invalidator: Invalidator,
    calls: Arc<AtomicUsize>,
    stored: usize,
}

impl App {
    fn new(
        rules: impl FnOnce(
            TaggedCacheLayer<PausableStore<MemoryStore>>,
        ) -> TaggedCacheLayer<PausableStore<MemoryStore>>,
    ) -> Self {
        let store = PausableStore::new(MemoryStore::new());
        let layer = rules(TaggedCacheLayer::new(store.clone()));
        let invalidator = layer.invalidator();
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let inner = service_fn(move |req: Request<Full<Bytes>>| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                    "call #{n} for {}",
                    req.uri()
                )))))
            }
        });
        Self {
            svc: BoxCloneService::new(layer.layer(inner)),
            store,
            invalidator,
            calls,
            stored: 0,
        }
    }

    /// Sends a request; returns `cache-status` and the body. A stored
    /// response is awaited (its write ends after the body), so the next
    /// request finds it.
    async fn send(&mut self, req: Request<Full<Bytes>>) -> (String, String) {
        let res = self.svc.ready().await.unwrap().call(req).await.unwrap();
        let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        if status.ends_with("; stored") {
            self.stored += 1;
            self.store.until_completed(Call::Put, self.stored).await;
        }
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn get(&mut self, uri: &str, headers: &[(&str, &str)]) -> (String, String) {
        let mut req = Request::get(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.send(req.body(Full::default()).unwrap()).await
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

const MISS: &str = "tower-tagged-cache; fwd=miss; stored";
const HIT: &str = "tower-tagged-cache; hit";

#[tokio::test]
async fn a_query_parameter_fills_a_tag() {
    let mut app = App::new(|l| {
        l.rule(
            CacheRule::get("/feed")
                .param("user", VaryOn::query("user"))
                .parse_param::<u64>("user")
                .tags(["Feed:{user}"]),
        )
        .unwrap()
    });
    assert_eq!(app.get("/feed?user=1", &[]).await.0, MISS);
    assert_eq!(app.get("/feed?user=1", &[]).await.0, HIT);
    assert_eq!(app.get("/feed?user=2", &[]).await.0, MISS);
    // Canonical: `01` is user 1 (another query, so another entry, under the
    // same tag).
    assert_eq!(app.get("/feed?user=01", &[]).await.0, MISS);
    app.invalidator.invalidate(["Feed:1"]).await.unwrap();
    assert_eq!(app.get("/feed?user=1", &[]).await.0, MISS);
    assert_eq!(app.get("/feed?user=01", &[]).await.0, MISS);
    assert_eq!(app.get("/feed?user=2", &[]).await.0, HIT);
    // Missing, or not what the parser takes: not cached, and says why.
    let calls = app.calls();
    for uri in ["/feed", "/feed?user=x", "/feed?other=1"] {
        let (status, _) = app.get(uri, &[]).await;
        assert_eq!(
            status, "tower-tagged-cache; fwd=bypass; detail=bad-param",
            "{uri}"
        );
    }
    assert_eq!(app.calls(), calls + 3);
}

#[tokio::test]
async fn a_header_fills_a_tag_and_keeps_tenants_apart() {
    let mut app = App::new(|l| {
        l.rule(
            CacheRule::get("/dashboard")
                .param("tenant", VaryOn::header("x-tenant"))
                .tags(["Tenant:{tenant}"]),
        )
        .unwrap()
    });
    let (first, a_body) = app.get("/dashboard", &[("x-tenant", "a")]).await;
    assert_eq!(first, MISS);
    let (status, b_body) = app.get("/dashboard", &[("x-tenant", "b")]).await;
    assert_eq!(status, MISS, "another tenant never gets a's page");
    assert_ne!(a_body, b_body);
    assert_eq!(
        app.get("/dashboard", &[("x-tenant", "a")]).await,
        (HIT.to_owned(), a_body)
    );
    app.invalidator.invalidate(["Tenant:a"]).await.unwrap();
    assert_eq!(app.get("/dashboard", &[("x-tenant", "a")]).await.0, MISS);
    assert_eq!(app.get("/dashboard", &[("x-tenant", "b")]).await.0, HIT);
    let (status, _) = app.get("/dashboard", &[]).await;
    assert_eq!(status, "tower-tagged-cache; fwd=bypass; detail=bad-param");
}

#[tokio::test]
async fn a_closure_over_the_request_makes_tags() {
    let mut app = App::new(|l| {
        l.rule(
            CacheRule::get("/report")
                .param(
                    "org",
                    VaryOn::from_fn("org", |parts| {
                        let host = parts.headers.get("host")?.to_str().ok()?;
                        host.split('.').next().map(str::to_owned)
                    }),
                )
                .tags(["Org:{org}"])
                .tags_fn(|parts| {
                    parts
                        .uri
                        .query()
                        .into_iter()
                        .flat_map(|q| q.split('&'))
                        .filter_map(|kv| kv.strip_prefix("project="))
                        .filter_map(|p| Tag::new("Project", p).ok())
                        .collect()
                }),
        )
        .unwrap()
    });
    let acme = [("host", "acme.example.com")];
    assert_eq!(app.get("/report?project=7", &acme).await.0, MISS);
    assert_eq!(app.get("/report?project=7", &acme).await.0, HIT);
    app.invalidator.invalidate(["Project:7"]).await.unwrap();
    assert_eq!(app.get("/report?project=7", &acme).await.0, MISS);
    app.invalidator.invalidate(["Org:acme"]).await.unwrap();
    assert_eq!(app.get("/report?project=7", &acme).await.0, MISS);
    app.invalidator.invalidate(["Org:other"]).await.unwrap();
    assert_eq!(app.get("/report?project=7", &acme).await.0, HIT);
}

#[tokio::test]
async fn a_write_takes_its_tags_from_the_query() {
    let mut app = App::new(|l| {
        l.rule(
            CacheRule::get("/feed")
                .param("user", VaryOn::query("user"))
                .tags(["Feed:{user}"]),
        )
        .unwrap()
        .rule(
            WriteRule::post("/posts")
                .param("user", VaryOn::query("author"))
                .invalidates(["Feed:{user}"]),
        )
        .unwrap()
    });
    assert_eq!(app.get("/feed?user=5", &[]).await.0, MISS);
    assert_eq!(app.get("/feed?user=6", &[]).await.0, MISS);
    let post = Request::post("/posts?author=5")
        .body(Full::default())
        .unwrap();
    app.send(post).await;
    assert_eq!(app.get("/feed?user=5", &[]).await.0, MISS);
    assert_eq!(app.get("/feed?user=6", &[]).await.0, HIT);
}

#[test]
fn placeholders_must_be_declared_and_names_unique() {
    let layer = || TaggedCacheLayer::new(MemoryStore::new());
    let err = layer()
        .rule(CacheRule::get("/feed").tags(["Feed:{user}"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("{user}") && err.contains("GET /feed"), "{err}");
    let err = layer()
        .rule(
            CacheRule::get("/users/{id}")
                .param("id", VaryOn::query("id"))
                .tags(["User:{id}"]),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("declared twice"), "{err}");
    let err = layer()
        .rule(
            WriteRule::put("/feed")
                .param("user", VaryOn::path_param("user"))
                .invalidates(["Feed:{user}"]),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("path parameter `user`"), "{err}");
    assert!(
        layer()
            .rule(
                CacheRule::get("/feed")
                    .param("user", VaryOn::query("user"))
                    .parse_param::<u64>("user")
                    .tags(["Feed:{user}"]),
            )
            .is_ok()
    );
}
