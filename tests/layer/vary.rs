//! Variants: `Vary` learned from responses, `VaryOn` declared on rules,
//! and credentialed requests, which bypass the cache unless a rule varies
//! on their credential.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use tower_tagged_cache::{
    CacheRule, Store, TaggedCacheLayer, VaryOn,
    testing::{Call, PausableStore},
};

use super::{
    fixture, get, origin, send, stack,
    support::{self, scripted::Scripted},
    user_rule,
};

/// A response's `Vary` on a header the rule does not name is learned: the
/// entry remembers the request's value and serves only requests that match.
async fn learned_vary_keeps_variants_apart<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let inner = origin(calls.clone(), |req, n| {
        let lang = req
            .headers()
            .get("accept-language")
            .map(|v| v.to_str().unwrap().to_owned());
        let mut res = Response::new(Scripted::full(format!("#{n} in {lang:?}")));
        res.headers_mut()
            .insert("vary", HeaderValue::from_static("Accept-Language"));
        res
    });
    let mut svc = stack(layer, inner);
    let lang = |l: &str| {
        Request::get("/users/1")
            .header("accept-language", l)
            .body(Full::default())
            .unwrap()
    };
    let en = send(&mut svc, lang("en")).await;
    assert_eq!(en.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    store.until_completed(Call::Put, 1).await;
    assert_eq!(send(&mut svc, lang("en")).await.body, en.body);
    let fr = send(&mut svc, lang("fr")).await;
    assert_eq!(
        fr.cache_status(),
        "tower-tagged-cache; fwd=vary-miss; stored"
    );
    assert!(fr.body.ends_with(b"Some(\"fr\")"), "{:?}", fr.body);
    store.until_completed(Call::Put, 2).await;
    let fr_again = send(&mut svc, lang("fr")).await;
    assert_eq!(fr_again.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(fr_again.body, fr.body);
    // Both variants are kept: English is served English (its own stored
    // response, never French), without the origin.
    let en_again = send(&mut svc, lang("en")).await;
    assert!(
        en_again.body.ends_with(b"Some(\"en\")"),
        "{:?}",
        en_again.body
    );
    assert_eq!(en_again.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(en_again.body, en.body);
    let absent = send(&mut svc, get("/users/1")).await;
    assert!(absent.body.ends_with(b"None"), "{:?}", absent.body);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

async fn vary_on_values_never_share_an_entry<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(
            user_rule()
                .vary_on(VaryOn::header("accept-language"))
                .vary_on(VaryOn::from_fn("tenant", |p| {
                    p.headers.get("x-tenant")?.to_str().ok().map(str::to_owned)
                })),
        )
        .unwrap();
    let inner = origin(calls.clone(), |req, n| {
        let lang = req
            .headers()
            .get("accept-language")
            .map(|v| v.to_str().unwrap().to_owned());
        let tenant = req
            .headers()
            .get("x-tenant")
            .map(|v| v.to_str().unwrap().to_owned());
        Response::new(Scripted::full(format!(
            "#{n} lang={lang:?} tenant={tenant:?}"
        )))
    });
    let mut svc = stack(layer, inner);
    let req = |lang: Option<&str>, tenant: Option<&str>| {
        let mut b = Request::get("/users/1");
        if let Some(l) = lang {
            b = b.header("accept-language", l);
        }
        if let Some(t) = tenant {
            b = b.header("x-tenant", t);
        }
        b.body(Full::default()).unwrap()
    };
    let variants = [
        (None, None),
        (Some("en"), None),
        (Some("fr"), None),
        (Some(""), None),
        (Some("en"), Some("a")),
        (Some("en"), Some("b")),
    ];
    let mut bodies = Vec::new();
    for (i, (lang, tenant)) in variants.iter().enumerate() {
        let seen = send(&mut svc, req(*lang, *tenant)).await;
        assert_eq!(
            seen.cache_status(),
            "tower-tagged-cache; fwd=miss; stored",
            "{lang:?} {tenant:?}"
        );
        store.until_completed(Call::Put, i + 1).await;
        bodies.push(seen.body);
    }
    for ((lang, tenant), body) in variants.iter().zip(&bodies) {
        let seen = send(&mut svc, req(*lang, *tenant)).await;
        assert_eq!(seen.cache_status(), "tower-tagged-cache; hit");
        assert_eq!(
            &seen.body, body,
            "{lang:?} {tenant:?} got another variant's body"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), variants.len());
}

async fn credentials_bypass_unless_varied_on<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(user_rule())
        .unwrap()
        .rule(
            CacheRule::get("/me/{id}")
                .tags(["User:{id}"])
                .vary_on(VaryOn::header("authorization")),
        )
        .unwrap();
    let inner = origin(calls.clone(), |req, n| {
        let who = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        Response::new(Scripted::full(format!("#{n} private page of {who:?}")))
    });
    let mut svc = stack(layer, inner);
    let with = |path: &str, header: &str, value: &str| {
        Request::get(path)
            .header(header, value)
            .body(Full::default())
            .unwrap()
    };
    // Warm the shared entry, then make sure credentialed requests neither
    // read it nor write it.
    send(&mut svc, get("/users/1")).await;
    store.until_completed(Call::Put, 1).await;
    let alice = send(&mut svc, with("/users/1", "authorization", "Bearer alice")).await;
    assert_eq!(
        alice.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=authorization"
    );
    assert!(alice.body.ends_with(b"Some(\"Bearer alice\")"));
    let cookie = send(&mut svc, with("/users/1", "cookie", "session=bob")).await;
    assert_eq!(
        cookie.cache_status(),
        "tower-tagged-cache; fwd=bypass; detail=cookie"
    );
    let anon = send(&mut svc, get("/users/1")).await;
    assert_eq!(anon.cache_status(), "tower-tagged-cache; hit");
    assert!(
        anon.body.ends_with(b"None"),
        "anonymous got {:?}",
        anon.body
    );

    // A rule that varies on Authorization keeps one entry per credential.
    let a1 = send(&mut svc, with("/me/1", "authorization", "Bearer alice")).await;
    store.until_completed(Call::Put, 2).await;
    let b1 = send(&mut svc, with("/me/1", "authorization", "Bearer bob")).await;
    store.until_completed(Call::Put, 3).await;
    let a2 = send(&mut svc, with("/me/1", "authorization", "Bearer alice")).await;
    let b2 = send(&mut svc, with("/me/1", "authorization", "Bearer bob")).await;
    assert_eq!(a2.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(b2.cache_status(), "tower-tagged-cache; hit");
    assert_eq!(a1.body, a2.body);
    assert_eq!(b1.body, b2.body);
    assert_ne!(a1.body, b1.body);
}

/// An origin whose answers vary on `x-lang` and that holds every call until
/// `release` hands it a permit; `started` counts the calls it got.
fn held_origin(
    started: &Arc<AtomicUsize>,
    release: &Arc<tokio::sync::Semaphore>,
) -> impl super::Inner {
    let (started, release) = (started.clone(), release.clone());
    tower::service_fn(move |req: Request<Full<bytes::Bytes>>| {
        let (started, release) = (started.clone(), release.clone());
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            release.acquire().await.unwrap().forget();
            let lang = req.headers()["x-lang"].to_str().unwrap().to_owned();
            let mut res = Response::new(Scripted::full(format!("in {lang}")));
            res.headers_mut()
                .insert("vary", HeaderValue::from_static("x-lang"));
            Ok::<_, std::convert::Infallible>(res)
        }
    })
}

/// Waits (bounded) until `started` reaches `n`: each origin call of a
/// variant must start without another variant's call finishing first.
async fn until_started(started: &AtomicUsize, n: usize) {
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while started.load(Ordering::SeqCst) < n {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "{} origin calls started, {n} expected: a variant waited for another",
            started.load(Ordering::SeqCst)
        )
    });
}

