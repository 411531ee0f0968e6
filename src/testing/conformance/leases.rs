//! Leases: a store either coordinates nothing (every lease is local and
//! granted) or keeps one holder per entry key, given back by its holder only.

use std::time::Duration;

use super::{
    Outcome, Subject,
    util::{key, lookup, tag},
};
use crate::store::Store;

/// A local lease is granted every time. A lease kept in the store excludes
/// every other lease on the same entry while held; a release by someone who
/// does not hold it changes nothing; the holder's release frees it.
pub(super) async fn leases_exclude_or_are_local<S: Store>(subject: Subject<S>) -> Outcome {
    let store = subject.store();
    let l = lookup(store, &key("leased", [&tag("User:1")])).await;
    let ttl = Duration::from_secs(30);
    let held = store.new_lease(&l.entry_key);
    let Some((lease_key, _)) = held.parts() else {
        // Local: nothing to coordinate, so nothing may ever be refused.
        for _ in 0..2 {
            assert!(
                store.acquire_lease(&held, ttl).await.expect("acquire"),
                "a local lease (no parts) was refused"
            );
        }
        store.release_lease(held).await.expect("release");
        return Outcome::Passed;
    };
    assert!(
        store.acquire_lease(&held, ttl).await.expect("acquire"),
        "a free lease is granted"
    );
    let other = store.new_lease(&l.entry_key);
    assert_eq!(
        other.parts().map(|p| p.0),
        Some(lease_key),
        "two leases on one entry live under one store key"
    );
    assert_ne!(other, held, "each lease has its own token");
    assert!(
        !store.acquire_lease(&other, ttl).await.expect("acquire"),
        "a held lease was granted to another"
    );
    store
        .release_lease(other.clone())
        .await
        .expect("release by a stranger");
    assert!(
        !store.acquire_lease(&other, ttl).await.expect("acquire"),
        "a release by one who does not hold the lease freed it"
    );
    store.release_lease(held).await.expect("release");
    assert!(
        store.acquire_lease(&other, ttl).await.expect("acquire"),
        "the holder's release did not free the lease"
    );
    store.release_lease(other).await.expect("release");
    Outcome::Passed
}
