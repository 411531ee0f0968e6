//! Single-flight: concurrent misses on one key in one process make one
//! computation; the others wait (bounded) for its result. The layer shares
//! stored responses this way, the value cache encoded values.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::watch;

/// The computations in flight, by key.
pub(crate) struct Flights<T> {
    map: Mutex<HashMap<String, watch::Receiver<Option<T>>>>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            map: Mutex::default(),
        }
    }
}

impl<T> fmt::Debug for Flights<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.map.lock().map_or(0, |m| m.len());
        f.debug_struct("Flights").field("in_flight", &n).finish()
    }
}

/// What a missing caller does.
pub(crate) enum Role<T> {
    /// Computes, and publishes what it got.
    Lead(Leader<T>),
    /// Waits for the leader's result ([`follow`]).
    Follow(watch::Receiver<Option<T>>),
}

/// The caller that computes for everyone. Dropping it without publishing
/// (the result was not storable, the computation failed, its caller went
/// away) releases the followers, who then compute or join again.
pub(crate) struct Leader<T> {
    flights: Arc<Flights<T>>,
    key: String,
    tx: watch::Sender<Option<T>>,
    /// Kept until the leader is done (the layer's fleet-wide lease).
    held: Option<Box<dyn Send + Sync>>,
}

impl<T> fmt::Debug for Leader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leader")
            .field("key", &self.key)
            .field("holds", &self.held.is_some())
            .finish()
    }
}

impl<T> Flights<T> {
    /// Leads the computation of `key`, or follows the one in flight.
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Role<T> {
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
            held: None,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

impl<T> Leader<T> {
    /// Hands the result to the followers. Keep the leader until the store
    /// write is done: callers that join in between still get it.
    pub(crate) fn publish(&self, value: T) {
        let _ = self.tx.send(Some(value));
    }

    /// Keeps `thing` (a fleet-wide lease) until this leader is done.
    pub(crate) fn hold(&mut self, thing: impl Send + Sync + 'static) {
        self.held = Some(Box::new(thing));
    }
}

impl<T> Drop for Leader<T> {
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

/// Waits for a leader's result; `None` when it gave up or the wait timed
/// out. A wait too long for the clock is unbounded.
pub(crate) async fn follow<T: Clone>(
    mut rx: watch::Receiver<Option<T>>,
    wait: Duration,
) -> Option<T> {
    let got = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
    match got {
        Ok(Ok(slot)) => slot.clone(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> &'static str {
        "x"
    }

    #[tokio::test]
    async fn followers_get_the_leaders_entry_and_the_map_empties() {
        let flights = Arc::new(Flights::<&str>::default());
        let Role::Lead(leader) = flights.join("k") else {
            panic!("first leads")
        };
        let Role::Follow(rx) = flights.join("k") else {
            panic!("second follows")
        };
        let waiting = tokio::spawn(follow(rx, Duration::from_secs(5)));
        leader.publish(entry());
        assert_eq!(waiting.await.unwrap().unwrap(), "x");
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
        let flights = Arc::new(Flights::<&str>::default());
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

    #[tokio::test(start_paused = true)]
    async fn waits_are_bounded() {
        let flights = Arc::new(Flights::<&str>::default());
        let Role::Lead(_leader) = flights.join("k") else {
            panic!()
        };
        let Role::Follow(rx) = flights.join("k") else {
            panic!()
        };
        assert!(follow(rx, Duration::from_millis(20)).await.is_none());
    }
}
