//! The stored form of a response.
//!
//! Binary and versioned: `[format=2][status u16][stored_at_ms u64][ttl_ms u64]
//! [initial_age_ms u64][freshness_ms u64][vary][headers][body len u64][body]
//! [has_trailers u8][trailers?]`, where a header block is `[count u32]` then
//! `[name len u16][name][value len u32][value]` per field, and the vary block
//! is `[count u32]` then `[name len u16][name][present u8][value len u32][value]?`;
//! all integers big-endian. Decoding treats the bytes as untrusted:
//! anything malformed, truncated, of another format or with trailing bytes is
//! `None` (a miss), never a panic.
//!
//! An entry key holds either one such entry or, for a response that varies
//! (`Vary`), a [set of variants](super::variants) whose members are entries
//! in this format. [`Head::peek`] reads the front of an entry (times and
//! vary block) without decoding the rest, to choose among variants;
//! [`decode_any`] decodes whatever an entry key may hold.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::checksum;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// 3: a CRC-32 of the rest at the end ([`checksum`](super::checksum)).
const FORMAT: u8 = 3;

/// The most header (or trailer) fields an entry may hold.
const MAX_FIELDS: usize = 4096;

/// A response as the cache stores it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedResponse {
    /// Status code.
    pub(crate) status: StatusCode,
    /// Response headers (without hop-by-hop fields and the cache's own).
    pub(crate) headers: HeaderMap,
    /// The complete body.
    pub(crate) body: Bytes,
    /// Trailers, when the response had them (gRPC status lives there).
    pub(crate) trailers: Option<HeaderMap>,
    /// When the response was stored, in milliseconds since the Unix epoch.
    pub(crate) stored_at_ms: u64,
    /// How long the store keeps the entry (at least its freshness; longer
    /// when it can be revalidated).
    pub(crate) ttl: Duration,
    /// The response's age when it was stored (RFC 9111 §4.2.3: the larger of
    /// its `Age` plus the response delay and `now - Date`).
    pub(crate) initial_age_ms: u64,
    /// How long the response is fresh, counted from age zero.
    pub(crate) freshness: Duration,
    /// The request headers the response's `Vary` names, with the values the
    /// storing request had (`None`: absent). A request must match them all.
    pub(crate) vary: Vec<(HeaderName, Option<Bytes>)>,
}

impl CachedResponse {
    /// The entry's current age in milliseconds: its age when stored plus
    /// the time since.
    pub(crate) fn age_ms(&self, now_ms: u64) -> u64 {
        self.initial_age_ms
            .saturating_add(now_ms.saturating_sub(self.stored_at_ms))
    }

    /// Whole seconds of [`age_ms`](Self::age_ms) (the `Age` header).
    pub(crate) fn age_secs(&self, now_ms: u64) -> u64 {
        self.age_ms(now_ms) / 1000
    }

