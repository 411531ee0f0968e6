//! Whether a response may be stored, and for how long (RFC 9111 §3): its
//! freshness lifetime (§4.2.1) and its age when received (§4.2.3).

use std::time::Duration;

use http::{HeaderMap, Method, Response, header};
use http_body::Body;

use super::{
    cache_control::{CacheControl, delta_seconds},
    date::{date_from, header_date_ms},
    headers::{comma_list, content_length},
    request::RequestPolicy,
    status::Reason,
};
use crate::rules::CompiledRule;

/// How a response may be stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Storable {
    /// Fresh for this long from age zero.
    pub(crate) freshness: Duration,
    /// Kept in the store this long.
    pub(crate) ttl: Duration,
    /// The response's age when received.
    pub(crate) initial_age_ms: u64,
}

/// When the request was sent and the response received, in ms since the
/// Unix epoch (for the age calculation of RFC 9111 §4.2.3).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) request_ms: u64,
    pub(crate) response_ms: u64,
}

/// Response-side checks: may this response be stored, and for how long?
pub(crate) fn check_response<B: Body>(
    method: &Method,
    req: &RequestPolicy,
    res: &Response<B>,
    rule: &CompiledRule,
    body_limit: usize,
    timing: Timing,
) -> Result<Storable, Reason> {
    if method == Method::HEAD {
        return Err(Reason::Head);
    }
    if !rule.allows_status(res.status()) {
        return Err(Reason::Status);
    }
    let headers = res.headers();
    let storable = check_headers(res.status(), headers, req, rule, timing)?;
    let limit = rule.max_body_size.unwrap_or(body_limit) as u64;
    if content_length(headers).unwrap_or(0) > limit || res.body().size_hint().lower() > limit {
        return Err(Reason::TooLarge);
    }
    Ok(storable)
}

/// The header part of [`check_response`], also used to refresh a stored
/// response after a `304`.
pub(crate) fn check_headers(
    status: http::StatusCode,
    headers: &HeaderMap,
    req: &RequestPolicy,
    rule: &CompiledRule,
    timing: Timing,
) -> Result<Storable, Reason> {
    if headers.contains_key(header::SET_COOKIE) {
        return Err(Reason::SetCookie);
    }
    let (cc, targeted) = if rule.response_driven {
        CacheControl::for_response(headers)
    } else {
        (CacheControl::parse(headers), false)
    };
    // A Vary line that is not text cannot be matched: as good as `Vary: *`.
    if headers
        .get_all(header::VARY)
        .iter()
        .any(|v| v.to_str().is_err())
    {
        return Err(Reason::Vary);
    }
    if cc.must_understand && status.canonical_reason().is_none() {
        return Err(Reason::Status);
    }
    // `must-understand` lifts `no-store` for statuses the cache understands.
    if (cc.no_store && !cc.must_understand) || req.no_store {
        return Err(Reason::NoStore);
    }
    if cc.private {
        return Err(Reason::Private);
    }
    if req.authorized && !cc.allows_authorization() {
        return Err(Reason::Authorization);
    }
    if comma_list(headers, &header::VARY).any(|v| v == "*") {
        return Err(Reason::Vary);
    }
    let date_ms = header_date_ms(headers, &header::DATE);
    // A targeted field (CDN-Cache-Control) replaces Cache-Control and Expires.
    let expires = if targeted {
        None
    } else {
        headers.get(header::EXPIRES)
    };
    // Several Expires lines are as invalid as a bad date.
    let expires_valid = headers.get_all(header::EXPIRES).iter().count() <= 1;
    let explicit_ms = match (cc.s_maxage.or(cc.max_age), expires) {
        (Some(secs), _) => Some(secs.saturating_mul(1000)),
        (None, Some(expires)) => Some(
            // An invalid Expires means already expired (RFC 9111 §5.3).
            date_from(expires)
                .filter(|_| expires_valid)
                .map_or(0, |exp| {
                    exp.saturating_sub(date_ms.unwrap_or(timing.response_ms))
                }),
        ),
        (None, None) => None,
    };
    let rule_ttl_ms = u64::try_from(rule.ttl.as_millis()).unwrap_or(u64::MAX);
    let freshness_ms = match explicit_ms {
        Some(ms) => ms.min(rule_ttl_ms),
        None if rule.response_driven && !cc.no_cache => match rule.default_freshness {
            Some(d) => u64::try_from(d.as_millis())
                .unwrap_or(u64::MAX)
                .min(rule_ttl_ms),
            None => return Err(Reason::NoFreshness),
        },
        None => rule_ttl_ms,
    };
    let freshness_ms = if cc.no_cache { 0 } else { freshness_ms };
    let initial_age_ms = initial_age_ms(headers, date_ms, timing);
    let remaining_ms = freshness_ms.saturating_sub(initial_age_ms);
    let validators =
        headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
    let ttl_ms = if (remaining_ms > 0 && rule.response_driven) || validators {
        // Kept past its freshness, to be revalidated with the origin or
        // served while the origin cannot be reached.
        rule_ttl_ms.max(remaining_ms)
    } else if remaining_ms == 0 {
        return Err(if cc.no_cache {
            Reason::NoCache
        } else {
            Reason::MaxAge
        });
    } else {
        remaining_ms
    };
    Ok(Storable {
        freshness: Duration::from_millis(freshness_ms),
        ttl: Duration::from_millis(ttl_ms),
        initial_age_ms,
    })
}

