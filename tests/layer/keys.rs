//! What goes into a key: path parameters as decoded, query strings.

use std::sync::{Arc, atomic::AtomicUsize};

use tower_tagged_cache::{
    CacheRule, Store, TaggedCacheLayer, VaryOn,
    testing::{Call, PausableStore},
};

use super::{counting, fixture, get, send, stack, support, user_rule};

async fn percent_encoded_params_share_the_tag<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let invalidator = layer.invalidator();
    let mut svc = stack(layer, counting(&calls));
    send(&mut svc, get("/users/4%32")).await;
    store.until_completed(Call::Put, 1).await;
    assert_eq!(
        send(&mut svc, get("/users/4%32")).await.cache_status(),
        "tower-tagged-cache; hit"
    );
    // `/users/4%32` is user 42 to axum: bumping User:42 must reach it.
    invalidator.invalidate(["User:42"]).await.unwrap();
    assert_eq!(
        send(&mut svc, get("/users/4%32")).await.cache_status(),
        "tower-tagged-cache; fwd=miss; stored"
    );
    let bad = send(&mut svc, get("/users/%ff")).await;
    assert_eq!(
        bad.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=bad-path"
    );
    let none = send(&mut svc, get("/elsewhere")).await;
    assert_eq!(
        none.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=no-rule"
    );
}

async fn query_strings_are_part_of_the_key<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(user_rule())
        .unwrap()
        .rule(
            CacheRule::get("/feed")
                .tags(["Feed"])
                .ignore_query()
                .vary_on(VaryOn::query("page")),
        )
        .unwrap();
    let mut svc = stack(layer, counting(&calls));
    let a = send(&mut svc, get("/users/1?fields=name")).await;
    store.until_completed(Call::Put, 1).await;
    let b = send(&mut svc, get("/users/1?fields=email")).await;
    assert_ne!(a.body, b.body);
    store.until_completed(Call::Put, 2).await;
    // With ignore_query, only the declared parameter counts.
    send(&mut svc, get("/feed?page=2&utm_source=x")).await;
    store.until_completed(Call::Put, 3).await;
    let same = send(&mut svc, get("/feed?utm_source=y&page=2")).await;
    assert_eq!(same.cache_status(), "tower-tagged-cache; hit");
    let other = send(&mut svc, get("/feed?page=3")).await;
    assert_eq!(other.cache_status(), "tower-tagged-cache; fwd=miss; stored");
}

/// A GET of `target` with these `Host` fields.
fn get_with_hosts(
    target: &str,
    hosts: &[&str],
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut req = http::Request::get(target);
    for host in hosts {
        req = req.header(http::header::HOST, *host);
    }
    req.body(http_body_util::Full::default()).unwrap()
}

async fn a_request_naming_two_hosts_is_never_cached<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let mut svc = stack(layer, counting(&calls));
    const MISMATCH: &str = "tower-tagged-cache; fwd=bypass; detail=host-mismatch";
    // The key would name a.example while the service may answer for
    // b.example: an attacker's page stored for everyone else.
    for hosts in [
        &["b.example"][..],
        &["a.example", "b.example"],
        &["a.example", "a.example"],
    ] {
        let seen = send(&mut svc, get_with_hosts("http://a.example/users/1", hosts)).await;
        assert_eq!(seen.cache_status(), MISMATCH, "{hosts:?}");
    }
    let two = send(
        &mut svc,
        get_with_hosts("/users/1", &["a.example", "b.example"]),
    )
    .await;
    assert_eq!(two.cache_status(), MISMATCH);
    let mut opaque = get_with_hosts("/users/1", &[]);
    opaque.headers_mut().insert(
        http::header::HOST,
        http::HeaderValue::from_bytes(b"a.ex\xffample").unwrap(),
    );
    assert_eq!(send(&mut svc, opaque).await.cache_status(), MISMATCH);
    assert_eq!(
        store.completed(Call::Lookup),
        0,
        "the store was never asked"
    );
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        5,
        "each went to the service"
    );

    // One host, however it is spelled, is one key: the target's authority
    // (userinfo aside) or the `Host` of an origin-form target.
    let stored = send(
        &mut svc,
        get_with_hosts("http://u@a.example/users/1", &["A.Example"]),
    )
    .await;
    assert_eq!(
        stored.cache_status(),
        "tower-tagged-cache; fwd=miss; stored"
    );
    send(&mut svc, get_with_hosts("http://a.example/users/2", &[])).await;
    store.until_completed(Call::Put, 2).await;
    let hit = send(&mut svc, get_with_hosts("/users/2", &["a.example"])).await;
    assert_eq!(hit.cache_status(), "tower-tagged-cache; hit");
}

/// A write that names two hosts reaches what is stored for either: the
/// service behind may have written to the one in `Host`.
async fn a_write_naming_two_hosts_invalidates_both<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let mut svc = stack(layer, counting(&calls));
    const STORED: &str = "tower-tagged-cache; fwd=miss; stored";
    let a = get_with_hosts("http://a.example/users/1", &[]);
    let b = || get_with_hosts("/users/1", &["b.example:80"]);
    assert_eq!(send(&mut svc, a).await.cache_status(), STORED);
    assert_eq!(send(&mut svc, b()).await.cache_status(), STORED);
    store.until_completed(Call::Put, 2).await;
    assert_eq!(
        send(&mut svc, b()).await.cache_status(),
        "tower-tagged-cache; hit"
    );

    let mut write = get_with_hosts("http://a.example/users/1", &["B.example"]);
    *write.method_mut() = http::Method::POST;
    assert_eq!(
        send(&mut svc, write).await.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=invalidated"
    );
    let a = get_with_hosts("http://a.example/users/1", &[]);
    assert_eq!(send(&mut svc, a).await.cache_status(), STORED);
    assert_eq!(send(&mut svc, b()).await.cache_status(), STORED);
}

support::every_store!(
    a_write_naming_two_hosts_invalidates_both,
    a_request_naming_two_hosts_is_never_cached,
    percent_encoded_params_share_the_tag,
    query_strings_are_part_of_the_key,
);
