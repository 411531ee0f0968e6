//! Single-flight: concurrent misses on one entry key in one process make one
//! inner call; the others wait (bounded) for its stored response.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;

use crate::store::{Lease, Store, entry::CachedResponse};

type Slot = Option<Arc<CachedResponse>>;

/// The misses in flight, by entry key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, watch::Receiver<Slot>>>,
}

/// What a missing request does.
pub(crate) enum Role {
    /// Calls the inner service and publishes what it stores.
    Lead(Leader),
    /// Waits for the leader's response.
    Follow(watch::Receiver<Slot>),
}

/// The request that calls the inner service for everyone. Dropping it
/// without publishing (the response was not storable, its body failed, its
/// client went away) releases the followers, who then call the inner
/// service themselves.
#[derive(Debug)]
pub(crate) struct Leader {
    flights: Arc<Flights>,
    key: String,
    tx: watch::Sender<Slot>,
    /// The fleet-wide lease, given back when the leader is done.
    lease: Option<Box<dyn std::fmt::Debug + Send + Sync>>,
}

impl Flights {
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Role {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = map.get(key)
            && rx.has_changed().is_ok()
        {
            return Role::Follow(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.to_owned(), rx);
        Role::Lead(Leader {
            flights: self.clone(),
            key: key.to_owned(),
            tx,
            lease: None,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

impl Leader {
    /// Hands the response to the followers. Keep the leader until the
    /// store write is done: requests that join in between still get it.
    pub(crate) fn publish(&self, entry: Arc<CachedResponse>) {
        let _ = self.tx.send(Some(entry));
    }

    /// Keeps a fleet-wide lease until this leader is done: the entry is
    /// stored, or the response turned out not storable.
    pub(crate) fn hold<St: Store>(&mut self, lease: LeaseGuard<St>) {
        self.lease = Some(Box::new(lease));
    }
}

/// A lease taken in the store, given back (in a task, under the store
/// deadline) when dropped. A lease that cannot be given back runs out.
pub(crate) struct LeaseGuard<St: Store> {
    store: St,
    lease: Option<Lease>,
    timeout: std::time::Duration,
}

impl<St: Store> LeaseGuard<St> {
    /// Guards `lease` from before it is asked for: dropped at any point
    /// (an acquire that timed out, a cancelled request, the entry stored),
    /// it gives the lease back, which is a no-op where its token does not
    /// hold it.
    pub(crate) fn new(store: St, lease: Lease, timeout: std::time::Duration) -> Self {
        Self {
            store,
            lease: Some(lease),
            timeout,
        }
    }

    pub(crate) fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// Another holds the lease: nothing to give back.
    pub(crate) fn disarm(mut self) {
        self.lease = None;
    }
}

impl<St: Store> std::fmt::Debug for LeaseGuard<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl<St: Store> Drop for LeaseGuard<St> {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take().filter(|l| l.parts().is_some()) else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        let timeout = self.timeout;
        rt.spawn(async move {
            let op = crate::store::Op::ReleaseLease;
            let _ = crate::store::deadline(op, timeout, store.release_lease(lease)).await;
        });
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock().unwrap_or_else(|e| e.into_inner());
        // Remove our own flight only (a later one may hold the key now).
        if map
            .get(&self.key)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            map.remove(&self.key);
        }
    }
}

/// Waits for a leader's response; `None` when it gave up or the wait
/// timed out.
pub(crate) async fn follow(
    mut rx: watch::Receiver<Slot>,
    wait: std::time::Duration,
) -> Option<Arc<CachedResponse>> {
    let got = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
    match got {
        Ok(Ok(slot)) => slot.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use std::time::Duration;

    fn entry() -> Arc<CachedResponse> {
        Arc::new(CachedResponse {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"x"),
            trailers: None,
            stored_at_ms: 0,
            ttl: Duration::from_secs(1),
            initial_age_ms: 0,
            freshness: Duration::from_secs(1),
            vary: Vec::new(),
        })
    }

    #[tokio::test]
    async fn followers_get_the_leaders_entry_and_the_map_empties() {
        let flights = Arc::new(Flights::default());
        let Role::Lead(leader) = flights.join("k") else {
            panic!("first leads")
        };
        let Role::Follow(rx) = flights.join("k") else {
            panic!("second follows")
        };
        let waiting = tokio::spawn(follow(rx, Duration::from_secs(5)));
        leader.publish(entry());
        assert_eq!(waiting.await.unwrap().unwrap().body, "x");
        // Joining after the publish still gets it, until the leader is done.
        let Role::Follow(late) = flights.join("k") else {
            panic!("still in flight")
        };
        assert!(follow(late, Duration::from_secs(5)).await.is_some());
        drop(leader);
        assert_eq!(flights.len(), 0);
        assert!(matches!(flights.join("k"), Role::Lead(_)));
    }

    #[tokio::test]
    async fn a_leader_that_gives_up_releases_its_followers() {
        let flights = Arc::new(Flights::default());
        let Role::Lead(leader) = flights.join("k") else {
            panic!()
        };
        let Role::Follow(rx) = flights.join("k") else {
            panic!()
        };
        drop(leader);
        assert!(follow(rx, Duration::from_secs(5)).await.is_none());
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn waits_are_bounded() {
        let flights = Arc::new(Flights::default());
        let Role::Lead(_leader) = flights.join("k") else {
            panic!()
        };
        let Role::Follow(rx) = flights.join("k") else {
            panic!()
        };
        assert!(follow(rx, Duration::from_millis(20)).await.is_none());
    }
}