/// The corrected initial age of a response (RFC 9111 §4.2.3).
fn initial_age_ms(headers: &HeaderMap, date_ms: Option<u64>, timing: Timing) -> u64 {
    // The first field line, up to a `,` or `;`; anything but digits is
    // ignored (RFC 9111 §5.1).
    let age_value_ms = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split([',', ';']).next().unwrap_or("").trim())
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map_or(0, |v| delta_seconds(Some(v)).saturating_mul(1000));
    let apparent_ms = date_ms.map_or(0, |d| timing.response_ms.saturating_sub(d));
    let delay_ms = timing.response_ms.saturating_sub(timing.request_ms);
    apparent_ms.max(age_value_ms.saturating_add(delay_ms))
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::super::test_support::*;
    use super::*;
    use crate::rules::CacheRule;

    #[test]
    fn response_rules() {
        let r = rule(CacheRule::get("/").ttl(Duration::from_secs(60)));
        let check = |h: &[(&str, &str)]| fresh_for(&r, h);
        assert_eq!(check(&[]), Ok(Duration::from_secs(60)));
        assert_eq!(
            check(&[("cache-control", "public, max-age=10")]),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            check(&[("cache-control", "max-age=600")]),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(
            check(&[("cache-control", "max-age=600, s-maxage=5")]),
            Ok(Duration::from_secs(5))
        );
        assert_eq!(
            check(&[("cache-control", "max-age=0")]),
            Err(Reason::MaxAge)
        );
        assert_eq!(
            check(&[("cache-control", "max-age=bogus")]),
            Err(Reason::MaxAge)
        );
        assert_eq!(
            check(&[("cache-control", "No-Store")]),
            Err(Reason::NoStore)
        );
        assert_eq!(check(&[("cache-control", "private")]), Err(Reason::Private));
        assert_eq!(
            check(&[("cache-control", "no-cache")]),
            Err(Reason::NoCache)
        );
        assert_eq!(check(&[("set-cookie", "a=b")]), Err(Reason::SetCookie));
        assert_eq!(check(&[("vary", "*")]), Err(Reason::Vary));
        assert_eq!(
            check(&[("vary", "accept-language")]),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(check(&[("content-length", "4096")]), Err(Reason::TooLarge));
        // Commas inside quoted strings do not split directives.
        assert_eq!(
            check(&[("cache-control", r#"max-age=5, x="a, max-age=300""#)]),
            Ok(Duration::from_secs(5))
        );
        assert_eq!(
            check(&[("cache-control", r#"ext="no-store, \"q\"", max-age=7"#)]),
            Ok(Duration::from_secs(7))
        );
        // Huge values are capped, not read as zero.
        assert_eq!(
            check(&[("cache-control", "max-age=99999999999999999999999")]),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(
            check(&[("cache-control", "max-age=-1")]),
            Err(Reason::MaxAge)
        );
        assert_eq!(
            check(&[("cache-control", "s-maxage=0, max-age=60")]),
            Err(Reason::MaxAge)
        );
        assert_eq!(
            check_response(
                &Method::HEAD,
                &RequestPolicy::default(),
                &res(&[]),
                &r,
                1024,
                NOW
            ),
            Err(Reason::Head)
        );
        let tiny = check_response(
            &Method::GET,
            &RequestPolicy::default(),
            &res(&[]),
            &r,
            2,
            NOW,
        );
        assert_eq!(tiny, Err(Reason::TooLarge), "size hint of a 5-byte body");
        let mut not_found = res(&[]);
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        assert_eq!(
            check_response(
                &Method::GET,
                &RequestPolicy::default(),
                &not_found,
                &r,
                1024,
                NOW
            ),
            Err(Reason::Status)
        );
    }

    #[test]
    fn expires_date_and_age() {
        let r = rule(
            CacheRule::get("/")
                .response_driven()
                .ttl(Duration::from_secs(3600)),
        );
        let now = NOW.response_ms;
        let date = http_date(now);
        let in_100 = http_date(now + 100_000);
        let past = http_date(now - 100_000);
        let check = |h: &[(&str, &str)]| fresh_for(&r, h);
        assert_eq!(check(&[]), Err(Reason::NoFreshness), "no heuristics");
        // Unless the rule gives a default: then that, capped by the TTL,
        // and explicit freshness still wins.
        let with_default = |d: u64| {
            rule(
                CacheRule::get("/")
                    .response_driven()
                    .ttl(Duration::from_secs(3600))
                    .default_freshness(Duration::from_secs(d)),
            )
        };
        assert_eq!(
            fresh_for(&with_default(30), &[]),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            fresh_for(&with_default(7200), &[]),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            fresh_for(&with_default(30), &[("date", &date), ("expires", &in_100)]),
            Ok(Duration::from_secs(100))
        );
        assert_eq!(
            fresh_for(&with_default(30), &[("cache-control", "no-store")]),
            Err(Reason::NoStore)
        );
        assert_eq!(
            check(&[("date", &date), ("expires", &in_100)]),
            Ok(Duration::from_secs(100))
        );
        assert_eq!(
            check(&[("date", &date), ("expires", &past)]),
            Err(Reason::MaxAge)
        );
        assert_eq!(
            check(&[("expires", "0")]),
            Err(Reason::MaxAge),
            "invalid means expired"
        );
        assert_eq!(
            check(&[("expires", &past), ("cache-control", "max-age=30")]),
            Ok(Duration::from_secs(30)),
            "max-age wins over Expires"
        );
        // Already older than its freshness when received.
        assert_eq!(
            check(&[("cache-control", "max-age=30"), ("age", "40")]),
            Err(Reason::MaxAge)
        );
        let aged = check_response(
            &Method::GET,
            &RequestPolicy::default(),
            &res(&[("cache-control", "max-age=30"), ("age", "10")]),
            &r,
            1024,
            NOW,
        )
        .unwrap();
        assert_eq!(aged.initial_age_ms, 10_000);
        // A Date in the past makes the response older (apparent age).
        let old_date = http_date(now - 20_000);
        let aged = check_response(
            &Method::GET,
            &RequestPolicy::default(),
            &res(&[("cache-control", "max-age=30"), ("date", &old_date)]),
            &r,
            1024,
            NOW,
        )
        .unwrap();
        assert_eq!(aged.initial_age_ms, 20_000);
        // Stale on arrival but revalidatable: stored, with zero freshness left.
        let stale = check_response(
            &Method::GET,
            &RequestPolicy::default(),
            &res(&[("cache-control", "no-cache"), ("etag", "\"v1\"")]),
            &r,
            1024,
            NOW,
        )
        .unwrap();
        assert_eq!(stale.freshness, Duration::ZERO);
        assert_eq!(stale.ttl, Duration::from_secs(3600));
    }

    #[test]
    fn statuses_and_must_understand() {
        let r = rule(CacheRule::get("/").response_driven());
        let with = |code: u16, cc: &str| {
            let mut res = res(&[("cache-control", cc)]);
            *res.status_mut() = StatusCode::from_u16(code).unwrap();
            check_response(&Method::GET, &RequestPolicy::default(), &res, &r, 1024, NOW).map(|_| ())
        };
        for ok in [200, 203, 204, 299, 301, 303, 400, 404, 410, 499] {
            assert_eq!(with(ok, "max-age=60"), Ok(()), "{ok}");
        }
        for never in [206, 304, 500, 502, 599] {
            assert_eq!(with(never, "max-age=60"), Err(Reason::Status), "{never}");
        }
        assert_eq!(with(200, "no-store, must-understand, max-age=60"), Ok(()));
        assert_eq!(
            with(299, "no-store, must-understand, max-age=60"),
            Err(Reason::Status)
        );
    }

    #[test]
    fn authorization_needs_explicit_permission() {
        let r = rule(CacheRule::get("/"));
        let req = RequestPolicy {
            authorized: true,
            ..RequestPolicy::default()
        };
        let check = |h: &[(&str, &str)]| {
            check_response(&Method::GET, &req, &res(h), &r, 1024, NOW).map(|_| ())
        };
        assert_eq!(check(&[]), Err(Reason::Authorization));
        assert_eq!(
            check(&[("cache-control", "max-age=60")]),
            Err(Reason::Authorization)
        );
        assert_eq!(check(&[("cache-control", "public, max-age=60")]), Ok(()));
        assert_eq!(check(&[("cache-control", "s-maxage=60")]), Ok(()));
        assert_eq!(
            check(&[("cache-control", "must-revalidate, max-age=60")]),
            Ok(())
        );
        assert_eq!(
            check(&[("cache-control", "proxy-revalidate, max-age=60")]),
            Err(Reason::Authorization),
            "proxy-revalidate is not in RFC 9111 3.5"
        );
    }
}
