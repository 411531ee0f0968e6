use std::{fmt, sync::Arc, time::Duration};

use tower_layer::Layer;

use super::{TaggedCache, routes::AttachedRules};
use crate::{
    admin::Admin,
    error::ConfigError,
    flight::Flights,
    invalidate::Invalidator,
    invalidate::ModelRegistry,
    rules::{CompiledRule, Rule, RuleTable},
    store::{DefaultStore, Guarded, Store, entry::CachedResponse, variants::MAX_VARIANTS},
    telemetry::{self, RuleTelemetry},
    values::TagCache,
};

/// Default deadline of one store call on the request path: 500 ms.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// Default longest wait of a request for a concurrent miss on the same key:
/// 10 s.
pub const DEFAULT_FLIGHT_WAIT: Duration = Duration::from_secs(10);

/// Default largest body stored: 4 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 4 * 1024 * 1024;

/// Default number of variants kept per entry key for a response that
/// varies: 8.
pub const DEFAULT_MAX_VARIANTS: usize = 8;

/// [`Layer`] that caches responses under fragmented keys. See the
/// [crate docs](crate) for an example.
#[derive(Clone)]
#[must_use]
pub struct TaggedCacheLayer<St = DefaultStore> {
    pub(crate) shared: Arc<Shared<St>>,
}

/// Configuration and state shared by the layer, its services and their futures.
#[derive(Clone)]
pub(crate) struct Shared<St> {
    /// Every store call of the layer, its `Invalidator`s and leases goes
    /// through this one deadline and circuit breaker.
    pub(crate) store: Guarded<St>,
    /// The model registry of the layer's invalidators.
    pub(crate) models: Arc<ModelRegistry>,
    /// The handle given to handlers and callers: on `store` and `models`,
    /// made once (it is renewed when `store` is).
    invalidator: Invalidator,
    pub(crate) rules: RuleTable,
    /// The layer's rules in the order they were added, as `/stats` lists
    /// them.
    pub(crate) listed: Vec<ListedRule>,
    /// The counters of requests no rule matched.
    pub(crate) no_rule: RuleTelemetry,
    /// Rules attached to axum routes (`route_rules`), as compiled on each
    /// route's first request: shared by every copy of this state.
    pub(crate) attached: Arc<AttachedRules>,
    pub(crate) namespace: String,
    pub(crate) invalidate_unsafe: bool,
    /// Whether writes also bump URIs that no cache rule matches.
    pub(crate) invalidate_unnamed: bool,
    pub(crate) flights: Arc<Flights<Arc<CachedResponse>>>,
    pub(crate) flight_wait: Duration,
    pub(crate) max_body_size: usize,
    /// Variants kept per entry key, from 1 to 64.
    pub(crate) max_variants: usize,
}

/// A rule of the layer as the admin service's `/stats` lists it.
#[derive(Clone, Debug)]
pub(crate) struct ListedRule {
    /// `cache` or `write`.
    pub(crate) kind: &'static str,
    pub(crate) route: String,
    pub(crate) telemetry: RuleTelemetry,
}

impl ListedRule {
    pub(crate) fn of(rule: &CompiledRule) -> Self {
        Self {
            kind: if rule.is_cache() { "cache" } else { "write" },
            route: rule.pattern.clone(),
            telemetry: rule.telemetry.clone(),
        }
    }
}

impl<St: Store> TaggedCacheLayer<St> {
    /// A layer over `store`, with no rules yet: add them with
    /// [`rule`](Self::rule). Requests that match no rule pass through.
    pub fn new(store: St) -> Self {
        telemetry::describe();
        let store = Guarded::new(store, DEFAULT_STORE_TIMEOUT);
        let models = Arc::<ModelRegistry>::default();
        Self {
            shared: Arc::new(Shared {
                invalidator: Invalidator::from_parts(store.clone(), models.clone()),
                store,
                models,
                rules: RuleTable::default(),
                listed: Vec::new(),
                no_rule: RuleTelemetry::new(""),
                attached: Arc::default(),
                namespace: String::new(),
                invalidate_unsafe: true,
                invalidate_unnamed: true,
                flights: Arc::default(),
                flight_wait: DEFAULT_FLIGHT_WAIT,
                max_body_size: DEFAULT_MAX_BODY_SIZE,
                max_variants: DEFAULT_MAX_VARIANTS,
            }),
        }
    }

