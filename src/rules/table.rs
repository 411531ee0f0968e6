//! Per-route cache rules and route matching.
//!
//! A [`CacheRule`] says which requests are cached (or which writes
//! invalidate), under which tags, varying on which request values, for how
//! long. Rules are checked when they are added to the layer (see
//! [`TaggedCacheLayer::rule`](crate::TaggedCacheLayer::rule)): a bad template
//! or a placeholder that names no path parameter is an error at start, never
//! a surprise at request time.
//!
//! Route patterns use the syntax axum uses (`/users/{id}`,
//! `/files/{*path}`), matched with [`matchit`] against the path the layer
//! sees. Path parameters are percent-decoded, as axum does, so
//! `/users/4%32` fills `User:{id}` with `42`.

use std::{fmt, sync::Arc, time::Duration};

use http::{HeaderName, Method, StatusCode, header, request::Parts};

use crate::{
    error::ConfigError,
    key::{Tag, TagTemplate, VaryOn},
    telemetry::RuleTelemetry,
};

type TagsFn = Arc<dyn Fn(&Parts) -> Vec<Tag> + Send + Sync>;
type ParamFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Default TTL of a cached response: 5 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// A per-route policy.
///
/// Cache rules ([`CacheRule::get`]) cache `GET` responses and answer `HEAD`
/// from them. Invalidation rules ([`CacheRule::put`], [`post`](Self::post),
/// [`patch`](Self::patch), [`delete`](Self::delete)) bump tags after the
/// inner service answered with a 2xx status, that is after the handler
/// committed its write.
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
/// let update = CacheRule::put("/users/{id}").invalidates(["User:{id}"]);
/// # let _ = (show, update);
/// ```
#[derive(Clone)]
pub struct CacheRule {
    kind: Kind,
    pattern: String,
    name: Option<String>,
    key_version: u32,
    group: String,
    tags: Vec<String>,
    tags_fn: Option<TagsFn>,
    vary: Vec<VaryOn>,
    ttl: Duration,
    statuses: Statuses,
    invalidates: Vec<String>,
    max_body_size: Option<usize>,
    ignore_query: bool,
    params: Vec<(String, ParamFn)>,
    response_driven: bool,
    lease: Option<Duration>,
}

/// The longest lease a rule takes.
const MAX_LEASE: Duration = Duration::from_secs(3600);

/// Which statuses a rule may store.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Statuses {
    /// Exactly these.
    List(Vec<StatusCode>),
    /// Any final status from 200 to 499 but `206` and `304` (RFC 9111 §3: a
    /// response with explicit freshness may be stored whatever its status).
    AnyFinal,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Cache,
    Invalidate(Method),
}

impl CacheRule {
    fn new(kind: Kind, pattern: impl Into<String>) -> Self {
        Self {
            kind,
            pattern: pattern.into(),
            name: None,
            key_version: 1,
            group: String::new(),
            tags: Vec::new(),
            tags_fn: None,
            vary: Vec::new(),
            ttl: DEFAULT_TTL,
            statuses: Statuses::List(vec![StatusCode::OK]),
            invalidates: Vec::new(),
            max_body_size: None,
            lease: None,
            ignore_query: false,
            params: Vec::new(),
            response_driven: false,
        }
    }

    /// Caches `GET` (and answers `HEAD`) on routes matching `pattern`.
    pub fn get(pattern: impl Into<String>) -> Self {
        Self::new(Kind::Cache, pattern)
    }

    /// Invalidates on `PUT` to routes matching `pattern`.
    pub fn put(pattern: impl Into<String>) -> Self {
        Self::new(Kind::Invalidate(Method::PUT), pattern)
    }

    /// Invalidates on `POST` to routes matching `pattern`.
    pub fn post(pattern: impl Into<String>) -> Self {
        Self::new(Kind::Invalidate(Method::POST), pattern)
    }

    /// Invalidates on `PATCH` to routes matching `pattern`.
    pub fn patch(pattern: impl Into<String>) -> Self {
        Self::new(Kind::Invalidate(Method::PATCH), pattern)
    }

    /// Invalidates on `DELETE` to routes matching `pattern`.
    pub fn delete(pattern: impl Into<String>) -> Self {
        Self::new(Kind::Invalidate(Method::DELETE), pattern)
    }