    /// Whether the entry is still fresh.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_fresh(&self, now_ms: u64) -> bool {
        u128::from(self.age_ms(now_ms)) < self.freshness.as_millis()
    }

    /// Encodes the entry.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn encode(&self) -> Bytes {
        self.encode_with_body(std::slice::from_ref(&self.body))
    }

    /// Encodes the entry with `chunks` as its body (ignoring `self.body`),
    /// copying each chunk once, straight into the encoded buffer.
    pub(crate) fn encode_with_body(&self, chunks: &[Bytes]) -> Bytes {
        let header_size = |h: &HeaderMap| {
            4 + h
                .iter()
                .map(|(k, v)| 6 + k.as_str().len() + v.len())
                .sum::<usize>()
        };
        let body_len: usize = chunks.iter().map(Bytes::len).sum();
        let mut buf = BytesMut::with_capacity(
            1 + 2
                + 16
                + 16
                + 4
                + self
                    .vary
                    .iter()
                    .map(|(k, v)| 7 + k.as_str().len() + v.as_ref().map_or(0, Bytes::len))
                    .sum::<usize>()
                + header_size(&self.headers)
                + 8
                + body_len
                + 1
                + self.trailers.as_ref().map_or(0, header_size)
                + 4,
        );
        buf.put_u8(FORMAT);
        buf.put_u16(self.status.as_u16());
        buf.put_u64(self.stored_at_ms);
        buf.put_u64(millis(self.ttl));
        buf.put_u64(self.initial_age_ms);
        buf.put_u64(millis(self.freshness));
        buf.put_u32(self.vary.len() as u32);
        for (name, value) in &self.vary {
            buf.put_u16(name.as_str().len() as u16);
            buf.put_slice(name.as_str().as_bytes());
            match value {
                None => buf.put_u8(0),
                Some(v) => {
                    buf.put_u8(1);
                    buf.put_u32(v.len() as u32);
                    buf.put_slice(v);
                }
            }
        }
        put_headers(&mut buf, &self.headers);
        buf.put_u64(body_len as u64);
        for chunk in chunks {
            buf.put_slice(chunk);
        }
        match &self.trailers {
            None => buf.put_u8(0),
            Some(t) => {
                buf.put_u8(1);
                put_headers(&mut buf, t);
            }
        }
        checksum::seal(&mut buf);
        buf.freeze()
    }

    /// Decodes an entry; `None` for anything malformed or damaged (its
    /// checksum does not match). The body shares `bytes`' allocation.
    pub(crate) fn decode(bytes: Bytes) -> Option<Self> {
        let mut r = checksum::open(&bytes)?;
        if r.try_get_u8().ok()? != FORMAT {
            return None;
        }
        let status = StatusCode::from_u16(r.try_get_u16().ok()?).ok()?;
        let stored_at_ms = r.try_get_u64().ok()?;
        let ttl = Duration::from_millis(r.try_get_u64().ok()?);
        let initial_age_ms = r.try_get_u64().ok()?;
        let freshness = Duration::from_millis(r.try_get_u64().ok()?);
        let vary_count = r.try_get_u32().ok()? as usize;
        if vary_count > r.remaining() / 3 {
            return None;
        }
        let mut vary = Vec::with_capacity(vary_count);
        for _ in 0..vary_count {
            let name_len = r.try_get_u16().ok()? as usize;
            if r.remaining() < name_len {
                return None;
            }
            let raw = r.split_to(name_len);
            let name = HeaderName::from_bytes(&raw).ok()?;
            // Written as `HeaderName::as_str`; any other spelling is
            // forged, and choosing a variant compares these bytes.
            if name.as_str().as_bytes() != raw {
                return None;
            }
            let value = match r.try_get_u8().ok()? {
                0 => None,
                1 => {
                    let len = r.try_get_u32().ok()? as usize;
                    if r.remaining() < len {
                        return None;
                    }
                    Some(r.split_to(len))
                }
                _ => return None,
            };
            vary.push((name, value));
        }
        let headers = get_headers(&mut r)?;
        let body_len = usize::try_from(r.try_get_u64().ok()?).ok()?;
        if r.remaining() < body_len {
            return None;
        }
        let body = r.split_to(body_len);
        let trailers = match r.try_get_u8().ok()? {
            0 => None,
            1 => Some(get_headers(&mut r)?),
            _ => return None,
        };
        if r.has_remaining() {
            return None;
        }
        Some(Self {
            status,
            headers,
            body,
            trailers,
            stored_at_ms,
            ttl,
            initial_age_ms,
            freshness,
            vary,
        })
    }
}

/// The front of an encoded entry, read without checking its checksum nor
/// decoding its headers and body: what choosing among variants and keeping
/// or dropping one needs. Nothing in it is trusted: the variant a request
/// gets is decoded with [`CachedResponse::decode`], which checks the
/// checksum over these bytes too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head<'a> {
    /// When the entry was stored, in ms since the Unix epoch.
    pub(crate) stored_at_ms: u64,
    /// How long the store keeps it, in ms.
    pub(crate) ttl_ms: u64,
    /// The request headers its `Vary` names, with the stored values.
    pub(crate) vary: VaryBlock<'a>,
}

