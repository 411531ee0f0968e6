//! What is cached, and the `Cache-Status` header that says so (RFC 9211).

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, header, request::Parts};
use http_body::Body;

use crate::rules::CompiledRule;

/// The `Cache-Status` response header.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// Why a response was not served from, or stored into, the cache. Each shows
/// as `detail=<reason>` in `Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    // The request was not eligible (`fwd=bypass`).
    NoRule,
    Method,
    Authorization,
    Cookie,
    Range,
    BadPath,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    /// A write succeeded but bumping its tags failed.
    InvalidationFailed,
    // The response was not stored (`fwd=miss`).
    Head,
    Status,
    SetCookie,
    NoStore,
    Private,
    NoCache,
    MaxAge,
    Vary,
    TooLarge,
}

macro_rules! status_values {
    ($($reason:ident => $fwd:literal, $detail:literal;)*) => {
        impl Reason {
            /// The `detail=` token.
            pub(crate) fn as_str(self) -> &'static str {
                match self { $(Reason::$reason => $detail,)* }
            }

            /// The whole `Cache-Status` member.
            pub(crate) fn header(self) -> HeaderValue {
                match self {
                    $(Reason::$reason => HeaderValue::from_static(concat!(
                        "tower-tagged-cache; fwd=", $fwd, "; detail=", $detail
                    )),)*
                }
            }
        }
    };
}

status_values! {
    NoRule => "bypass", "no-rule";
    Method => "bypass", "method";
    Authorization => "bypass", "authorization";
    Cookie => "bypass", "cookie";
    Range => "bypass", "range";
    BadPath => "bypass", "bad-path";
    StoreError => "bypass", "store-error";
    StoreTimeout => "bypass", "store-timeout";
    StoreUnavailable => "bypass", "store-unavailable";
    InvalidationFailed => "bypass", "invalidation-failed";
    Head => "miss", "head";
    Status => "miss", "status";
    SetCookie => "miss", "set-cookie";
    NoStore => "miss", "no-store";
    Private => "miss", "private";
    NoCache => "miss", "no-cache";
    MaxAge => "miss", "max-age";
    Vary => "miss", "vary";
    TooLarge => "miss", "too-large";
}

pub(crate) fn hit_status() -> HeaderValue {
    HeaderValue::from_static("tower-tagged-cache; hit")
}

pub(crate) fn stored_status() -> HeaderValue {
    HeaderValue::from_static("tower-tagged-cache; fwd=miss; stored")
}

/// Request-side checks of a cache rule: may this request use a shared entry?
pub(crate) fn check_request(parts: &Parts, rule: &CompiledRule) -> Result<(), Reason> {
    let h = &parts.headers;
    if h.contains_key(header::AUTHORIZATION) && !rule.allow_authorization {
        return Err(Reason::Authorization);
    }
    if h.contains_key(header::COOKIE) && !rule.allow_cookie {
        return Err(Reason::Cookie);
    }
    if h.contains_key(header::RANGE) {
        return Err(Reason::Range);
    }
    Ok(())
}

/// Response-side checks: may this response be stored, and for how long?
pub(crate) fn check_response<B: Body>(
    method: &Method,
    res: &Response<B>,
    rule: &CompiledRule,
    body_limit: usize,
) -> Result<Duration, Reason> {
    if method == Method::HEAD {
        return Err(Reason::Head);
    }
    if !rule.statuses.contains(&res.status()) {
        return Err(Reason::Status);
    }
    let headers = res.headers();
    if headers.contains_key(header::SET_COOKIE) {
        return Err(Reason::SetCookie);
    }
    let mut ttl = rule.ttl;
    let (mut max_age, mut s_maxage) = (None, None);
    for (name, value) in cache_control(headers) {
        if name.eq_ignore_ascii_case("no-store") {
            return Err(Reason::NoStore);
        } else if name.eq_ignore_ascii_case("private") {
            return Err(Reason::Private);
        } else if name.eq_ignore_ascii_case("no-cache") {
            return Err(Reason::NoCache);
        } else if name.eq_ignore_ascii_case("s-maxage") {
            s_maxage = Some(delta_seconds(value));
        } else if name.eq_ignore_ascii_case("max-age") {
            max_age = Some(delta_seconds(value));
        }
    }
    if let Some(secs) = s_maxage.or(max_age) {
        if secs == 0 {
            return Err(Reason::MaxAge);
        }
        ttl = ttl.min(Duration::from_secs(secs));
    }
    for name in comma_list(headers, &header::VARY) {
        if name == "*" || !rule.varies_on_header(name) {
            return Err(Reason::Vary);
        }
    }
    let limit = rule.max_body_size.unwrap_or(body_limit) as u64;
    if content_length(headers).unwrap_or(0) > limit || res.body().size_hint().lower() > limit {
        return Err(Reason::TooLarge);
    }
    Ok(ttl)
}

