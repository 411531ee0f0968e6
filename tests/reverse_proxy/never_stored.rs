//! What is never stored, and what never uses the cache.

use tower_tagged_cache::Store;

use super::{HIT, Proxy, STORED, Step, get, support};

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

support::every_store!(never_stored);
