//! Entries: what is put comes back byte for byte under the derived key,
//! `delete` removes one entry, an entry lives for its own TTL, and a
//! response stored under versions a bump replaced is never reached.

use std::time::Duration;

use bytes::Bytes;

use super::{
    Outcome, Subject,
    util::{key, lookup, payload, put, real_sleep, tag},
};
use crate::{key::FragmentedKey, store::Store};

/// What is put under a lookup's entry key comes back byte for byte. On Redis
/// this proves the script derives the same entry key as Rust's
/// `FragmentedKey::entry_id`, since the put goes to the Rust-derived key and
/// the lookup reads the script-derived one.
pub(super) async fn put_then_lookup_round_trips<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    let (u, d) = (tag("User:42"), tag("Dashboard"));
    let tagless = FragmentedKey::builder("home", 3, "g1")
        .vary("accept", Some(b"text/html"))
        .finish();
    let tagged = FragmentedKey::builder("profile", 1, "")
        .vary("path", Some(b"/users/42"))
        .tag(u.clone())
        .tag(d.clone())
        .finish();
    let mut big = vec![0u8; 256 * 1024];
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    for (k, bytes) in [(&tagless, payload("home")), (&tagged, Bytes::from(big))] {
        let miss = lookup(store, k).await;
        assert!(miss.entry.is_none());
        assert!(
            miss.entry_key
                .as_str()
                .ends_with(&format!(":e:{}", k.entry_id(&miss.versions))),
            "{:?} is not derived from entry_id",
            miss.entry_key
        );
        put(store, &miss, bytes.clone()).await;
        let hit = lookup(store, k).await;
        assert_eq!(hit.versions, miss.versions);
        assert_eq!(hit.entry_key, miss.entry_key);
        assert_eq!(
            hit.entry.as_ref(),
            Some(&bytes),
            "entry bytes are identical"
        );
    }
    // Overwriting the entry replaces it.
    let l = lookup(store, &tagged).await;
    put(store, &l, payload("v2")).await;
    assert_eq!(lookup(store, &tagged).await.entry, Some(payload("v2")));
    Outcome::Passed
}

/// `delete` removes exactly the entry named, and deleting again is fine.
pub(super) async fn delete_removes_one_entry<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    let a = FragmentedKey::builder("del-a", 1, "")
        .tag(tag("User:1"))
        .finish();
    let other = FragmentedKey::builder("del-b", 1, "")
        .tag(tag("User:1"))
        .finish();
    let la = lookup(store, &a).await;
    put(store, &la, payload("a")).await;
    let lo = lookup(store, &other).await;
    put(store, &lo, payload("b")).await;
    store.delete(la.entry_key.clone()).await.expect("delete");
    assert!(lookup(store, &a).await.entry.is_none());
    assert_eq!(lookup(store, &other).await.entry, Some(payload("b")));
    store.delete(la.entry_key).await.expect("deleting twice");
    Outcome::Passed
}

/// An entry lives for its own TTL: a short one is gone after it, a long one
/// put beside it is not.
pub(super) async fn put_ttl_expires<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    let t = tag("User:42");
    let short_key = key("short", [&t]);
    let long_key = key("long", [&t]);
    let ttl = Duration::from_secs(1);

    let short = lookup(store, &short_key).await;
    store
        .put(short.entry_key.clone(), payload("short"), ttl)
        .await
        .expect("put");
    let long = lookup(store, &long_key).await;
    put(store, &long, payload("long")).await;
    assert_eq!(
        lookup(store, &short_key).await.entry,
        Some(payload("short")),
        "the entry is there before its TTL"
    );

    real_sleep(ttl + Duration::from_millis(300)).await;

    let after = lookup(store, &short_key).await;
    assert_eq!(after.versions, short.versions, "nothing was bumped");
    assert!(after.entry.is_none(), "the entry outlived its 1 s TTL");
    assert_eq!(lookup(store, &long_key).await.entry, Some(payload("long")));
    Outcome::Passed
}

/// A slow request read the versions, a bump landed, then it stored its
/// response under the key it derived first: nobody reaches that response.
pub(super) async fn slow_writer_is_unreachable<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    let t = tag("User:42");
    let k = key("profile", [&t]);
    let slow = lookup(store, &k).await;
    assert!(slow.entry.is_none());

    store.bump(std::slice::from_ref(&t)).await.expect("bump");
    // The slow request finishes and stores what it computed from old data.
    put(store, &slow, payload("stale")).await;

    let next = lookup(store, &k).await;
    assert!(
        next.entry.is_none(),
        "the slow writer's stale response is served"
    );
    assert_ne!(next.versions[1], slow.versions[1]);
    assert_ne!(next.entry_key, slow.entry_key);
    // The fresh request stores under the new key, which is what is served.
    put(store, &next, payload("fresh")).await;
    assert_eq!(lookup(store, &k).await.entry, Some(payload("fresh")));
    Outcome::Passed
}
