//! [`CacheRule`]: which `GET` requests are cached, under which key and tags,
//! for how long.

use std::{fmt, sync::Arc, time::Duration};

use http::{HeaderName, StatusCode, header, request::Parts};

use super::{
    route::{Route, route_methods},
    table::{CompiledRule, Kind, Statuses},
};
use crate::{
    error::ConfigError,
    key::{Tag, VaryOn},
    telemetry::RuleTelemetry,
};

pub(super) type TagsFn = Arc<dyn Fn(&Parts) -> Vec<Tag> + Send + Sync>;

/// Default TTL of a cached response: 5 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// The longest lease a rule takes.
const MAX_LEASE: Duration = Duration::from_secs(3600);

/// Caches `GET` responses on a route (and answers `HEAD` from them).
///
/// ```
/// use std::time::Duration;
/// use tower_tagged_cache::{CacheRule, VaryOn};
///
/// let show = CacheRule::get("/users/{id}")
///     .name("user_detail")
///     .tags(["User:{id}", "Dashboard"])
///     .vary_on(VaryOn::header("accept-language"))
///     .ttl(Duration::from_secs(60));
/// # let _ = show;
/// ```
///
/// Writes that invalidate are [`WriteRule`](crate::WriteRule)s.
#[derive(Clone)]
pub struct CacheRule {
    pub(super) route: Route,
    key_version: u32,
    group: String,
    tags: Vec<String>,
    tags_fn: Option<TagsFn>,
    vary: Vec<VaryOn>,
    ttl: Duration,
    statuses: Statuses,
    max_body_size: Option<usize>,
    ignore_query: bool,
    response_driven: bool,
    default_freshness: Option<Duration>,
    lease: Option<Duration>,
}

impl CacheRule {
    /// Caches `GET` (and answers `HEAD`) on the axum route the rule is
    /// attached to, whose pattern (its `MatchedPath`) the rule takes: the
    /// pattern is written once, where the route is declared. Attach it with
    /// `TaggedCacheLayer::route_rules`
    /// (feature `axum`); tag placeholders name the route's parameters.
    ///
    /// ```
    /// use tower_tagged_cache::CacheRule;
    ///
    /// let show = CacheRule::matched().tags(["User:{id}"]);
    /// # let _ = show;
    /// ```
    pub fn matched() -> Self {
        Self::get(String::new())
    }

    /// Caches `GET` (and answers `HEAD`) on routes matching `pattern`.
    pub fn get(pattern: impl Into<String>) -> Self {
        Self {
            route: Route::new(pattern),
            key_version: 1,
            group: String::new(),
            tags: Vec::new(),
            tags_fn: None,
            vary: Vec::new(),
            ttl: DEFAULT_TTL,
            statuses: Statuses::List(vec![StatusCode::OK]),
            max_body_size: None,
            ignore_query: false,
            response_driven: false,
            default_freshness: None,
            lease: None,
        }
    }

    route_methods!();

    /// The key version: raise it when the response format changes, so old
    /// entries are never served. Defaults to 1.
    pub fn key_version(mut self, version: u32) -> Self {
        self.key_version = version;
        self
    }

    /// A group id that namespaces entries sharing a name and tags. Defaults
    /// to empty.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Tag templates (`"User:{id}"`, `"Dashboard"`) whose placeholders name
    /// path parameters of the route or values declared with
    /// [`param`](Self::param).
    pub fn tags<I, T>(mut self, templates: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags.extend(templates.into_iter().map(Into::into));
        self
    }

