//! Whether a stored response may answer a request without the origin (RFC
//! 9111 §4.2): fresh enough for the request, stale where both it and the
//! request allow (§4.2.4, RFC 5861 `stale-if-error`), and shared with an
//! `Authorization` request only when it says so (§3.5).

use http::HeaderMap;

use super::{cache_control::CacheControl, request::RequestPolicy};
use crate::rules::CompiledRule;

/// Whether a stored response may answer this request without the origin:
/// fresh enough for the request, or stale within its `max-stale` when the
/// stored response allows serving stale.
pub(crate) fn usable_without_origin(
    entry: &crate::store::entry::CachedResponse,
    rule: &CompiledRule,
    now_ms: u64,
    req: &RequestPolicy,
) -> bool {
    let age_ms = entry.age_ms(now_ms);
    let freshness_ms = u64::try_from(entry.freshness.as_millis()).unwrap_or(u64::MAX);
    if req.no_cache || req.max_age_ms.is_some_and(|max| age_ms > max) {
        return false;
    }
    if age_ms.saturating_add(req.min_fresh_ms) < freshness_ms {
        return true;
    }
    let Some(max_stale) = req.max_stale_ms else {
        return false;
    };
    !CacheControl::of_stored(&entry.headers, rule).forbids_stale()
        && age_ms.saturating_sub(freshness_ms) <= max_stale
}

/// Whether a stale stored response may stand in for the origin's answer: the
/// origin was unreachable, or answered 500, 502, 503 or 504 within the
/// response's `stale-if-error` window (RFC 5861); never when the stored
/// response requires revalidation (RFC 9111 §4.2.4) or the request said
/// `no-cache`.
pub(crate) fn may_serve_stale(
    entry: &crate::store::entry::CachedResponse,
    rule: &CompiledRule,
    req: &RequestPolicy,
    status: http::StatusCode,
    unreachable: bool,
    now_ms: u64,
) -> bool {
    let cc = CacheControl::of_stored(&entry.headers, rule);
    if req.no_cache || cc.forbids_stale() {
        return false;
    }
    if unreachable {
        return true;
    }
    let error = matches!(status.as_u16(), 500 | 502 | 503 | 504);
    let freshness_ms = u64::try_from(entry.freshness.as_millis()).unwrap_or(u64::MAX);
    let stale_for_ms = entry.age_ms(now_ms).saturating_sub(freshness_ms);
    error
        && cc
            .stale_if_error
            .is_some_and(|s| stale_for_ms <= s.saturating_mul(1000))
}

/// Whether a stored response (by its headers) may be shared with a request
/// that carries `Authorization` (RFC 9111 §3.5).
pub(crate) fn shareable_with_authorization(headers: &HeaderMap, rule: &CompiledRule) -> bool {
    CacheControl::of_stored(headers, rule).allows_authorization()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http::{HeaderValue, Method, StatusCode};

    use super::super::{status::Reason, storable::check_response, test_support::*};
    use super::*;
    use crate::rules::CacheRule;

    #[test]
    fn stale_rules_read_the_fields_the_response_was_stored_by() {
        let r = rule(CacheRule::get("/").response_driven());
        let stored = |h: &[(&str, &str)]| crate::store::entry::CachedResponse {
            status: StatusCode::OK,
            headers: headers(h),
            body: Bytes::new(),
            trailers: None,
            stored_at_ms: 0,
            ttl: Duration::from_secs(600),
            initial_age_ms: 0,
            freshness: Duration::from_secs(60),
            vary: Vec::new(),
        };
        let req = RequestPolicy::default();
        let down = |h: &[(&str, &str)]| {
            may_serve_stale(&stored(h), &r, &req, StatusCode::BAD_GATEWAY, true, 120_000)
        };
        assert!(down(&[("cache-control", "max-age=60")]));
        assert!(!down(&[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "max-age=60, must-revalidate")
        ]));
        assert!(!down(&[("cache-control", "max-age=60, proxy-revalidate")]));
        let max_stale = RequestPolicy {
            max_stale_ms: Some(u64::MAX),
            ..RequestPolicy::default()
        };
        let entry = stored(&[("cdn-cache-control", "no-cache")]);
        assert!(!usable_without_origin(&entry, &r, 120_000, &max_stale));
        assert!(!shareable_with_authorization(
            &headers(&[("cache-control", "proxy-revalidate")]),
            &r
        ));
        // A Vary line that is not text is as good as `Vary: *`.
        let mut res = res(&[("cache-control", "max-age=60")]);
        res.headers_mut()
            .insert("vary", HeaderValue::from_bytes(b"accept, \xe9").unwrap());
        assert_eq!(
            check_response(&Method::GET, &RequestPolicy::default(), &res, &r, 1024, NOW)
                .map(|_| ()),
            Err(Reason::Vary)
        );
    }
}
