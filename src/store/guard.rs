//! The one guarded path to a store: a deadline, a circuit breaker and the
//! store metrics, around every call the crate makes (lookups, puts, bumps,
//! leases; from the layer, the [`Invalidator`](crate::Invalidator) and the
//! [`TagCache`](crate::TagCache) alike).
//!
//! The breaker counts consecutive failures (errors and timeouts). At the
//! threshold it opens: calls fail at once with
//! [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable), without
//! touching the store, for the cooldown. Then it lets **one** call through
//! at a time as a probe; the first probe that succeeds closes it, one that
//! fails opens it for another cooldown. A probe whose caller went away frees
//! the probe slot for the next call.

use std::{
    fmt,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;

use super::{EntryKey, Lease, Lookup, Op, Store, StoreStats};
use crate::{
    clock,
    error::Error,
    invalidate::{DEFAULT_OUTBOX_CAPACITY, Outbox},
    key::{FragmentedKey, Tag, Version},
    telemetry::StoreTimer,
};

/// The failures in a row that open the breaker, by default.
pub(crate) const DEFAULT_BREAKER_FAILURES: u32 = 5;

/// How long an open breaker skips the store before a probe, by default.
pub(crate) const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(2);

/// A store handle whose every call runs under one deadline and one breaker.
/// Clones share the breaker; the deadline is per handle.
pub(crate) struct Guarded<St> {
    store: St,
    timeout: Duration,
    breaker: Arc<Breaker>,
    /// Bumps the store did not take, re-applied until they land; shared by
    /// clones, like the breaker.
    outbox: Arc<Outbox>,
}

impl<St: Clone> Clone for Guarded<St> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            timeout: self.timeout,
            breaker: self.breaker.clone(),
            outbox: self.outbox.clone(),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for Guarded<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("store", &self.store)
            .field("timeout", &self.timeout)
            .field("breaker", &self.breaker)
            .field("outbox", &self.outbox)
            .finish()
    }
}

impl<St> Guarded<St> {
    /// `store` behind a deadline of `timeout` and a breaker of its own with
    /// the default threshold and cooldown.
    pub(crate) fn new(store: St, timeout: Duration) -> Self {
        Self {
            store,
            timeout,
            breaker: Arc::new(Breaker::new(
                DEFAULT_BREAKER_FAILURES,
                DEFAULT_BREAKER_COOLDOWN,
            )),
            outbox: Arc::new(Outbox::new(DEFAULT_OUTBOX_CAPACITY)),
        }
    }

    /// The store itself, unguarded.
    pub(crate) fn store(&self) -> &St {
        &self.store
    }

    /// The invalidation outbox.
    pub(crate) fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// A new, empty outbox bounded by `capacity` distinct tags.
    pub(crate) fn with_outbox_capacity(mut self, capacity: usize) -> Self {
        self.outbox = Arc::new(Outbox::new(capacity));
        self
    }

    /// The deadline of one call.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The circuit breaker, for `Debug` output.
    pub(crate) fn breaker(&self) -> &impl fmt::Debug {
        &*self.breaker
    }

    /// The same breaker, another deadline.
    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether the breaker is open (the store is skipped), and the store
    /// failures in a row so far.
    pub(crate) fn breaker_state(&self) -> (bool, u32) {
        (
            self.breaker.is_open(),
            self.breaker.failures.load(Ordering::Relaxed),
        )
    }

    /// A new breaker (closed) with this threshold and cooldown.
    pub(crate) fn with_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker = Arc::new(Breaker::new(failures, cooldown));
        self
    }

    /// Runs one store call: skipped while the breaker is open, bounded by
    /// the deadline, timed, and counted toward the breaker.
    pub(crate) async fn call<T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let Some(permit) = self.breaker.admit() else {
            return Err(Error::unavailable());
        };
        let result = deadline(op, self.timeout, call).await;
        match &result {
            Ok(_) if permit.probe => {
                permit.succeeded();
                // The store is back: bumps queued meanwhile go first.
                self.outbox.store_is_back();
            }
            Ok(_) => permit.succeeded(),
            Err(err) => permit.failed(err),
        }
        result
    }
}

