use std::{
    convert::Infallible,
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tower_service::Service;

use super::{explain::explain, future::ResponseFuture, query, stats::stats};
use crate::{
    layer::Shared,
    store::{DefaultStore, Store},
};

/// What `GET /` answers: the routes.
const INDEX: &str = "routes:\n\
    GET /explain?method=GET&url=/users/1&header=Name:%20value  what a request would get\n\
    GET /stats  the layer's counters and the store's figures\n";

/// The admin service of a [`TaggedCacheLayer`](crate::TaggedCacheLayer):
/// `GET /explain` and `GET /stats`, answered in `text/plain`. Made by
/// [`TaggedCacheLayer::admin`](crate::TaggedCacheLayer::admin); mount it on
/// a private listener only. See the [module docs](super) for the routes,
/// the fields and an example.
pub struct Admin<St = DefaultStore> {
    shared: Arc<Shared<St>>,
    default_host: Option<HeaderValue>,
}

impl<St> Clone for Admin<St> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            default_host: self.default_host.clone(),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for Admin<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("store", &self.shared.store)
            .field("rules", &self.shared.rules)
            .field("default_host", &self.default_host)
            .finish()
    }
}

impl<St> Admin<St> {
    pub(crate) fn new(shared: Arc<Shared<St>>) -> Self {
        Self {
            shared,
            default_host: None,
        }
    }

    /// The `Host` an explained request carries when its `url` is a path and
    /// no `Host` header is given. The host is part of every key, and a real
    /// HTTP/1.1 request always names one: set this to the address clients
    /// use for the app (`127.0.0.1:3000`), so that `url=/users/1` explains
    /// what they get. Without it, such a request has an empty host. Defaults
    /// to none.
    pub fn default_host(mut self, host: HeaderValue) -> Self {
        self.default_host = Some(host);
        self
    }
}

impl<St: Store, B> Service<Request<B>> for Admin<St> {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The body is not read: every route is a GET.
        let (parts, _) = req.into_parts();
        let head = parts.method == Method::HEAD;
        if parts.method != Method::GET && !head {
            let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "error: use GET\n".into());
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return ResponseFuture::ready(res);
        }
        let shared = self.shared.clone();
        match parts.uri.path() {
            "/explain" => match query::parse(parts.uri.query()) {
                Ok(req) => {
                    let host = self.default_host.clone();
                    ResponseFuture::boxed(async move {
                        let body = explain(&shared, &req, host.as_ref()).await;
                        ok(body, head)
                    })
                }
                Err(bad) => {
                    ResponseFuture::ready(text(StatusCode::BAD_REQUEST, format!("error: {bad}\n")))
                }
            },
            "/stats" => ResponseFuture::boxed(async move { ok(stats(&shared).await, head) }),
            "/" => ResponseFuture::ready(ok(INDEX.to_owned(), head)),
            _ => ResponseFuture::ready(text(
                StatusCode::NOT_FOUND,
                "error: no such route; try /explain or /stats\n".into(),
            )),
        }
    }
}

fn ok(body: String, head: bool) -> Response<String> {
    let mut res = text(StatusCode::OK, body);
    if head {
        res.body_mut().clear();
    }
    res
}

