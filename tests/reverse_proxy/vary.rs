//! Variants learned from the response's `Vary`.

use tower_tagged_cache::Store;

use super::{HIT, Proxy, STORED, Step, get, support};

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

/// Variants side by side: a compressed and an identity variant of one URL,
/// each fetched once from the origin, then both served from the cache in
/// turn, each its own body.
async fn variants_side_by_side<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let t = "/v/enc?h=cache-control:max-age=60&h=vary:accept-encoding";
    let gzip: &[(&str, &str)] = &[("accept-encoding", "gzip")];
    let identity: &[(&str, &str)] = &[("accept-encoding", "identity")];
    let first_gzip = p.send("GET", t, gzip, "").await;
    assert_eq!(first_gzip.cache, STORED);
    let first_identity = p.send("GET", t, identity, "").await;
    assert_eq!(
        first_identity.cache,
        "tower-tagged-cache; fwd=vary-miss; stored"
    );
    assert_eq!(first_gzip.body, "/v/enc #1");
    assert_eq!(first_identity.body, "/v/enc #2");
    for round in 0..3 {
        for (headers, first) in [(gzip, &first_gzip), (identity, &first_identity)] {
            let seen = p.send("GET", t, headers, "").await;
            assert_eq!(seen.cache, HIT, "{headers:?}, round {round}");
            assert_eq!(seen.body, first.body, "{headers:?}, round {round}");
        }
    }
    assert_eq!(p.origin.calls("/v/enc"), 2);
}

support::every_store!(vary, variants_side_by_side);