/// The store's calls, each through [`Guarded::call`].
impl<St: Store> Guarded<St> {
    pub(crate) async fn lookup(&self, key: &FragmentedKey) -> Result<Lookup, Error> {
        self.call(Op::Lookup, self.store.lookup(key)).await
    }

    pub(crate) async fn put(
        &self,
        key: EntryKey,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), Error> {
        self.call(Op::Put, self.store.put(key, value, ttl)).await
    }

    pub(crate) async fn delete(&self, key: EntryKey) -> Result<(), Error> {
        self.call(Op::Delete, self.store.delete(key)).await
    }

    pub(crate) async fn bump(&self, tags: &[Tag]) -> Result<(), Error> {
        self.call(Op::Bump(tags.len()), self.store.bump(tags)).await
    }

    pub(crate) async fn epoch(&self) -> Result<Option<Version>, Error> {
        self.call(Op::Epoch, self.store.epoch()).await
    }

    pub(crate) async fn bump_epoch(&self) -> Result<(), Error> {
        self.call(Op::BumpEpoch, self.store.bump_epoch()).await
    }

    pub(crate) async fn versions(&self, tags: &[Tag]) -> Result<Vec<Option<Version>>, Error> {
        self.call(Op::Versions, self.store.versions(tags)).await
    }

    pub(crate) async fn acquire_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, Error> {
        self.call(Op::AcquireLease, self.store.acquire_lease(lease, ttl))
            .await
    }

    pub(crate) async fn release_lease(&self, lease: Lease) -> Result<(), Error> {
        self.call(Op::ReleaseLease, self.store.release_lease(lease))
            .await
    }

    /// The store's figures, under the deadline only: an admin's poll neither
    /// trips nor closes the breaker the requests depend on (a store may
    /// refuse `INFO` yet serve lookups, or the reverse).
    pub(crate) async fn stats(&self) -> Result<StoreStats, Error> {
        deadline(Op::Stats, self.timeout, self.store.stats()).await
    }
}

/// Runs a call under a deadline; past it, a timeout [`Error`]. This is where
/// every store call's duration, failure and invalidation is recorded.
async fn deadline<T>(
    op: Op,
    timeout: Duration,
    call: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let timer = StoreTimer::start();
    let result = tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| Err(Error::timeout()));
    timer.finish(op, &result);
    result
}

/// Consecutive failures, the open period, the probe slot and the warning
/// rate limit, all on the crate's clock.
pub(crate) struct Breaker {
    threshold: u32,
    cooldown_ms: u64,
    failures: AtomicU32,
    /// While the breaker is open: when the next probe may go. Zero when
    /// closed.
    open_until_ms: AtomicU64,
    /// A probe is in flight.
    probing: AtomicBool,
    last_warn_ms: AtomicU64,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("threshold", &self.threshold)
            .field("cooldown_ms", &self.cooldown_ms)
            .field("failures", &self.failures.load(Ordering::Relaxed))
            .field("open", &self.is_open())
            .finish()
    }
}

impl Breaker {
    fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown_ms: u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            last_warn_ms: AtomicU64::new(0),
        }
    }

    fn is_open(&self) -> bool {
        self.failures.load(Ordering::Acquire) >= self.threshold
    }

    /// Whether a call may go ahead now: always while closed; while open,
    /// only once the cooldown is over and only as the one probe in flight.
    /// The clock is read only while the breaker is open.
    fn admit(&self) -> Option<Permit<'_>> {
        if !self.is_open() {
            return Some(Permit {
                breaker: self,
                probe: false,
            });
        }
        if clock::now_ms() < self.open_until_ms.load(Ordering::Acquire) {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Permit {
                breaker: self,
                probe: true,
            })
    }

    fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Release);
        }
        if self.open_until_ms.load(Ordering::Relaxed) != 0 {
            self.open_until_ms.store(0, Ordering::Release);
        }
    }

    fn failed(&self, err: &Error) {
        let now = clock::now_ms();
        let n = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if n >= self.threshold {
            let until = now.saturating_add(self.cooldown_ms);
            self.open_until_ms.store(until, Ordering::Release);
            if n == self.threshold {
                crate::telemetry::breaker_opened();
            }
        }
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        if (last == 0 || now >= last.saturating_add(1000))
            && self
                .last_warn_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            crate::telemetry::store_failed(err, n);
        }
    }
}

