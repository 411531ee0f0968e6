//! Bumps: a bump replaces the versions of its tags (all of them, at once,
//! and only them), the epoch bump reaches every entry, concurrent bumps all
//! land, and lookups racing a bump never undo it.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::task::JoinSet;

use super::{
    Outcome, Subject,
    util::{all_at_once, key, lookup, payload, put, tag, version_of, versions_of},
};
use crate::{
    key::{FragmentedKey, Tag},
    store::Store,
};

/// `bump` replaces the versions of its tags only: their keys miss, a key on
/// other tags still hits.
pub(super) async fn bump_misses_only_its_tags<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    let (u42, u43, org) = (tag("User:42"), tag("User:43"), tag("Org:7"));
    let k42 = key("profile", [&u42, &org]);
    let k43 = key("profile", [&u43, &org]);
    let l42 = lookup(store, &k42).await;
    let l43 = lookup(store, &k43).await;
    put(store, &l42, payload("42")).await;
    put(store, &l43, payload("43")).await;
    let before = versions_of(store, &[u42.clone(), u43.clone(), org.clone()]).await;

    store.bump(std::slice::from_ref(&u42)).await.expect("bump");

    let after = versions_of(store, &[u42.clone(), u43.clone(), org.clone()]).await;
    assert!(after[0].is_some(), "a bumped tag has a version");
    assert_ne!(after[0], before[0], "the bumped tag's version changed");
    assert_eq!(after[1], before[1], "an untouched tag keeps its version");
    assert_eq!(after[2], before[2], "an untouched tag keeps its version");

    let m42 = lookup(store, &k42).await;
    assert!(m42.entry.is_none(), "a key on the bumped tag misses");
    assert_ne!(m42.entry_key, l42.entry_key);
    assert_eq!(m42.versions[0], l42.versions[0], "the epoch did not move");
    assert_eq!(lookup(store, &k43).await.entry, Some(payload("43")));
    Outcome::Passed
}

/// One `bump` of N tags replaces all N versions.
pub(super) async fn bump_of_many_tags_changes_all<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    let tags: Vec<Tag> = (0..20).map(|i| tag(&format!("Item:{i}"))).collect();
    let bystander = tag("Item:bystander");
    let all = key("list", &tags);
    let single: Vec<FragmentedKey> = tags.iter().map(|t| key("one", [t])).collect();
    let l = lookup(store, &all).await;
    put(store, &l, payload("all")).await;
    for k in &single {
        let l = lookup(store, k).await;
        put(store, &l, payload("one")).await;
    }
    let kb = key("one", [&bystander]);
    let lb = lookup(store, &kb).await;
    put(store, &lb, payload("bystander")).await;
    let before = versions_of(store, &tags).await;
    assert!(before.iter().all(Option::is_some));

    store.bump(&tags).await.expect("bump");

    let after = versions_of(store, &tags).await;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(a.is_some(), "tag {i} has a version after the bump");
        assert_ne!(a, b, "tag {i} was not bumped");
    }
    assert!(lookup(store, &all).await.entry.is_none());
    for (i, k) in single.iter().enumerate() {
        assert!(
            lookup(store, k).await.entry.is_none(),
            "key of tag {i} hits"
        );
    }
    assert_eq!(lookup(store, &kb).await.entry, Some(payload("bystander")));
    // Bumping nothing is fine and changes nothing.
    store.bump(&[]).await.expect("empty bump");
    assert_eq!(versions_of(store, &tags).await, after);
    Outcome::Passed
}

/// `bump_epoch` makes every stored entry miss, tagged or not, without
/// touching tag versions.
pub(super) async fn bump_epoch_misses_everything<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    let (u, o) = (tag("User:42"), tag("Org:7"));
    let keys = [key("a", []), key("b", [&u]), key("c", [&u, &o])];
    let mut before = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let l = lookup(store, k).await;
        put(store, &l, payload(&i.to_string())).await;
        assert!(lookup(store, k).await.entry.is_some());
        before.push(l);
    }
    let tag_versions = versions_of(store, &[u.clone(), o.clone()]).await;
    let epoch = store.epoch().await.expect("epoch");
    assert_eq!(
        epoch.as_ref(),
        Some(&before[0].versions[0]),
        "epoch() reads the seeded epoch"
    );

    store.bump_epoch().await.expect("bump_epoch");
    let bumped = store.epoch().await.expect("epoch").expect("still there");
    assert_ne!(Some(bumped.clone()), epoch);

    for (k, b) in keys.iter().zip(&before) {
        let l = lookup(store, k).await;
        assert!(l.entry.is_none(), "an entry survived bump_epoch");
        assert_ne!(l.versions[0], b.versions[0], "the epoch changed");
        assert_eq!(l.versions[0], bumped, "lookups use the bumped epoch");
        assert_eq!(l.versions[1..], b.versions[1..], "tag versions untouched");
        assert_ne!(l.entry_key, b.entry_key);
    }
    assert_eq!(versions_of(store, &[u, o]).await, tag_versions);
    Outcome::Passed
}