impl<'a> Head<'a> {
    /// Reads the front of `entry` (a whole encoded entry, checksum
    /// included); `None` when it is not in this format (a set inside a set
    /// is refused here) or its vary block is malformed or cut.
    pub(crate) fn peek(entry: &'a [u8]) -> Option<Self> {
        let mut r = entry.get(..entry.len().checked_sub(4)?)?;
        if r.try_get_u8().ok()? != FORMAT {
            return None;
        }
        let _status = r.try_get_u16().ok()?;
        let stored_at_ms = r.try_get_u64().ok()?;
        let ttl_ms = r.try_get_u64().ok()?;
        let _initial_age_ms = r.try_get_u64().ok()?;
        let _freshness_ms = r.try_get_u64().ok()?;
        let count = r.try_get_u32().ok()? as usize;
        if count > r.remaining() / 3 {
            return None;
        }
        let raw = r;
        for _ in 0..count {
            next_vary(&mut r)?;
        }
        let raw = &raw[..raw.len() - r.len()];
        Some(Self {
            stored_at_ms,
            ttl_ms,
            vary: VaryBlock { count, raw },
        })
    }

    /// When the store lets the entry go, in ms since the Unix epoch.
    pub(crate) fn expires_at_ms(&self) -> u64 {
        self.stored_at_ms.saturating_add(self.ttl_ms)
    }

    /// Whether the store should have let the entry go by `now_ms`.
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms() <= now_ms
    }
}

/// The vary block of an encoded entry, checked well-formed by
/// [`Head::peek`]: `(name, value)` pairs as bytes (`None`: the storing
/// request did not have the header).
#[derive(Debug, Clone, Copy)]
pub(crate) struct VaryBlock<'a> {
    count: usize,
    raw: &'a [u8],
}

impl<'a> VaryBlock<'a> {
    /// The stored `(name, value)` pairs, in their stored order (names sorted).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let mut r = self.raw;
        (0..self.count).map_while(move |_| next_vary(&mut r))
    }

    /// Whether the block names the same headers as `vary`, in the same order.
    pub(crate) fn same_names(&self, vary: &[(HeaderName, Option<Bytes>)]) -> bool {
        self.count == vary.len()
            && self
                .iter()
                .zip(vary)
                .all(|((name, _), (other, _))| name == other.as_str().as_bytes())
    }

    /// Whether the block holds exactly `vary`: the same names and values.
    pub(crate) fn same_values(&self, vary: &[(HeaderName, Option<Bytes>)]) -> bool {
        self.count == vary.len()
            && self.iter().zip(vary).all(|((name, value), (n, v))| {
                name == n.as_str().as_bytes() && value == v.as_deref()
            })
    }

    /// Whether two blocks hold the same names and values.
    pub(crate) fn same_as(&self, other: &VaryBlock<'_>) -> bool {
        self.count == other.count && self.raw == other.raw
    }
}

/// One `(name, value)` of a vary block, or `None` when cut or malformed.
fn next_vary<'a>(r: &mut &'a [u8]) -> Option<(&'a [u8], Option<&'a [u8]>)> {
    let name_len = r.try_get_u16().ok()? as usize;
    let name = r.get(..name_len)?;
    r.advance(name_len);
    let value = match r.try_get_u8().ok()? {
        0 => None,
        1 => {
            let len = r.try_get_u32().ok()? as usize;
            let value = r.get(..len)?;
            r.advance(len);
            Some(value)
        }
        _ => return None,
    };
    Some((name, value))
}

