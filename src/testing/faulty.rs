//! A store wrapper that fails calls on a schedule.

use std::{
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::watch;

use super::{Call, Calls};
use crate::{
    error::Error,
    key::{FragmentedKey, Tag, Version},
    store::Store,
    store::{EntryKey, Lease, Lookup, StoreStats},
};

/// How a [`FaultyStore`] call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The call fails at once with a store error (as a refused connection
    /// does): [`ErrorKind::Store`](crate::ErrorKind::Store).
    Error,
    /// The call fails at once with a timeout, as a client with its own
    /// deadline reports one: [`ErrorKind::Timeout`](crate::ErrorKind::Timeout).
    Timeout,
    /// The call hangs until [`FaultyStore::release_hung`] or
    /// [`FaultyStore::heal`], then goes on to the inner store; the caller's
    /// deadline usually ends it first.
    Hang,
}

/// Wraps a real store and fails the calls a test schedules: "the next 3
/// lookups fail", "every put hangs until released", "every call fails from
/// now on". Calls with no fault scheduled reach the inner store.
///
/// It injects faults; it fakes no data. See the [module docs](super) for
/// an example.
#[derive(Clone)]
pub struct FaultyStore<S> {
    inner: S,
    shared: Arc<Shared>,
}

struct Shared {
    plan: Mutex<Vec<Rule>>,
    calls: AtomicUsize,
    faults: AtomicUsize,
    /// Calls hanging now.
    hung: watch::Sender<usize>,
    /// Bumped to let every hanging call go on.
    releases: watch::Sender<u64>,
}

#[derive(Debug)]
struct Rule {
    calls: Calls,
    fault: Fault,
    /// Calls left to fail; `None`: every call until healed.
    left: Option<usize>,
}

impl<S> FaultyStore<S> {
    /// Wraps `inner`, with no fault scheduled.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                plan: Mutex::new(Vec::new()),
                calls: AtomicUsize::new(0),
                faults: AtomicUsize::new(0),
                hung: watch::Sender::new(0),
                releases: watch::Sender::new(0),
            }),
        }
    }

    /// Wraps `inner` and fails every call with `fault` until
    /// [`heal`](Self::heal): a store that is down.
    pub fn always(inner: S, fault: Fault) -> Self {
        let store = Self::new(inner);
        store.fail_from_now(Calls::ALL, fault);
        store
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The next `n` calls in `calls` fail with `fault`. Schedules apply in
    /// the order they were made.
    pub fn fail_next(&self, calls: impl Into<Calls>, n: usize, fault: Fault) {
        self.schedule(calls.into(), fault, Some(n));
    }

    /// Every call in `calls` fails with `fault` until [`heal`](Self::heal).
    pub fn fail_from_now(&self, calls: impl Into<Calls>, fault: Fault) {
        self.schedule(calls.into(), fault, None);
    }

    /// Clears every schedule and lets hanging calls go on to the inner
    /// store.
    pub fn heal(&self) {
        self.shared.plan.lock().expect("plan lock").clear();
        self.release_hung();
    }

    /// Lets the calls hanging now go on to the inner store (later ones still
    /// hang while a [`Fault::Hang`] is scheduled).
    pub fn release_hung(&self) {
        self.shared.releases.send_modify(|r| *r += 1);
    }

    /// Calls that reached this wrapper, failed or not.
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Faults injected so far.
    pub fn faults(&self) -> usize {
        self.shared.faults.load(Ordering::SeqCst)
    }

    /// Calls hanging now.
    pub fn hung(&self) -> usize {
        *self.shared.hung.borrow()
    }

    /// Waits until `n` calls hang at once.
    ///
    /// # Panics
    ///
    /// After 5 s (of tokio's clock) without them.
    pub async fn until_hung(&self, n: usize) {
        let mut rx = self.shared.hung.subscribe();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|h| *h >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} calls never hung at once"))
            .expect("the store is alive");
    }

    fn schedule(&self, calls: Calls, fault: Fault, left: Option<usize>) {
        if left == Some(0) {
            return;
        }
        self.shared
            .plan
            .lock()
            .expect("plan lock")
            .push(Rule { calls, fault, left });
    }

    /// Counts the call and plays its fault, if one is due: `Err` to fail,
    /// `Ok` to go on to the inner store (at once, or after a hang).
    async fn enter(&self, call: Call) -> Result<(), Error> {
        self.shared.calls.fetch_add(1, Ordering::SeqCst);
        let fault = {
            let mut plan = self.shared.plan.lock().expect("plan lock");
            let due = plan.iter().position(|r| r.calls.contains(call));
            due.map(|i| {
                let fault = plan[i].fault;
                if let Some(left) = &mut plan[i].left {
                    *left -= 1;
                    if *left == 0 {
                        plan.remove(i);
                    }
                }
                fault
            })
        };
        let Some(fault) = fault else {
            return Ok(());
        };
        self.shared.faults.fetch_add(1, Ordering::SeqCst);
        match fault {
            Fault::Error => Err(Error::store(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("FaultyStore: {call:?} failed as scheduled"),
            ))),
            Fault::Timeout => Err(Error::timeout()),
            Fault::Hang => {
                // A new receiver has seen every release so far.
                let mut releases = self.shared.releases.subscribe();
                self.shared.hung.send_modify(|h| *h += 1);
                let _still_hung = HangGuard(&self.shared.hung);
                // Ends when released, or never: the caller's deadline drops
                // this future, and the guard counts it out.
                let _ = releases.changed().await;
                Ok(())
            }
        }
    }
}

