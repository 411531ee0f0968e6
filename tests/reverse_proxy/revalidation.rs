//! Revalidation of stale responses, and request directives that force it.

use tower_tagged_cache::Store;

use super::{HIT, Proxy, STORED, Step, get, support};

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

support::every_store!(revalidation);