/// Requests for different variants of one URL never queue behind each
/// other: not behind a leader whose response turns out to vary (the first
/// wave), and not at all once the URL is known to vary (later waves).
async fn variants_never_wait_for_each_other<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(user_rule())
        .unwrap();
    let (started, release) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(tokio::sync::Semaphore::new(0)),
    );
    let svc = stack(layer.clone(), held_origin(&started, &release));
    let get_in = |lang: &str| {
        let mut svc = svc.clone();
        let req = Request::get("/users/1")
            .header("x-lang", lang)
            .body(Full::default())
            .unwrap();
        tokio::spawn(async move { send(&mut svc, req).await })
    };
    let joins = || async {
        let res =
            tower::ServiceExt::oneshot(layer.admin(), Request::get("/stats").body(()).unwrap())
                .await
                .unwrap();
        let stats = res.into_body();
        stats
            .lines()
            .find_map(|l| l.strip_prefix("single-flight-joins: "))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0)
    };

    // First wave: nothing is known to vary yet, so b, b again and c follow
    // a.
    let a = get_in("a");
    until_started(&started, 1).await;
    let (b, b_again, c) = (get_in("b"), get_in("b"), get_in("c"));
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while joins().await < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("b, b and c follow a's flight");
    release.add_permits(1);
    // a's answer is for a only: b and c both call the origin now, neither
    // waiting for the other's answer (no permit is given meanwhile); the
    // second b waits for the first.
    until_started(&started, 3).await;
    release.add_permits(2);
    let mut got = Vec::new();
    for handle in [a, b, b_again, c] {
        got.push(handle.await.unwrap().body);
    }
    assert_eq!(got, ["in a", "in b", "in b", "in c"]);
    assert_eq!(
        started.load(Ordering::SeqCst),
        3,
        "one origin call per variant"
    );
    store.until_completed(Call::Put, 3).await;

    // Later waves: a stored variant says the URL varies on x-lang, so d and
    // e fly apart from the start.
    let d = get_in("d");
    until_started(&started, 4).await;
    let e = get_in("e");
    until_started(&started, 5).await;
    release.add_permits(2);
    assert_eq!(d.await.unwrap().body, "in d");
    assert_eq!(e.await.unwrap().body, "in e");
}

support::every_store!(
    variants_never_wait_for_each_other,
    learned_vary_keeps_variants_apart,
    vary_on_values_never_share_an_entry,
    credentials_bypass_unless_varied_on,
);
