//! Header utilities: `Content-Length` (RFC 9110 §8.6), comma-separated
//! lists (§5.6.1), and the hop-by-hop fields a cache neither stores nor
//! forwards (§7.6.1).

use http::{HeaderMap, HeaderName, header};

use super::status::CACHE_STATUS;

/// The declared `Content-Length`, when there is exactly one valid value.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()?.trim().parse().ok()
}

/// The non-empty, trimmed members of a comma-separated header.
pub(super) fn comma_list<'a>(
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

#[cfg(test)]
mod tests {
    use super::super::test_support::headers;
    use super::*;

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
}
