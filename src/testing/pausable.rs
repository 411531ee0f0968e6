//! A store wrapper that counts calls and can hold them at a gate.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::{Semaphore, watch};

use super::{Call, Calls};
use crate::{
    error::Error,
    key::{FragmentedKey, Tag, Version},
    store::Store,
    store::{EntryKey, Lease, Lookup, StoreStats},
};

/// How long the `until_*` waits wait before they panic.
const WAIT: Duration = Duration::from_secs(5);

/// Wraps a real store: counts every call once the inner store answered, and
/// holds the calls a test chose at a [`Gate`] until it lets them through.
///
/// It fakes nothing: every call reaches the inner store. Use it to await
/// the layer's background store write instead of sleeping, or to stop a
/// race at a chosen point (a lookup that read its versions, a put about to
/// land).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_tagged_cache::{
///     MemoryStore, Store, Tag,
///     key::FragmentedKey,
///     testing::{Call, PausableStore},
/// };
///
/// let store = PausableStore::new(MemoryStore::new());
/// let key = FragmentedKey::builder("user", 1, "").tag(Tag::new("User", 1)?).finish();
/// let gate = store.hold(Call::Lookup);
/// let lookup = tokio::spawn({
///     let (store, key) = (store.clone(), key.clone());
///     async move { store.lookup(&key).await }
/// });
/// gate.until_arrived(1).await; // the lookup waits at the gate
/// assert_eq!(store.completed(Call::Lookup), 0);
/// gate.open();
/// lookup.await??;
/// store.until_completed(Call::Lookup, 1).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PausableStore<S> {
    inner: S,
    shared: Arc<Shared>,
}

struct Shared {
    /// Calls answered by the inner store, per [`Call::index`].
    completed: watch::Sender<[usize; Call::ALL.len()]>,
    /// Lease attempts the inner store refused.
    refused: watch::Sender<usize>,
    gates: Mutex<Vec<Arc<GateState>>>,
}

struct GateState {
    calls: Calls,
    arrived: watch::Sender<usize>,
    permits: Semaphore,
}

impl<S> PausableStore<S> {
    /// Wraps `inner`; no call is held until [`hold`](Self::hold).
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                completed: watch::Sender::new([0; Call::ALL.len()]),
                refused: watch::Sender::new(0),
                gates: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Calls of this kind the inner store answered so far (with success or
    /// an error).
    pub fn completed(&self, call: Call) -> usize {
        self.shared.completed.borrow()[call.index()]
    }

    /// Waits until the inner store answered `n` calls of this kind in all.
    ///
    /// # Panics
    ///
    /// After 5 s (of tokio's clock) without them, naming the call.
    pub async fn until_completed(&self, call: Call, n: usize) {
        let mut rx = self.shared.completed.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|c| c[call.index()] >= n))
            .await
            .unwrap_or_else(|_| panic!("{call:?} #{n} never completed"))
            .expect("the store is alive");
    }

    /// Lease attempts the inner store refused so far (another held it).
    pub fn refused_leases(&self) -> usize {
        *self.shared.refused.borrow()
    }

    /// Waits until `n` lease attempts were refused in all.
    ///
    /// # Panics
    ///
    /// After 5 s (of tokio's clock) without them.
    pub async fn until_refused_leases(&self, n: usize) {
        let mut rx = self.shared.refused.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|r| *r >= n))
            .await
            .unwrap_or_else(|_| panic!("refused lease #{n} never came"))
            .expect("the store is alive");
    }

    /// From now on, calls in `calls` wait at the returned gate before they
    /// reach the inner store, until it lets them through. Dropping the gate
    /// opens it.
    pub fn hold(&self, calls: impl Into<Calls>) -> Gate {
        let state = Arc::new(GateState {
            calls: calls.into(),
            arrived: watch::Sender::new(0),
            permits: Semaphore::new(0),
        });
        self.shared
            .gates
            .lock()
            .expect("gates lock")
            .push(state.clone());
        Gate {
            state,
            shared: self.shared.clone(),
        }
    }

    /// Waits at a gate holding `call`, if there is one.
    async fn pass(&self, call: Call) {
        let gate = self
            .shared
            .gates
            .lock()
            .expect("gates lock")
            .iter()
            .find(|g| g.calls.contains(call))
            .cloned();
        if let Some(gate) = gate {
            gate.arrived.send_modify(|n| *n += 1);
            // Closed when the gate opens: then every caller passes.
            if let Ok(permit) = gate.permits.acquire().await {
                permit.forget();
            }
        }
    }

    fn done(&self, call: Call) {
        self.shared.completed.send_modify(|c| c[call.index()] += 1);
    }
}