/// A `text/plain` answer that nothing may store.
fn text(status: StatusCode, body: String) -> Response<String> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(all(test, feature = "memory", feature = "testing"))]
mod tests {
    use std::{convert::Infallible, time::Duration};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceExt, service_fn};
    use tower_layer::Layer;

    use super::*;
    use crate::{
        CacheRule, MemoryStore, TaggedCacheLayer, WriteRule,
        testing::{Call, Fault, FaultyStore, PausableStore},
    };

    fn layer<St: Store>(store: St) -> TaggedCacheLayer<St> {
        TaggedCacheLayer::new(store)
            .rule(
                CacheRule::get("/users/{id}")
                    .name("user")
                    .tags(["User:{id}"])
                    .ttl(Duration::from_secs(60)),
            )
            .unwrap()
            .rule(WriteRule::put("/users/{id}").invalidates(["User:{id}"]))
            .unwrap()
    }

    /// Sends a request through the layer; returns its `cache-status`.
    async fn send<St: Store>(layer: &TaggedCacheLayer<St>, method: Method, uri: &str) -> String {
        let svc = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
            let mut res = Response::new(Full::new(Bytes::from("secret body")));
            res.headers_mut()
                .insert("x-owner", HeaderValue::from_static("secret-owner-42"));
            Ok::<_, Infallible>(res)
        }));
        let req = Request::builder().method(method).uri(uri);
        let res = svc
            .oneshot(req.body(Full::default()).unwrap())
            .await
            .unwrap();
        let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
        res.into_body().collect().await.unwrap();
        status
    }

    async fn admin_get<St: Store>(admin: &Admin<St>, uri: &str) -> (StatusCode, String) {
        let res = admin
            .clone()
            .oneshot(Request::get(uri).body(()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(res.headers()["cache-control"], "no-store");
        (res.status(), res.into_body())
    }

    async fn explain<St: Store>(admin: &Admin<St>, query: &str) -> String {
        let (status, body) = admin_get(admin, &format!("/explain?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Every value of field `name`.
    fn all<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
        body.lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .collect()
    }

    /// The one value of field `name`.
    fn one<'a>(body: &'a str, name: &str) -> &'a str {
        match all(body, name)[..] {
            [value] => value,
            ref other => panic!("{name}: {other:?} in\n{body}"),
        }
    }

    /// The version of `tag` on a `tag:` line.
    fn version<'a>(body: &'a str, field: &str, tag: &str) -> &'a str {
        all(body, field)
            .into_iter()
            .find_map(|v| v.strip_prefix(tag)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {field} {tag} in\n{body}"))
    }

    #[tokio::test]
    async fn routes_methods_and_bad_input() {
        let admin = layer(MemoryStore::new()).admin();
        let (status, body) = admin_get(&admin, "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, "error: no such route; try /explain or /stats\n");
        let (status, body) = admin_get(&admin, "/explain").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.starts_with("error: missing parameter `url`"), "{body}");
        let (status, body) = admin_get(&admin, "/explain?url=/a&header=nocolon").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, "error: header `nocolon` is not `Name: value`\n");
        let (status, body) = admin_get(&admin, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("/explain") && body.contains("/stats"));

        let post = Request::post("/stats").body(()).unwrap();
        let res = admin.clone().oneshot(post).await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["allow"], "GET, HEAD");
        let head = Request::head("/stats").body(()).unwrap();
        let res = admin.clone().oneshot(head).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.into_body(), "");
    }

    #[tokio::test(start_paused = true)]
    async fn explain_follows_a_page_through_miss_hit_and_invalidation() {
        let store = PausableStore::new(MemoryStore::new());
        let layer = layer(store.clone());
        let admin = layer
            .admin()
            .default_host(HeaderValue::from_static("app.example"));

        let before = explain(&admin, "url=/users/7").await;
        assert_eq!(one(&before, "request"), "GET /users/7");
        assert_eq!(one(&before, "host"), "app.example");
        assert_eq!(one(&before, "decision"), "cache");
        assert_eq!(one(&before, "rule"), "user");
        assert_eq!(one(&before, "route"), "/users/{id}");
        assert_eq!(one(&before, "rule-ttl"), "60.000s");
        assert_eq!(one(&before, "entry"), "none");
        assert_eq!(one(&before, "cache-status"), "tower-tagged-cache; fwd=miss");
        let tags: Vec<_> = all(&before, "tag")
            .iter()
            .map(|t| t.rsplit_once(' ').unwrap().0)
            .collect();
        assert_eq!(tags, ["User:7", "_uri:app.example/users/7"]);
        let v1 = version(&before, "tag", "User:7").to_owned();
        let key = one(&before, "entry-key").to_owned();
        assert!(key.starts_with("ttc:e:"), "{key}");
        assert!(key.contains(one(&before, "static-digest")));

        // The explain's lookup seeded the versions a request then uses: the
        // same key, and the entry lands under it.
        let status = send(&layer, Method::GET, "http://app.example/users/7").await;
        assert_eq!(status, "tower-tagged-cache; fwd=miss; stored");
        store.until_completed(Call::Put, 1).await;
        tokio::time::advance(Duration::from_secs(10)).await;
        let stored = explain(&admin, "url=/users/7").await;
        assert_eq!(one(&stored, "entry-key"), key);
        assert_eq!(version(&stored, "tag", "User:7"), v1);
        assert_eq!(one(&stored, "entry"), "stored");
        assert_eq!(one(&stored, "entry-variants"), "1");
        assert_eq!(one(&stored, "entry-variant"), "1");
        assert_eq!(one(&stored, "entry-status"), "200");
        assert_eq!(one(&stored, "entry-age"), "10.000s");
        assert_eq!(one(&stored, "entry-fresh-left"), "50.000s");
        assert_eq!(one(&stored, "entry-ttl-left"), "50.000s");
        assert_eq!(one(&stored, "entry-vary"), "-");
        assert_eq!(one(&stored, "cache-status"), "tower-tagged-cache; hit");
        // Metadata only: not the body, nor a header value.
        assert!(!stored.contains("secret body"), "{stored}");
        assert!(!stored.contains("secret-owner-42"), "{stored}");

        // What a write would bump, with the versions it would replace.
        let write = explain(&admin, "method=PUT&url=/users/7").await;
        assert_eq!(one(&write, "decision"), "invalidate");
        assert_eq!(one(&write, "rule"), "/users/{id}");
        assert_eq!(version(&write, "invalidates", "User:7"), v1);
        let uri = one(&write, "invalidates-uri");
        assert!(uri.starts_with("_uri:app.example/users/7 "), "{uri}");
        assert_eq!(
            one(&write, "cache-status"),
            "tower-tagged-cache; fwd=bypass; detail=invalidated"
        );

        let status = send(&layer, Method::PUT, "http://app.example/users/7").await;
        assert_eq!(status, "tower-tagged-cache; fwd=bypass; detail=invalidated");
        let after = explain(&admin, "url=/users/7").await;
        assert_ne!(version(&after, "tag", "User:7"), v1);
        assert_ne!(one(&after, "entry-key"), key);
        assert_eq!(one(&after, "entry"), "none");
        assert_eq!(one(&after, "cache-status"), "tower-tagged-cache; fwd=miss");
    }

    /// Explain names the variant a request gets among those stored.
    #[tokio::test(start_paused = true)]
    async fn explain_reports_the_variant_and_how_many_there_are() {
        let store = PausableStore::new(MemoryStore::new());
        let layer = layer(store.clone());
        let admin = layer
            .admin()
            .default_host(HeaderValue::from_static("app.example"));
        let svc = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async move {
            let mut res = Response::new(Full::new(Bytes::from("a page")));
            res.headers_mut()
                .insert("vary", HeaderValue::from_static("x-lang"));
            Ok::<_, Infallible>(res)
        }));
        for (i, lang) in ["en", "fr"].into_iter().enumerate() {
            // French is stored 20 s after English.
            tokio::time::advance(Duration::from_secs(20 * i as u64)).await;
            let req = Request::get("http://app.example/users/7").header("x-lang", lang);
            let res = svc
                .clone()
                .oneshot(req.body(Full::default()).unwrap())
                .await
                .unwrap();
            res.into_body().collect().await.unwrap();
            store.until_completed(Call::Put, i + 1).await;
        }
        let lang = |l: &str| format!("url=/users/7&header=x-lang:%20{l}");
        let fr = explain(&admin, &lang("fr")).await;
        assert_eq!(one(&fr, "entry"), "stored");
        assert_eq!(one(&fr, "entry-variants"), "2");
        assert_eq!(one(&fr, "entry-variant"), "1");
        assert_eq!(one(&fr, "entry-age"), "0.000s");
        assert_eq!(one(&fr, "entry-vary"), "x-lang");
        assert_eq!(one(&fr, "cache-status"), "tower-tagged-cache; hit");
        let en = explain(&admin, &lang("en")).await;
        assert_eq!(one(&en, "entry-variants"), "2");
        assert_eq!(one(&en, "entry-variant"), "2");
        assert_eq!(one(&en, "entry-age"), "20.000s");
        assert_eq!(one(&en, "cache-status"), "tower-tagged-cache; hit");
        // No variant for German: the newest one's metadata.
        let de = explain(&admin, &lang("de")).await;
        assert_eq!(one(&de, "entry"), "stored");
        assert_eq!(one(&de, "entry-variants"), "2");
        assert_eq!(one(&de, "entry-variant"), "none");
        assert_eq!(one(&de, "entry-age"), "0.000s");
        assert_eq!(
            one(&de, "cache-status"),
            "tower-tagged-cache; fwd=vary-miss"
        );
    }

    #[tokio::test]
    async fn explain_says_why_a_request_bypasses() {
        let admin = layer(MemoryStore::new()).admin();
        let none = explain(&admin, "url=/elsewhere").await;
        assert_eq!(one(&none, "decision"), "bypass");
        assert_eq!(one(&none, "rule"), "none");
        assert_eq!(one(&none, "host"), "-");
        assert_eq!(
            one(&none, "cache-status"),
            "tower-tagged-cache; fwd=bypass; detail=no-rule"
        );
        let cookie = explain(&admin, "url=/users/1&header=Cookie:%20session=s3cr3t").await;
        assert_eq!(one(&cookie, "decision"), "bypass");
        assert_eq!(one(&cookie, "rule"), "user");
        assert_eq!(
            one(&cookie, "cache-status"),
            "tower-tagged-cache; fwd=bypass; detail=cookie"
        );
        assert!(!cookie.contains("s3cr3t"), "{cookie}");
        let unsafe_get = explain(&admin, "method=DELETE&url=/elsewhere").await;
        assert_eq!(one(&unsafe_get, "decision"), "invalidate");
        assert_eq!(one(&unsafe_get, "rule"), "none");
        assert_eq!(
            one(&unsafe_get, "invalidates-uri"),
            "_uri:/elsewhere -",
            "a URI nothing was cached under has no version"
        );
        // Writes to routes nothing is cached under may bump nothing.
        let narrow = layer(MemoryStore::new()).invalidate_unnamed_routes(false);
        let nothing = explain(&narrow.admin(), "method=DELETE&url=/elsewhere").await;
        assert_eq!(one(&nothing, "invalidates"), "-");
        assert!(all(&nothing, "invalidates-uri").is_empty());
        assert_eq!(
            one(&nothing, "cache-status"),
            "tower-tagged-cache; fwd=bypass; detail=method"
        );
        // An absolute URL names the host; a query is part of the request.
        let absolute = explain(&admin, "url=http%3A%2F%2FExample.com%2Fusers%2F1%3Fa%3D1").await;
        assert_eq!(one(&absolute, "host"), "example.com");
        assert_eq!(
            one(&absolute, "request"),
            "GET http://Example.com/users/1?a=1"
        );
    }

    #[tokio::test]
    async fn a_failing_store_is_reported_not_fatal() {
        let store = FaultyStore::new(MemoryStore::new());
        let admin = layer(store.clone()).admin();
        store.fail_from_now(Call::Lookup | Call::Versions, Fault::Error);
        let read = explain(&admin, "url=/users/1").await;
        assert_eq!(version(&read, "tag", "User:1"), "unknown");
        assert!(
            one(&read, "store-error").contains("Lookup failed as scheduled"),
            "{read}"
        );
        assert_eq!(
            one(&read, "cache-status"),
            "tower-tagged-cache; fwd=bypass; detail=store-error"
        );
        let write = explain(&admin, "method=PUT&url=/users/1").await;
        assert_eq!(version(&write, "invalidates", "User:1"), "unknown");
        assert_eq!(all(&write, "store-error").len(), 1);
        let (status, stats) = admin_get(&admin, "/stats").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one(&stats, "store-failures-in-a-row"), "2");
    }

    #[tokio::test]
    async fn stats_count_each_outcome_per_layer_and_rule() {
        let store = PausableStore::new(MemoryStore::new());
        let layer = layer(store.clone());
        let admin = layer.admin();
        let (_, empty) = admin_get(&admin, "/stats").await;
        assert_eq!(one(&empty, "requests"), "0");
        assert_eq!(one(&empty, "hit-ratio"), "-");
        assert_eq!(one(&empty, "bypass-reasons"), "-");
        assert_eq!(one(&empty, "store"), "PausableStore<MemoryStore>");
        assert_eq!(one(&empty, "store-entries"), "0");
        assert_eq!(one(&empty, "store-keys"), "unknown");

        send(&layer, Method::GET, "/users/1").await;
        store.until_completed(Call::Put, 1).await;
        assert_eq!(
            send(&layer, Method::GET, "/users/1").await,
            "tower-tagged-cache; hit"
        );
        send(&layer, Method::GET, "/elsewhere").await;
        send(&layer, Method::PUT, "/users/1").await;

        let (_, stats) = admin_get(&admin, "/stats").await;
        assert_eq!(one(&stats, "requests"), "4");
        assert_eq!(one(&stats, "hits"), "1");
        assert_eq!(one(&stats, "misses"), "1");
        assert_eq!(one(&stats, "bypasses"), "1");
        assert_eq!(one(&stats, "invalidated"), "1");
        assert_eq!(one(&stats, "stored"), "1");
        assert_eq!(one(&stats, "hit-ratio"), "0.500");
        assert_eq!(one(&stats, "bypass-reasons"), "no-rule=1");
        assert_eq!(
            all(&stats, "rule"),
            [
                "hits=1 coalesced=0 stale=0 revalidated=0 misses=1 bypasses=0 invalidated=0 \
                 stored=1 not-stored=0 hit-ratio=0.500 kind=cache route=/users/{id} name=user",
                "hits=0 coalesced=0 stale=0 revalidated=0 misses=0 bypasses=0 invalidated=1 \
                 stored=0 not-stored=0 hit-ratio=- kind=write route=/users/{id} name=/users/{id}",
                "hits=0 coalesced=0 stale=0 revalidated=0 misses=0 bypasses=1 invalidated=0 \
                 stored=0 not-stored=0 hit-ratio=- kind=none route=- name=(no rule)",
            ]
        );
        assert_eq!(one(&stats, "store-entries"), "1");
        assert_ne!(one(&stats, "store-used-bytes"), "0");
        assert_eq!(one(&stats, "store-max-bytes"), "67108864");
        assert_eq!(one(&stats, "store-breaker"), "closed");

        // Another layer on the same store counts its own requests.
        let (_, other) = admin_get(&self::layer(store).admin(), "/stats").await;
        assert_eq!(one(&other, "requests"), "0");
    }
}
