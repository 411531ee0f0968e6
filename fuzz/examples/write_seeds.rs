//! Writes the binary seeds of the `entry_decode` target: real encoded
//! entries and values, made by the crate's own encoders.
//!
//! Run from `fuzz/` (the hidden `fuzzing` module needs `cfg(fuzzing)`):
//!
//! ```sh
//! RUSTFLAGS="--cfg fuzzing" cargo +nightly run --example write_seeds
//! ```
//!
//! Each entry is written twice: as stored (the checksum at the end), and
//! without its checksum (the target seals its input, so that the decoder
//! behind the checksum reads it).

use std::{collections::BTreeMap, fs, path::Path};

use serde::Serialize;
use tower_tagged_cache::fuzzing::{EntryParts, encode_entry, encode_value};

#[derive(Serialize)]
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

#[derive(Serialize)]
#[allow(dead_code)]
enum Kind {
    Plain,
    Pair(u8, char),
    Named { at: u64 },
}

fn fields(list: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn entries() -> Vec<(&'static str, EntryParts)> {
    let page = EntryParts {
        status: 200,
        headers: fields(&[
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60, s-maxage=30"),
            ("x-multi", "a"),
            ("x-multi", "b"),
        ]),
        body: br#"{"id":5,"name":"Ada"}"#.to_vec(),
        trailers: None,
        stored_at_ms: 1_764_689_000_123,
        ttl_ms: 60_000,
        initial_age_ms: 2_000,
        freshness_ms: 30_000,
        vary: vec![],
    };
    let varied = EntryParts {
        headers: fields(&[("content-type", "text/html"), ("vary", "accept-language")]),
        body: b"<p>bonjour</p>".to_vec(),
        vary: vec![
            (b"accept-language".to_vec(), Some(b"fr".to_vec())),
            (b"x-absent".to_vec(), None),
        ],
        ..page.clone()
    };
    let grpc = EntryParts {
        headers: fields(&[("content-type", "application/grpc")]),
        body: vec![0, 0, 0, 0, 3, 8, 150, 1],
        trailers: Some(fields(&[("grpc-status", "0"), ("grpc-message", "")])),
        ..page.clone()
    };
    let empty = EntryParts {
        status: 404,
        headers: vec![],
        body: vec![],
        stored_at_ms: 0,
        ttl_ms: u64::MAX,
        initial_age_ms: u64::MAX,
        freshness_ms: 0,
        ..page.clone()
    };
    vec![
        ("page", page),
        ("varied", varied),
        ("grpc", grpc),
        ("empty", empty),
    ]
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/entry_decode");
    fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| fs::write(dir.join(name), bytes).unwrap();
    for (name, parts) in entries() {
        let stored = encode_entry(&parts).expect("a valid response");
        write(&format!("entry-{name}"), &stored[..stored.len() - 4]);
        write(&format!("entry-{name}-stored"), &stored);
    }
    let value = Value {
        id: 42,
        name: "Ada Lovelace".into(),
        score: -7,
        flags: vec![true, false],
        parent: Some((7, "Org".into())),
        labels: BTreeMap::from([("en".into(), 1), ("fr".into(), 2)]),
        kind: Kind::Pair(3, 'é'),
        raw: vec![0, 255],
    };
    let values = [
        ("value-struct", encode_value(&value).unwrap()),
        ("value-string", encode_value(&"hello").unwrap()),
        (
            "value-list",
            encode_value(&vec![(1u32, Some("a")), (2, None)]).unwrap(),
        ),
    ];
    for (name, stored) in values {
        write(name, &stored[..stored.len() - 4]);
    }
    println!("wrote {}", dir.display());
}