impl<S: fmt::Debug> fmt::Debug for PausableStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PausableStore")
            .field("inner", &self.inner)
            .field("completed", &*self.shared.completed.borrow())
            .finish_non_exhaustive()
    }
}

/// Holds calls of a [`PausableStore`] until the test lets them through.
/// Dropping it opens it. See [`PausableStore::hold`].
pub struct Gate {
    state: Arc<GateState>,
    shared: Arc<Shared>,
}

impl Gate {
    /// Calls that reached the gate so far (waiting or let through).
    pub fn arrived(&self) -> usize {
        *self.state.arrived.borrow()
    }

    /// Waits until `n` calls reached the gate in all.
    ///
    /// # Panics
    ///
    /// After 5 s (of tokio's clock) without them.
    pub async fn until_arrived(&self, n: usize) {
        let mut rx = self.state.arrived.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|a| *a >= n))
            .await
            .unwrap_or_else(|_| panic!("call #{n} never reached the gate"))
            .expect("the gate is alive");
    }

    /// Lets `n` more calls through (waiting ones first, then the next to
    /// come).
    pub fn release(&self, n: usize) {
        self.state.permits.add_permits(n);
    }

    /// Lets every waiting and every later call through, and removes the
    /// gate.
    pub fn open(self) {}
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.state.permits.close();
        if let Ok(mut gates) = self.shared.gates.lock() {
            gates.retain(|g| !Arc::ptr_eq(g, &self.state));
        }
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("calls", &self.state.calls)
            .field("arrived", &self.arrived())
            .finish()
    }
}

impl<S: Store> Store for PausableStore<S> {
    async fn lookup<'a>(&'a self, key: &'a FragmentedKey) -> Result<Lookup, Error> {
        self.pass(Call::Lookup).await;
        let result = self.inner.lookup(key).await;
        self.done(Call::Lookup);
        result
    }

    async fn put(&self, key: EntryKey, value: Bytes, ttl: Duration) -> Result<(), Error> {
        self.pass(Call::Put).await;
        let result = self.inner.put(key, value, ttl).await;
        self.done(Call::Put);
        result
    }

    async fn delete(&self, key: EntryKey) -> Result<(), Error> {
        self.pass(Call::Delete).await;
        let result = self.inner.delete(key).await;
        self.done(Call::Delete);
        result
    }

    async fn bump<'a>(&'a self, tags: &'a [Tag]) -> Result<(), Error> {
        self.pass(Call::Bump).await;
        let result = self.inner.bump(tags).await;
        self.done(Call::Bump);
        result
    }

    async fn epoch(&self) -> Result<Option<Version>, Error> {
        self.pass(Call::Epoch).await;
        let result = self.inner.epoch().await;
        self.done(Call::Epoch);
        result
    }

    async fn bump_epoch(&self) -> Result<(), Error> {
        self.pass(Call::BumpEpoch).await;
        let result = self.inner.bump_epoch().await;
        self.done(Call::BumpEpoch);
        result
    }

    async fn versions<'a>(&'a self, tags: &'a [Tag]) -> Result<Vec<Option<Version>>, Error> {
        self.pass(Call::Versions).await;
        let result = self.inner.versions(tags).await;
        self.done(Call::Versions);
        result
    }

    fn new_lease(&self, key: &EntryKey) -> Lease {
        self.inner.new_lease(key)
    }

    async fn acquire_lease<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> Result<bool, Error> {
        self.pass(Call::AcquireLease).await;
        let result = self.inner.acquire_lease(lease, ttl).await;
        if matches!(result, Ok(false)) {
            self.shared.refused.send_modify(|r| *r += 1);
        }
        self.done(Call::AcquireLease);
        result
    }

    async fn release_lease(&self, lease: Lease) -> Result<(), Error> {
        self.pass(Call::ReleaseLease).await;
        let result = self.inner.release_lease(lease).await;
        self.done(Call::ReleaseLease);
        result
    }

    /// Forwarded as it is: not counted, never held.
    async fn stats(&self) -> Result<StoreStats, Error> {
        self.inner.stats().await
    }
}
