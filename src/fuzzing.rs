//! Entry points for the fuzz targets in `fuzz/` (see `fuzz/README.md`).
//!
//! Compiled only under `cfg(fuzzing)`, which `cargo fuzz` sets, and hidden
//! from the docs: not part of the API. Each function is a thin wrapper over a
//! crate-private parser that checks what only the crate can see (an entry
//! that decodes encodes again to itself); the targets check the rest.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    ConfigError, Tag,
    layer::fuzz_view::{CacheControl, date_from},
    rules::{Matched, NoMatch, Rule, RuleTable},
    store::{checksum, entry::CachedResponse},
};

/// `content` followed by its checksum, as every stored entry and value ends:
/// what a writer with access to the store can forge, so that the decoders
/// behind the checksum are reached.
pub fn seal(content: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::from(content);
    checksum::seal(&mut buf);
    buf.to_vec()
}

/// Decodes bytes read back from a store as a stored response; `true` when
/// they decode. Every stored form an entry may take goes through here: when
/// the format grows, this is the one place the target reaches it from.
///
/// # Panics
///
/// When an entry that decodes does not encode again to an entry equal to
/// itself, or its encoding is not canonical, or encoding its body in chunks
/// gives other bytes.
pub fn decode_entry(bytes: &[u8]) -> bool {
    // Any stored form: a single entry, or a set of Vary variants (each of
    // them decoded).
    let any = crate::store::entry::decode_any(bytes);
    let Some(entry) = CachedResponse::decode(Bytes::copy_from_slice(bytes)) else {
        return any;
    };
    assert!(any, "a single entry is a stored form");
    let encoded = entry.encode();
    let again = CachedResponse::decode(encoded.clone());
    assert_eq!(
        again.as_ref(),
        Some(&entry),
        "decode(encode(entry)) != entry"
    );
    assert_eq!(again.map(|e| e.encode()), Some(encoded.clone()));
    let mid = entry.body.len() / 2;
    let chunks = [entry.body.slice(..mid), entry.body.slice(mid..)];
    assert_eq!(entry.encode_with_body(&chunks), encoded, "chunked body");
    for now_ms in [0, entry.stored_at_ms, u64::MAX] {
        let _ = (entry.age_secs(now_ms), entry.is_fresh(now_ms));
    }
    true
}

/// The parts of a stored response, as plain data a fuzz target can make.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryParts {
    /// Status code.
    pub status: u16,
    /// Header fields, in order.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
    /// Trailer fields, if any.
    pub trailers: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    /// When the response was stored, in ms since the Unix epoch.
    pub stored_at_ms: u64,
    /// How long the store keeps it, in ms.
    pub ttl_ms: u64,
    /// Its age when stored, in ms.
    pub initial_age_ms: u64,
    /// How long it is fresh, in ms.
    pub freshness_ms: u64,
    /// The request headers its `Vary` names, with their values (`None`:
    /// absent).
    pub vary: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Encodes the entry `parts` describe and decodes it again; `false` when the
/// parts are not a response (a bad status, name or value).
///
/// # Panics
///
/// When the entry does not decode to itself, or when its encoding cut short
/// or with the bit at `damage_at` (modulo its length) flipped decodes at all.
pub fn entry_round_trip(parts: &EntryParts, damage_at: usize) -> bool {
    let Some(entry) = cached_response(parts) else {
        return false;
    };
    let encoded = entry.encode();
    assert_eq!(
        CachedResponse::decode(encoded.clone()).as_ref(),
        Some(&entry),
        "decode(encode(entry)) != entry"
    );
    let mut damaged = encoded.to_vec();
    damaged[damage_at / 8 % encoded.len()] ^= 1 << (damage_at % 8);
    assert_eq!(
        CachedResponse::decode(Bytes::from(damaged)),
        None,
        "damaged"
    );
    assert_eq!(
        CachedResponse::decode(encoded.slice(..encoded.len() - 1)),
        None,
        "cut short"
    );
    true
}

/// The stored form of the entry `parts` describe (for seeds); `None` when
/// the parts are not a response.
pub fn encode_entry(parts: &EntryParts) -> Option<Vec<u8>> {
    cached_response(parts).map(|entry| entry.encode().to_vec())
}

fn cached_response(parts: &EntryParts) -> Option<CachedResponse> {
    let fields = |fields: &[(Vec<u8>, Vec<u8>)]| -> Option<HeaderMap> {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                HeaderName::from_bytes(name).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            );
        }
        Some(map)
    };
    let mut vary = Vec::with_capacity(parts.vary.len());
    for (name, value) in &parts.vary {
        let value = value.as_deref().map(Bytes::copy_from_slice);
        vary.push((HeaderName::from_bytes(name).ok()?, value));
    }
    Some(CachedResponse {
        status: StatusCode::from_u16(parts.status).ok()?,
        headers: fields(&parts.headers)?,
        body: Bytes::copy_from_slice(&parts.body),
        trailers: match &parts.trailers {
            Some(trailers) => Some(fields(trailers)?),
            None => None,
        },
        stored_at_ms: parts.stored_at_ms,
        ttl: Duration::from_millis(parts.ttl_ms),
        initial_age_ms: parts.initial_age_ms,
        freshness: Duration::from_millis(parts.freshness_ms),
        vary,
    })
}

