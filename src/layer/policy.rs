//! What is cached, for how long, and the `Cache-Status` header that says so
//! (RFC 9111 for a shared cache, RFC 9211 for the status).

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
#[cfg(test)]
use http::StatusCode;
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
    NoFreshness,
    OnlyIfCached,
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
    NoFreshness => "miss", "no-freshness";
    OnlyIfCached => "miss", "only-if-cached";
    Vary => "miss", "vary";
    TooLarge => "miss", "too-large";
}

/// Why a stored response could not be used, so the inner service ran
/// (RFC 9211 `fwd=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fwd {
    /// Nothing was stored.
    Miss,
    /// A response was stored, for other values of its `Vary` headers.
    VaryMiss,
    /// The stored response was stale.
    Stale,
    /// The request asked not to be served from the cache (`no-cache`).
    Request,
}

impl Fwd {
    /// `Cache-Status` when the inner response is stored.
    pub(crate) fn stored(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Fwd::Miss => "tower-tagged-cache; fwd=miss; stored",
            Fwd::VaryMiss => "tower-tagged-cache; fwd=vary-miss; stored",
            Fwd::Stale => "tower-tagged-cache; fwd=stale; stored",
            Fwd::Request => "tower-tagged-cache; fwd=request; stored",
        })
    }
}

pub(crate) fn hit_status() -> HeaderValue {
    HeaderValue::from_static("tower-tagged-cache; hit")
}

/// A hit on a response another request computed (single-flight).
pub(crate) fn coalesced_status() -> HeaderValue {
    HeaderValue::from_static("tower-tagged-cache; hit; detail=coalesced")
}

/// A stale entry revalidated by the origin with `304 Not Modified`.
pub(crate) fn revalidated_status() -> HeaderValue {
    HeaderValue::from_static("tower-tagged-cache; fwd=stale; fwd-status=304; stored")
}

/// Parsed `Cache-Control` directives (request or response).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CacheControl {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) private: bool,
    pub(crate) public: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    pub(crate) s_maxage: Option<u64>,
    pub(crate) max_age: Option<u64>,
    pub(crate) min_fresh: Option<u64>,
    pub(crate) must_understand: bool,
    pub(crate) stale_if_error: Option<u64>,
    pub(crate) max_stale: Option<u64>,
    pub(crate) only_if_cached: bool,
}

/// The targeted cache-control field for CDNs (RFC 9213).
const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// The Edge Architecture's field for surrogates (reverse proxies).
const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");

impl CacheControl {
    /// The directives that govern a response stored under `rule`: the
    /// targeted fields too for response-driven rules, as when it was stored.
    pub(crate) fn of_stored(headers: &HeaderMap, rule: &CompiledRule) -> Self {
        if rule.response_driven {
            Self::for_response(headers).0
        } else {
            Self::parse(headers)
        }
    }

    /// Whether the response may be shared with a request that carries
    /// `Authorization` (RFC 9111 §3.5: `public`, `s-maxage` or
    /// `must-revalidate`; not `proxy-revalidate`).
    pub(crate) fn allows_authorization(&self) -> bool {
        self.public || self.s_maxage.is_some() || self.must_revalidate
    }

