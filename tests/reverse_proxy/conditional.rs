//! Conditional requests answered from hits.

use tower_tagged_cache::Store;

use super::{HIT, Proxy, STORED, get, support};

/// Hits answer conditional requests (item 5).
async fn conditional_hits<St: Store>(store: St) {
    let mut p = Proxy::start(store).await;
    let target = "/c/x?etag=abc&h=cache-control:max-age=60&h=last-modified:Sun,%2006%20Nov%201994%2008:49:37%20GMT";
    p.run("warm", &[get(target, STORED, true)]).await;
    for (name, headers, status) in [
        ("strong match", &[("if-none-match", "\"abc\"")][..], 304),
        ("weak match", &[("if-none-match", "W/\"abc\"")][..], 304),
        ("list", &[("if-none-match", "\"zzz\", \"abc\"")][..], 304),
        ("no match", &[("if-none-match", "\"zzz\"")][..], 200),
        (
            "not modified since",
            &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")][..],
            304,
        ),
        (
            "modified since",
            &[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")][..],
            200,
        ),
    ] {
        let r = p.send("GET", target, headers, "").await;
        assert_eq!(r.status, status, "{name}");
        assert_eq!(r.cache, HIT, "{name}");
        if status == 304 {
            assert!(r.body.is_empty(), "{name}");
            assert_eq!(r.headers["etag"], "\"abc\"", "{name}");
            assert!(r.headers.contains_key("age"), "{name}");
        }
    }
    assert_eq!(p.origin.calls("/c/x"), 1);
}

support::every_store!(conditional_hits);
