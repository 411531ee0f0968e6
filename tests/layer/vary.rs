//! Variants: `Vary` learned from responses (several variants kept per
//! key), `VaryOn` declared on rules, and credentialed requests, which bypass
//! the cache unless a rule varies on their credential.

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

/// An origin that answers `#n in <value>` for the request's value of
/// `header`, with `Vary: <vary>` (both read from `vary` at each call, so a
/// test may change what the origin varies on).
fn varying_origin(
    calls: &Arc<AtomicUsize>,
    vary: &Arc<std::sync::Mutex<&'static str>>,
) -> impl super::Inner {
    let vary = vary.clone();
    origin(calls.clone(), move |req, n| {
        let on = *vary.lock().unwrap();
        let value = req
            .headers()
            .get(on)
            .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned());
        let mut res = Response::new(Scripted::full(format!("#{n} in {value}")));
        res.headers_mut()
            .insert("vary", HeaderValue::from_static(on));
        res
    })
}

fn with(header: &'static str, value: &str) -> Request<Full<bytes::Bytes>> {
    Request::get("/users/1")
        .header(header, value)
        .body(Full::default())
        .unwrap()
}

const HIT: &str = "tower-tagged-cache; hit";
const VARY_MISS: &str = "tower-tagged-cache; fwd=vary-miss; stored";

/// Two variants requested in turn are each computed once, then both hit:
/// storing one no longer replaces the other.
async fn alternating_variants_both_hit<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let vary = Arc::new(std::sync::Mutex::new("accept-encoding"));
    let mut svc = stack(layer, varying_origin(&calls, &vary));
    let gzip = send(&mut svc, with("accept-encoding", "gzip")).await;
    assert_eq!(gzip.cache_status(), "tower-tagged-cache; fwd=miss; stored");
    store.until_completed(Call::Put, 1).await;
    let br = send(&mut svc, with("accept-encoding", "br")).await;
    assert_eq!(br.cache_status(), VARY_MISS);
    store.until_completed(Call::Put, 2).await;
    for round in 0..5 {
        for (value, first) in [("gzip", &gzip), ("br", &br)] {
            let seen = send(&mut svc, with("accept-encoding", value)).await;
            assert_eq!(seen.cache_status(), HIT, "{value}, round {round}");
            assert_eq!(seen.body, first.body, "{value}, round {round}");
        }
    }
    assert_eq!(gzip.body, "#1 in gzip");
    assert_eq!(br.body, "#2 in br");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(store.completed(Call::Put), 2);
}

/// A request for `lang` is a hit on the variant stored for `lang`.
async fn hits_its_own_variant(svc: &mut super::Svc, lang: &str) {
    let seen = send(svc, with("x-lang", lang)).await;
    assert_eq!(seen.cache_status(), HIT, "{lang}");
    assert!(
        seen.body.ends_with(lang.as_bytes()),
        "{lang}: {:?}",
        seen.body
    );
}

/// With the default of 8 variants per key, a 9th drops the least recently
/// stored one (the first), whatever was read since; the others still hit.
/// `max_variants(1)` keeps one variant per key.
async fn the_variant_past_the_maximum_drops_the_least_recently_stored<St: Store>(store: St) {
    assert_eq!(tower_tagged_cache::layer::DEFAULT_MAX_VARIANTS, 8);
    let (store, calls, layer) = fixture(store);
    let vary = Arc::new(std::sync::Mutex::new("x-lang"));
    let mut svc = stack(layer.clone(), varying_origin(&calls, &vary));
    let langs: Vec<String> = (0..9).map(|i| format!("l{i}")).collect();
    for (i, lang) in langs[..8].iter().enumerate() {
        send(&mut svc, with("x-lang", lang)).await;
        store.until_completed(Call::Put, i + 1).await;
    }
    // The first is the most read, and still the least recently stored.
    for lang in langs[..8].iter().chain([&langs[0], &langs[0]]) {
        hits_its_own_variant(&mut svc, lang).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 8);
    let ninth = send(&mut svc, with("x-lang", &langs[8])).await;
    assert_eq!(ninth.cache_status(), VARY_MISS);
    store.until_completed(Call::Put, 9).await;
    for lang in &langs[1..] {
        hits_its_own_variant(&mut svc, lang).await;
    }
    let first = send(&mut svc, with("x-lang", &langs[0])).await;
    assert_eq!(first.cache_status(), VARY_MISS);
    assert_eq!(first.body, "#10 in l0");
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    store.until_completed(Call::Put, 10).await;

    // One variant per key: the second replaces the first.
    let one = TaggedCacheLayer::new(store.clone())
        .namespace("one")
        .max_variants(1)
        .rule(user_rule())
        .unwrap();
    let mut svc = stack(one, varying_origin(&calls, &vary));
    let puts = store.completed(Call::Put);
    send(&mut svc, with("x-lang", "a")).await;
    store.until_completed(Call::Put, puts + 1).await;
    send(&mut svc, with("x-lang", "b")).await;
    store.until_completed(Call::Put, puts + 2).await;
    assert_eq!(
        send(&mut svc, with("x-lang", "b")).await.cache_status(),
        HIT
    );
    let a = send(&mut svc, with("x-lang", "a")).await;
    assert_eq!(a.cache_status(), VARY_MISS);
}

