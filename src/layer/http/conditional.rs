//! Conditional requests answered from the cache (RFC 9110 §13): `304 Not
//! Modified` and the headers it carries (§15.4.5), single byte ranges
//! (§14), and refreshing a stored response from a `304` (RFC 9111 §3.2,
//! §4.3.4).

use http::{HeaderMap, header};

use super::{
    date::{date_from, header_date_ms},
    headers::storable_headers,
};

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

#[cfg(test)]
mod tests {
    use super::super::test_support::headers;
    use super::*;

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