/// Counts a hanging call out when it stops hanging (released or dropped).
struct HangGuard<'a>(&'a watch::Sender<usize>);

impl Drop for HangGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|h| *h -= 1);
    }
}

impl<S: fmt::Debug> fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner)
            .field("plan", &*self.shared.plan.lock().expect("plan lock"))
            .field("calls", &self.calls())
            .field("faults", &self.faults())
            .finish()
    }
}

impl<S: Store> Store for FaultyStore<S> {
    async fn lookup<'a>(&'a self, key: &'a FragmentedKey) -> Result<Lookup, Error> {
        self.enter(Call::Lookup).await?;
        self.inner.lookup(key).await
    }

    async fn put(&self, key: EntryKey, value: Bytes, ttl: Duration) -> Result<(), Error> {
        self.enter(Call::Put).await?;
        self.inner.put(key, value, ttl).await
    }

    async fn delete(&self, key: EntryKey) -> Result<(), Error> {
        self.enter(Call::Delete).await?;
        self.inner.delete(key).await
    }

    async fn bump<'a>(&'a self, tags: &'a [Tag]) -> Result<(), Error> {
        self.enter(Call::Bump).await?;
        self.inner.bump(tags).await
    }

    async fn epoch(&self) -> Result<Option<Version>, Error> {
        self.enter(Call::Epoch).await?;
        self.inner.epoch().await
    }

    async fn bump_epoch(&self) -> Result<(), Error> {
        self.enter(Call::BumpEpoch).await?;
        self.inner.bump_epoch().await
    }

    async fn versions<'a>(&'a self, tags: &'a [Tag]) -> Result<Vec<Option<Version>>, Error> {
        self.enter(Call::Versions).await?;
        self.inner.versions(tags).await
    }

    fn new_lease(&self, key: &EntryKey) -> Lease {
        self.inner.new_lease(key)
    }

    async fn acquire_lease<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> Result<bool, Error> {
        self.enter(Call::AcquireLease).await?;
        self.inner.acquire_lease(lease, ttl).await
    }

    async fn release_lease(&self, lease: Lease) -> Result<(), Error> {
        self.enter(Call::ReleaseLease).await?;
        self.inner.release_lease(lease).await
    }

    /// Forwarded as it is: not counted, never failed.
    async fn stats(&self) -> Result<StoreStats, Error> {
        self.inner.stats().await
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use super::*;
    use crate::{error::ErrorKind, store::MemoryStore};

    fn tags() -> Vec<Tag> {
        vec![Tag::new("User", 1).unwrap()]
    }

    #[tokio::test]
    async fn schedules_fail_the_calls_they_name_then_stop() {
        let store = FaultyStore::new(MemoryStore::new());
        store.fail_next(Call::Bump, 2, Fault::Timeout);
        store.fail_next(Calls::ALL, 1, Fault::Error);
        assert!(store.bump(&tags()).await.unwrap_err().is_timeout());
        assert_eq!(
            store.versions(&tags()).await.unwrap_err().kind(),
            ErrorKind::Store
        );
        assert!(store.bump(&tags()).await.unwrap_err().is_timeout());
        store.bump(&tags()).await.unwrap();
        assert!(store.versions(&tags()).await.unwrap()[0].is_some());
        assert_eq!((store.calls(), store.faults()), (5, 3));

        store.fail_from_now(Calls::ALL, Fault::Error);
        for _ in 0..3 {
            store.epoch().await.unwrap_err();
        }
        store.heal();
        store.epoch().await.unwrap();
    }

    #[tokio::test]
    async fn hung_calls_wait_until_released_then_reach_the_store() {
        let store = FaultyStore::new(MemoryStore::new());
        store.fail_from_now(Call::Bump, Fault::Hang);
        let bump = tokio::spawn({
            let store = store.clone();
            async move { store.bump(&tags()).await }
        });
        store.until_hung(1).await;
        assert!(!bump.is_finished());
        assert_eq!(store.inner().versions(&tags()).await.unwrap(), [None]);
        store.release_hung();
        bump.await.unwrap().unwrap();
        assert_eq!(store.hung(), 0);
        assert!(store.inner().versions(&tags()).await.unwrap()[0].is_some());

        // A hanging call its caller gave up on is counted out.
        let gave_up = tokio::time::timeout(Duration::from_millis(1), store.bump(&tags())).await;
        assert!(gave_up.is_err());
        assert_eq!(store.hung(), 0);
    }
}
