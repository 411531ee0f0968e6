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

/// A request's values of the headers stored variants vary on, each
/// normalised and hashed once however many variants it is compared with
/// (a set holds up to 64, all naming the same headers).
pub(crate) struct RequestVary<'a> {
    headers: &'a HeaderMap,
    values: Vec<(HeaderName, Option<Bytes>)>,
}

impl<'a> RequestVary<'a> {
    pub(crate) fn new(headers: &'a HeaderMap) -> Self {
        Self {
            headers,
            values: Vec::new(),
        }
    }

    /// Whether the request has the `stored` values (a variant's vary block,
    /// as bytes). A name that is not a header name matches nothing.
    pub(crate) fn matches<'b>(
        &mut self,
        stored: impl IntoIterator<Item = (&'b [u8], Option<&'b [u8]>)>,
    ) -> bool {
        stored
            .into_iter()
            .all(|(name, value)| self.value(name).is_some_and(|v| v.as_deref() == value))
    }

    /// [`matches`](Self::matches) for a decoded entry's values.
    pub(crate) fn matches_decoded(&mut self, stored: &[(HeaderName, Option<Bytes>)]) -> bool {
        self.matches(
            stored
                .iter()
                .map(|(name, value)| (name.as_str().as_bytes(), value.as_deref())),
        )
    }

    fn value(&mut self, name: &[u8]) -> Option<&Option<Bytes>> {
        let at = match self
            .values
            .iter()
            .position(|(known, _)| known.as_str().as_bytes() == name)
        {
            Some(at) => at,
            None => {
                let name = HeaderName::from_bytes(name).ok()?;
                let value = request_value(self.headers, &name);
                self.values.push((name, value));
                self.values.len() - 1
            }
        };
        Some(&self.values[at].1)
    }
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

    #[test]
    fn request_vary_matches_stored_bytes_as_vary_matches_does() {
        let res = headers(&[("vary", "accept-language, x-absent")]);
        let en = vary_values(&headers(&[("accept-language", "en")]), &res);
        let fr = vary_values(&headers(&[("accept-language", "fr")]), &res);
        let req = headers(&[("accept-language", "en")]);
        let mut matcher = RequestVary::new(&req);
        assert!(matcher.matches_decoded(&en));
        assert!(!matcher.matches_decoded(&fr));
        // Each name is looked at once, whatever the number of variants.
        assert_eq!(matcher.values.len(), 2);
        // Stored names are bytes: one that is not a header name never
        // matches, and an empty block always does.
        assert!(!matcher.matches([(&b"bad name"[..], None)]));
        assert!(matcher.matches([]));
        // Uppercase bytes are another name than the lowercase one stored
        // by the crate, but the same header.
        assert!(matcher.matches([(&b"X-Absent"[..], None)]));
    }
}
