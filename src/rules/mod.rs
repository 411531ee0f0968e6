//! Per-route rules and route matching.
//!
//! A [`CacheRule`] says which `GET` requests are cached, under which tags,
//! varying on which request values, for how long. A [`WriteRule`] says which
//! writes (`PUT`, `POST`, `PATCH`, `DELETE`) bump which tags once they
//! succeeded. They are different types, so a rule that caches nothing or a
//! write that would be cached cannot be written. Rules are checked when they
//! are added to the layer (see
//! [`TaggedCacheLayer::rule`](crate::TaggedCacheLayer::rule)): a bad template
//! or a placeholder that names no parameter is an error at start, never a
//! surprise at request time.
//!
//! Route patterns use the syntax axum uses (`/users/{id}`,
//! `/files/{*path}`), matched with [`matchit`] against the path the layer
//! sees. Path parameters are percent-decoded, as axum does, so
//! `/users/4%32` fills `User:{id}` with `42`.
//!
//! # Placeholders from the query, headers or a closure
//!
//! Tag templates name path parameters, and any request value declared with
//! [`param`](CacheRule::param): a query parameter, a header, or a closure
//! over the request head ([`VaryOn`](crate::VaryOn) names them). Tags are
//! part of the key, so two requests whose placeholders differ never share an
//! entry. A request that lacks a declared value passes through uncached
//! (`detail=bad-param`); a write that lacks one still invalidates its URI.
//!
//! ```
//! use tower_tagged_cache::{CacheRule, VaryOn, WriteRule};
//!
//! let feed = CacheRule::get("/feed")
//!     .param("user", VaryOn::query("user"))
//!     .param("tenant", VaryOn::header("x-tenant"))
//!     .tags(["Feed:{user}", "Tenant:{tenant}"]);
//! let post = WriteRule::post("/posts")
//!     .param("user", VaryOn::query("user"))
//!     .invalidates(["Feed:{user}"]);
//! # let _ = (feed, post);
//! ```

mod cache;
mod route;
mod table;
mod write;

use crate::error::ConfigError;

pub(crate) use self::table::{CompiledRule, Matched, NoMatch, RuleTable};
#[doc(inline)]
pub use self::{
    cache::{CacheRule, DEFAULT_TTL},
    write::WriteRule,
};

/// A rule of either kind, as [`TaggedCacheLayer::rule`](crate::TaggedCacheLayer::rule)
/// takes it: made from a [`CacheRule`] or a [`WriteRule`].
///
/// A cache rule cannot invalidate, and a write rule cannot be cached:
///
/// ```compile_fail
/// use tower_tagged_cache::CacheRule;
/// let rule = CacheRule::get("/users/{id}").invalidates(["User:{id}"]);
/// ```
///
/// ```compile_fail
/// use tower_tagged_cache::WriteRule;
/// let rule = WriteRule::put("/users/{id}").tags(["User:{id}"]).ttl(std::time::Duration::from_secs(1));
/// ```
#[derive(Debug, Clone)]
pub struct Rule(Kind);

#[derive(Debug, Clone)]
enum Kind {
    Cache(CacheRule),
    Write(WriteRule),
}

impl Rule {
    /// The rule's route pattern (empty for a rule made with `matched`).
    #[cfg(feature = "axum")]
    pub(crate) fn pattern(&self) -> &str {
        match &self.0 {
            Kind::Cache(rule) => &rule.route.pattern,
            Kind::Write(rule) => &rule.route.pattern,
        }
    }

    /// The same rule on `pattern` (the route a `matched` rule is attached
    /// to).
    #[cfg(feature = "axum")]
    pub(crate) fn with_pattern(mut self, pattern: &str) -> Self {
        let route = match &mut self.0 {
            Kind::Cache(rule) => &mut rule.route,
            Kind::Write(rule) => &mut rule.route,
        };
        pattern.clone_into(&mut route.pattern);
        self
    }

    /// Checks the rule and prepares it for matching.
    pub(crate) fn compile(self) -> Result<CompiledRule, ConfigError> {
        match self.0 {
            Kind::Cache(rule) => rule.compile(),
            Kind::Write(rule) => rule.compile(),
        }
    }
}

impl From<CacheRule> for Rule {
    fn from(rule: CacheRule) -> Self {
        Self(Kind::Cache(rule))
    }
}

impl From<WriteRule> for Rule {
    fn from(rule: WriteRule) -> Self {
        Self(Kind::Write(rule))
    }
}