/// A bump reaches every variant: they all live under the key it moves.
async fn a_bump_misses_every_variant<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let invalidator = layer.invalidator();
    let vary = Arc::new(std::sync::Mutex::new("accept-language"));
    let mut svc = stack(layer, varying_origin(&calls, &vary));
    for (i, lang) in ["en", "fr", "de"].into_iter().enumerate() {
        send(&mut svc, with("accept-language", lang)).await;
        store.until_completed(Call::Put, i + 1).await;
    }
    for lang in ["en", "fr", "de"] {
        let seen = send(&mut svc, with("accept-language", lang)).await;
        assert_eq!(seen.cache_status(), HIT, "{lang}");
    }
    invalidator.invalidate(["User:1"]).await.unwrap();
    for (i, lang) in ["en", "fr", "de"].into_iter().enumerate() {
        let seen = send(&mut svc, with("accept-language", lang)).await;
        let expected = if i == 0 {
            "tower-tagged-cache; fwd=miss; stored"
        } else {
            VARY_MISS
        };
        assert_eq!(seen.cache_status(), expected, "{lang} after the bump");
        assert_eq!(seen.body, format!("#{} in {lang}", 4 + i));
        store.until_completed(Call::Put, 4 + i).await;
    }
}

/// A `304` refreshes the variant it revalidated and keeps the others: each
/// variant is revalidated against its own stored response.
async fn a_revalidated_variant_keeps_the_others<St: Store>(store: St) {
    let store = PausableStore::new(store);
    let layer = TaggedCacheLayer::new(store.clone())
        .rule(
            CacheRule::get("/users/{id}")
                .tags(["User:{id}"])
                .response_driven()
                .ttl(std::time::Duration::from_secs(60)),
        )
        .unwrap();
    let (full, not_modified) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let inner = {
        let (full, not_modified) = (full.clone(), not_modified.clone());
        tower::service_fn(move |req: Request<Full<bytes::Bytes>>| {
            let lang = req.headers()["accept-language"]
                .to_str()
                .unwrap()
                .to_owned();
            let etag = format!("\"{lang}\"");
            let mut res = if req
                .headers()
                .get("if-none-match")
                .map(|v| v.to_str().unwrap())
                == Some(etag.as_str())
            {
                not_modified.fetch_add(1, Ordering::SeqCst);
                let mut res = Response::new(Scripted::full(""));
                *res.status_mut() = http::StatusCode::NOT_MODIFIED;
                res
            } else {
                let n = full.fetch_add(1, Ordering::SeqCst) + 1;
                Response::new(Scripted::full(format!("#{n} in {lang}")))
            };
            let headers = res.headers_mut();
            headers.insert("vary", HeaderValue::from_static("accept-language"));
            headers.insert("cache-control", HeaderValue::from_static("no-cache"));
            headers.insert("etag", HeaderValue::from_str(&etag).unwrap());
            async move { Ok::<_, std::convert::Infallible>(res) }
        })
    };
    let mut svc = stack(layer, inner);
    send(&mut svc, with("accept-language", "en")).await;
    store.until_completed(Call::Put, 1).await;
    send(&mut svc, with("accept-language", "fr")).await;
    store.until_completed(Call::Put, 2).await;
    const REVALIDATED: &str = "tower-tagged-cache; fwd=stale; fwd-status=304; stored";
    // Each turn revalidates one variant and stores it again, beside the
    // other: both keep being answered from their own stored response.
    for (turn, lang) in ["en", "fr", "en", "en", "fr"].into_iter().enumerate() {
        let seen = send(&mut svc, with("accept-language", lang)).await;
        assert_eq!(seen.cache_status(), REVALIDATED, "turn {turn}: {lang}");
        let first = if lang == "en" { "#1 in en" } else { "#2 in fr" };
        assert_eq!(seen.body, first, "turn {turn}");
        store.until_completed(Call::Put, 3 + turn).await;
    }
    assert_eq!(full.load(Ordering::SeqCst), 2);
    assert_eq!(not_modified.load(Ordering::SeqCst), 5);
}

