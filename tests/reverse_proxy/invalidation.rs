//! Invalidation by unsafe methods.

use tower_tagged_cache::Store;

use super::{HIT, Proxy, STORED, Step, get, support};

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
        // A write that succeeded bumped its URI; one that failed, nothing.
        cache: if (200..400).contains(&status) {
            "tower-tagged-cache; fwd=bypass; detail=invalidated"
        } else {
            "tower-tagged-cache; fwd=bypass; detail=method"
        },
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

support::every_store!(unsafe_methods_invalidate);