/// Decodes anything an entry key may hold, as a lookup would: one entry,
/// or a set of variants with every variant decoded. `true` when all of it
/// decodes. For fuzzing and tests: the request path decodes only the variant
/// it serves.
#[allow(dead_code)]
pub(crate) fn decode_any(bytes: &[u8]) -> bool {
    let bytes = Bytes::copy_from_slice(bytes);
    if !super::variants::is_set(&bytes) {
        return CachedResponse::decode(bytes).is_some();
    }
    let Some(set) = super::variants::VariantSet::parse(bytes) else {
        return false;
    };
    let mut all = true;
    for variant in set.variants() {
        let _ = variant.head.vary.iter().count();
        all &= set.decode(&variant).is_some();
    }
    all
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn put_headers(buf: &mut BytesMut, headers: &HeaderMap) {
    buf.put_u32(headers.len() as u32);
    for (name, value) in headers {
        buf.put_u16(name.as_str().len() as u16);
        buf.put_slice(name.as_str().as_bytes());
        buf.put_u32(value.len() as u32);
        buf.put_slice(value.as_bytes());
    }
}

fn get_headers(r: &mut Bytes) -> Option<HeaderMap> {
    let count = r.try_get_u32().ok()? as usize;
    // Each field takes at least 6 bytes: bound the allocation by what is
    // there, and stay far below what a HeaderMap can hold.
    if count > r.remaining() / 6 || count > MAX_FIELDS {
        return None;
    }
    let mut headers = HeaderMap::with_capacity(count);
    for _ in 0..count {
        let name_len = r.try_get_u16().ok()? as usize;
        if r.remaining() < name_len {
            return None;
        }
        let name = HeaderName::from_bytes(&r.split_to(name_len)).ok()?;
        let value_len = r.try_get_u32().ok()? as usize;
        if r.remaining() < value_len {
            return None;
        }
        let value = HeaderValue::from_maybe_shared(r.split_to(value_len)).ok()?;
        headers.append(name, value);
    }
    Some(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> CachedResponse {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        CachedResponse {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"{\"id\":1}"),
            trailers: Some(trailers),
            stored_at_ms: 1_700_000_000_123,
            ttl: Duration::from_secs(60),
            initial_age_ms: 2_000,
            freshness: Duration::from_secs(30),
            vary: vec![
                (
                    HeaderName::from_static("accept-language"),
                    Some(Bytes::from_static(b"en")),
                ),
                (HeaderName::from_static("x-absent"), None),
            ],
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        assert_eq!(CachedResponse::decode(e.encode()), Some(e.clone()));
        let no_trailers = CachedResponse {
            trailers: None,
            ..e
        };
        assert_eq!(
            CachedResponse::decode(no_trailers.encode()),
            Some(no_trailers)
        );
    }

    /// `content` with a valid checksum: what a writer that computes the
    /// checksum (anyone with access to the store) can forge, so the parser
    /// behind the checksum is tested on its own.
    fn sealed(content: &[u8]) -> Bytes {
        let mut buf = BytesMut::from(content);
        checksum::seal(&mut buf);
        buf.freeze()
    }

    /// The encoded entry without its checksum.
    fn content(bytes: &Bytes) -> Vec<u8> {
        bytes[..bytes.len() - 4].to_vec()
    }

    #[test]
    fn rejects_truncation_trailing_bytes_and_other_formats() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert_eq!(
                CachedResponse::decode(bytes.slice(..cut)),
                None,
                "cut {cut}"
            );
        }
        let full = content(&bytes);
        for cut in 0..full.len() {
            assert_eq!(
                CachedResponse::decode(sealed(&full[..cut])),
                None,
                "cut {cut}, sealed"
            );
        }
        let mut longer = full.clone();
        longer.push(0);
        assert_eq!(CachedResponse::decode(sealed(&longer)), None);
        let mut other = full;
        other[0] = 1;
        assert_eq!(CachedResponse::decode(sealed(&other)), None);
    }

    #[test]
    fn a_damaged_entry_is_refused_not_served() {
        let e = sample();
        let bytes = e.encode();
        let body_at = bytes
            .windows(e.body.len())
            .position(|w| w == &e.body[..])
            .unwrap();
        let mut damaged = bytes.to_vec();
        damaged[body_at] ^= 0x20;
        // The parser alone would decode it, with another body.
        let forged = CachedResponse::decode(sealed(&damaged[..damaged.len() - 4])).unwrap();
        assert_ne!(forged.body, e.body);
        assert_eq!(CachedResponse::decode(Bytes::from(damaged)), None);
    }

    #[test]
    fn huge_field_counts_are_rejected_not_panics() {
        // A forged header count far above what a HeaderMap can hold, with
        // enough bytes behind it to pass the size check.
        let mut bytes = vec![FORMAT, 0, 200];
        bytes.extend_from_slice(&[0; 8 + 8 + 8 + 8]);
        bytes.extend_from_slice(&0u32.to_be_bytes()); // no vary
        bytes.extend_from_slice(&40_000u32.to_be_bytes());
        bytes.extend(std::iter::repeat_n(0u8, 40_000 * 6));
        assert_eq!(CachedResponse::decode(sealed(&bytes)), None);
    }

    #[test]
    fn age_counts_the_initial_age_and_never_goes_negative() {
        let e = sample();
        assert_eq!(e.age_secs(e.stored_at_ms + 2_999), 4);
        assert_eq!(e.age_secs(e.stored_at_ms - 5_000), 2);
        assert!(e.is_fresh(e.stored_at_ms + 27_999));
        assert!(!e.is_fresh(e.stored_at_ms + 28_000));
    }

    #[test]
    fn the_head_says_what_decoding_says() {
        let e = sample();
        let bytes = e.encode();
        let head = Head::peek(&bytes).unwrap();
        assert_eq!(head.stored_at_ms, e.stored_at_ms);
        assert_eq!(head.ttl_ms, 60_000);
        assert_eq!(head.expires_at_ms(), e.stored_at_ms + 60_000);
        assert!(!head.expired(e.stored_at_ms + 59_999));
        assert!(head.expired(e.stored_at_ms + 60_000));
        let vary: Vec<_> = head.vary.iter().collect();
        assert_eq!(
            vary,
            [
                (&b"accept-language"[..], Some(&b"en"[..])),
                (&b"x-absent"[..], None)
            ]
        );
        assert!(head.vary.same_values(&e.vary));
        assert!(head.vary.same_names(&e.vary));
        let mut other = e.vary.clone();
        other[0].1 = Some(Bytes::from_static(b"fr"));
        assert!(head.vary.same_names(&other) && !head.vary.same_values(&other));
        assert!(!head.vary.same_names(&other[..1]));
        assert!(decode_any(&bytes));
        // Cut anywhere in the front, it is refused; the rest of the entry is
        // for decoding to check.
        let front = 1 + 2 + 32 + 4 + 15 + 1 + 4 + 2 + 2 + 8 + 1;
        for cut in 0..front {
            assert!(Head::peek(&bytes[..cut]).is_none(), "cut {cut}");
        }
    }

    proptest! {
        #[test]
        fn peeking_agrees_with_decoding(idx in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = content(&sample().encode());
            let i = idx.index(bytes.len());
            bytes[i] = byte;
            let bytes = sealed(&bytes);
            if let Some(e) = CachedResponse::decode(bytes.clone()) {
                let head = Head::peek(&bytes).expect("what decodes can be peeked at");
                prop_assert_eq!(head.stored_at_ms, e.stored_at_ms);
                prop_assert!(head.vary.same_values(&e.vary));
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = CachedResponse::decode(sealed(&data));
            let _ = CachedResponse::decode(Bytes::from(data));
        }

        #[test]
        fn decoding_mutated_entries_never_panics(idx in any::<prop::sample::Index>(), byte in any::<u8>()) {
            // Mutated behind a valid checksum, so that the parser sees it.
            let mut bytes = content(&sample().encode());
            let i = idx.index(bytes.len());
            bytes[i] = byte;
            if let Some(e) = CachedResponse::decode(sealed(&bytes)) {
                // Whatever decodes must encode again without panicking.
                let _ = e.encode();
            }
        }
    }
}
