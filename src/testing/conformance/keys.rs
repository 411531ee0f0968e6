//! Keys: untrusted instances and inputs that concatenate alike never share
//! a version or an entry.

use std::collections::HashSet;

use super::{
    Outcome, Subject,
    util::{key, lookup, payload, put, tag, version_of, versions_of},
};
use crate::{
    key::{FragmentedKey, Tag},
    store::Store,
};

/// Instances from requests are untrusted: long ones (10 KB) and ones with odd
/// bytes work, and every one keeps its own version and entry.
pub(super) async fn odd_and_long_instances_stay_distinct<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    let long = "x".repeat(10 * 1024);
    let long_other_end = format!("{}y", "x".repeat(10 * 1024 - 1));
    let instances: Vec<String> = vec![
        "42".into(),
        long.clone(),
        long_other_end,
        format!("{long}x"),
        " ".into(),
        "a b".into(),
        "\r\n".into(),
        "a\r\nDEL *".into(),
        "{".into(),
        "{x}".into(),
        "}".into(),
        ":".into(),
        "4:2".into(),
        "#".into(),
        "é".into(),
        "日本".into(),
        "🙂".into(),
        "\0".into(),
        String::new(),
        "*".into(),
    ];
    let tags: Vec<Tag> = instances
        .iter()
        .map(|i| Tag::new("User", i).expect("any instance is valid"))
        .collect();
    let keys: Vec<FragmentedKey> = tags.iter().map(|t| key("odd", [t])).collect();
    for (i, k) in keys.iter().enumerate() {
        let l = lookup(store, k).await;
        assert!(l.entry.is_none());
        put(store, &l, payload(&i.to_string())).await;
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            lookup(store, k).await.entry,
            Some(payload(&i.to_string())),
            "instance #{i} lost its entry"
        );
    }
    let versions = versions_of(store, &tags).await;
    let distinct: HashSet<_> = versions
        .iter()
        .map(|v| v.clone().expect("seeded"))
        .collect();
    assert_eq!(distinct.len(), tags.len(), "two instances share a version");

    // Bumping each in turn misses its own key only: no two instances share a
    // version key (a shared one would make a later key miss early).
    for (i, (t, k)) in tags.iter().zip(&keys).enumerate() {
        store.bump(std::slice::from_ref(t)).await.expect("bump");
        assert!(
            lookup(store, k).await.entry.is_none(),
            "bumping instance #{i} ({:?}) did not reach its key",
            instances[i].chars().take(20).collect::<String>()
        );
        for (j, later) in keys.iter().enumerate().skip(i + 1) {
            assert!(
                lookup(store, later).await.entry.is_some(),
                "bumping instance #{i} made instance #{j} miss: they share a version"
            );
        }
    }
    Outcome::Passed
}

/// Different vary-on values, and inputs that concatenate alike, never share
/// an entry: stored under one, a lookup of the other misses.
pub(super) async fn vary_and_lookalikes_never_share<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    let user = tag("User:42");
    let vary = |v: Option<&[u8]>| {
        FragmentedKey::builder("profile", 1, "")
            .vary("accept-language", v)
            .tag(user.clone())
            .finish()
    };
    let groups: Vec<(&str, Vec<FragmentedKey>)> = vec![
        (
            "vary values",
            vec![
                vary(Some(b"en")),
                vary(Some(b"fr")),
                vary(None),
                vary(Some(b"")),
            ],
        ),
        (
            "vary name/value split",
            vec![
                FragmentedKey::builder("p", 1, "")
                    .vary("ab", Some(b"c"))
                    .finish(),
                FragmentedKey::builder("p", 1, "")
                    .vary("a", Some(b"bc"))
                    .finish(),
            ],
        ),
        (
            "tag name/instance split",
            vec![
                key("p", [&tag("User_4:2")]),
                key("p", [&tag("User:4_2")]),
                key("p", [&tag("User_4_2")]),
            ],
        ),
        (
            "tag name/instance boundary",
            vec![key("p", [&tag("Ab:c")]), key("p", [&tag("A:bc")])],
        ),
        (
            "two tags vs one",
            vec![
                key("p", [&tag("A:1"), &tag("B:2")]),
                key("p", [&Tag::new("A", "1B:2").unwrap()]),
            ],
        ),
        (
            // Request values bleeding into the next vary part: equal when the
            // parts are joined without lengths.
            "adjacent vary values",
            vec![
                FragmentedKey::builder("p", 1, "")
                    .vary("h1", Some(b"a"))
                    .vary("h2", Some(b"vh2\x01b"))
                    .finish(),
                FragmentedKey::builder("p", 1, "")
                    .vary("h1", Some(b"avh2\x01"))
                    .vary("h2", Some(b"b"))
                    .finish(),
            ],
        ),
        (
            "base/group split",
            vec![
                FragmentedKey::builder("ab", 1, "c").finish(),
                FragmentedKey::builder("a", 1, "bc").finish(),
            ],
        ),
        (
            "key version",
            vec![
                FragmentedKey::builder("p", 1, "").finish(),
                FragmentedKey::builder("p", 2, "").finish(),
            ],
        ),
    ];
    for (what, keys) in &groups {
        // Stored under the first only: every other one misses.
        let l0 = lookup(store, &keys[0]).await;
        put(store, &l0, payload("first")).await;
        for (i, k) in keys.iter().enumerate().skip(1) {
            let l = lookup(store, k).await;
            assert!(l.entry.is_none(), "{what}: key #{i} shares key #0's entry");
            assert_ne!(l.entry_key, l0.entry_key, "{what}: key #{i}");
        }
        // Stored under all: each reads its own.
        for (i, k) in keys.iter().enumerate() {
            let l = lookup(store, k).await;
            put(store, &l, payload(&format!("{what} {i}"))).await;
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                lookup(store, k).await.entry,
                Some(payload(&format!("{what} {i}"))),
                "{what}: key #{i} reads another key's entry"
            );
        }
    }
    // Lookalike tags also keep separate versions.
    let (a, b) = (tag("User_4:2"), tag("User:4_2"));
    let vb = version_of(store, &b).await;
    store.bump(std::slice::from_ref(&a)).await.expect("bump");
    assert_eq!(
        version_of(store, &b).await,
        vb,
        "User_4:2 and User:4_2 share a version"
    );
    Outcome::Passed
}