/// The declared `Content-Length`, when there is exactly one valid value.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()?.trim().parse().ok()
}

/// The directives of `Cache-Control` as `(name, value)`, splitting on
/// commas outside quoted strings; quoted values are unquoted.
fn cache_control(headers: &HeaderMap) -> Vec<(&str, Option<&str>)> {
    let mut out = Vec::new();
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        let (mut start, mut quoted, mut escaped) = (0, false, false);
        let bytes = value.as_bytes();
        for i in 0..=bytes.len() {
            let b = bytes.get(i).copied();
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                Some(b'\\') if quoted => escaped = true,
                Some(b'"') => quoted = !quoted,
                Some(b',') if !quoted => {}
                None => {}
                Some(_) => continue,
            }
            if b == Some(b',') || b.is_none() {
                let directive = value[start..i].trim();
                start = i + 1;
                if directive.is_empty() {
                    continue;
                }
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                out.push((name, arg));
            }
        }
    }
    out
}

/// A `delta-seconds` value (RFC 9111 §1.2.2): too large means 2^31; anything
/// that is not digits means 0 (stale).
fn delta_seconds(value: Option<&str>) -> u64 {
    const CAP: u64 = 1 << 31;
    match value {
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse::<u64>().map_or(CAP, |n| n.min(CAP))
        }
        _ => 0,
    }
}

/// The non-empty, trimmed members of a comma-separated header.
fn comma_list<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The headers worth storing: without hop-by-hop fields (RFC 9110 §7.6.1),
/// those `Connection` names, `Age` (recomputed on every hit) and the cache's
/// own `Cache-Status`.
pub(crate) fn storable_headers(headers: &HeaderMap) -> HeaderMap {
    let listed: Vec<String> = comma_list(headers, &header::CONNECTION)
        .map(str::to_ascii_lowercase)
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        let hop = matches!(
            n,
            "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "te"
                | "upgrade"
                | "proxy-connection"
                | "proxy-authenticate"
                | "proxy-authorization"
                | "age"
                | "cache-status"
        ) || listed.iter().any(|l| l == n);
        if !hop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheRule;
    use http_body_util::Full;

    fn rule(r: CacheRule) -> CompiledRule {
        r.compile().unwrap()
    }

    fn res(headers: &[(&str, &str)]) -> Response<Full<bytes::Bytes>> {
        let mut b = Response::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(bytes::Bytes::from_static(b"hello")))
            .unwrap()
    }

    #[test]
    fn every_reason_renders_a_valid_member() {
        assert_eq!(
            Reason::SetCookie.header(),
            "tower-tagged-cache; fwd=miss; detail=set-cookie"
        );
        assert_eq!(
            Reason::Authorization.header(),
            "tower-tagged-cache; fwd=bypass; detail=authorization"
        );
        assert_eq!(Reason::TooLarge.as_str(), "too-large");
    }

    #[test]
    fn response_rules() {
        let r = rule(CacheRule::get("/").ttl(Duration::from_secs(60)));
        let get = Method::GET;
        let check = |h: &[(&str, &str)]| check_response(&get, &res(h), &r, 1024);
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
        assert_eq!(check(&[("vary", "accept-language")]), Err(Reason::Vary));
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
            check_response(&Method::HEAD, &res(&[]), &r, 1024),
            Err(Reason::Head)
        );
        let varying =
            rule(CacheRule::get("/").vary_on(crate::VaryOn::header(header::ACCEPT_LANGUAGE)));
        assert!(check_response(&get, &res(&[("vary", "Accept-Language")]), &varying, 1024).is_ok());
        let tiny = check_response(&get, &res(&[]), &r, 2);
        assert_eq!(tiny, Err(Reason::TooLarge), "size hint of a 5-byte body");
        let mut not_found = res(&[]);
        *not_found.status_mut() = http::StatusCode::NOT_FOUND;
        assert_eq!(
            check_response(&get, &not_found, &r, 1024),
            Err(Reason::Status)
        );
    }

    #[test]
    fn hop_by_hop_headers_are_not_stored() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "x-secret, keep-alive"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("age", "3"),
            ("content-type", "text/plain"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let kept = storable_headers(&h);
        assert_eq!(kept.len(), 1);
        assert!(kept.contains_key("content-type"));
    }
}
