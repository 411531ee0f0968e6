//! Several variants of one response under one entry key.
//!
//! A response whose `Vary` names request headers answers only requests with
//! the same values of them. Under an entry key the store holds either one
//! [entry](super::entry) (the format every entry has, unchanged: a key whose
//! response does not vary is read exactly as before), or, once a second
//! variant is stored, a **set**:
//!
//! ```text
//! [format=0x81][count u16] then, per variant, newest first: [len u32][entry]
//! ```
//!
//! where each entry is a complete encoded entry, its own checksum included,
//! so that a hit checks the checksum of the variant it serves and no other.
//! Integers are big-endian. [`VariantSet::parse`] treats the bytes as
//! untrusted: a count of 0 or above [`MAX_VARIANTS`], lengths that do not
//! add up to the bytes exactly, a variant whose front cannot be read or that
//! is itself a set make the whole set unreadable (a miss), never a panic.
//!
//! # Which variants are kept
//!
//! [`beside`] makes what to store when a new response is recorded: the new
//! variant first, then the variants read under the key by the lookup, in
//! their order, except those that
//!
//! - are the new one's own variant (the same `Vary` values: it replaces
//!   them, which is how a `304` refreshes one variant and keeps the others),
//! - name other request headers than the new one's `Vary` (the origin
//!   changed its `Vary`: the newest response's names win),
//! - are past their store TTL, or damaged (their checksum fails),
//!
//! keeping at most [`Bounds::max_variants`] in all and, past the new one,
//! only while the set stays within [`Bounds::max_bytes`]. What falls off the
//! end is the least recently *stored* variant. Hits do not reorder a set: that
//! would cost a store write per hit (and on Redis a second command on the
//! hit path, or a script where a hit is one `MGET`). The cost is that a
//! variant that is read often but was stored long ago is dropped before a
//! younger one that nobody reads; it then misses once and is stored again,
//! as the newest. The store TTL of a set is the longest remaining TTL among
//! its variants.
//!
//! The set is written whole (a `SET` on Redis): two variants of one URL
//! recorded at the same moment each write themselves beside what their
//! lookup read, and the last write wins; the other variant misses once more
//! and is stored again.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{
    checksum,
    entry::{CachedResponse, Head},
};

/// The first byte of a set (an entry starts with its format, a small
/// number).
const SET_FORMAT: u8 = 0x81;

/// The most variants a set may hold; a larger count is unreadable.
pub(crate) const MAX_VARIANTS: usize = 64;

/// Whether `bytes` are (or claim to be) a set rather than one entry.
pub(crate) fn is_set(bytes: &[u8]) -> bool {
    bytes.first() == Some(&SET_FORMAT)
}

/// A set of variants read back from a store, its framing checked (see the
/// [module docs](self)); each variant is decoded only when asked.
#[derive(Debug, Clone)]
pub(crate) struct VariantSet {
    bytes: Bytes,
    count: usize,
}

/// One variant of a [`VariantSet`]: where it lies and what its front says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Variant<'a> {
    /// Its position in the set, from 0 (the newest).
    pub(crate) index: usize,
    /// Its front: stored-at time, TTL, vary block.
    pub(crate) head: Head<'a>,
    start: usize,
    end: usize,
}

impl VariantSet {
    /// Reads a set's framing and the front of every variant; `None` for
    /// anything malformed (see the [module docs](self)).
    pub(crate) fn parse(bytes: Bytes) -> Option<Self> {
        let mut r = &bytes[..];
        if r.try_get_u8().ok()? != SET_FORMAT {
            return None;
        }
        let count = usize::from(r.try_get_u16().ok()?);
        if count == 0 || count > MAX_VARIANTS {
            return None;
        }
        for _ in 0..count {
            let len = r.try_get_u32().ok()? as usize;
            Head::peek(r.get(..len)?)?;
            r.advance(len);
        }
        if r.has_remaining() {
            return None;
        }
        Some(Self { bytes, count })
    }

    /// How many variants the set holds.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The variants, newest first.
    pub(crate) fn variants(&self) -> impl Iterator<Item = Variant<'_>> + '_ {
        let mut at = 3;
        (0..self.count).map_while(move |index| {
            let len = self.bytes.get(at..at + 4)?;
            let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
            let (start, end) = (at + 4, at + 4 + len);
            at = end;
            let head = Head::peek(self.bytes.get(start..end)?)?;
            Some(Variant {
                index,
                head,
                start,
                end,
            })
        })
    }