    /// The base name hashed into every key of this rule. Defaults to the
    /// route pattern.
    ///
    /// Two layers that share a store and see the same paths (routers nested
    /// under different prefixes see their paths without the prefix) must
    /// differ in rule names or in the layer's
    /// [`namespace`](crate::TaggedCacheLayer::namespace).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Parses the path parameter `name` as a `T` and uses `T`'s `Display`
    /// form in tags and vary-on values, so `/users/01`, `/users/+1` and
    /// `/users/1` all carry `User:1`, as a handler taking `Path<u64>` sees
    /// them. A request whose parameter does not parse passes through
    /// uncached (`detail=bad-path`).
    ///
    /// Use it on every parameter a handler parses: without it, tags hold the
    /// text of the path, and a write to `/users/01` would bump `User:01`
    /// while the page of user 1 is cached under `User:1`.
    pub fn parse_param<T>(self, name: impl Into<String>) -> Self
    where
        T: std::str::FromStr + fmt::Display + 'static,
    {
        self.param_with(name, |raw| raw.parse::<T>().ok().map(|v| v.to_string()))
    }

    /// Maps the path parameter `name` to its canonical form with a closure;
    /// `None` means the request passes through uncached. See
    /// [`parse_param`](Self::parse_param).
    pub fn param_with<F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&str) -> Option<String> + Send + Sync + 'static,
    {
        self.params.push((name.into(), Arc::new(f)));
        self
    }

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
    /// path parameters of the route.
    pub fn tags<I, T>(mut self, templates: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags.extend(templates.into_iter().map(Into::into));
        self
    }

    /// Adds tags computed from the request head by a closure, for anything
    /// templates cannot express.
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

    /// Tag templates to bump after a successful (2xx) write on this route.
    pub fn invalidates<I, T>(mut self, templates: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.invalidates
            .extend(templates.into_iter().map(Into::into));
        self
    }

    /// Checks the rule and prepares it for matching.
    pub(crate) fn compile(self) -> Result<CompiledRule, ConfigError> {
        let ctx = |why: String| {
            ConfigError::new(format!(
                "rule {} {}: {why}",
                self.kind.label(),
                self.pattern
            ))
        };
        if !self.pattern.starts_with('/') {
            return Err(ctx("the route pattern must start with `/`".into()));
        }
        let params = route_params(&self.pattern).map_err(ctx)?;
        let parse = |templates: &[String]| -> Result<Vec<TagTemplate>, ConfigError> {
            templates
                .iter()
                .map(|t| {
                    let template = TagTemplate::parse(t).map_err(|e| ctx(e.to_string()))?;
                    if let Some(p) = template.placeholders().find(|p| !params.iter().any(|n| n == p)) {
                        return Err(ctx(format!(
                            "tag template `{t}` uses `{{{p}}}`, which is not a parameter of the route (parameters: {params:?})"
                        )));
                    }
                    Ok(template)
                })
                .collect()
        };
        let tags = parse(&self.tags)?;
        let invalidates = parse(&self.invalidates)?;
        for (p, _) in &self.params {
            if !params.iter().any(|n| n == p) {
                return Err(ctx(format!(
                    "parameter `{p}` to parse is not a parameter of the route"
                )));
            }
        }
        for v in &self.vary {
            if let Some(p) = v.path_param_name()
                && !params.iter().any(|n| n == p)
            {
                return Err(ctx(format!(
                    "vary_on path parameter `{p}` is not a parameter of the route"
                )));
            }
        }
        match &self.kind {
            Kind::Cache => {
                if !invalidates.is_empty() {
                    return Err(ctx(
                        "a GET rule cannot invalidate; add a rule for the write method".into(),
                    ));
                }
                if self.ttl.is_zero() {
                    return Err(ctx("the TTL must be greater than zero".into()));
                }
            }
            Kind::Invalidate(_) => {
                if !tags.is_empty() || self.tags_fn.is_some() || !self.vary.is_empty() {
                    return Err(ctx(
                        "a write rule is not cached: use invalidates(..), not tags or vary_on"
                            .into(),
                    ));
                }
                if invalidates.is_empty() {
                    return Err(ctx("a write rule needs invalidates(..)".into()));
                }
            }
        }
        if let Statuses::List(list) = &self.statuses
            && let Some(s) = list.iter().find(|s| !storable_status(**s))
        {
            return Err(ctx(format!("status {s} is never stored")));
        }
        let varies_on = |h: &HeaderName| self.vary.iter().any(|v| v.header_name() == Some(h));
        let name = self.name.unwrap_or_else(|| self.pattern.clone());
        Ok(CompiledRule {
            allow_authorization: varies_on(&header::AUTHORIZATION),
            allow_cookie: varies_on(&header::COOKIE),
            telemetry: RuleTelemetry::new(&name),
            name,
            kind: self.kind,
            pattern: self.pattern,
            key_version: self.key_version,
            group: self.group,
            tags,
            tags_fn: self.tags_fn,
            vary: self.vary.into_iter().map(|v| (v.name(), v)).collect(),
            ttl: self.ttl,
            statuses: self.statuses,
            invalidates,
            max_body_size: self.max_body_size,
            ignore_query: self.ignore_query,
            params: self.params,
            response_driven: self.response_driven,
            lease: self.lease,
        })
    }
}

