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

support::every_store!(vary);
