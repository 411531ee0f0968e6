//! Seeding: a cold lookup seeds each version once, `versions` never seeds,
//! and concurrent cold lookups agree on one version per tag.

use std::collections::HashSet;

use super::{
    Outcome, Subject,
    util::{all_at_once, key, lookup, tag, version_of, versions_of},
};
use crate::{
    key::{Tag, Version},
    store::Store,
};

/// A cold lookup seeds the epoch and one version per tag (in the key's tag
/// order) and finds nothing; a second lookup sees the same versions and key.
pub(super) async fn cold_lookup_seeds_once<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    // Given out of order and with a duplicate: the key sorts and de-duplicates.
    let (u, o, d) = (tag("User:42"), tag("Org:7"), tag("Dashboard"));
    let k = key("profile", [&u, &o, &d, &u]);
    assert_eq!(k.tags().len(), 3);

    assert_eq!(versions_of(store, k.tags()).await, vec![None, None, None]);

    let first = lookup(store, &k).await;
    assert!(first.entry.is_none(), "a cold key has no entry");
    assert_eq!(
        first.versions.len(),
        1 + k.tags().len(),
        "epoch + one per tag"
    );
    for v in &first.versions {
        assert!(!v.as_bytes().is_empty(), "a seeded version is never empty");
    }
    let distinct: HashSet<_> = first.versions.iter().collect();
    assert_eq!(
        distinct.len(),
        first.versions.len(),
        "each version is its own fresh token: {:?}",
        first.versions
    );
    // The tag versions are in the key's tag order: the same as versions().
    let seeded: Vec<Option<Version>> = first.versions[1..].iter().cloned().map(Some).collect();
    assert_eq!(versions_of(store, k.tags()).await, seeded);

    let second = lookup(store, &k).await;
    assert_eq!(
        second.versions, first.versions,
        "seeding only happens when absent"
    );
    assert_eq!(second.entry_key, first.entry_key);
    assert!(second.entry.is_none());

    // Another key sharing a tag sees the same version of it, and the same epoch.
    let other = lookup(store, &key("other", [&o])).await;
    assert_eq!(other.versions[0], first.versions[0], "one epoch per store");
    let o_pos = k.tags().iter().position(|t| *t == o).unwrap();
    assert_eq!(other.versions[1], first.versions[1 + o_pos]);
    Outcome::Passed
}

/// `versions` answers `None` for a tag never seen, in the position of that
/// tag, and never seeds; versions are opaque bytes, compared as they are.
pub(super) async fn versions_of_unseen_tag_is_none<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    assert!(store.versions(&[]).await.expect("versions").is_empty());
    let (seen, unseen, seen2) = (tag("User:1"), tag("User:never"), tag("Dashboard"));
    assert_eq!(version_of(store, &unseen).await, None);
    // versions() does not seed.
    assert_eq!(version_of(store, &unseen).await, None);

    let l = lookup(store, &key("k", [&seen, &seen2])).await;
    let got = versions_of(store, &[seen.clone(), unseen.clone(), seen2.clone()]).await;
    assert_eq!(got[1], None, "an unseen tag between seen ones is None");
    let pos = |t: &Tag| {
        1 + key("k", [&seen, &seen2])
            .tags()
            .iter()
            .position(|x| x == t)
            .unwrap()
    };
    assert_eq!(got[0].as_ref(), Some(&l.versions[pos(&seen)]));
    assert_eq!(got[2].as_ref(), Some(&l.versions[pos(&seen2)]));
    // Opaque: the same bytes whichever way they are read.
    assert_eq!(
        got[0].as_ref().unwrap().as_bytes(),
        l.versions[pos(&seen)].as_bytes()
    );
    assert_eq!(
        Version::from_bytes(got[0].as_ref().unwrap().as_bytes().to_vec()),
        l.versions[pos(&seen)]
    );

    // A bump of an unseen tag gives it a version.
    store
        .bump(std::slice::from_ref(&unseen))
        .await
        .expect("bump");
    assert!(version_of(store, &unseen).await.is_some());
    Outcome::Passed
}

/// Many requests hitting one cold key at once agree on one seeded version per
/// tag: seeding writes only if absent, so no request derives a key no one
/// else will look under, and none overwrites another's seed.
pub(super) async fn concurrent_cold_lookups_agree<S: Store>(subject: Subject<S>) -> Outcome {
    const THREADS: usize = 8;
    let store = subject.store();
    for round in 0..40 {
        let tags = [tag(&format!("User:{round}")), tag(&format!("Org:{round}"))];
        let k = key("profile", &tags);
        let (racer, racing_key) = (store.clone(), k.clone());
        let seen: HashSet<Vec<Version>> = all_at_once(THREADS, move |_| {
            let (store, k) = (racer.clone(), racing_key.clone());
            async move {
                let mut seen = Vec::new();
                for _ in 0..4 {
                    seen.push(store.lookup(&k).await.expect("lookup").versions);
                }
                seen
            }
        })
        .await
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(
            seen.len(),
            1,
            "round {round}: concurrent cold lookups saw different versions: {seen:?}"
        );
        let agreed = seen.into_iter().next().unwrap();
        let now: Vec<Option<Version>> = agreed[1..].iter().cloned().map(Some).collect();
        assert_eq!(versions_of(store, k.tags()).await, now, "round {round}");
    }
    Outcome::Passed
}
