//! The caching reverse proxy (`examples/reverse_proxy.rs`) end to end, over
//! real HTTP on loopback, in front of a scriptable origin: one table of
//! request sequences per rule of the HTTP contract, on both stores.

mod support;

#[allow(unreachable_pub)]
#[path = "../examples/reverse_proxy.rs"]
mod reverse_proxy;

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
        let (origin, upstream) = Origin::start().await;
        let store = PausableStore::new(store);
        let app = reverse_proxy::proxy(
            store.clone(),
            upstream.parse().unwrap(),
            Duration::from_secs(3600),
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

/// Freshness comes from the response only (item 4).
async fn freshness<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let http_date = |t: std::time::SystemTime| httpdate::fmt_http_date(t).replace(' ', "%20");
    let now = std::time::SystemTime::now();
    let date = http_date(now);
    let future = http_date(now + Duration::from_secs(600));
    let expires_future =
        Box::leak(format!("/f/expires?h=date:{date}&h=expires:{future}").into_boxed_str());
    let past = http_date(now - Duration::from_secs(600));
    let expires_past =
        Box::leak(format!("/f/expired?h=date:{date}&h=expires:{past}").into_boxed_str());
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "max-age",
            vec![
                get("/f/max-age?h=cache-control:max-age=60", STORED, true),
                get("/f/max-age?h=cache-control:max-age=60", HIT, false),
            ],
        ),
        (
            "s-maxage beats max-age=0",
            vec![
                get(
                    "/f/s-maxage?h=cache-control:max-age=0,s-maxage=60",
                    STORED,
                    true,
                ),
                get(
                    "/f/s-maxage?h=cache-control:max-age=0,s-maxage=60",
                    HIT,
                    false,
                ),
            ],
        ),
        (
            "no explicit freshness: no heuristics",
            vec![
                get(
                    "/f/none",
                    "tower-tagged-cache; fwd=miss; detail=no-freshness",
                    true,
                ),
                get(
                    "/f/none",
                    "tower-tagged-cache; fwd=miss; detail=no-freshness",
                    true,
                ),
            ],
        ),
        (
            "Expires in the future",
            vec![
                get(expires_future, STORED, true),
                get(expires_future, HIT, false),
            ],
        ),
        (
            "Expires in the past",
            vec![get(
                expires_past,
                "tower-tagged-cache; fwd=miss; detail=max-age",
                true,
            )],
        ),
        (
            "invalid Expires means expired",
            vec![get(
                "/f/bad-expires?h=expires:0",
                "tower-tagged-cache; fwd=miss; detail=max-age",
                true,
            )],
        ),
        (
            "Age past max-age",
            vec![get(
                "/f/aged?h=cache-control:max-age=60&h=age:61",
                "tower-tagged-cache; fwd=miss; detail=max-age",
                true,
            )],
        ),
        (
            "max-age=0 without validator",
            vec![
                get(
                    "/f/zero?h=cache-control:max-age=0",
                    "tower-tagged-cache; fwd=miss; detail=max-age",
                    true,
                ),
                get(
                    "/f/zero?h=cache-control:max-age=0",
                    "tower-tagged-cache; fwd=miss; detail=max-age",
                    true,
                ),
            ],
        ),
    ];
    for (name, steps) in cases {
        p.run(name, &steps).await;
    }
    // Age counts what the upstream said plus the time stored.
    let r = p
        .send(
            "GET",
            "/f/age?h=cache-control:max-age=600&h=age:100",
            &[],
            "",
        )
        .await;
    assert_eq!(r.cache, STORED);
    let r = p
        .send(
            "GET",
            "/f/age?h=cache-control:max-age=600&h=age:100",
            &[],
            "",
        )
        .await;
    assert_eq!(r.cache, HIT);
    let age: u64 = r.headers["age"].to_str().unwrap().parse().unwrap();
    assert!((100..110).contains(&age), "age {age}");
    // A stored response is served only while fresh.
    p.run(
        "short max-age",
        &[get("/f/short?h=cache-control:max-age=1", STORED, true)],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    p.run(
        "short max-age, expired",
        &[get(
            "/f/short?h=cache-control:max-age=1",
            "tower-tagged-cache; fwd=stale; stored",
            true,
        )],
    )
    .await;
}