    /// Whether a shared cache must not serve the response stale (RFC 9111
    /// §4.2.4, §5.2.2).
    pub(crate) fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.no_cache || self.s_maxage.is_some()
    }

    /// The `Cache-Control` of a request or response.
    pub(crate) fn parse(headers: &HeaderMap) -> Self {
        Self::from_directives(directives(headers, &header::CACHE_CONTROL))
    }

    /// The directives a shared cache in front of an origin obeys for a
    /// response, and whether they came from a targeted field: a valid
    /// `CDN-Cache-Control` (RFC 9213, a structured-field dictionary; invalid
    /// ones are ignored whole), else the untargeted directives of
    /// `Surrogate-Control`, else `Cache-Control`.
    pub(crate) fn for_response(headers: &HeaderMap) -> (Self, bool) {
        if let Some(cc) = Self::cdn(headers) {
            return (cc, true);
        }
        let surrogate: Vec<_> = directives(headers, &SURROGATE_CONTROL)
            .into_iter()
            .filter(|(n, v)| !n.contains(';') && !v.is_some_and(|v| v.contains(';')))
            .map(|(n, v)| (n, v.map(|v| v.split('+').next().unwrap_or(v))))
            .collect();
        if !surrogate.is_empty() {
            return (Self::from_directives(surrogate), true);
        }
        (Self::parse(headers), false)
    }

    fn cdn(headers: &HeaderMap) -> Option<Self> {
        let mut joined = Vec::new();
        for v in headers.get_all(CDN_CACHE_CONTROL) {
            if !joined.is_empty() {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(v.as_bytes());
        }
        if joined.is_empty() {
            return None;
        }
        let dict: sfv::Dictionary = sfv::Parser::new(&joined).parse().ok()?;
        let mut cc = Self::default();
        for (key, entry) in &dict {
            let sfv::ListEntry::Item(item) = entry else {
                continue;
            };
            let flag = item.bare_item.as_boolean() == Some(true);
            let seconds = item
                .bare_item
                .as_integer()
                .and_then(|i| u64::try_from(i64::from(i)).ok());
            match key.as_str() {
                "no-store" if flag => cc.no_store = true,
                "no-cache" if flag => cc.no_cache = true,
                "private" if flag => cc.private = true,
                "public" if flag => cc.public = true,
                "must-revalidate" if flag => cc.must_revalidate = true,
                "proxy-revalidate" if flag => cc.proxy_revalidate = true,
                "max-age" => cc.max_age = seconds.map(|s| s.min(1 << 31)),
                "s-maxage" => cc.s_maxage = seconds.map(|s| s.min(1 << 31)),
                _ => {}
            }
        }
        Some(cc)
    }

    fn from_directives(directives: Vec<(&str, Option<&str>)>) -> Self {
        let mut cc = Self::default();
        for (name, value) in directives {
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("no-store") {
                cc.no_store = true;
            } else if is("no-cache") {
                cc.no_cache = true;
            } else if is("private") {
                cc.private = true;
            } else if is("public") {
                cc.public = true;
            } else if is("must-revalidate") {
                cc.must_revalidate = true;
            } else if is("proxy-revalidate") {
                cc.proxy_revalidate = true;
            } else if is("s-maxage") {
                // The first of duplicated directives counts.
                cc.s_maxage = cc.s_maxage.or(Some(delta_seconds(value)));
            } else if is("max-age") {
                cc.max_age = cc.max_age.or(Some(delta_seconds(value)));
            } else if is("max-stale") {
                cc.max_stale = Some(value.map_or(u64::MAX, |v| delta_seconds(Some(v))));
            } else if is("only-if-cached") {
                cc.only_if_cached = true;
            } else if is("min-fresh") {
                cc.min_fresh = Some(delta_seconds(value));
            } else if is("must-understand") {
                cc.must_understand = true;
            } else if is("stale-if-error") {
                cc.stale_if_error = Some(delta_seconds(value));
            }
        }
        cc
    }
}

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
        None if rule.response_driven && !cc.no_cache => return Err(Reason::NoFreshness),
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

