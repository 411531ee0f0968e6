//! [`WriteRule`]: which writes bump which tags once they succeeded.

use std::fmt;

use http::Method;

use super::{
    route::{Route, route_methods},
    table::{CompiledRule, Kind, Statuses},
};
use crate::{error::ConfigError, telemetry::RuleTelemetry};

/// Bumps tags after a successful write on a route: after the inner service
/// answered with a 2xx status, that is after the handler committed its
/// write. Never cached.
///
/// ```
/// use tower_tagged_cache::WriteRule;
///
/// let update = WriteRule::put("/users/{id}")
///     .parse_param::<u64>("id")
///     .invalidates(["User:{id}", "Users"]);
/// # let _ = update;
/// ```
#[derive(Clone)]
pub struct WriteRule {
    method: Method,
    pub(super) route: Route,
    invalidates: Vec<String>,
}

impl WriteRule {
    fn new(method: Method, pattern: impl Into<String>) -> Self {
        Self {
            method,
            route: Route::new(pattern),
            invalidates: Vec::new(),
        }
    }

    /// Bumps tags after a successful `method` request on the axum route the
    /// rule is attached to, whose pattern (its `MatchedPath`) the rule takes.
    /// Attach it with
    /// `TaggedCacheLayer::route_rules`
    /// (feature `axum`).
    ///
    /// ```
    /// use http::Method;
    /// use tower_tagged_cache::WriteRule;
    ///
    /// let update = WriteRule::matched(Method::PUT).invalidates(["User:{id}"]);
    /// # let _ = update;
    /// ```
    pub fn matched(method: Method) -> Self {
        Self::new(method, String::new())
    }

    /// Invalidates on `PUT` to routes matching `pattern`.
    pub fn put(pattern: impl Into<String>) -> Self {
        Self::new(Method::PUT, pattern)
    }

    /// Invalidates on `POST` to routes matching `pattern`.
    pub fn post(pattern: impl Into<String>) -> Self {
        Self::new(Method::POST, pattern)
    }

    /// Invalidates on `PATCH` to routes matching `pattern`.
    pub fn patch(pattern: impl Into<String>) -> Self {
        Self::new(Method::PATCH, pattern)
    }

    /// Invalidates on `DELETE` to routes matching `pattern`.
    pub fn delete(pattern: impl Into<String>) -> Self {
        Self::new(Method::DELETE, pattern)
    }

    route_methods!();

    /// Tag templates to bump after a successful (2xx) write on this route,
    /// all in one store round trip.
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
        let checked = self.route.check(self.method.as_str())?;
        let invalidates = checked.templates(&self.invalidates)?;
        if invalidates.is_empty() {
            return Err(checked.error("a write rule needs invalidates(..)"));
        }
        let name = self.route.name();
        Ok(CompiledRule {
            allow_authorization: false,
            allow_cookie: false,
            telemetry: RuleTelemetry::new(&name),
            name,
            kind: Kind::Invalidate(self.method),
            pattern: self.route.pattern,
            path_params: checked.path_params,
            key_version: 1,
            group: String::new(),
            tags: Vec::new(),
            tags_fn: None,
            vary: Vec::new(),
            ttl: std::time::Duration::ZERO,
            statuses: Statuses::List(Vec::new()),
            invalidates,
            max_body_size: None,
            ignore_query: false,
            params: self.route.canonical,
            request_params: self.route.request_params,
            response_driven: false,
            default_freshness: None,
            lease: None,
        })
    }
}

impl fmt::Debug for WriteRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteRule")
            .field("method", &self.method)
            .field("pattern", &self.route.pattern)
            .field("name", &self.route.name)
            .field("invalidates", &self.invalidates)
            .finish_non_exhaustive()
    }
}