/// A stale copy stands in for an unreachable origin, unless the stored
/// response demands revalidation; an origin error is passed on unless the
/// response allowed `stale-if-error`.
async fn stale_when_the_origin_is_down<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let served_stale = "tower-tagged-cache; fwd=stale; fwd-status=502; detail=served-stale";
    let ok = "/s/ok?h=cache-control:max-age=1";
    let strict = "/s/strict?h=cache-control:max-age=1,must-revalidate";
    let shared = "/s/shared?h=cache-control:s-maxage=1";
    let sie = "/s/sie?fail_after=1&h=cache-control:max-age=1,stale-if-error=60";
    for target in [ok, strict, shared] {
        p.run("warm", &[get(target, STORED, true)]).await;
    }
    // The origin answers 503 from the second request on; the first is 200.
    let first = p.send("GET", sie, &[], "").await;
    assert_eq!(first.cache, STORED);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The origin answers 503: within stale-if-error, the stale copy is used.
    let r = p.send("GET", sie, &[], "").await;
    assert_eq!(
        (r.status, r.cache.as_str()),
        (
            200,
            "tower-tagged-cache; fwd=stale; fwd-status=503; detail=served-stale"
        )
    );
    assert_eq!(r.body, first.body);
    p.origin.stop().await;
    let r = p.send("GET", ok, &[], "").await;
    assert_eq!((r.status, r.cache.as_str()), (200, served_stale));
    assert_eq!(r.body, "/s/ok #1");
    for target in [strict, shared] {
        let r = p.send("GET", target, &[], "").await;
        assert_eq!(r.status, 502, "{target} must not be served stale");
    }
    let r = p
        .send("GET", ok, &[("cache-control", "no-cache")], "")
        .await;
    assert_eq!(r.status, 502, "the client asked for the origin");
}

/// Stale responses with a validator are revalidated; `304` refreshes them
/// (item 5).
async fn revalidation<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let revalidated = "tower-tagged-cache; fwd=stale; fwd-status=304; stored";
    p.run(
        "no-cache with ETag",
        &[
            get("/r/etag?etag=v1&h=cache-control:no-cache", STORED, true),
            get(
                "/r/etag?etag=v1&h=cache-control:no-cache",
                revalidated,
                true,
            ),
            get(
                "/r/etag?etag=v1&h=cache-control:no-cache",
                revalidated,
                true,
            ),
        ],
    )
    .await;
    assert_eq!(p.origin.last_headers("/r/etag")["if-none-match"], "\"v1\"");
    // A 304 that is itself old (Age) leaves the entry stale.
    let aged = "/r/aged?etag=v1&h=cache-control:max-age=10&h=age:10";
    p.run(
        "304 with Age",
        &[
            get(aged, STORED, true),
            get(aged, revalidated, true),
            get(aged, revalidated, true),
        ],
    )
    .await;
    p.run("max-age=0 with Last-Modified", &[
        get("/r/lm?lm=1&h=cache-control:max-age=0&h=last-modified:Sun,%2006%20Nov%201994%2008:49:37%20GMT", STORED, true),
        get("/r/lm?lm=1&h=cache-control:max-age=0&h=last-modified:Sun,%2006%20Nov%201994%2008:49:37%20GMT", revalidated, true),
    ]).await;
    assert_eq!(
        p.origin.last_headers("/r/lm")["if-modified-since"],
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    // The body of a revalidated response is the stored one.
    let first = p
        .send("GET", "/r/body?etag=v1&h=cache-control:no-cache", &[], "")
        .await;
    let second = p
        .send("GET", "/r/body?etag=v1&h=cache-control:no-cache", &[], "")
        .await;
    assert_eq!(second.cache, revalidated);
    assert_eq!(first.body, second.body);
    assert_eq!(first.body, "/r/body #1");
    // Request directives.
    p.run(
        "request no-cache",
        &[
            get("/r/req?h=cache-control:max-age=60", STORED, true),
            Step {
                headers: &[("cache-control", "no-cache")],
                ..get(
                    "/r/req?h=cache-control:max-age=60",
                    "tower-tagged-cache; fwd=request; stored",
                    true,
                )
            },
            Step {
                headers: &[("pragma", "no-cache")],
                ..get(
                    "/r/req?h=cache-control:max-age=60",
                    "tower-tagged-cache; fwd=request; stored",
                    true,
                )
            },
            Step {
                headers: &[("cache-control", "max-age=0")],
                ..get(
                    "/r/req?h=cache-control:max-age=60",
                    "tower-tagged-cache; fwd=stale; stored",
                    true,
                )
            },
            get("/r/req?h=cache-control:max-age=60", HIT, false),
        ],
    )
    .await;
}

