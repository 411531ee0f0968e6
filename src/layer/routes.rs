//! Rules written where the routes are: rules attached to an axum route take
//! its pattern from axum's `MatchedPath` (feature `axum`), and the layer's own
//! rules can be checked at start-up against the routes the app declares.

use std::sync::{
    PoisonError, RwLock,
    atomic::{AtomicUsize, Ordering},
};

use super::{TaggedCacheLayer, layer::ListedRule};
use crate::{rules::RuleTable, store::Store, telemetry};

/// The rules attached to axum routes through one layer, as compiled on each
/// route's first request: what the admin service lists and explains beside
/// the layer's own rules, and what writes check before they skip a per-URI
/// bump (`invalidate_unnamed_routes(false)`).
#[derive(Default)]
pub(crate) struct AttachedRules {
    routes: RwLock<Routes>,
    /// How many `route_rules` layers were made: their routes are known only
    /// once each served a request.
    layers: AtomicUsize,
}

/// The routes, one per pattern (a route attached again, by a router built
/// again, replaces the one before), and a router over their patterns that
/// finds a path's route as axum does (a static segment before a
/// parameter).
#[derive(Default)]
struct Routes {
    routes: Vec<AttachedRoute>,
    router: matchit::Router<usize>,
}

/// The rules attached to one route.
#[derive(Clone)]
pub(crate) struct AttachedRoute {
    /// The route's full pattern (axum's `MatchedPath`).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pattern: String,
    /// The rules on that pattern.
    pub(crate) rules: RuleTable,
    pub(crate) listed: Vec<ListedRule>,
}

impl AttachedRules {
    /// Every route seen so far, in the order first seen.
    pub(crate) fn routes(&self) -> Vec<AttachedRoute> {
        self.read().routes.clone()
    }

    /// The route `path` is routed to, among those seen so far.
    pub(crate) fn find(&self, path: &str) -> Option<AttachedRoute> {
        let routes = self.read();
        let found = routes.router.at(path).ok()?;
        routes.routes.get(*found.value).cloned()
    }

    /// Whether a cache rule attached to a route seen so far matches `path`.
    pub(crate) fn caches(&self, path: &str) -> bool {
        let routes = self.read();
        routes
            .router
            .at(path)
            .is_ok_and(|m| routes.routes[*m.value].rules.caches(path))
    }

    /// Whether some `route_rules` layer has routes not seen yet (or ever).
    pub(crate) fn may_have_unseen(&self) -> bool {
        self.layers.load(Ordering::Relaxed) > 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Routes> {
        self.routes.read().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(feature = "axum")]
    fn add(&self, route: AttachedRoute) {
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        // The same pattern again: the newer rules replace the older.
        if let Some(i) = routes
            .routes
            .iter()
            .position(|r| r.pattern == route.pattern)
        {
            routes.routes[i] = route;
            return;
        }
        let i = routes.routes.len();
        // A pattern matchit refuses next to those before (a router built
        // again with other parameter names) is listed, not explained.
        let _ = routes.router.insert(route.pattern.as_str(), i);
        routes.routes.push(route);
    }
}

impl<St: Store> TaggedCacheLayer<St> {
    /// The rules of this layer whose route pattern matches none of `routes`
    /// (the app's route patterns, in the same syntax), each as
    /// `"METHOD pattern"`, and logged as a warning: a rule for `/post/{id}`
    /// on an app that routes `/posts/{id}` would otherwise pass every
    /// request through with `detail=no-rule`, silently. Call it at start-up.
    /// A rule matches a route when a path the rule matches is routed there,
    /// so parameter names may differ and a static rule (`/users/me`) may sit
    /// under a parameter route (`/users/{id}`).
    ///
    /// With axum, rules attached to the route itself
    /// (`route_rules`, feature `axum`) cannot miss their route.
    ///
    /// ```
    /// use tower_tagged_cache::{CacheRule, MemoryStore, TaggedCacheLayer};
    ///
    /// # fn main() -> Result<(), tower_tagged_cache::ConfigError> {
    /// let layer = TaggedCacheLayer::new(MemoryStore::new())
    ///     .rule(CacheRule::get("/post/{id}").tags(["Post:{id}"]))?
    ///     .rule(CacheRule::get("/users/{id}").tags(["User:{id}"]))?;
    /// let routes = ["/posts/{id}", "/users/{user_id}"];
    /// assert_eq!(layer.unmatched_rules(routes), ["GET /post/{id}"]);
    /// # Ok(()) }
    /// ```
    pub fn unmatched_rules<'r>(&self, routes: impl IntoIterator<Item = &'r str>) -> Vec<String> {
        let unmatched = self.shared.rules.unmatched(routes);
        for rule in &unmatched {
            telemetry::unmatched_rule(rule);
        }
        unmatched
    }
}

