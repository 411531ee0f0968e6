//! Stale copies standing in for an origin that is down or failing.

use std::time::Duration;

use tower_tagged_cache::Store;

use super::{Proxy, STORED, get, support};

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

support::every_store!(stale_when_the_origin_is_down);
