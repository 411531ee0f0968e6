//! `Cache-Control` directives of a request or response (RFC 9111 §5.2), and
//! the targeted fields a shared cache in front of an origin obeys instead:
//! `CDN-Cache-Control` (RFC 9213) and `Surrogate-Control`.

use http::{HeaderMap, HeaderName, header};

use crate::rules::CompiledRule;

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

/// The directives of `Cache-Control` as `(name, value)`, splitting on
/// commas outside quoted strings; quoted values are unquoted. Read as bytes:
/// a quoted string may hold obs-text (RFC 9110 §5.6.4), which must not hide
/// the line's other directives; a value that is not UTF-8 is cut where it
/// stops being so (only its leading digits are ever read).
fn directives<'a>(headers: &'a HeaderMap, field: &HeaderName) -> Vec<(&'a str, Option<&'a str>)> {
    let mut out = Vec::new();
    for value in headers.get_all(field) {
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
                let directive = bytes[start..i].trim_ascii();
                start = i + 1;
                if directive.is_empty() {
                    continue;
                }
                let (name, arg) = match directive.iter().position(|&b| b == b'=') {
                    Some(eq) => (&directive[..eq], Some(&directive[eq + 1..])),
                    None => (directive, None),
                };
                // `max-age = 5` is not a valid directive: ignore it.
                let blank = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
                if blank(name.last()) || arg.is_some_and(|a| blank(a.first())) {
                    continue;
                }
                let Ok(name) = std::str::from_utf8(name) else {
                    continue;
                };
                let arg = arg.map(|a| {
                    let text = match std::str::from_utf8(a) {
                        Ok(text) => text,
                        Err(e) => std::str::from_utf8(&a[..e.valid_up_to()]).unwrap_or(""),
                    };
                    text.trim_matches('"')
                });
                out.push((name, arg));
            }
        }
    }
    out
}

/// A `delta-seconds` value (RFC 9111 §1.2.2): its leading digits (as most
/// caches read `3600.0` or `100a`), too large meaning 2^31; no leading digit
/// means 0 (stale).
pub(super) fn delta_seconds(value: Option<&str>) -> u64 {
    const CAP: u64 = 1 << 31;
    let v = value.unwrap_or("");
    let digits = &v[..v.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return 0;
    }
    digits.parse::<u64>().map_or(CAP, |n| n.min(CAP))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{status::Reason, test_support::*};
    use crate::rules::CacheRule;

    #[test]
    fn obs_text_in_a_quoted_string_hides_no_directive() {
        // RFC 9110 §5.6.4: a quoted string may hold obs-text, UTF-8 or not.
        let r = rule(CacheRule::get("/").ttl(Duration::from_secs(60)));
        assert_eq!(
            fresh_for(&r, &[("cache-control", "private, community=\"Zürich\"")]),
            Err(Reason::Private)
        );
        let mut headers = http::HeaderMap::new();
        let latin1 = http::HeaderValue::from_bytes(b"max-age=10, x=\"\xe9\", no-store").unwrap();
        headers.insert(http::header::CACHE_CONTROL, latin1);
        let cc = super::CacheControl::parse(&headers);
        assert!(cc.no_store && cc.max_age == Some(10), "{cc:?}");
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
}
