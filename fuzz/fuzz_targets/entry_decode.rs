//! Stored responses and cached values: bytes read back from a store never
//! panic, and whatever decodes encodes again to itself; responses made from
//! the input decode to themselves, and not at all once damaged.
//!
//! The input is tried as it is (its checksum must match) and sealed with a
//! valid checksum (what a writer with access to the store can forge), so
//! that the decoders behind the checksum see every mutation. The same bytes,
//! read as structured choices, make a response to round-trip. Seeds are real
//! encoded entries and values (`cargo run --example write_seeds`).

#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use tower_tagged_cache::fuzzing::{
    EntryParts, decode_entry, decode_value, encode_value, entry_round_trip, seal,
};

/// A value shaped like what applications cache: text, numbers, options,
/// sequences, maps and an enum.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Value {
    id: u64,
    name: String,
    score: i32,
    flags: Vec<bool>,
    parent: Option<(u64, String)>,
    labels: BTreeMap<String, u16>,
    kind: Kind,
    raw: Vec<u8>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Pair(u8, char),
    Named { at: u64 },
}

/// Decodes `bytes` as a `T`; whatever decodes must encode and decode again
/// to an equal value.
fn value_round_trips<T>(bytes: &[u8])
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    if let Some(value) = decode_value::<T>(bytes) {
        let encoded = encode_value(&value).expect("a decoded value encodes");
        assert_eq!(decode_value::<T>(&encoded).as_ref(), Some(&value));
    }
}

/// A response made from structured choices.
#[derive(Debug, Arbitrary)]
struct Parts {
    status: u16,
    headers: Vec<(Name, Vec<u8>)>,
    body: Vec<u8>,
    trailers: Option<Vec<(Name, Vec<u8>)>>,
    stored_at_ms: u64,
    ttl_ms: u64,
    initial_age_ms: u64,
    freshness_ms: u64,
    vary: Vec<(Name, Option<Vec<u8>>)>,
    damage_at: usize,
}

/// A header name: mostly a valid one, so that responses get made;
/// sometimes any bytes (then it is not a response, and is skipped).
#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Token(Vec<u8>),
    Raw(Vec<u8>),
}

impl Name {
    fn bytes(&self) -> Vec<u8> {
        const KNOWN: [&str; 8] = [
            "content-type",
            "etag",
            "x-multi",
            "accept-language",
            "grpc-status",
            "set-cookie",
            "vary",
            "cache-control",
        ];
        const TCHAR: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~";
        match self {
            Name::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].into(),
            Name::Token(b) if b.is_empty() => b"x".to_vec(),
            Name::Token(b) => b
                .iter()
                .map(|c| TCHAR[usize::from(*c) % TCHAR.len()])
                .collect(),
            Name::Raw(b) => b.clone(),
        }
    }
}

/// Header fields, their values' control bytes replaced (a `HeaderValue`
/// refuses them), so that most inputs make a response.
fn fields(list: &[(Name, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let value = |v: &[u8]| -> Vec<u8> {
        v.iter()
            .map(|&b| match b {
                b'\t' => b,
                0..0x20 | 0x7f => b'?',
                _ => b,
            })
            .collect()
    };
    list.iter().map(|(n, v)| (n.bytes(), value(v))).collect()
}

fn round_trip(data: &[u8]) {
    let Ok(p) = Parts::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let parts = EntryParts {
        // Mostly a valid status.
        status: 100 + p.status % 1000,
        headers: fields(&p.headers),
        body: p.body,
        trailers: p.trailers.as_deref().map(fields),
        stored_at_ms: p.stored_at_ms,
        ttl_ms: p.ttl_ms,
        initial_age_ms: p.initial_age_ms,
        freshness_ms: p.freshness_ms,
        vary: p.vary.iter().map(|(n, v)| (n.bytes(), v.clone())).collect(),
    };
    entry_round_trip(&parts, p.damage_at);
}

fuzz_target!(|data: &[u8]| {
    let sealed = seal(data);
    for bytes in [data, &sealed[..]] {
        decode_entry(bytes);
        value_round_trips::<Value>(bytes);
        value_round_trips::<String>(bytes);
        value_round_trips::<Vec<(u32, Option<String>)>>(bytes);
    }
    round_trip(data);
});