/// An HTTP date in one of the three formats of RFC 9110 §5.6.7 (IMF-fixdate,
/// RFC 850, asctime), laid out exactly as there but read as caches do: names
/// in any case, and the weekday not checked against the date. Anything else
/// (other zones, missing comma, extra spaces, short fields) is invalid.
fn date_from(value: &HeaderValue) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let text = value.to_str().ok()?;
    let num = |t: &str, len: usize| -> Option<u32> {
        if t.len() == len && t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let month = |m: &str| {
        MONTHS
            .iter()
            .position(|x| x.eq_ignore_ascii_case(m))
            .map(|i| i as u32 + 1)
    };
    let time = |t: &str| -> Option<(u32, u32, u32)> {
        let mut p = t.split(':');
        let hms = (num(p.next()?, 2)?, num(p.next()?, 2)?, num(p.next()?, 2)?);
        p.next().is_none().then_some(hms)
    };
    let weekday = |w: &str, long: bool| {
        w.len() >= 3 && w.bytes().all(|b| b.is_ascii_alphabetic()) && (w.len() > 3) == long
    };
    let gmt = |z: &str| z.eq_ignore_ascii_case("gmt");
    let short_day = |w: &str| w.strip_suffix(',').is_some_and(|w| weekday(w, false));
    let long_day = |w: &str| w.strip_suffix(',').is_some_and(|w| weekday(w, true));
    let parts: Vec<&str> = text.split(' ').collect();
    let (day, month, year, (h, m, s)) = match parts[..] {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [wd, d, mo, y, t, z] if short_day(wd) && gmt(z) => {
            (num(d, 2)?, month(mo)?, num(y, 4)?, time(t)?)
        }
        // Sunday, 06-Nov-94 08:49:37 GMT
        [wd, dmy, t, z] if long_day(wd) && gmt(z) => {
            let mut f = dmy.split('-');
            let (d, mo, y) = (num(f.next()?, 2)?, month(f.next()?)?, num(f.next()?, 2)?);
            if f.next().is_some() {
                return None;
            }
            let y = if y >= 70 { 1900 + y } else { 2000 + y };
            (d, mo, y, time(t)?)
        }
        // Sun Nov  6 08:49:37 1994
        [wd, mo, "", d, t, y] if weekday(wd, false) => {
            (num(d, 1)?, month(mo)?, num(y, 4)?, time(t)?)
        }
        [wd, mo, d, t, y] if weekday(wd, false) => (num(d, 2)?, month(mo)?, num(y, 4)?, time(t)?),
        _ => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (i64::from(year) - 1, i64::from(month) + 9)
    } else {
        (i64::from(year), i64::from(month) - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + i64::from(day) - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s);
    u64::try_from(secs).ok()?.checked_mul(1000)
}

fn header_date_ms(headers: &HeaderMap, name: &HeaderName) -> Option<u64> {
    date_from(headers.get(name)?)
}

/// The request header values a response's `Vary` names, to store with it.
pub(crate) fn vary_values(
    req_headers: &HeaderMap,
    res_headers: &HeaderMap,
) -> Vec<(HeaderName, Option<Bytes>)> {
    let mut names: Vec<HeaderName> = comma_list(res_headers, &header::VARY)
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let value = request_value(req_headers, &name);
            (name, value)
        })
        .collect()
}

/// Whether a request matches the `Vary` values stored with a response.
pub(crate) fn vary_matches(
    req_headers: &HeaderMap,
    stored: &[(HeaderName, Option<Bytes>)],
) -> bool {
    stored
        .iter()
        .all(|(name, value)| request_value(req_headers, name) == *value)
}

/// A request header's field lines, combined and normalised (RFC 9111 §4.1:
/// whitespace around commas does not matter), then hashed (SHA-256), so
/// that credentials a response varies on are never kept at rest.
fn request_value(headers: &HeaderMap, name: &HeaderName) -> Option<Bytes> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut out = Vec::new();
    for v in values {
        for part in v.as_bytes().split(|b| *b == b',') {
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(part.trim_ascii());
        }
    }
    use sha2::Digest;
    Some(Bytes::copy_from_slice(&sha2::Sha256::digest(&out)))
}

/// Whether a request's conditionals let a stored response answer `304 Not
/// Modified` (RFC 9110 §13.1.2, §13.1.3; `If-Modified-Since` only counts
/// without `If-None-Match`).
pub(crate) fn not_modified(req_headers: &HeaderMap, stored: &HeaderMap) -> bool {
    if req_headers.contains_key(header::IF_NONE_MATCH) {
        let Some(etag) = stored.get(header::ETAG) else {
            return false;
        };
        // Compared as bytes: an entity tag may hold obs-text.
        let weak = |t: &[u8]| -> Vec<u8> {
            let t = t.trim_ascii();
            t.strip_prefix(b"W/").unwrap_or(t).to_vec()
        };
        let stored_tag = weak(etag.as_bytes());
        return req_headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .any(|t| t.trim_ascii() == b"*" || weak(t) == stored_tag);
    }
    let Some(since) = req_headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(date_from)
    else {
        return false;
    };
    header_date_ms(stored, &header::LAST_MODIFIED)
        .or_else(|| header_date_ms(stored, &header::DATE))
        .is_some_and(|modified| modified <= since)
}

