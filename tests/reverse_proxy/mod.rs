//! The caching reverse proxy (`examples/reverse_proxy.rs`) end to end, over
//! real HTTP on loopback, in front of a scriptable origin: one table of
//! request sequences per rule of the HTTP contract, on both stores.
//!
//! One module per rule, each running its test on every store with
//! `every_store!`; the proxy harness they share is here.

use crate::support;

use crate::proxy_app as reverse_proxy;

mod conditional;
mod forwarding;
mod freshness;
mod host;
mod invalidation;
mod never_stored;
mod revalidation;
mod stale;
mod vary;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use support::origin::Origin;
use tower_tagged_cache::{
    Store,
    testing::{Call, PausableStore},
};

/// One request of a scenario and what must come of it.
struct Step {
    method: &'static str,
    /// Path and query; the query scripts the origin (see `support::origin`).
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    /// The expected `cache-status`.
    cache: &'static str,
    /// Whether the request reached the origin.
    origin: bool,
}

const fn get(target: &'static str, cache: &'static str, origin: bool) -> Step {
    Step {
        method: "GET",
        target,
        headers: &[],
        status: 200,
        cache,
        origin,
    }
}

const HIT: &str = "tower-tagged-cache; hit";
const STORED: &str = "tower-tagged-cache; fwd=miss; stored";

struct Proxy<St> {
    store: PausableStore<St>,
    base: String,
    origin: Origin,
    client: Client<HttpConnector, Full<Bytes>>,
    stored: usize,
}

struct Reply {
    status: u16,
    cache: String,
    headers: http::HeaderMap,
    body: Bytes,
}

impl<St: Store> Proxy<St> {
    async fn start(store: St) -> Self {
        Self::with_default_ttl(store, None).await
    }

    /// With the proxy's `--default-ttl`.
    async fn with_default_ttl(store: St, default_ttl: Option<Duration>) -> Self {
        let (origin, upstream) = Origin::start().await;
        let store = PausableStore::new(store);
        let app = reverse_proxy::proxy(
            store.clone(),
            upstream.parse().unwrap(),
            Duration::from_secs(3600),
            default_ttl,
        )
        .unwrap();
        Self {
            store,
            base: support::serve(app).await,
            origin,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stored: 0,
        }
    }

    async fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &'static str,
    ) -> Reply {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("{}{target}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .client
            .request(
                req.body(Full::new(Bytes::from_static(body.as_bytes())))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let cache = headers
            .get("cache-status")
            .map_or("<none>".to_owned(), |v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        if cache.ends_with("stored") {
            // Wait for the background write before the next request.
            self.stored += 1;
            self.store.until_completed(Call::Put, self.stored).await;
        }
        Reply {
            status,
            cache,
            headers,
            body,
        }
    }

    async fn run(&mut self, name: &str, steps: &[Step]) {
        for (i, step) in steps.iter().enumerate() {
            let path = step.target.split('?').next().unwrap();
            let before = self.origin.calls(path);
            let reply = self.send(step.method, step.target, step.headers, "").await;
            let reached = self.origin.calls(path) > before;
            let at = format!("{name}, step {i}: {} {}", step.method, step.target);
            assert_eq!(reply.status, step.status, "{at}");
            assert_eq!(reply.cache, step.cache, "{at}");
            assert_eq!(reached, step.origin, "{at}: reached the origin?");
            assert!(
                reply
                    .headers
                    .get_all("via")
                    .iter()
                    .any(|v| v == "1.1 tower-tagged-cache"),
                "{at}: Via"
            );
        }
    }
}