    /// Adds tags computed from the request head by a closure, for anything
    /// templates cannot express (several tags from one value, tags that
    /// depend on each other). Like every tag, they are part of the key.
    pub fn tags_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&Parts) -> Vec<Tag> + Send + Sync + 'static,
    {
        self.tags_fn = Some(Arc::new(f));
        self
    }

    /// Adds a request value the response depends on. The host, path and
    /// query are always part of the key (see [`ignore_query`](Self::ignore_query)).
    pub fn vary_on(mut self, vary: impl Into<VaryOn>) -> Self {
        self.vary.push(vary.into());
        self
    }

    /// Leaves the query string out of the key; declare the parameters that
    /// matter with [`VaryOn::query`].
    pub fn ignore_query(mut self) -> Self {
        self.ignore_query = true;
        self
    }

    /// The server-side TTL of stored responses. `max-age` and `s-maxage`
    /// of the response can shorten it, never lengthen it. Defaults to 5
    /// minutes.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Takes freshness from the response only, as an HTTP cache in front of
    /// an origin it knows nothing about: `s-maxage`, then `max-age`, then
    /// `Expires` minus `Date`. A response without explicit freshness is not
    /// stored (no heuristics); the rule's [`ttl`](Self::ttl) caps how long
    /// anything is kept. Any final status from 200 to 499 may be stored,
    /// except `206` and `304`, unless [`statuses`](Self::statuses) narrows it.
    ///
    /// Without it, the rule's TTL is the freshness of every stored response,
    /// shortened (never lengthened) by the response's own.
    pub fn response_driven(mut self) -> Self {
        self.response_driven = true;
        self.statuses = Statuses::AnyFinal;
        self
    }

    /// For a [`response_driven`](Self::response_driven) rule: how long a
    /// response without explicit freshness (no `s-maxage`, `max-age` or
    /// `Expires`) is fresh, instead of not being stored
    /// (`detail=no-freshness`). Capped by the rule's [`ttl`](Self::ttl).
    /// Responses that forbid storing (`no-store`, `private`, `no-cache`
    /// without a validator) still are not stored. Off by default, as RFC
    /// 9111's heuristic freshness would be; turn it on for origins you know
    /// send none.
    pub fn default_freshness(mut self, freshness: Duration) -> Self {
        self.default_freshness = (!freshness.is_zero()).then_some(freshness);
        self
    }

    /// The statuses that may be stored. Defaults to `200` only. `206`,
    /// `304`, `1xx` and `5xx` are never stored.
    pub fn statuses<I: IntoIterator<Item = StatusCode>>(mut self, statuses: I) -> Self {
        self.statuses = Statuses::List(statuses.into_iter().collect());
        self
    }

    /// The largest body stored for this rule. Defaults to the layer's
    /// [`max_body_size`](crate::TaggedCacheLayer::max_body_size).
    pub fn max_body_size(mut self, limit: usize) -> Self {
        self.max_body_size = Some(limit);
        self
    }

    /// Fleet-wide single-flight: before a miss calls the inner service, it
    /// takes a lease on the entry key in the store for up to `ttl`
    /// ([`Store::acquire_lease`](crate::Store::acquire_lease); `SET NX PX`
    /// on Redis). Another app server that misses on the same key meanwhile
    /// waits for the entry instead of computing it too, checking the store
    /// every few milliseconds; it calls the inner service itself once the
    /// lease is given back without an entry (the response was not
    /// storable) or runs out (the holder died or hangs).
    ///
    /// Within one process misses are coalesced anyway; the lease adds three
    /// store commands to a miss (take it, look once more, give it back) and
    /// none to a hit. Set `ttl` a little above how long the route takes to
    /// answer (at most one hour). A waiter waits no longer than `ttl`, nor
    /// than half the layer's
    /// [`single_flight_wait`](crate::TaggedCacheLayer::single_flight_wait),
    /// which leaves its own followers time to be served. Requests that carry
    /// `Authorization` (on a rule that does not vary on it) take no lease:
    /// what they get is rarely storable. Variants of a learned `Vary` share
    /// one lease, so a waiter may find the other variant stored and then
    /// compute its own.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_tagged_cache::CacheRule;
    ///
    /// let rule = CacheRule::get("/reports/{id}")
    ///     .tags(["Report:{id}"])
    ///     .ttl(Duration::from_secs(300))
    ///     .lease(Duration::from_secs(5));
    /// # let _ = rule;
    /// ```
    pub fn lease(mut self, ttl: Duration) -> Self {
        self.lease = (!ttl.is_zero()).then_some(ttl.min(MAX_LEASE));
        self
    }

    /// Checks the rule and prepares it for matching.
    pub(crate) fn compile(self) -> Result<CompiledRule, ConfigError> {
        let checked = self.route.check("GET")?;
        let tags = checked.templates(&self.tags)?;
        for v in &self.vary {
            checked.path_param(v.path_param_name(), "vary_on")?;
        }
        if self.ttl.is_zero() {
            return Err(checked.error("the TTL must be greater than zero"));
        }
        if let Statuses::List(list) = &self.statuses
            && let Some(s) = list.iter().find(|s| !Statuses::storable(**s))
        {
            return Err(checked.error(format!("status {s} is never stored")));
        }
        let varies_on = |h: &HeaderName| self.vary.iter().any(|v| v.header_name() == Some(h));
        let name = self.route.name();
        Ok(CompiledRule {
            allow_authorization: varies_on(&header::AUTHORIZATION),
            allow_cookie: varies_on(&header::COOKIE),
            telemetry: RuleTelemetry::new(&name),
            name,
            kind: Kind::Cache,
            pattern: self.route.pattern,
            path_params: checked.path_params,
            key_version: self.key_version,
            group: self.group,
            tags,
            tags_fn: self.tags_fn,
            vary: self.vary.into_iter().map(|v| (v.name(), v)).collect(),
            ttl: self.ttl,
            statuses: self.statuses,
            invalidates: Vec::new(),
            max_body_size: self.max_body_size,
            ignore_query: self.ignore_query,
            params: self.route.canonical,
            request_params: self.route.request_params,
            response_driven: self.response_driven,
            default_freshness: self.default_freshness,
            lease: self.lease,
        })
    }
}

impl fmt::Debug for CacheRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheRule")
            .field("pattern", &self.route.pattern)
            .field("name", &self.route.name)
            .field("tags", &self.tags)
            .field("tags_fn", &self.tags_fn.as_ref().map(|_| "<fn>"))
            .field("vary", &self.vary)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}