/// Hits answer conditional requests (item 5).
async fn conditional_hits<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let target = "/c/x?etag=abc&h=cache-control:max-age=60&h=last-modified:Sun,%2006%20Nov%201994%2008:49:37%20GMT";
    p.run("warm", &[get(target, STORED, true)]).await;
    for (name, headers, status) in [
        ("strong match", &[("if-none-match", "\"abc\"")][..], 304),
        ("weak match", &[("if-none-match", "W/\"abc\"")][..], 304),
        ("list", &[("if-none-match", "\"zzz\", \"abc\"")][..], 304),
        ("no match", &[("if-none-match", "\"zzz\"")][..], 200),
        (
            "not modified since",
            &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")][..],
            304,
        ),
        (
            "modified since",
            &[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")][..],
            200,
        ),
    ] {
        let r = p.send("GET", target, headers, "").await;
        assert_eq!(r.status, status, "{name}");
        assert_eq!(r.cache, HIT, "{name}");
        if status == 304 {
            assert!(r.body.is_empty(), "{name}");
            assert_eq!(r.headers["etag"], "\"abc\"", "{name}");
            assert!(r.headers.contains_key("age"), "{name}");
        }
    }
    assert_eq!(p.origin.calls("/c/x"), 1);
}

/// What is never stored, and what never uses the cache (items 1-3).
async fn never_stored<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let miss = |detail: &'static str| -> &'static str {
        Box::leak(format!("tower-tagged-cache; fwd=miss; detail={detail}").into_boxed_str())
    };
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "private",
            vec![get(
                "/n/private?h=cache-control:private,max-age=60",
                miss("private"),
                true,
            )],
        ),
        (
            "no-store",
            vec![get(
                "/n/no-store?h=cache-control:no-store,max-age=60",
                miss("no-store"),
                true,
            )],
        ),
        (
            "set-cookie",
            vec![get(
                "/n/cookie?h=cache-control:max-age=60&h=set-cookie:a=1",
                miss("set-cookie"),
                true,
            )],
        ),
        (
            "vary star",
            vec![get(
                "/n/vary?h=cache-control:max-age=60&h=vary:*",
                miss("vary"),
                true,
            )],
        ),
        (
            "206",
            vec![Step {
                status: 206,
                ..get(
                    "/n/206?status=206&h=cache-control:max-age=60",
                    miss("status"),
                    true,
                )
            }],
        ),
        (
            "500",
            vec![Step {
                status: 500,
                ..get(
                    "/n/500?status=500&h=cache-control:max-age=60",
                    miss("status"),
                    true,
                )
            }],
        ),
        (
            "404 with freshness is stored",
            vec![
                Step {
                    status: 404,
                    ..get("/n/404?status=404&h=cache-control:max-age=60", STORED, true)
                },
                Step {
                    status: 404,
                    ..get("/n/404?status=404&h=cache-control:max-age=60", HIT, false)
                },
            ],
        ),
        (
            "request no-store",
            vec![
                Step {
                    headers: &[("cache-control", "no-store")],
                    ..get(
                        "/n/req-no-store?h=cache-control:max-age=60",
                        miss("no-store"),
                        true,
                    )
                },
                get("/n/req-no-store?h=cache-control:max-age=60", STORED, true),
            ],
        ),
        (
            "range",
            vec![
                get("/n/range?h=cache-control:max-age=60", STORED, true),
                Step {
                    headers: &[("range", "bytes=0-1")],
                    status: 206,
                    ..get("/n/range?h=cache-control:max-age=60", HIT, false)
                },
            ],
        ),
        (
            "cookie request",
            vec![
                get("/n/c?h=cache-control:max-age=60", STORED, true),
                Step {
                    headers: &[("cookie", "s=1")],
                    ..get(
                        "/n/c?h=cache-control:max-age=60",
                        "tower-tagged-cache; fwd=bypass; detail=cookie",
                        true,
                    )
                },
            ],
        ),
        (
            "authorization, not allowed",
            vec![
                get("/n/auth?h=cache-control:max-age=60", STORED, true),
                Step {
                    headers: &[("authorization", "Bearer a")],
                    ..get(
                        "/n/auth?h=cache-control:max-age=60",
                        "tower-tagged-cache; fwd=bypass; detail=authorization",
                        true,
                    )
                },
            ],
        ),
        (
            "authorization, public",
            vec![
                Step {
                    headers: &[("authorization", "Bearer a")],
                    ..get("/n/pub?h=cache-control:public,max-age=60", STORED, true)
                },
                Step {
                    headers: &[("authorization", "Bearer b")],
                    ..get("/n/pub?h=cache-control:public,max-age=60", HIT, false)
                },
                get("/n/pub?h=cache-control:public,max-age=60", HIT, false),
            ],
        ),
        (
            "HEAD",
            vec![
                Step {
                    method: "HEAD",
                    ..get("/n/head?h=cache-control:max-age=60", miss("head"), true)
                },
                get("/n/head?h=cache-control:max-age=60", STORED, true),
                Step {
                    method: "HEAD",
                    ..get("/n/head?h=cache-control:max-age=60", HIT, false)
                },
            ],
        ),
    ];
    for (name, steps) in cases {
        p.run(name, &steps).await;
    }
    // A range of a stored response is cut from it; a range miss is
    // forwarded and its 206 not stored.
    let r = p
        .send(
            "GET",
            "/n/range?h=cache-control:max-age=60",
            &[("range", "bytes=-3")],
            "",
        )
        .await;
    assert_eq!((r.status, r.cache.as_str()), (206, HIT));
    assert_eq!(r.body, " #1"); // of "/n/range #1"
    assert_eq!(r.headers["content-range"], "bytes 8-10/11");
    let cold = p
        .send(
            "GET",
            "/n/range-cold?status=206&h=cache-control:max-age=60",
            &[("range", "bytes=0-1")],
            "",
        )
        .await;
    assert_eq!(cold.cache, "tower-tagged-cache; fwd=miss; detail=status");

    // Hop-by-hop headers reach neither the client nor the store.
    let target = "/n/hop?h=cache-control:max-age=60&h=connection:x-hop&h=x-hop:secret&h=keep-alive:timeout=5";
    for cache in [STORED, HIT] {
        let r = p.send("GET", target, &[], "").await;
        assert_eq!(r.cache, cache);
        assert!(
            !r.headers.contains_key("x-hop") && !r.headers.contains_key("keep-alive"),
            "{:?}",
            r.headers
        );
    }
    assert!(!p.origin.last_headers("/n/hop").contains_key("connection"));
}