/// Conditional requests and ranges are answered from the variant the
/// request gets: its own `ETag` and its own body.
async fn conditionals_and_ranges_are_answered_per_variant<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let inner = origin(calls.clone(), |req, n| {
        let enc = req.headers()["accept-encoding"]
            .to_str()
            .unwrap()
            .to_owned();
        let mut res = Response::new(Scripted::full(format!("#{n} in {enc}")));
        let headers = res.headers_mut();
        headers.insert("vary", HeaderValue::from_static("accept-encoding"));
        headers.insert(
            "etag",
            HeaderValue::from_str(&format!("\"{enc}\"")).unwrap(),
        );
        res
    });
    let mut svc = stack(layer, inner);
    for (i, enc) in ["gzip", "br"].into_iter().enumerate() {
        send(&mut svc, with("accept-encoding", enc)).await;
        store.until_completed(Call::Put, i + 1).await;
    }
    let req = |enc: &str, header: &str, value: &str| {
        Request::get("/users/1")
            .header("accept-encoding", enc)
            .header(header, value)
            .body(Full::default())
            .unwrap()
    };
    for (enc, n) in [("gzip", 1), ("br", 2)] {
        let own = send(&mut svc, req(enc, "if-none-match", &format!("\"{enc}\""))).await;
        assert_eq!(own.status, 304, "{enc}");
        assert_eq!(own.headers["etag"], format!("\"{enc}\"").as_str());
        let other = if enc == "gzip" { "\"br\"" } else { "\"gzip\"" };
        let full = send(&mut svc, req(enc, "if-none-match", other)).await;
        assert_eq!(
            (full.status.as_u16(), full.cache_status()),
            (200, HIT),
            "{enc}"
        );
        assert_eq!(full.body, format!("#{n} in {enc}"));
        let range = send(&mut svc, req(enc, "range", "bytes=-3")).await;
        assert_eq!(
            (range.status.as_u16(), range.cache_status()),
            (206, HIT),
            "{enc}"
        );
        assert_eq!(
            range.body,
            format!("#{n} in {enc}")[format!("#{n} in {enc}").len() - 3..]
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// When the origin changes what it varies on, the newest response's `Vary`
/// wins: variants stored under the old names are dropped, never served.
async fn variants_of_an_old_vary_are_dropped<St: Store>(store: St) {
    let (store, calls, layer) = fixture(store);
    let vary = Arc::new(std::sync::Mutex::new("accept-language"));
    let mut svc = stack(layer, varying_origin(&calls, &vary));
    let both = |lang: &str, encoding: &str| {
        Request::get("/users/1")
            .header("accept-language", lang)
            .header("accept-encoding", encoding)
            .body(Full::default())
            .unwrap()
    };
    send(&mut svc, both("en", "gzip")).await;
    store.until_completed(Call::Put, 1).await;
    send(&mut svc, both("fr", "gzip")).await;
    store.until_completed(Call::Put, 2).await;
    assert_eq!(send(&mut svc, both("en", "br")).await.cache_status(), HIT);
    // Now the origin varies on Accept-Encoding instead.
    *vary.lock().unwrap() = "accept-encoding";
    let de = send(&mut svc, both("de", "br")).await;
    assert_eq!(de.cache_status(), VARY_MISS);
    assert_eq!(de.body, "#3 in br");
    store.until_completed(Call::Put, 3).await;
    // The Accept-Language variants are gone: en and fr with gzip are
    // computed again (under the new Vary), not served the old pages.
    let en = send(&mut svc, both("en", "gzip")).await;
    assert_eq!(en.cache_status(), VARY_MISS);
    assert_eq!(en.body, "#4 in gzip");
    store.until_completed(Call::Put, 4).await;
    let fr = send(&mut svc, both("fr", "br")).await;
    assert_eq!(fr.cache_status(), HIT);
    assert_eq!(fr.body, de.body);
    let fr = send(&mut svc, both("fr", "gzip")).await;
    assert_eq!(fr.cache_status(), HIT);
    assert_eq!(fr.body, en.body);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

support::every_store!(
    alternating_variants_both_hit,
    the_variant_past_the_maximum_drops_the_least_recently_stored,
    a_bump_misses_every_variant,
    a_revalidated_variant_keeps_the_others,
    conditionals_and_ranges_are_answered_per_variant,
    variants_of_an_old_vary_are_dropped,
    variants_never_wait_for_each_other,
    learned_vary_keeps_variants_apart,
    vary_on_values_never_share_an_entry,
    credentials_bypass_unless_varied_on,
);