    /// The variant decoded (its checksum checked), sharing the set's
    /// allocation; `None` when it is damaged.
    pub(crate) fn decode(&self, variant: &Variant<'_>) -> Option<CachedResponse> {
        CachedResponse::decode(self.bytes.slice(variant.start..variant.end))
    }

    /// The variant's bytes when its checksum holds.
    fn sound(&self, variant: &Variant<'_>) -> Option<Bytes> {
        let bytes = self.bytes.slice(variant.start..variant.end);
        checksum::open(&bytes).map(|_| bytes)
    }

    /// A set of `entries` (encoded entries, newest first).
    fn encode(entries: &[Bytes]) -> Bytes {
        let len = 3 + entries.iter().map(|e| 4 + e.len()).sum::<usize>();
        let mut buf = BytesMut::with_capacity(len);
        buf.put_u8(SET_FORMAT);
        buf.put_u16(entries.len() as u16);
        for entry in entries {
            buf.put_u32(entry.len() as u32);
            buf.put_slice(entry);
        }
        buf.freeze()
    }
}

/// What a lookup read under an entry key that a response recorded for this
/// request may have to be stored beside.
#[derive(Debug, Default)]
pub(crate) enum Prior {
    /// Nothing to keep: no entry, an unreadable one, or one that the new
    /// response replaces whatever it says (it answered this very request).
    #[default]
    Nothing,
    /// One entry, for another variant.
    One(Box<CachedResponse>),
    /// A set of variants.
    Set(VariantSet),
}

/// How much a set may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Variants in all, the new one included (1: never a set).
    pub(crate) max_variants: usize,
    /// Bytes of variants kept beside the new one, the new one included (the
    /// new one is stored whatever its size).
    pub(crate) max_bytes: usize,
}

