//! Tags, templates, vary-on values and fragmented key derivation.
//!
//! # How a key is made
//!
//! For each request that a rule caches, the layer builds a [`FragmentedKey`]
//! **once, before the inner service is called**:
//!
//! 1. a SHA-256 digest of the static parts, each length-prefixed so that
//!    `a|bc` and `ab|c` never collide: a format tag, the rule's base name, its
//!    key version, its group id, the method class (GET and HEAD share one), the
//!    request's host, path and query, and each vary-on value in declared order;
//! 2. the rule's tags (`User:42`, `Dashboard`), sorted and de-duplicated, also
//!    hashed into the digest.
//!
//! The store then reads the current version of the global epoch and of every
//! tag (seeding missing ones with fresh random tokens) and derives the entry
//! id `hex(digest) ":" sha1hex(len ":" version ...)`. Bumping any tag replaces
//! its version, so every entry id that included it changes: the next request
//! misses. Nothing is deleted; old entries expire by TTL.
//!
//! A slow request that read the old versions stores its response under the old
//! entry id, where no one looks any more, so a bump that lands during a
//! request can never be undone by that request.
//!
//! SHA-256 (`sha2`) makes the static digest; SHA-1 only condenses the
//! versions, because Redis scripts offer `redis.sha1hex` and no SHA-256, and a
//! collision there would need two different version lists of the same
//! digest, under one static digest, from random tokens.
//!
//! # Store layout
//!
//! Every store key starts with the store's prefix (`ttc` by default):
//!
//! | key | holds |
//! |---|---|
//! | `{prefix}:epoch` | the global epoch version |
//! | `{prefix}:t:{name}:{instance}` | a tag's version; instances longer than 64 bytes or holding bytes outside `[A-Za-z0-9_.@+=,/:-]` are written `#` + SHA-256 hex |
//! | `{prefix}:t:_uri:{host}{path}` | the per-URI tag's version: carried by every cached response, bumped by successful writes to the URI (RFC 9111 §4.4) |
//! | `{prefix}:e:{digest hex}:{versions sha1 hex}` | a stored response, or the variants of one that varies (up to [`max_variants`](crate::TaggedCacheLayer::max_variants), in one value) |
//! | `{prefix}:l:{digest hex}:{versions sha1 hex}` | a lease on computing that response ([`CacheRule::lease`](crate::CacheRule::lease)) |

mod fragment;
mod schema;
mod tag;
mod vary;

pub(crate) use self::schema::{HttpKey, uri_tag};
pub(crate) use self::tag::into_tags;
#[doc(inline)]
pub use self::{
    fragment::{FragmentedKey, KeyBuilder, Version},
    tag::{IntoTag, MAX_TAG_NAME_LEN, Tag, TagTemplate},
    vary::VaryOn,
};

/// The store key of the global epoch.
#[cfg_attr(not(any(feature = "memory", feature = "redis")), allow(dead_code))]
pub(crate) fn epoch_key(prefix: &str) -> String {
    format!("{prefix}:epoch")
}

/// Appends `bytes` in lowercase hex, without a temporary `String`.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(32) {
        let hex = &mut buf[..chunk.len() * 2];
        // The buffer is exactly twice the chunk: encoding cannot fail, and
        // hex digits are ASCII.
        if hex::encode_to_slice(chunk, hex).is_ok()
            && let Ok(text) = std::str::from_utf8(hex)
        {
            out.push_str(text);
        }
    }
}

/// The store key of a tag's version.
#[cfg_attr(not(any(feature = "memory", feature = "redis")), allow(dead_code))]
pub(crate) fn version_key(prefix: &str, tag: &Tag) -> String {
    let mut key = String::with_capacity(prefix.len() + 3 + tag.name().len() + 1 + 64 + 1);
    write_version_key(&mut key, prefix, tag);
    key
}

/// Appends the store key of a tag's version to `out`.
#[cfg_attr(not(any(feature = "memory", feature = "redis")), allow(dead_code))]
pub(crate) fn write_version_key(out: &mut String, prefix: &str, tag: &Tag) {
    out.push_str(prefix);
    out.push_str(":t:");
    tag.write_storage_id(out);
}

/// The store key prefix of entries; the entry id follows it.
#[cfg_attr(not(any(feature = "memory", feature = "redis")), allow(dead_code))]
pub(crate) fn entry_key_prefix(prefix: &str) -> String {
    format!("{prefix}:e:")
}