/// The single byte range a request asks of a stored body of `len` bytes
/// (RFC 9110 §14.1.2), as `start..end`; `None` when the request should get
/// the whole body: no `Range`, several ranges, another unit, an
/// unsatisfiable range, or an `If-Range` that does not match.
pub(crate) fn byte_range(
    req: &HeaderMap,
    stored: &HeaderMap,
    len: u64,
) -> Option<std::ops::Range<u64>> {
    let spec = req.get(header::RANGE)?.to_str().ok()?.trim();
    if let Some(if_range) = req.get(header::IF_RANGE) {
        // Only a strong ETag match (or an equal date) keeps the range.
        let etag_match = stored
            .get(header::ETAG)
            .is_some_and(|e| e == if_range && !e.as_bytes().starts_with(b"W/"));
        let date_match = header_date_ms(stored, &header::LAST_MODIFIED)
            .is_some_and(|lm| date_from(if_range) == Some(lm));
        if !etag_match && !date_match {
            return None;
        }
    }
    let set = spec.strip_prefix("bytes=")?;
    if set.contains(',') || len == 0 {
        return None;
    }
    let (first, last) = set.trim().split_once('-')?;
    let digits = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n = digits(suffix)?.min(len);
            (len - n, len)
        }
        (first, "") => (digits(first)?, len),
        (first, last) => (digits(first)?, digits(last)?.saturating_add(1).min(len)),
    };
    (start < end && start < len).then_some(start..end)
}

/// The headers a `304` carries from the stored response (RFC 9110 §15.4.5).
pub(crate) fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::LAST_MODIFIED,
        header::VARY,
    ] {
        for v in stored.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out
}

/// Updates stored headers with those of a `304` (RFC 9111 §3.2): each field
/// the 304 carries replaces the stored one, except the framing fields.
pub(crate) fn merge_not_modified(stored: &mut HeaderMap, fresh: &HeaderMap) {
    let fresh = storable_headers(fresh);
    for name in fresh.keys() {
        if name == header::CONTENT_LENGTH {
            continue;
        }
        stored.remove(name);
        for v in fresh.get_all(name) {
            stored.append(name.clone(), v.clone());
        }
    }
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
fn directives<'a>(headers: &'a HeaderMap, field: &HeaderName) -> Vec<(&'a str, Option<&'a str>)> {
    let mut out = Vec::new();
    for value in headers.get_all(field) {
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
                    // `max-age = 5` is not a valid directive: ignore it.
                    Some((n, a)) if n.ends_with([' ', '\t']) || a.starts_with([' ', '\t']) => {
                        continue;
                    }
                    Some((n, a)) => (n, Some(a.trim_matches('"'))),
                    None => (directive, None),
                };
                out.push((name, arg));
            }
        }
    }
    out
}

/// A `delta-seconds` value (RFC 9111 §1.2.2): its leading digits (as most
/// caches read `3600.0` or `100a`), too large meaning 2^31; no leading digit
/// means 0 (stale).
fn delta_seconds(value: Option<&str>) -> u64 {
    const CAP: u64 = 1 << 31;
    let v = value.unwrap_or("");
    let digits = &v[..v.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return 0;
    }
    digits.parse::<u64>().map_or(CAP, |n| n.min(CAP))
}

/// The non-empty, trimmed members of a comma-separated header.
pub(crate) fn comma_list<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Hop-by-hop fields (RFC 9110 §7.6.1), which a cache neither stores nor
/// forwards, plus those a `Connection` header names.
fn is_hop_by_hop(name: &HeaderName, connection_listed: &[String]) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
    ) || connection_listed.iter().any(|l| l == name.as_str())
}

/// The lowercased field names a `Connection` header lists.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    comma_list(headers, &header::CONNECTION)
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Removes the hop-by-hop fields of a message (RFC 9110 §7.6.1):
/// `Connection` and the fields it names, `Keep-Alive`, `Transfer-Encoding`,
/// `TE`, `Upgrade` and the `Proxy-*` fields. A proxy calls this on what it
/// forwards, both ways.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let listed = connection_listed(headers);
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_hop_by_hop(name, &listed))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
}