impl Kind {
    fn label(&self) -> &str {
        match self {
            Kind::Cache => "GET",
            Kind::Invalidate(m) => m.as_str(),
        }
    }
}

impl fmt::Debug for CacheRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheRule")
            .field("method", &self.kind.label())
            .field("pattern", &self.pattern)
            .field("name", &self.name)
            .field("tags", &self.tags)
            .field("tags_fn", &self.tags_fn.as_ref().map(|_| "<fn>"))
            .field("vary", &self.vary)
            .field("ttl", &self.ttl)
            .field("invalidates", &self.invalidates)
            .finish_non_exhaustive()
    }
}

/// Never 1xx, 206, 304 or 5xx.
fn storable_status(s: StatusCode) -> bool {
    (200..500).contains(&s.as_u16())
        && s != StatusCode::PARTIAL_CONTENT
        && s != StatusCode::NOT_MODIFIED
}

/// The names of the parameters of a matchit route pattern.
fn route_params(pattern: &str) -> Result<Vec<String>, String> {
    let mut params = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err("a `{` in the route is never closed".into()),
                    }
                }
                let name = name.strip_prefix('*').unwrap_or(&name).to_owned();
                if name.is_empty() {
                    return Err("the route has an empty parameter".into());
                }
                params.push(name);
            }
            _ => {}
        }
    }
    Ok(params)
}

/// A checked rule, ready to match.
pub(crate) struct CompiledRule {
    kind: Kind,
    pub(crate) pattern: String,
    pub(crate) name: String,
    /// The span field and metric keys of requests under this rule.
    pub(crate) telemetry: RuleTelemetry,
    pub(crate) key_version: u32,
    pub(crate) group: String,
    pub(crate) tags: Vec<TagTemplate>,
    pub(crate) tags_fn: Option<TagsFn>,
    /// Each vary-on value with the name it is hashed under.
    pub(crate) vary: Vec<(String, VaryOn)>,
    pub(crate) ttl: Duration,
    statuses: Statuses,
    pub(crate) invalidates: Vec<TagTemplate>,
    pub(crate) max_body_size: Option<usize>,
    pub(crate) ignore_query: bool,
    params: Vec<(String, ParamFn)>,
    pub(crate) response_driven: bool,
    /// How long a miss holds the fleet-wide lease, if the rule takes one.
    pub(crate) lease: Option<Duration>,
    pub(crate) allow_authorization: bool,
    pub(crate) allow_cookie: bool,
}

impl CompiledRule {
    /// Whether this rule handles `method`. Cache rules take GET and HEAD.
    pub(crate) fn handles(&self, method: &Method) -> bool {
        match &self.kind {
            Kind::Cache => method == Method::GET || method == Method::HEAD,
            Kind::Invalidate(m) => m == method,
        }
    }

    /// Whether a response with this status may be stored.
    pub(crate) fn allows_status(&self, status: StatusCode) -> bool {
        match &self.statuses {
            Statuses::List(list) => list.contains(&status),
            Statuses::AnyFinal => storable_status(status),
        }
    }

    pub(crate) fn is_cache(&self) -> bool {
        self.kind == Kind::Cache
    }

    fn overlaps(&self, other: &CompiledRule) -> bool {
        self.kind == other.kind
    }
}

/// Every rule, indexed by route pattern.
#[derive(Clone, Default)]
pub(crate) struct RuleTable {
    routes: Vec<Vec<Arc<CompiledRule>>>,
    router: matchit::Router<usize>,
}

/// The rule that matched a request, with its decoded path parameters.
pub(crate) struct Matched<'a> {
    pub(crate) rule: &'a Arc<CompiledRule>,
    pub(crate) params: Vec<(&'a str, String)>,
}

impl Matched<'_> {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request matched no rule it could use.
pub(crate) enum NoMatch {
    NoRule,
    BadPath,
}

impl RuleTable {
    pub(crate) fn insert(&mut self, rule: CompiledRule) -> Result<(), ConfigError> {
        match self.router.at(&rule.pattern) {
            Ok(m) if self.routes[*m.value][0].pattern == rule.pattern => {
                let idx = *m.value;
                if let Some(existing) = self.routes[idx].iter().find(|r| r.overlaps(&rule)) {
                    return Err(ConfigError::new(format!(
                        "rule {} {}: a rule for this method and route already exists",
                        existing.kind.label(),
                        rule.pattern
                    )));
                }
                self.routes[idx].push(Arc::new(rule));
                Ok(())
            }
            _ => {
                let idx = self.routes.len();
                self.router
                    .insert(rule.pattern.clone(), idx)
                    .map_err(|e| ConfigError::new(format!("rule {}: {e}", rule.pattern)))?;
                self.routes.push(vec![Arc::new(rule)]);
                Ok(())
            }
        }
    }