/// Leave to make one call; a probe's slot is freed however the call ends,
/// cancelled included.
struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Permit<'_> {
    fn succeeded(self) {
        self.breaker.succeeded();
    }

    fn failed(self, err: &Error) {
        self.breaker.failed(err);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::Notify;

    use super::*;

    fn guarded() -> Guarded<()> {
        Guarded::new((), Duration::from_millis(100)).with_breaker(2, Duration::from_secs(2))
    }

    async fn fail(g: &Guarded<()>) -> Error {
        g.call(Op::Lookup, async {
            Err::<(), _>(Error::new(crate::error::ErrorKind::Store, "down"))
        })
        .await
        .unwrap_err()
    }

    async fn ok(g: &Guarded<()>, calls: &AtomicUsize) -> Result<(), Error> {
        g.call(Op::Lookup, async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_threshold_and_skips_the_store() {
        let g = guarded();
        let calls = AtomicUsize::new(0);
        fail(&g).await;
        ok(&g, &calls).await.unwrap();
        // A success in between resets the count: failures must be in a row.
        fail(&g).await;
        assert!(!g.breaker.is_open());
        fail(&g).await;
        assert!(g.breaker.is_open());
        let err = ok(&g, &calls).await.unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Unavailable);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "an open breaker skips the store"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_successful_probe_closes_it() {
        let g = guarded();
        let calls = AtomicUsize::new(0);
        fail(&g).await;
        fail(&g).await;
        tokio::time::advance(Duration::from_millis(1999)).await;
        assert!(ok(&g, &calls).await.is_err(), "still cooling down");
        tokio::time::advance(Duration::from_millis(1)).await;
        ok(&g, &calls).await.unwrap();
        // Closed at once: every call goes through, no second cooldown.
        for _ in 0..10 {
            ok(&g, &calls).await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 11);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_for_another_cooldown() {
        let g = guarded();
        let calls = AtomicUsize::new(0);
        fail(&g).await;
        fail(&g).await;
        tokio::time::advance(Duration::from_secs(2)).await;
        fail(&g).await;
        assert!(ok(&g, &calls).await.is_err());
        tokio::time::advance(Duration::from_secs(2)).await;
        ok(&g, &calls).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_at_a_time_and_a_cancelled_probe_frees_the_slot() {
        let g = guarded();
        let calls = AtomicUsize::new(0);
        fail(&g).await;
        fail(&g).await;
        tokio::time::advance(Duration::from_secs(2)).await;
        let entered = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let probe = {
            let (g, entered, release) = (g.clone(), entered.clone(), release.clone());
            tokio::spawn(async move {
                g.call(Op::Lookup, async {
                    entered.notify_one();
                    release.notified().await;
                    Ok(())
                })
                .await
            })
        };
        entered.notified().await;
        // While the probe is out, everyone else is turned away.
        assert!(ok(&g, &calls).await.is_err());
        probe.abort();
        assert!(probe.await.unwrap_err().is_cancelled());
        // The cancelled probe proved nothing; the next call probes.
        ok(&g, &calls).await.unwrap();
        ok(&g, &calls).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        drop(release);
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_count_as_failures() {
        let g = guarded();
        for _ in 0..2 {
            let err = g
                .call(Op::Put, std::future::pending::<Result<(), Error>>())
                .await
                .unwrap_err();
            assert!(err.is_timeout());
        }
        assert!(g.breaker.is_open());
    }
}