#[cfg(feature = "axum")]
pub use self::attached::{RouteCache, RouteRulesLayer};

#[cfg(feature = "axum")]
mod attached {
    use std::{
        collections::HashMap,
        fmt,
        sync::{Arc, OnceLock, PoisonError, RwLock, atomic::Ordering},
        task::{Context, Poll, Waker},
    };

    use axum::extract::{FromRequestParts, MatchedPath, OriginalUri, RawPathParams};
    use http::{Request, Response, request::Parts};
    use http_body::Body;
    use tower_layer::Layer;
    use tower_service::Service;

    use super::super::{
        Reason, ResponseBody, Shared, TaggedCacheLayer,
        future::ResponseFuture,
        layer::ListedRule,
        plan::{Plan, plan_found},
        service::dispatch,
    };
    use super::AttachedRoute;
    use crate::{
        error::ConfigError,
        rules::{Rule, RuleTable},
        store::{DefaultStore, Store},
        telemetry,
    };

    impl<St: Store> TaggedCacheLayer<St> {
        /// A layer for one axum route (`.route_layer(..)` on its method
        /// router, or `.layer(..)`) that applies `rules` on that route:
        /// rules made with [`CacheRule::matched`](crate::CacheRule::matched)
        /// and [`WriteRule::matched`](crate::WriteRule::matched), whose
        /// pattern is the route's (axum's `MatchedPath`), so it is written
        /// once, where the route is declared, and cannot drift from it. Rules
        /// of both kinds together are written `Rule::from(..)`.
        /// Everything else is this layer's: its store, deadline, circuit
        /// breaker, single-flight, namespace and model registry (the
        /// handler's `Extension<Invalidator>`).
        ///
        /// The rules are checked against the route on its first request: a
        /// tag placeholder that names no parameter of the route is logged as
        /// an error and the route's requests pass through uncached with
        /// `cache-status: tower-tagged-cache; fwd=bypass; detail=bad-rule`.
        /// A request without a `MatchedPath` (the layer outside an axum
        /// router) passes through with `detail=no-rule`.
        ///
        /// It takes the layer as it is when called: configure the layer
        /// (deadline, circuit breaker, namespace, body limit) first. The
        /// layer itself may also wrap the whole router (for its own rules,
        /// per-URI invalidation and the handlers' `Invalidator`): on a route
        /// whose attached rules answered, it adds no `cache-status` of its
        /// own, and counts the request as one no rule of its own matched.
        ///
        /// ```
        /// use axum::{Router, routing::get};
        /// use http::Method;
        /// use tower_tagged_cache::{CacheRule, MemoryStore, Rule, TaggedCacheLayer, WriteRule};
        ///
        /// # async fn show_user() -> &'static str { "" }
        /// # async fn update_user() -> &'static str { "" }
        /// # fn main() -> Result<(), tower_tagged_cache::ConfigError> {
        /// let cache = TaggedCacheLayer::new(MemoryStore::new());
        /// let app: Router = Router::new().route(
        ///     "/users/{id}",
        ///     get(show_user).put(update_user).route_layer(cache.route_rules([
        ///         Rule::from(CacheRule::matched().tags(["User:{id}"])),
        ///         Rule::from(WriteRule::matched(Method::PUT).invalidates(["User:{id}"])),
        ///     ])?),
        /// );
        /// # Ok(()) }
        /// ```
        ///
        /// # Errors
        ///
        /// When a rule was made with a pattern of its own (`CacheRule::get`):
        /// those belong on the layer itself ([`rule`](Self::rule)).
        pub fn route_rules<I, R>(&self, rules: I) -> Result<RouteRulesLayer<St>, ConfigError>
        where
            I: IntoIterator<Item = R>,
            R: Into<Rule>,
        {
            let rules: Vec<Rule> = rules.into_iter().map(Into::into).collect();
            if let Some(rule) = rules.iter().find(|r| !r.pattern().is_empty()) {
                return Err(ConfigError::new(format!(
                    "rule {}: route_rules takes rules made with matched(..), which take the \
                     route's pattern; add rules with a pattern of their own with \
                     TaggedCacheLayer::rule",
                    rule.pattern()
                )));
            }
            self.shared.attached.layers.fetch_add(1, Ordering::Relaxed);
            Ok(RouteRulesLayer {
                rules: Arc::new(RouteRules {
                    base: self.shared.clone(),
                    rules,
                    by_route: RwLock::default(),
                }),
            })
        }
    }