    /// Finds the rule for a request's method and path.
    pub(crate) fn find<'a>(&'a self, method: &Method, path: &str) -> Result<Matched<'a>, NoMatch> {
        let m = self.router.at(path).map_err(|_| NoMatch::NoRule)?;
        let rule = self.routes[*m.value]
            .iter()
            .find(|r| r.handles(method))
            .ok_or(NoMatch::NoRule)?;
        let mut params = Vec::with_capacity(m.params.len());
        for (name, raw) in m.params.iter() {
            let decoded = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| NoMatch::BadPath)?;
            let value = match rule.params.iter().find(|(n, _)| n == name) {
                Some((_, canonical)) => canonical(&decoded).ok_or(NoMatch::BadPath)?,
                None => decoded.into_owned(),
            };
            params.push((name, value));
        }
        Ok(Matched { rule, params })
    }
}

impl fmt::Debug for RuleTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.routes
                    .iter()
                    .flatten()
                    .map(|r| format!("{} {}", r.kind.label(), r.pattern)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rules: Vec<CacheRule>) -> Result<RuleTable, ConfigError> {
        let mut t = RuleTable::default();
        for r in rules {
            t.insert(r.compile()?)?;
        }
        Ok(t)
    }

    #[test]
    fn placeholders_must_name_route_params() {
        let err = table(vec![CacheRule::get("/users/{id}").tags(["User:{user_id}"])])
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(
            msg.contains("User:{user_id}") && msg.contains("GET /users/{id}"),
            "{msg}"
        );
        assert!(table(vec![CacheRule::get("/f/{*path}").tags(["File:{path}"])]).is_ok());
    }

    #[test]
    fn bad_rules_are_config_errors() {
        let cases = [
            CacheRule::get("/u/{id}").tags(["Us er:{id}"]),
            CacheRule::get("users").tags(["A"]),
            CacheRule::get("/u/{id").tags(["A"]),
            CacheRule::get("/u").invalidates(["A"]),
            CacheRule::put("/u").tags(["A"]),
            CacheRule::put("/u"),
            CacheRule::get("/u").ttl(Duration::ZERO),
            CacheRule::get("/u").vary_on(VaryOn::path_param("id")),
            CacheRule::get("/u").statuses([StatusCode::PARTIAL_CONTENT]),
            CacheRule::get("/u").statuses([StatusCode::BAD_GATEWAY]),
        ];
        for rule in cases {
            let shown = format!("{rule:?}");
            assert!(table(vec![rule]).is_err(), "{shown}");
        }
        let dup = table(vec![CacheRule::get("/u"), CacheRule::get("/u")]);
        assert!(dup.err().unwrap().to_string().contains("already exists"));
        let conflict = table(vec![CacheRule::get("/u/{id}"), CacheRule::get("/u/{name}")]);
        assert!(conflict.is_err());
    }

    #[test]
    fn matches_by_method_and_decodes_params() {
        let t = table(vec![
            CacheRule::get("/users/{id}").tags(["User:{id}"]),
            CacheRule::put("/users/{id}").invalidates(["User:{id}"]),
        ])
        .unwrap();
        let m = t.find(&Method::GET, "/users/4%32").ok().unwrap();
        assert!(m.rule.is_cache());
        assert_eq!(m.param("id"), Some("42"));
        assert!(
            t.find(&Method::HEAD, "/users/1")
                .ok()
                .unwrap()
                .rule
                .is_cache()
        );
        assert!(
            !t.find(&Method::PUT, "/users/1")
                .ok()
                .unwrap()
                .rule
                .is_cache()
        );
        assert!(matches!(
            t.find(&Method::POST, "/users/1"),
            Err(NoMatch::NoRule)
        ));
        assert!(matches!(
            t.find(&Method::GET, "/other"),
            Err(NoMatch::NoRule)
        ));
        assert!(matches!(
            t.find(&Method::GET, "/users/%ff"),
            Err(NoMatch::BadPath)
        ));
    }

    #[test]
    fn parsed_params_are_canonical() {
        let t = table(vec![
            CacheRule::get("/users/{id}")
                .tags(["User:{id}"])
                .parse_param::<u64>("id"),
        ])
        .unwrap();
        for path in ["/users/1", "/users/01", "/users/+1", "/users/%30%31"] {
            let m = t.find(&Method::GET, path).ok().unwrap();
            assert_eq!(m.param("id"), Some("1"), "{path}");
        }
        assert!(matches!(
            t.find(&Method::GET, "/users/x"),
            Err(NoMatch::BadPath)
        ));
        let err = table(vec![CacheRule::get("/u/{id}").parse_param::<u64>("uid")]);
        assert!(err.err().unwrap().to_string().contains("uid"));
    }
}
