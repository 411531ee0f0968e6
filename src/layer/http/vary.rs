//! Matching a request against the `Vary` of a stored response (RFC 9111
//! §4.1).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, header};

use super::headers::comma_list;

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

/// The single-flight key of a request to `entry_key` whose response is
/// known to vary on `names` (from a response stored for another variant):
/// requests for different variants never wait for each other.
pub(crate) fn variant_flight<'a>(
    entry_key: &str,
    req_headers: &HeaderMap,
    names: impl IntoIterator<Item = &'a HeaderName>,
) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for name in names {
        digest.update(name.as_str());
        match request_value(req_headers, name) {
            Some(value) => {
                digest.update([1]);
                digest.update(&value);
            }
            None => digest.update([0]),
        }
    }
    let mut key = String::with_capacity(entry_key.len() + 65);
    key.push_str(entry_key);
    key.push('|');
    crate::key::push_hex(&mut key, &digest.finalize());
    key
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

#[cfg(test)]
mod tests {
    use super::super::test_support::headers;
    use super::*;

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
}