/// Learned Vary (item 1).
async fn vary<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let t = "/v/lang?h=cache-control:max-age=60&h=vary:accept-language";
    let lang = |l: &'static [(&'static str, &'static str)], cache, origin| Step {
        headers: l,
        ..get(t, cache, origin)
    };
    p.run(
        "vary",
        &[
            lang(&[("accept-language", "en")], STORED, true),
            lang(&[("accept-language", "en")], HIT, false),
            lang(
                &[("accept-language", "fr")],
                "tower-tagged-cache; fwd=vary-miss; stored",
                true,
            ),
            lang(&[("accept-language", "fr")], HIT, false),
            lang(&[], "tower-tagged-cache; fwd=vary-miss; stored", true),
        ],
    )
    .await;
}

/// Unsafe methods invalidate their URI and same-host Location /
/// Content-Location (item 6).
async fn unsafe_methods_invalidate<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let a = "/u/a?h=cache-control:max-age=60";
    let write = |method: &'static str, target: &'static str, status: u16| Step {
        method,
        target,
        headers: &[],
        status,
        cache: "tower-tagged-cache; fwd=bypass; detail=method",
        origin: true,
    };
    p.run(
        "POST invalidates its URI",
        &[
            get(a, STORED, true),
            get(a, HIT, false),
            write("POST", "/u/a", 200),
            get(a, STORED, true),
            get(a, HIT, false),
        ],
    )
    .await;
    p.run(
        "failed writes do not",
        &[
            write("DELETE", "/u/a?status=500", 500),
            get(a, HIT, false),
            write("PUT", "/u/a?status=404", 404),
            get(a, HIT, false),
        ],
    )
    .await;
    p.run(
        "Location and Content-Location",
        &[
            write("POST", "/u/b?status=201&h=location:/u/a", 201),
            get(a, STORED, true),
            write("PATCH", "/u/c?h=content-location:/u/a", 200),
            get(a, STORED, true),
            write("PUT", "/u/d?h=location:http://elsewhere.example/u/a", 200),
            get(a, HIT, false),
        ],
    )
    .await;
}

/// Request and response bodies and headers pass through unchanged.
async fn forwarding<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let r = p
        .send(
            "POST",
            "/w/echo?q=1",
            &[("x-custom", "kept"), ("te", "trailers")],
            "payload",
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = p.origin.last_headers("/w/echo");
    assert_eq!(seen["x-custom"], "kept");
    assert!(!seen.contains_key("te"), "hop-by-hop forwarded");
    assert!(
        seen.get_all("via")
            .iter()
            .any(|v| v == "1.1 tower-tagged-cache")
    );
}

support::every_store!(
    freshness,
    stale_when_the_origin_is_down,
    revalidation,
    conditional_hits,
    never_stored,
    vary,
    unsafe_methods_invalidate,
    forwarding,
);