    /// Adds a rule: a [`CacheRule`](crate::CacheRule) or a
    /// [`WriteRule`](crate::WriteRule).
    ///
    /// # Errors
    ///
    /// When a tag template is malformed, a placeholder names no parameter of
    /// the route nor a declared one, the route conflicts with another, or a
    /// rule for the same method and route exists. The message names the rule
    /// and the template.
    pub fn rule(mut self, rule: impl Into<Rule>) -> Result<Self, ConfigError> {
        let compiled = rule.into().compile()?;
        let listed = ListedRule::of(&compiled);
        let shared = Arc::make_mut(&mut self.shared);
        shared.rules.insert(compiled)?;
        shared.listed.push(listed);
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

    /// Whether that per-URI invalidation also bumps URIs that no cache rule
    /// of this layer matches. Each bump is one store write (one round trip
    /// on Redis) after every successful write, and writes to routes nothing
    /// is cached under gain nothing from it; turn it off to skip them.
    /// URIs a cache rule matches (the target, `Location` and
    /// `Content-Location`) are still bumped. Keep it on when other layers on
    /// the same store cache URIs this one has no rule for. Defaults to
    /// `true`.
    pub fn invalidate_unnamed_routes(mut self, enabled: bool) -> Self {
        Arc::make_mut(&mut self.shared).invalidate_unnamed = enabled;
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

    /// The deadline of one store call on the request path (lookup, write,
    /// lease, invalidation). Past it the request is served by the inner
    /// service, uncached. Defaults to 500 ms.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.set_store(shared.store.clone().with_timeout(timeout));
        self
    }

    /// The largest body stored; larger responses pass through. Rules may set
    /// their own. Defaults to 4 MiB.
    pub fn max_body_size(mut self, limit: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_body_size = limit;
        self
    }

    /// How many variants of a response that varies (`Vary`) are kept under
    /// one key: requests with different values of the headers it names (say
    /// `Accept-Encoding: gzip` and `br`) each hit their own. The new variant
    /// is stored first; the least recently *stored* ones are dropped past
    /// `max` or when the variants together outgrow the body size limit
    /// (hits do not reorder them: that would be a store write per hit). A
    /// hit is still one store read and decodes one variant. `1` keeps one
    /// variant per key, the last stored; `0` counts as `1`, more than 64 as
    /// 64. See [`caching`](crate::layer#when-a-stored-response-is-used).
    /// Defaults to 8.
    pub fn max_variants(mut self, max: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_variants = max.clamp(1, MAX_VARIANTS);
        self
    }

    /// After `failures` store errors or timeouts in a row, skip the store
    /// for `cooldown` (requests are served uncached, bumps are queued in the
    /// outbox at once),
    /// then let one request at a time probe it; the first probe that
    /// succeeds closes the breaker. Defaults to 5 failures and 2 s.
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.set_store(shared.store.clone().with_breaker(failures, cooldown));
        self
    }

    /// The bound of the invalidation outbox, in distinct tags: bumps the
    /// store did not take (it failed, timed out or the breaker is open) wait
    /// there and are re-applied until they land, and this process serves
    /// nothing that depends on them meanwhile (`detail=pending-invalidation`).
    /// Past the bound, the pending tags are replaced by one epoch bump:
    /// every entry misses once when the store returns, which is logged and
    /// counted. Defaults to
    /// [`DEFAULT_OUTBOX_CAPACITY`](crate::invalidate::DEFAULT_OUTBOX_CAPACITY).
    pub fn outbox_capacity(mut self, capacity: usize) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.set_store(shared.store.clone().with_outbox_capacity(capacity));
        self
    }

    /// A handle that bumps tags in this layer's store, through the layer's
    /// deadline and circuit breaker, with the layer's model registry (the
    /// same handle handlers find in their request extensions).
    pub fn invalidator(&self) -> Invalidator {
        self.shared.invalidator()
    }

    /// A value cache on this layer's store that shares its deadline,
    /// circuit breaker, invalidation outbox and model registry: a bump
    /// queued through either fences the reads of both, and models
    /// registered on either are known to both.
    ///
    /// ```
    /// use tower_tagged_cache::{MemoryStore, TaggedCacheLayer, invalidate::Model};
    ///
    /// struct User;
    /// impl Model for User {
    ///     const TAG: &'static str = "User";
    ///     fn pk(&self) -> String { "1".into() }
    /// }
    ///
    /// let layer = TaggedCacheLayer::new(MemoryStore::new());
    /// let values = layer.tag_cache();
    /// values.models().register::<User>()?;
    /// assert!(layer.invalidator().models().is_registered::<User>());
    /// # Ok::<(), tower_tagged_cache::ConfigError>(())
    /// ```
    pub fn tag_cache(&self) -> TagCache<St> {
        TagCache::from_parts(self.shared.store.clone(), self.shared.models.clone())
    }

    /// The store.
    pub fn store(&self) -> &St {
        self.shared.store.store()
    }

    /// The admin service of this layer: which rule, tags, versions and key
    /// a request would get and whether an entry is stored (`/explain`), and
    /// the layer's and the store's counters (`/stats`). Mount it on a
    /// private listener only. Make it once the layer is configured: like
    /// [`layer`](Layer::layer), it shares the layer as it is now (rules,
    /// store, counters). See the [`admin` module](crate::admin).
    pub fn admin(&self) -> Admin<St> {
        Admin::new(self.shared.clone())
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
            .field("store_timeout", &self.shared.store.timeout())
            .field("max_body_size", &self.shared.max_body_size)
            .field("max_variants", &self.shared.max_variants)
            .finish()
    }
}

impl<St: Store> Shared<St> {
    /// An invalidator on the layer's guarded store and model registry.
    pub(crate) fn invalidator(&self) -> Invalidator {
        self.invalidator.clone()
    }

    /// Replaces the guarded store, and the invalidator's with it.
    fn set_store(&mut self, store: Guarded<St>) {
        self.invalidator = Invalidator::from_parts(store.clone(), self.models.clone());
        self.store = store;
    }
}