/// The headers worth storing: without hop-by-hop fields, `Age` (recomputed
/// on every hit) and the cache's own `Cache-Status`.
pub(crate) fn storable_headers(headers: &HeaderMap) -> HeaderMap {
    let listed = connection_listed(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let skip = is_hop_by_hop(name, &listed) || name == header::AGE || *name == CACHE_STATUS;
        if !skip {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

pub(crate) use crate::clock::now_ms;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheRule;
    use http_body_util::Full;

    fn rule(r: CacheRule) -> CompiledRule {
        r.compile().unwrap()
    }

    fn res(headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
        let mut b = Response::builder();
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Full::new(Bytes::from_static(b"hello"))).unwrap()
    }

    const NOW: Timing = Timing {
        request_ms: 1_800_000_000_000,
        response_ms: 1_800_000_000_000,
    };

    fn http_date(ms: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms))
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
        assert_eq!(
            Fwd::VaryMiss.stored(),
            "tower-tagged-cache; fwd=vary-miss; stored"
        );
    }

    fn fresh_for(r: &CompiledRule, h: &[(&str, &str)]) -> Result<Duration, Reason> {
        check_response(
            &Method::GET,
            &RequestPolicy::default(),
            &res(h),
            r,
            1024,
            NOW,
        )
        .map(|s| s.freshness)
    }

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
    fn targeted_fields_and_age_parsing() {
        let r = rule(
            CacheRule::get("/")
                .response_driven()
                .ttl(Duration::from_secs(3600)),
        );
        let check = |h: &[(&str, &str)]| fresh_for(&r, h);
        // CDN-Cache-Control replaces Cache-Control and Expires.
        assert_eq!(
            check(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=100")
            ]),
            Ok(Duration::from_secs(100))
        );
        assert_eq!(
            check(&[
                ("cache-control", "max-age=100"),
                ("cdn-cache-control", "private")
            ]),
            Err(Reason::Private)
        );
        assert_eq!(
            check(&[
                ("cache-control", "max-age=100"),
                ("cdn-cache-control", "no-store")
            ]),
            Err(Reason::NoStore)
        );
        // An invalid one is ignored whole; a non-integer max-age is ignored.
        assert_eq!(
            check(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=100, &&&")
            ]),
            Err(Reason::NoStore)
        );
        assert_eq!(
            check(&[
                ("cache-control", "max-age=5"),
                ("cdn-cache-control", "max-age=\"100\"")
            ]),
            Err(Reason::NoFreshness)
        );
        // Surrogate-Control, untargeted directives only.
        assert_eq!(
            check(&[
                ("cache-control", "no-store"),
                ("surrogate-control", "max-age=50")
            ]),
            Ok(Duration::from_secs(50))
        );
        assert_eq!(
            check(&[
                ("cache-control", "max-age=5"),
                ("surrogate-control", "max-age=50;other")
            ]),
            Ok(Duration::from_secs(5))
        );
        // Age: the first value, digits only.
        assert_eq!(
            check(&[("cache-control", "max-age=3600"), ("age", "7200, 0")]),
            Err(Reason::MaxAge)
        );
        assert_eq!(
            check(&[("cache-control", "max-age=3600"), ("age", "7200;a=b")]),
            Err(Reason::MaxAge)
        );
        for ignored in ["abc", "-7200", "7200.0"] {
            assert_eq!(
                check(&[("cache-control", "max-age=3600"), ("age", ignored)]),
                Ok(Duration::from_secs(3600)),
                "{ignored}"
            );
        }
    }

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

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn conditionals() {
        let stored = headers(&[
            ("etag", "W/\"v1\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        let nm = |req: &[(&str, &str)]| not_modified(&headers(req), &stored);
        assert!(nm(&[("if-none-match", "\"v1\"")]), "weak comparison");
        assert!(nm(&[("if-none-match", "\"x\", W/\"v1\"")]));
        assert!(nm(&[("if-none-match", "*")]));
        assert!(!nm(&[("if-none-match", "\"v2\"")]));
        assert!(nm(&[(
            "if-modified-since",
            "Sun, 06 Nov 1994 08:49:37 GMT"
        )]));
        assert!(!nm(&[(
            "if-modified-since",
            "Sat, 05 Nov 1994 08:49:37 GMT"
        )]));
        assert!(
            !nm(&[
                ("if-none-match", "\"v2\""),
                ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")
            ]),
            "If-None-Match wins"
        );
        assert!(!nm(&[]));
        assert!(!nm(&[("if-modified-since", "garbage")]));
    }

    #[test]
    fn vary_values_match_normalised() {
        let res = headers(&[("vary", "Accept-Language, accept-encoding")]);
        let stored = vary_values(&headers(&[("accept-language", "en, fr")]), &res);
        assert_eq!(stored.len(), 2);
        assert!(vary_matches(
            &headers(&[("accept-language", "en,fr")]),
            &stored
        ));
        assert!(vary_matches(
            &headers(&[("accept-language", "en"), ("accept-language", "fr")]),
            &stored
        ));
        assert!(!vary_matches(
            &headers(&[("accept-language", "fr")]),
            &stored
        ));
        assert!(!vary_matches(
            &headers(&[("accept-language", "en, fr"), ("accept-encoding", "gzip")]),
            &stored
        ));
    }

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

    #[test]
    fn lenient_parsing() {
        let r = rule(
            CacheRule::get("/")
                .response_driven()
                .ttl(Duration::from_secs(7200)),
        );
        let check = |h: &[(&str, &str)]| fresh_for(&r, h);
        assert_eq!(
            check(&[("cache-control", "max-age=3600, max-age=0")]),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            check(&[("cache-control", "max-age=0, max-age=3600")]),
            Err(Reason::MaxAge)
        );
        assert_eq!(
            check(&[("cache-control", "max-age=3600.5")]),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            check(&[("cache-control", "max-age =3600")]),
            Err(Reason::NoFreshness)
        );
        assert_eq!(
            check(&[("cache-control", "max-age= 3600")]),
            Err(Reason::NoFreshness)
        );
        let expires = |e: &str| {
            let e = HeaderValue::from_str(e).unwrap();
            date_from(&e).map(|ms| ms / 1000)
        };
        let canonical = Some(784_111_777);
        assert_eq!(expires("Sun, 06 Nov 1994 08:49:37 GMT"), canonical);
        assert_eq!(expires("sun, 06 nov 1994 08:49:37 gmt"), canonical);
        assert_eq!(
            expires("Thu, 06 Nov 1994 08:49:37 GMT"),
            canonical,
            "weekday ignored"
        );
        assert_eq!(expires("Sunday, 06-Nov-94 08:49:37 GMT"), canonical);
        assert_eq!(expires("Sun Nov  6 08:49:37 1994"), canonical);
        assert_eq!(expires("Sun Nov 06 08:49:37 1994"), canonical);
        for invalid in [
            "not a date",
            "0",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 AEST",
            "Sun, 06-Nov-1994 08:49:37 GMT",
            "Sun,  06 Nov 1994 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
        ] {
            assert_eq!(expires(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn byte_ranges() {
        let none = HeaderMap::new();
        let r = |spec: &str| byte_range(&headers(&[("range", spec)]), &none, 10);
        assert_eq!(r("bytes=0-1"), Some(0..2));
        assert_eq!(r("bytes=5-"), Some(5..10));
        assert_eq!(r("bytes=-3"), Some(7..10));
        assert_eq!(r("bytes=-30"), Some(0..10));
        assert_eq!(r("bytes=8-100"), Some(8..10));
        for whole in [
            "bytes=10-",
            "bytes=3-1",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=-0",
        ] {
            assert_eq!(r(whole), None, "{whole}");
        }
        let stored = headers(&[("etag", "\"s\"")]);
        let with_if_range = |v: &str| {
            byte_range(
                &headers(&[("range", "bytes=0-1"), ("if-range", v)]),
                &stored,
                10,
            )
        };
        assert_eq!(with_if_range("\"s\""), Some(0..2));
        assert_eq!(with_if_range("\"other\""), None);
    }

    #[test]
    fn hop_by_hop_headers_are_not_stored() {
        let h = headers(&[
            ("connection", "x-secret, keep-alive"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("age", "3"),
            ("content-type", "text/plain"),
        ]);
        let kept = storable_headers(&h);
        assert_eq!(kept.len(), 1);
        assert!(kept.contains_key("content-type"));
    }

    #[test]
    fn not_modified_merges_headers() {
        let mut stored = headers(&[
            ("etag", "\"v1\""),
            ("cache-control", "max-age=1"),
            ("x-a", "1"),
        ]);
        merge_not_modified(
            &mut stored,
            &headers(&[
                ("cache-control", "max-age=60"),
                ("content-length", "0"),
                ("connection", "close"),
            ]),
        );
        assert_eq!(stored["cache-control"], "max-age=60");
        assert_eq!(stored["x-a"], "1");
        assert!(!stored.contains_key("content-length"));
        assert!(!stored.contains_key("connection"));
    }
}
