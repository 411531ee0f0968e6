//! The stored form of a response.
//!
//! Binary and versioned: `[format=1][status u16][stored_at_ms u64][ttl_ms u64]
//! [headers][body len u64][body][has_trailers u8][trailers?]`, where a header
//! block is `[count u32]` then `[name len u16][name][value len u32][value]`
//! per field, all integers big-endian. Decoding treats the bytes as untrusted:
//! anything malformed, truncated, of another format or with trailing bytes is
//! `None` (a miss), never a panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

const FORMAT_V1: u8 = 1;

/// A response as the cache stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers (without hop-by-hop fields and the cache's own).
    pub headers: HeaderMap,
    /// The complete body.
    pub body: Bytes,
    /// Trailers, when the response had them (gRPC status lives there).
    pub trailers: Option<HeaderMap>,
    /// When the response was stored, in milliseconds since the Unix epoch.
    pub stored_at_ms: u64,
    /// How long the entry lives.
    pub ttl: Duration,
}

impl CachedResponse {
    /// Milliseconds since the Unix epoch, now.
    pub(crate) fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Whole seconds since the entry was stored (the `Age` header).
    pub fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_at_ms) / 1000
    }

    /// Encodes the entry.
    pub fn encode(&self) -> Bytes {
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
                + header_size(&self.headers)
                + 8
                + body_len
                + 1
                + self.trailers.as_ref().map_or(0, header_size),
        );
        buf.put_u8(FORMAT_V1);
        buf.put_u16(self.status.as_u16());
        buf.put_u64(self.stored_at_ms);
        buf.put_u64(self.ttl.as_millis().min(u64::MAX as u128) as u64);
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
        buf.freeze()
    }

    /// Decodes an entry; `None` for anything malformed. The body shares
    /// `bytes`' allocation.
    pub fn decode(bytes: Bytes) -> Option<Self> {
        let mut r = bytes.clone();
        if r.try_get_u8().ok()? != FORMAT_V1 {
            return None;
        }
        let status = StatusCode::from_u16(r.try_get_u16().ok()?).ok()?;
        let stored_at_ms = r.try_get_u64().ok()?;
        let ttl = Duration::from_millis(r.try_get_u64().ok()?);
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
        })
    }
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
    // Each field takes at least 6 bytes: bound the allocation by what is there.
    if count > r.remaining() / 6 {
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
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(CachedResponse::decode(longer.into()), None);
        let mut other = bytes.to_vec();
        other[0] = 2;
        assert_eq!(CachedResponse::decode(other.into()), None);
    }

    #[test]
    fn age_is_whole_seconds_and_never_negative() {
        let e = sample();
        assert_eq!(e.age_secs(e.stored_at_ms + 2_999), 2);
        assert_eq!(e.age_secs(e.stored_at_ms - 5_000), 0);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = CachedResponse::decode(Bytes::from(data));
        }

        #[test]
        fn decoding_mutated_entries_never_panics(idx in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = sample().encode().to_vec();
            let i = idx.index(bytes.len());
            bytes[i] = byte;
            if let Some(e) = CachedResponse::decode(Bytes::from(bytes)) {
                // Whatever decodes must encode again without panicking.
                let _ = e.encode();
            }
        }
    }
}
