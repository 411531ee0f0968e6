use std::{
    fmt,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tower_layer::Layer;

use super::{TaggedCache, policy::Reason};
use crate::{
    Error, Invalidator,
    error::ConfigError,
    rules::{CacheRule, RuleTable},
    store::{Op, Store},
    telemetry,
};

/// Default deadline of one store call on the request path: 500 ms.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// Default longest wait of a request for a concurrent miss on the same key:
/// 10 s.
pub const DEFAULT_FLIGHT_WAIT: Duration = Duration::from_secs(10);

/// Default largest body stored: 4 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 4 * 1024 * 1024;

/// [`Layer`] that caches responses under fragmented keys. See the
/// [crate docs](crate) for an example.
#[derive(Clone)]
#[must_use]
pub struct TaggedCacheLayer<St> {
    pub(crate) shared: Arc<Shared<St>>,
}

/// Configuration and state shared by the layer, its services and their futures.
#[derive(Clone)]
pub(crate) struct Shared<St> {
    pub(crate) store: St,
    pub(crate) rules: RuleTable,
    pub(crate) namespace: String,
    pub(crate) invalidate_unsafe: bool,
    pub(crate) flights: Arc<super::flight::Flights>,
    pub(crate) flight_wait: Duration,
    pub(crate) store_timeout: Duration,
    pub(crate) max_body_size: usize,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    pub(crate) health: Arc<Health>,
}

impl<St: Store> TaggedCacheLayer<St> {
    /// A layer over `store`, with no rules yet: add them with
    /// [`rule`](Self::rule). Requests that match no rule pass through.
    pub fn new(store: St) -> Self {
        telemetry::describe();
        Self {
            shared: Arc::new(Shared {
                store,
                rules: RuleTable::default(),
                namespace: String::new(),
                invalidate_unsafe: true,
                flights: Arc::default(),
                flight_wait: DEFAULT_FLIGHT_WAIT,
                store_timeout: DEFAULT_STORE_TIMEOUT,
                max_body_size: DEFAULT_MAX_BODY_SIZE,
                breaker_threshold: 5,
                breaker_cooldown: Duration::from_secs(2),
                health: Arc::new(Health::new()),
            }),
        }
    }

    /// Adds a rule.
    ///
    /// # Errors
    ///
    /// When a tag template is malformed, a placeholder names no parameter of
    /// the route, the route conflicts with another, or the rule mixes caching
    /// and invalidation. The message names the rule and the template.
    pub fn rule(mut self, rule: CacheRule) -> Result<Self, ConfigError> {
        let compiled = rule.compile()?;
        Arc::make_mut(&mut self.shared).rules.insert(compiled)?;
        Ok(self)
    }

    /// A namespace hashed into every key this layer derives, for layers that
    /// share a store and could otherwise derive the same keys (two nested
    /// routers with the same inner routes). Tags are not namespaced:
    /// bumping `User:42` reaches every layer on the store. Defaults to empty.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.shared).namespace = namespace.into();
        self
    }

    /// Whether a successful (2xx or 3xx) `POST`, `PUT`, `PATCH` or `DELETE`
    /// through the layer invalidates what is stored for its target URI, and
    /// for its `Location` and `Content-Location` on the same host (RFC 9111
    /// §4.4). Every cached response carries a per-URI tag for this. Defaults
    /// to `true`.
    pub fn invalidate_unsafe_requests(mut self, enabled: bool) -> Self {
        Arc::make_mut(&mut self.shared).invalidate_unsafe = enabled;
        self
    }

    /// Single-flight: while one `GET` that missed is computing a response,
    /// other requests that miss on the same key wait up to `wait` for it and
    /// are answered from it (`cache-status: tower-tagged-cache; hit;
    /// detail=coalesced`), so N concurrent misses make one inner call. When
    /// the first one's response is not stored (its status, its body, its
    /// client went away) or the wait runs out, they call the inner service
    /// themselves. `Duration::ZERO` turns it off. Defaults to 10 s.
    pub fn single_flight_wait(mut self, wait: Duration) -> Self {
        Arc::make_mut(&mut self.shared).flight_wait = wait;
        self
    }

    /// The deadline of one store call on the request path (lookup or write).
    /// Past it the request is served by the inner service, uncached. Defaults
    /// to 500 ms.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.shared).store_timeout = timeout;
        self
    }

    /// The largest body stored; larger responses pass through. Rules may set
    /// their own. Defaults to 4 MiB.
    pub fn max_body_size(mut self, limit: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_body_size = limit;
        self
    }

    /// After `failures` store errors in a row, skip the store for `cooldown`,
    /// then let a request probe it again. Defaults to 5 failures and 2 s.
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.breaker_threshold = failures.max(1);
        shared.breaker_cooldown = cooldown;
        self
    }

    /// A handle that bumps tags in this layer's store.
    pub fn invalidator(&self) -> Invalidator<St> {
        Invalidator::new(self.shared.store.clone()).timeout(self.shared.store_timeout)
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.shared.store
    }
}

impl<S, St: Store> Layer<S> for TaggedCacheLayer<St> {
    type Service = TaggedCache<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        TaggedCache {
            inner,
            shared: self.shared.clone(),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for TaggedCacheLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaggedCacheLayer")
            .field("store", &self.shared.store)
            .field("rules", &self.shared.rules)
            .field("store_timeout", &self.shared.store_timeout)
            .field("max_body_size", &self.shared.max_body_size)
            .finish()
    }
}

impl<St: Store> Shared<St> {
    /// Runs a store call under the deadline and the circuit breaker, turning
    /// failures into the reason the request bypasses the cache.
    pub(crate) async fn guarded<T>(
        &self,
        op: Op,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Reason> {
        let now = self.health.now_ms();
        if !self
            .health
            .allows(now, self.breaker_threshold, self.breaker_cooldown)
        {
            return Err(Reason::StoreUnavailable);
        }
        match crate::store::deadline(op, self.store_timeout, call).await {
            Ok(v) => {
                self.health.succeeded();
                Ok(v)
            }
            Err(err) => {
                self.failed(&err);
                Err(if err.is_timeout() {
                    Reason::StoreTimeout
                } else {
                    Reason::StoreError
                })
            }
        }
    }

    /// Records a store failure: counts it toward the breaker and warns, at
    /// most once a second.
    pub(crate) fn failed(&self, err: &Error) {
        let now = self.health.now_ms();
        let n = self.health.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.breaker_threshold {
            let until = now.saturating_add(millis(self.breaker_cooldown));
            self.health.open_until_ms.store(until, Ordering::Relaxed);
            telemetry::breaker_opened();
        }
        let last = self.health.last_warn_ms.load(Ordering::Relaxed);
        if (last == 0 || now >= last + 1000)
            && self
                .health
                .last_warn_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            telemetry::store_failed(err, n);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Store health: consecutive failures, the breaker, the warning rate limit.
#[derive(Debug)]
pub(crate) struct Health {
    started: Instant,
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    last_warn_ms: AtomicU64,
}

impl Health {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            last_warn_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Whether a store call may go ahead. While the breaker is open, none
    /// may; once its cooldown ends, exactly one call claims the probe (by
    /// pushing the deadline on) and the others keep bypassing until the
    /// probe succeeds.
    fn allows(&self, now_ms: u64, threshold: u32, cooldown: Duration) -> bool {
        let until = self.open_until_ms.load(Ordering::Relaxed);
        if now_ms < until {
            return false;
        }
        if self.failures.load(Ordering::Relaxed) < threshold {
            return true;
        }
        self.open_until_ms
            .compare_exchange(
                until,
                now_ms.saturating_add(millis(cooldown)),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }
}