    /// [`Layer`] that applies rules on the axum route it is attached to.
    /// Made by [`TaggedCacheLayer::route_rules`].
    #[must_use]
    pub struct RouteRulesLayer<St = DefaultStore> {
        rules: Arc<RouteRules<St>>,
    }

    impl<St> Clone for RouteRulesLayer<St> {
        fn clone(&self) -> Self {
            Self {
                rules: self.rules.clone(),
            }
        }
    }

    impl<St> fmt::Debug for RouteRulesLayer<St> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RouteRulesLayer")
                .field("rules", &self.rules.rules)
                .finish_non_exhaustive()
        }
    }

    impl<S, St> Layer<S> for RouteRulesLayer<St> {
        type Service = RouteCache<S, St>;

        fn layer(&self, inner: S) -> Self::Service {
            RouteCache {
                inner,
                rules: self.rules.clone(),
                seen: Arc::default(),
            }
        }
    }

    /// The rules of one layer, compiled per route pattern they are used on
    /// (one entry per route of the app: `MatchedPath` values are patterns).
    struct RouteRules<St> {
        base: Arc<Shared<St>>,
        rules: Vec<Rule>,
        by_route: RwLock<HashMap<Arc<str>, OnRoute<St>>>,
    }

    /// The layer's state with the rules compiled for one route; `None`
    /// when they do not fit it.
    type OnRoute<St> = Option<Arc<Shared<St>>>;

    impl<St: Clone> RouteRules<St> {
        fn on_route(&self, route: &MatchedPath) -> OnRoute<St> {
            let pattern = route.as_str();
            let read = self.by_route.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(found) = read.get(pattern) {
                return found.clone();
            }
            drop(read);
            // Compiled under the lock, once per route even when its first
            // requests race (each compile registers the route with the
            // admin service).
            let mut write = self
                .by_route
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(found) = write.get(pattern) {
                return found.clone();
            }
            let compiled = self.compile(pattern);
            write.insert(pattern.into(), compiled.clone());
            compiled
        }

        fn compile(&self, pattern: &str) -> OnRoute<St> {
            let mut table = RuleTable::default();
            let mut listed = Vec::with_capacity(self.rules.len());
            for rule in &self.rules {
                let added = rule
                    .clone()
                    .with_pattern(pattern)
                    .compile()
                    .and_then(|compiled| {
                        listed.push(ListedRule::of(&compiled));
                        table.insert(compiled)
                    });
                if let Err(err) = added {
                    telemetry::rules_do_not_fit(pattern, &err);
                    return None;
                }
            }
            self.base.attached.add(AttachedRoute {
                pattern: pattern.to_owned(),
                rules: table.clone(),
                listed,
            });
            let mut shared = Shared::clone(&self.base);
            shared.rules = table;
            Some(Arc::new(shared))
        }
    }

    /// Middleware that applies rules on the axum route it wraps. Made by
    /// [`RouteRulesLayer`].
    pub struct RouteCache<S, St = DefaultStore> {
        inner: S,
        rules: Arc<RouteRules<St>>,
        /// The route this service wraps and its compiled rules, once seen:
        /// axum makes one service per route, so later requests skip the
        /// per-route map.
        seen: Arc<OnceLock<(Arc<str>, OnRoute<St>)>>,
    }

    impl<S: Clone, St> Clone for RouteCache<S, St> {
        fn clone(&self) -> Self {
            Self {
                inner: self.inner.clone(),
                rules: self.rules.clone(),
                seen: self.seen.clone(),
            }
        }
    }

    impl<S: fmt::Debug, St> fmt::Debug for RouteCache<S, St> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RouteCache")
                .field("inner", &self.inner)
                .field("rules", &self.rules.rules)
                .finish_non_exhaustive()
        }
    }

    impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for RouteCache<S, St>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        St: Store,
        ReqBody: Send + 'static,
        ResBody: Body + Send + 'static,
    {
        type Response = Response<ResponseBody<ResBody>>;
        type Error = S::Error;
        type Future = ResponseFuture<S::Future, ResBody, S::Error>;

        #[inline]
        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
            let (mut parts, body) = req.into_parts();
            let shared = match parts.extensions.get::<MatchedPath>() {
                None => Err(Reason::NoRule),
                Some(route) => self.compiled(route).ok_or(Reason::BadRule),
            };
            let shared = match shared {
                Ok(shared) => shared,
                Err(reason) => {
                    let base = &self.rules.base;
                    let plan = Plan::Bypass(reason, &base.no_rule);
                    let req = Request::from_parts(parts, body);
                    return dispatch(base, &mut self.inner, req, plan).on_route();
                }
            };
            let raw = path_params(&mut parts);
            let params: Vec<(&str, &str)> = raw.iter().flat_map(|p| p.iter()).collect();
            let found = shared.rules.find_matched(&parts.method, &params);
            // Keys and per-URI tags use the URI the client sent: inside a
            // nested router the path has lost its prefix (which the pattern
            // keeps), and the admin service explains full paths. The inner
            // service still gets the request as axum handed it over.
            let nested = parts
                .extensions
                .get::<OriginalUri>()
                .filter(|original| original.0 != parts.uri)
                .map(|original| original.0.clone())
                .map(|original| std::mem::replace(&mut parts.uri, original));
            let plan = plan_found(&shared, &parts, found);
            if let Some(uri) = nested {
                parts.uri = uri;
            }
            let req = Request::from_parts(parts, body);
            dispatch(&shared, &mut self.inner, req, plan).on_route()
        }
    }

    impl<S, St: Store> RouteCache<S, St> {
        /// The layer's state with the rules compiled for `route` (`None`:
        /// they do not fit it); this service's own route is remembered.
        fn compiled(&self, route: &MatchedPath) -> OnRoute<St> {
            match self.seen.get() {
                Some((pattern, on_route)) if **pattern == *route.as_str() => on_route.clone(),
                _ => {
                    let on_route = self.rules.on_route(route);
                    let _ = self.seen.set((route.as_str().into(), on_route.clone()));
                    on_route
                }
            }
        }
    }

    /// The path parameters axum's router found, percent-decoded; `None` when
    /// there are none or one is not UTF-8 (a rule that needs it then
    /// bypasses with `detail=bad-path`).
    fn path_params(parts: &mut Parts) -> Option<RawPathParams> {
        // The extractor only reads the request's extensions: it is ready on
        // its first poll.
        let extract = std::pin::pin!(RawPathParams::from_request_parts(parts, &()));
        match extract.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(params)) => Some(params),
            _ => None,
        }
    }
}