/// What to store for the response `new` (encoded as `encoded`) and for how
/// long: `encoded` alone, or a set of it and the variants of `prior` it
/// keeps (see the [module docs](self)).
pub(crate) fn beside(
    new: &CachedResponse,
    encoded: Bytes,
    prior: &Prior,
    bounds: Bounds,
    now_ms: u64,
) -> (Bytes, Duration) {
    let alone = |encoded| (encoded, new.ttl);
    if new.vary.is_empty() || bounds.max_variants <= 1 {
        return alone(encoded);
    }
    let older: Vec<Bytes> = match prior {
        Prior::Nothing => return alone(encoded),
        Prior::One(entry) => vec![entry.encode()],
        Prior::Set(set) => set
            .variants()
            .filter_map(|variant| set.sound(&variant))
            .collect(),
    };
    let mut kept = vec![encoded];
    let mut bytes = kept[0].len();
    let mut expires_at_ms = now_ms.saturating_add(millis(new.ttl));
    let mut heads: Vec<Head<'_>> = Vec::new();
    for entry in &older {
        if kept.len() >= bounds.max_variants.min(MAX_VARIANTS) {
            break;
        }
        let Some(head) = Head::peek(entry) else {
            continue;
        };
        if head.expired(now_ms)
            || !head.vary.same_names(&new.vary)
            || head.vary.same_values(&new.vary)
            || heads.iter().any(|kept| kept.vary.same_as(&head.vary))
        {
            continue;
        }
        if bytes.saturating_add(entry.len()) > bounds.max_bytes {
            break;
        }
        bytes += entry.len();
        expires_at_ms = expires_at_ms.max(head.expires_at_ms());
        heads.push(head);
        kept.push(entry.clone());
    }
    if kept.len() == 1 {
        return alone(kept.swap_remove(0));
    }
    let ttl = Duration::from_millis(expires_at_ms.saturating_sub(now_ms));
    (VariantSet::encode(&kept), ttl)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::entry::decode_any;
    use http::{HeaderMap, HeaderName, StatusCode};
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000_000;

    /// A response for `value` of `accept-language`, stored at `NOW - age_ms`
    /// for `ttl_s`.
    fn variant(value: &str, age_ms: u64, ttl_s: u64) -> CachedResponse {
        CachedResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(format!("in {value}")),
            trailers: None,
            stored_at_ms: NOW - age_ms,
            ttl: Duration::from_secs(ttl_s),
            initial_age_ms: 0,
            freshness: Duration::from_secs(ttl_s),
            vary: vec![(
                HeaderName::from_static("accept-language"),
                Some(Bytes::from(value.to_owned())),
            )],
        }
    }

    const ROOMY: Bounds = Bounds {
        max_variants: 8,
        max_bytes: 1 << 20,
    };

    /// Stores `values` one after the other, each beside what the last one
    /// made, as lookups and writes in turn would.
    fn store_in_turn(values: &[&str], bounds: Bounds) -> (Bytes, Duration) {
        let mut stored: Option<(Bytes, Duration)> = None;
        for value in values {
            let new = variant(value, 0, 60);
            let prior = match stored.take() {
                None => Prior::Nothing,
                Some((bytes, _)) if is_set(&bytes) => Prior::Set(VariantSet::parse(bytes).unwrap()),
                Some((bytes, _)) => Prior::One(Box::new(CachedResponse::decode(bytes).unwrap())),
            };
            stored = Some(beside(&new, new.encode(), &prior, bounds, NOW));
        }
        stored.unwrap()
    }

    /// The bodies of a set's variants, newest first.
    fn bodies(bytes: Bytes) -> Vec<String> {
        let set = VariantSet::parse(bytes).expect("a set");
        set.variants()
            .map(|v| String::from_utf8(set.decode(&v).unwrap().body.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn a_second_variant_makes_a_set_whose_variants_decode_as_stored() {
        let (one, _) = store_in_turn(&["en"], ROOMY);
        assert!(!is_set(&one), "one variant is stored as one entry");
        assert_eq!(CachedResponse::decode(one), Some(variant("en", 0, 60)));
        let (two, ttl) = store_in_turn(&["en", "fr"], ROOMY);
        assert_eq!(ttl, Duration::from_secs(60));
        let set = VariantSet::parse(two.clone()).unwrap();
        assert_eq!(set.len(), 2);
        let decoded: Vec<_> = set.variants().map(|v| set.decode(&v).unwrap()).collect();
        assert_eq!(decoded, [variant("fr", 0, 60), variant("en", 0, 60)]);
        let heads: Vec<_> = set
            .variants()
            .map(|v| (v.index, v.head.stored_at_ms))
            .collect();
        assert_eq!(heads, [(0, NOW), (1, NOW)]);
        assert!(decode_any(&two));
    }

    #[test]
    fn the_newest_comes_first_and_replaces_its_own_variant() {
        let (bytes, _) = store_in_turn(&["en", "fr", "de", "fr"], ROOMY);
        assert_eq!(bodies(bytes), ["in fr", "in de", "in en"]);
    }

    #[test]
    fn past_the_maximum_the_least_recently_stored_goes() {
        let bounds = Bounds {
            max_variants: 3,
            ..ROOMY
        };
        let (bytes, _) = store_in_turn(&["a", "b", "c", "d"], bounds);
        assert_eq!(bodies(bytes), ["in d", "in c", "in b"]);
        let one = Bounds {
            max_variants: 1,
            ..ROOMY
        };
        let (bytes, _) = store_in_turn(&["a", "b"], one);
        assert!(
            !is_set(&bytes),
            "max 1 is one entry per key, as before sets"
        );
        assert_eq!(CachedResponse::decode(bytes).unwrap().body, "in b");
    }

    #[test]
    fn past_the_byte_budget_the_least_recently_stored_go() {
        let size = variant("a", 0, 60).encode().len();
        let bounds = Bounds {
            max_variants: 8,
            max_bytes: 3 * size,
        };
        let (bytes, _) = store_in_turn(&["a", "b", "c", "d", "e"], bounds);
        assert_eq!(bodies(bytes), ["in e", "in d", "in c"]);
        // The new variant is stored whatever its size, alone if need be.
        let tiny = Bounds {
            max_variants: 8,
            max_bytes: 1,
        };
        let (bytes, _) = store_in_turn(&["a", "b"], tiny);
        assert_eq!(CachedResponse::decode(bytes).unwrap().body, "in b");
    }

    #[test]
    fn expired_variants_are_dropped_and_the_set_lives_as_long_as_its_longest() {
        let older = [variant("a", 10_000, 100), variant("b", 70_000, 60)];
        let prior = VariantSet::parse(VariantSet::encode(&[older[0].encode(), older[1].encode()]));
        let prior = Prior::Set(prior.unwrap());
        let new = variant("c", 0, 30);
        let (bytes, ttl) = beside(&new, new.encode(), &prior, ROOMY, NOW);
        // b expired 10 s ago; a has 90 s left, longer than c's 30 s.
        assert_eq!(bodies(bytes), ["in c", "in a"]);
        assert_eq!(ttl, Duration::from_secs(90));
    }

    #[test]
    fn variants_of_other_vary_names_are_dropped_and_no_vary_stands_alone() {
        let mut other = variant("gzip", 0, 60);
        other.vary[0].0 = HeaderName::from_static("accept-encoding");
        let prior = Prior::One(Box::new(other));
        let new = variant("en", 0, 60);
        let (bytes, _) = beside(&new, new.encode(), &prior, ROOMY, NOW);
        assert_eq!(CachedResponse::decode(bytes), Some(new));
        let plain = CachedResponse {
            vary: Vec::new(),
            ..variant("-", 0, 60)
        };
        let prior = Prior::One(Box::new(variant("en", 0, 60)));
        let (bytes, _) = beside(&plain, plain.encode(), &prior, ROOMY, NOW);
        assert_eq!(CachedResponse::decode(bytes), Some(plain));
    }

    #[test]
    fn a_damaged_variant_is_unreadable_alone_and_not_kept() {
        let (bytes, _) = store_in_turn(&["en", "fr", "de"], ROOMY);
        let mut damaged = bytes.to_vec();
        let at = damaged.windows(5).position(|w| w == b"in fr").unwrap();
        damaged[at + 3] ^= 0x20;
        let set = VariantSet::parse(Bytes::from(damaged)).expect("the framing holds");
        let decoded: Vec<_> = set.variants().map(|v| set.decode(&v).is_some()).collect();
        assert_eq!(decoded, [true, false, true]);
        let new = variant("it", 0, 60);
        let (bytes, _) = beside(&new, new.encode(), &Prior::Set(set), ROOMY, NOW);
        assert_eq!(bodies(bytes), ["in it", "in de", "in en"]);
    }

    #[test]
    fn malformed_sets_are_unreadable() {
        let (bytes, _) = store_in_turn(&["en", "fr"], ROOMY);
        for cut in 0..bytes.len() {
            assert!(VariantSet::parse(bytes.slice(..cut)).is_none(), "cut {cut}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(VariantSet::parse(Bytes::from(longer)).is_none());
        // Counts: none, one more than there is, past the maximum, the
        // largest a count can say.
        for count in [0u16, 3, 65, u16::MAX] {
            let mut forged = bytes.to_vec();
            forged[1..3].copy_from_slice(&count.to_be_bytes());
            assert!(VariantSet::parse(Bytes::from(forged)).is_none(), "{count}");
        }
        // A length past the end.
        let mut forged = bytes.to_vec();
        forged[3..7].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(VariantSet::parse(Bytes::from(forged)).is_none());
        // A set inside a set.
        let nested = VariantSet::encode(&[bytes.clone(), variant("de", 0, 60).encode()]);
        assert!(VariantSet::parse(nested.clone()).is_none());
        assert!(!decode_any(&nested));
        // 65 well-formed variants.
        let many: Vec<_> = (0..65)
            .map(|i| variant(&i.to_string(), 0, 60).encode())
            .collect();
        assert!(VariantSet::parse(VariantSet::encode(&many)).is_none());
        assert!(VariantSet::parse(VariantSet::encode(&many[..64])).is_some());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_sets_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut forged = vec![SET_FORMAT];
            forged.extend_from_slice(&data);
            let _ = decode_any(&forged);
            let _ = decode_any(&data);
        }

        #[test]
        fn decoding_mutated_sets_never_panics(idx in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let (bytes, _) = store_in_turn(&["en", "fr", "de"], ROOMY);
            let mut bytes = bytes.to_vec();
            let i = idx.index(bytes.len());
            bytes[i] = byte;
            let bytes = Bytes::from(bytes);
            let _ = decode_any(&bytes);
            if let Some(set) = VariantSet::parse(bytes) {
                let new = variant("it", 0, 60);
                // Whatever parses can be stored beside.
                let (stored, _) = beside(&new, new.encode(), &Prior::Set(set), ROOMY, NOW);
                prop_assert!(decode_any(&stored));
            }
        }
    }
}
