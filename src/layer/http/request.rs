//! What a request allows a shared cache to do: its `Cache-Control` request
//! directives (RFC 9111 §5.2.1), `Pragma: no-cache` (§5.4), and the
//! `Cookie` and `Authorization` it carries (§3.5).

use http::{header, request::Parts};

use super::{cache_control::CacheControl, status::Reason};
use crate::rules::CompiledRule;

/// What the request allows.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestPolicy {
    /// The request carries `Authorization` and the rule does not vary on
    /// it: only responses that allow it (`public`, `s-maxage`,
    /// `must-revalidate`) may be shared with it (RFC 9111 §3.5).
    pub(crate) authorized: bool,
    /// `Cache-Control: no-store`: serve from the cache, store nothing.
    pub(crate) no_store: bool,
    /// `Cache-Control: no-cache` (or `Pragma: no-cache`): do not serve a
    /// stored response without asking the origin.
    pub(crate) no_cache: bool,
    /// `max-age=N`: accept stored responses at most N seconds old.
    pub(crate) max_age_ms: Option<u64>,
    /// `min-fresh=N`: accept stored responses fresh for N more seconds.
    pub(crate) min_fresh_ms: u64,
    /// `max-stale[=N]`: accept stored responses stale by at most N seconds.
    pub(crate) max_stale_ms: Option<u64>,
    /// `only-if-cached`: answer `504` rather than ask the origin.
    pub(crate) only_if_cached: bool,
}

/// Request-side checks of a cache rule: may this request use the cache?
pub(crate) fn check_request(parts: &Parts, rule: &CompiledRule) -> Result<RequestPolicy, Reason> {
    let h = &parts.headers;
    if h.contains_key(header::COOKIE) && !rule.allow_cookie {
        return Err(Reason::Cookie);
    }
    let cc = CacheControl::parse(h);
    let pragma_no_cache = !h.contains_key(header::CACHE_CONTROL)
        && h.get_all(header::PRAGMA)
            .iter()
            .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"));
    Ok(RequestPolicy {
        authorized: h.contains_key(header::AUTHORIZATION) && !rule.allow_authorization,
        no_store: cc.no_store,
        no_cache: cc.no_cache || pragma_no_cache,
        max_age_ms: cc.max_age.map(|s| s.saturating_mul(1000)),
        min_fresh_ms: cc.min_fresh.unwrap_or(0).saturating_mul(1000),
        max_stale_ms: cc.max_stale.map(|s| s.saturating_mul(1000)),
        only_if_cached: cc.only_if_cached,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http::StatusCode;

    use super::super::{reuse::usable_without_origin, test_support::*};
    use super::*;
    use crate::rules::CacheRule;

    #[test]
    fn request_directives() {
        let r = rule(CacheRule::get("/"));
        let parts = |h: &[(&str, &str)]| {
            let mut b = http::Request::get("/");
            for (k, v) in h {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        let p = check_request(&parts(&[("pragma", "no-cache")]), &r).unwrap();
        assert!(p.no_cache);
        let p = check_request(&parts(&[("cache-control", "max-age=5, min-fresh=2")]), &r).unwrap();
        assert_eq!((p.max_age_ms, p.min_fresh_ms), (Some(5000), 2000));
        // An entry fresh for 10 s, looked at when it is `age` ms old.
        let entry = |cc: &str| crate::store::entry::CachedResponse {
            status: StatusCode::OK,
            headers: headers(&[("cache-control", cc)]),
            body: Bytes::new(),
            trailers: None,
            stored_at_ms: 0,
            ttl: Duration::from_secs(60),
            initial_age_ms: 0,
            freshness: Duration::from_secs(10),
            vary: Vec::new(),
        };
        let usable =
            |cc: &str, age: u64, p: &RequestPolicy| usable_without_origin(&entry(cc), &r, age, p);
        assert!(usable("", 1000, &p));
        assert!(!usable("", 6000, &p), "older than max-age");
        let min_fresh = RequestPolicy {
            min_fresh_ms: 2000,
            ..RequestPolicy::default()
        };
        assert!(!usable("", 8500, &min_fresh));
        let p = check_request(&parts(&[("cache-control", "max-stale=5")]), &r).unwrap();
        assert!(usable("", 14_000, &p), "stale by 4 s");
        assert!(!usable("", 16_000, &p), "stale by 6 s");
        assert!(!usable("must-revalidate", 11_000, &p));
        let any = check_request(&parts(&[("cache-control", "max-stale")]), &r).unwrap();
        assert!(usable("", 1_000_000, &any));
        let oic = check_request(&parts(&[("cache-control", "only-if-cached")]), &r).unwrap();
        assert!(oic.only_if_cached);
        assert!(matches!(
            check_request(&parts(&[("cookie", "a=1")]), &r),
            Err(Reason::Cookie)
        ));
        assert!(
            check_request(&parts(&[("authorization", "x")]), &r)
                .unwrap()
                .authorized
        );
    }
}