/// 500 concurrent bumps of one tag all succeed, none is lost to a
/// read-modify-write, and the old version never comes back.
pub(super) async fn concurrent_bumps_all_land<S: Store>(subject: Subject<S>) -> Outcome {
    const BUMPS: usize = 500;
    const OBSERVERS: usize = 4;
    let store = subject.store().clone();
    let t = tag("User:42");
    let k = key("profile", [&t]);

    let first = lookup(&store, &k).await;
    put(&store, &first, payload("before the bumps")).await;
    let mut pre = HashSet::new();
    for _ in 0..5 {
        pre.insert(lookup(&store, &k).await.versions[1].clone());
        pre.insert(version_of(&store, &t).await.expect("seeded"));
    }
    assert_eq!(pre.len(), 1, "the version moved with no bump: {pre:?}");

    let done = Arc::new(AtomicBool::new(false));
    let mut observers = JoinSet::new();
    for _ in 0..OBSERVERS {
        let (store, k, t, done) = (store.clone(), k.clone(), t.clone(), done.clone());
        observers.spawn(async move {
            let mut seen = Vec::new();
            while !done.load(Ordering::Acquire) && seen.len() < 20_000 {
                let l = store.lookup(&k).await.expect("lookup during bumps");
                seen.push(l.versions[1].clone());
                let v = store
                    .versions(std::slice::from_ref(&t))
                    .await
                    .expect("versions during bumps");
                seen.push(
                    v.into_iter()
                        .next()
                        .flatten()
                        .expect("a bump never leaves the tag without a version"),
                );
                tokio::task::yield_now().await;
            }
            seen
        });
    }

    let mut bumps = JoinSet::new();
    for _ in 0..BUMPS {
        let (store, t) = (store.clone(), t.clone());
        bumps.spawn(async move { store.bump(std::slice::from_ref(&t)).await });
    }
    let mut ok = 0;
    while let Some(r) = bumps.join_next().await {
        r.expect("bump task panicked").expect("bump failed");
        ok += 1;
    }
    assert_eq!(ok, BUMPS);
    done.store(true, Ordering::Release);

    let mut observed = 0;
    while let Some(seen) = observers.join_next().await {
        let seen = seen.expect("observer panicked");
        observed += seen.len();
        // Once an observer saw a bumped version, the old one never returns.
        if let Some(first_new) = seen.iter().position(|v| !pre.contains(v)) {
            assert!(
                seen[first_new..].iter().all(|v| !pre.contains(v)),
                "the pre-bump version came back after a bump was observed"
            );
        }
    }
    assert!(observed > 0, "the observers never ran");

    let last = version_of(&store, &t)
        .await
        .expect("a version after the bumps");
    assert!(
        !pre.contains(&last),
        "after {BUMPS} bumps the version is still a pre-bump one: {last:?}"
    );
    let after = lookup(&store, &k).await;
    assert_eq!(after.versions[1], last, "lookup and versions() agree");
    assert!(
        after.entry.is_none(),
        "an entry stored before the bumps is still served"
    );
    Outcome::Passed
}

/// Lookups running while a bump lands never write an old version back: a
/// lookup started after the bump returned misses, and so does every lookup
/// once the racing ones are done.
pub(super) async fn lookups_racing_a_bump_never_undo_it<S: Store>(subject: Subject<S>) -> Outcome {
    const READERS: usize = 7;
    let store = subject.store();
    let t = tag("User:42");
    let k = key("profile", [&t]);
    for round in 0..40 {
        let old = lookup(store, &k).await;
        put(store, &old, payload("old")).await;
        let (racer, racing_tag, racing_key) = (store.clone(), t.clone(), k.clone());
        let results = all_at_once(READERS + 1, move |i| {
            let (store, t, k) = (racer.clone(), racing_tag.clone(), racing_key.clone());
            async move {
                if i == READERS {
                    store.bump(std::slice::from_ref(&t)).await.expect("bump");
                    Some(store.lookup(&k).await.expect("lookup after the bump"))
                } else {
                    for _ in 0..8 {
                        store.lookup(&k).await.expect("racing lookup");
                    }
                    None
                }
            }
        })
        .await;
        let right_after = results.into_iter().flatten().next().unwrap();
        assert!(
            right_after.entry.is_none() && right_after.versions[1] != old.versions[1],
            "round {round}: a lookup started after the bump returned saw the old version"
        );
        let settled = lookup(store, &k).await;
        assert_ne!(
            settled.versions[1], old.versions[1],
            "round {round}: a racing lookup wrote the pre-bump version back"
        );
        assert!(
            settled.entry.is_none(),
            "round {round}: the old entry is back"
        );
    }
    Outcome::Passed
}
