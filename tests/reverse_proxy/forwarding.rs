//! What passes through to the origin unchanged.

use tower_tagged_cache::Store;

use super::{Proxy, support};

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

support::every_store!(forwarding);
