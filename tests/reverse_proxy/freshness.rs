//! Freshness: only what the response says, and served only while fresh.

use std::time::Duration;

use tower_tagged_cache::Store;

use super::{HIT, Proxy, STORED, Step, get, support};

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

/// With `--default-ttl`, a response that states no freshness is stored and
/// served for that long; one that forbids storing still is not stored, and
/// explicit freshness still wins.
async fn default_ttl_for_origins_that_state_none<St: Store>(store: St) {
    let mut p = Proxy::with_default_ttl(store, Some(Duration::from_secs(60))).await;
    p.run(
        "no explicit freshness, a default TTL",
        &[get("/d/none", STORED, true), get("/d/none", HIT, false)],
    )
    .await;
    p.run(
        "no-store still wins",
        &[
            get(
                "/d/no-store?h=cache-control:no-store",
                "tower-tagged-cache; fwd=miss; detail=no-store",
                true,
            ),
            get(
                "/d/no-store?h=cache-control:no-store",
                "tower-tagged-cache; fwd=miss; detail=no-store",
                true,
            ),
        ],
    )
    .await;
    let r = p.send("GET", "/d/none", &[], "").await;
    assert_eq!(r.cache, HIT);
    let age: u64 = r.headers["age"].to_str().unwrap().parse().unwrap();
    assert!(age < 60, "age {age}");
}

#[test]
fn the_proxy_says_how_it_decides_freshness() {
    let off = super::reverse_proxy::freshness_policy(86_400, None);
    assert!(
        off.contains("not stored") && off.contains("--default-ttl"),
        "{off}"
    );
    assert!(off.contains("86400 s"), "{off}");
    let on = super::reverse_proxy::freshness_policy(3600, Some(30));
    assert!(on.contains("fresh for 30 s"), "{on}");
}

support::every_store!(freshness, default_ttl_for_origins_that_state_none);
