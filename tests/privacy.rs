//! The privacy matrix: two users (and an anonymous one) take turns through
//! the caching proxy, identified by `Authorization`, `Cookie` or a custom
//! header, in front of an origin whose pages name the caller. Whatever the
//! response's caching headers, no user ever receives a page made for another.

use crate::support;

use crate::proxy_app as reverse_proxy;

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use support::origin::Origin;
use tower_tagged_cache::{
    Store,
    testing::{Call, PausableStore},
};

/// How a request says who it is: the header, and the values for two users.
const IDENTITIES: [(&str, [&str; 2]); 3] = [
    ("authorization", ["Bearer alice", "Bearer bob"]),
    ("cookie", ["session=alice", "session=bob"]),
    ("x-user", ["alice", "bob"]),
];

/// What the origin says about caching its personal page. The custom header
/// only identifies users to a cache that is told so (`Vary: X-User`), or that
/// is told not to share (`private`, `no-store`, `Set-Cookie`).
const POLICIES: [(&str, bool); 10] = [
    ("", false),
    ("&h=cache-control:max-age=60", false),
    ("&h=cache-control:s-maxage=60,private", true),
    ("&h=cache-control:private,max-age=60", true),
    ("&h=cache-control:no-store", true),
    ("&h=cache-control:no-cache&etag=v1", false),
    ("&h=cache-control:max-age=60&h=vary:x-user", true),
    ("&h=cache-control:max-age=60&h=vary:cookie", false),
    ("&h=cache-control:max-age=60&h=vary:authorization", false),
    ("&h=cache-control:max-age=60&h=set-cookie:seen=1", true),
];

async fn no_page_crosses_users<St: Store>(store: St) {
    let (_origin, upstream) = Origin::start().await;
    let store = PausableStore::new(store);
    let app = reverse_proxy::proxy(
        store.clone(),
        upstream.parse().unwrap(),
        Duration::from_secs(3600),
        None,
    )
    .unwrap();
    let base = support::serve(app).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    let mut stored = 0;
    let mut checked = 0;
    for (i, (header, users)) in IDENTITIES.iter().enumerate() {
        for (j, (policy, custom_header_ok)) in POLICIES.iter().enumerate() {
            if *header == "x-user" && !custom_header_ok {
                // Not declared to the cache: the origin's mistake, not ours.
                continue;
            }
            let target = format!("{base}/p/{i}/{j}?personal=1{policy}");
            // alice, bob, alice, anonymous, bob, anonymous
            for who in [Some(0), Some(1), Some(0), None, Some(1), None] {
                let mut req = Request::get(&target);
                if let Some(u) = who {
                    req = req.header(*header, users[u]);
                }
                let res = client
                    .request(req.body(Full::default()).unwrap())
                    .await
                    .unwrap();
                let cache = res.headers()["cache-status"].to_str().unwrap().to_owned();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                let expected = format!("for {}", who.map_or("anonymous", |u| users[u]));
                assert_eq!(
                    body,
                    expected,
                    "{header} / {policy}: {:?} got another user's page ({cache})",
                    who.map(|u| users[u])
                );
                checked += 1;
                if cache.ends_with("stored") {
                    stored += 1;
                    store.until_completed(Call::Put, stored).await;
                }
            }
        }
    }
    assert_eq!(
        checked,
        6 * (2 * POLICIES.len() + POLICIES.iter().filter(|p| p.1).count())
    );
    // The matrix must exercise the cache, not only bypass it.
    assert!(stored >= 4, "only {stored} responses were stored");
}

support::every_store!(no_page_crosses_users);
