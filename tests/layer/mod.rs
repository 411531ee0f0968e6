//! The layer end to end over a tower service, against both stores: one
//! module per behaviour, each running its tests on every store with
//! `every_store!`; the helpers they share are here.

use crate::support;

mod hits;
mod invalidation;
mod keys;
mod lease;
mod not_stored;
mod single_flight;
mod vary;

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use support::scripted::Scripted;
use tokio::sync::Notify;
use tower::{Service, ServiceExt, service_fn, util::BoxCloneService};
use tower_tagged_cache::{
    CacheRule, Store, TaggedCacheLayer, layer::ResponseBody, testing::PausableStore,
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
