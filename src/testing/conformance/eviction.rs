//! Eviction: a version dropped behind the store's back (as eviction or an
//! expiry would) and seeded again never brings an old entry back. Reaching
//! behind the store takes a [`Backdoor`](super::Backdoor).

use super::{
    Outcome, Subject,
    util::{key, lookup, payload, put, tag, version_of},
};
use crate::store::Store;

const NO_BACKDOOR: &str = "needs a Backdoor to evict versions behind the store's back \
     (Subject::with_backdoor)";

/// A version evicted and re-seeded never brings an old entry back: the store
/// still holds it, but no lookup reaches it.
pub(super) async fn evicted_version_never_resurrects_entries<S: Store>(
    subject: Subject<S>,
) -> Outcome {
    let Some(backdoor) = subject.backdoor() else {
        return Outcome::Skipped(NO_BACKDOOR);
    };
    let store = subject.store();
    let t = tag("User:42");
    let k = key("profile", [&t]);
    let old = lookup(store, &k).await;
    put(store, &old, payload("old")).await;
    assert!(lookup(store, &k).await.entry.is_some());

    for round in 0..3 {
        backdoor.evict_versions(std::slice::from_ref(&t)).await;
        assert_eq!(version_of(store, &t).await, None, "round {round}: evicted");

        let l = lookup(store, &k).await;
        assert!(
            l.entry.is_none(),
            "round {round}: an old entry came back after its version was re-seeded"
        );
        assert_ne!(
            l.versions[1], old.versions[1],
            "round {round}: re-seeded to the old value"
        );
        assert_ne!(l.entry_key, old.entry_key);
        assert_eq!(version_of(store, &t).await.as_ref(), Some(&l.versions[1]));
    }
    assert!(
        backdoor.holds_entry(&old.entry_key).await,
        "the old entry is still stored (the check above would be vacuous otherwise)"
    );
    Outcome::Passed
}