/// Decodes bytes read back from a store as a value of the value cache
/// ([`TagCache`](crate::TagCache)).
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    crate::values::decode(&Bytes::copy_from_slice(bytes))
}

/// Encodes a value as the value cache stores it; `None` when it does not
/// serialize.
pub fn encode_value<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    crate::values::encode(value).ok().map(|b| b.to_vec())
}

/// The `Cache-Control` directives a shared cache reads, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-store`.
    pub no_store: bool,
    /// `no-cache` (with or without field names).
    pub no_cache: bool,
    /// `private`.
    pub private: bool,
    /// `public`.
    pub public: bool,
    /// `must-revalidate`.
    pub must_revalidate: bool,
    /// `proxy-revalidate`.
    pub proxy_revalidate: bool,
    /// `s-maxage`, in seconds.
    pub s_maxage: Option<u64>,
    /// `max-age`, in seconds.
    pub max_age: Option<u64>,
    /// `min-fresh`, in seconds (requests).
    pub min_fresh: Option<u64>,
    /// `must-understand`.
    pub must_understand: bool,
    /// `stale-if-error`, in seconds.
    pub stale_if_error: Option<u64>,
    /// `max-stale`, in seconds (requests; `u64::MAX` without a value).
    pub max_stale: Option<u64>,
    /// `only-if-cached` (requests).
    pub only_if_cached: bool,
}

impl From<CacheControl> for Directives {
    fn from(cc: CacheControl) -> Self {
        // Destructured whole, so that a new directive is not forgotten here.
        let CacheControl {
            no_store,
            no_cache,
            private,
            public,
            must_revalidate,
            proxy_revalidate,
            s_maxage,
            max_age,
            min_fresh,
            must_understand,
            stale_if_error,
            max_stale,
            only_if_cached,
        } = cc;
        Self {
            no_store,
            no_cache,
            private,
            public,
            must_revalidate,
            proxy_revalidate,
            s_maxage,
            max_age,
            min_fresh,
            must_understand,
            stale_if_error,
            max_stale,
            only_if_cached,
        }
    }
}

/// The header map of `fields`, leaving out the names and values that are
/// not valid in HTTP.
pub fn header_map<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// The `Cache-Control` directives of a request or response.
pub fn cache_control(headers: &HeaderMap) -> Directives {
    CacheControl::parse(headers).into()
}

/// The directives a shared cache obeys for a response (`CDN-Cache-Control`,
/// else `Surrogate-Control`, else `Cache-Control`), and whether they came
/// from a targeted field.
pub fn response_directives(headers: &HeaderMap) -> (Directives, bool) {
    let (cc, targeted) = CacheControl::for_response(headers);
    (cc.into(), targeted)
}

/// An HTTP date (any of the three formats), in ms since the Unix epoch.
pub fn http_date(value: &[u8]) -> Option<u64> {
    date_from(&HeaderValue::from_bytes(value).ok()?)
}

/// A route table, as a layer builds it from its rules.
#[derive(Debug)]
pub struct Routes(RuleTable);

/// What a request matched in [`Routes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The pattern of the rule that matched.
    pub pattern: String,
    /// Whether it is a cache rule (else a write rule).
    pub is_cache: bool,
    /// The rule's path parameters, as it reads them from its pattern.
    pub path_params: Vec<String>,
    /// The parameters the router found, by name, percent-decoded.
    pub params: Vec<(String, String)>,
    /// The rule's tags (a cache rule) or the tags it bumps (a write rule),
    /// rendered from the parameters; `None` when a placeholder has no value.
    pub tags: Option<Vec<Tag>>,
}

impl Routes {
    /// Compiles `rules` into one table, in order.
    ///
    /// # Errors
    ///
    /// When a rule does not compile or conflicts with another.
    pub fn new(rules: impl IntoIterator<Item = Rule>) -> Result<Self, ConfigError> {
        let mut table = RuleTable::default();
        for rule in rules {
            table.insert(rule.compile()?)?;
        }
        Ok(Self(table))
    }

    /// The rule for a request; `Err("no rule")` or `Err("bad path")`.
    pub fn find(&self, method: &Method, path: &str) -> Result<RouteMatch, &'static str> {
        match self.0.find(method, path) {
            Ok(Matched { rule, params }) => {
                let templates = if rule.is_cache() {
                    &rule.tags
                } else {
                    &rule.invalidates
                };
                let param = |p: &str| params.iter().find(|(n, _)| *n == p).map(|(_, v)| &**v);
                Ok(RouteMatch {
                    pattern: rule.pattern.clone(),
                    is_cache: rule.is_cache(),
                    path_params: rule.path_params.clone(),
                    tags: templates.iter().map(|t| t.render(param)).collect(),
                    params: params
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), v.clone()))
                        .collect(),
                })
            }
            Err(NoMatch::NoRule) => Err("no rule"),
            Err(NoMatch::BadPath | NoMatch::BadParam) => Err("bad path"),
        }
    }

    /// Whether a cache rule matches `path`.
    pub fn caches(&self, path: &str) -> bool {
        self.0.caches(path)
    }

    /// The rules whose pattern matches none of `routes`.
    pub fn unmatched<'r>(&self, routes: impl IntoIterator<Item = &'r str>) -> Vec<String> {
        self.0.unmatched(routes)
    }
}
