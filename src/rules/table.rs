//! Compiled rules and the route table: which rule a request's method and
//! path match, with its parameters decoded and made canonical.

use std::{fmt, sync::Arc, time::Duration};

use http::{Method, StatusCode, request::Parts};

use super::{
    cache::TagsFn,
    route::{ParamFn, route_params},
};
use crate::{
    error::ConfigError,
    key::{TagTemplate, VaryOn},
    telemetry::RuleTelemetry,
};

/// Which statuses a rule may store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Statuses {
    /// Exactly these.
    List(Vec<StatusCode>),
    /// Any final status from 200 to 499 but `206` and `304` (RFC 9111 §3: a
    /// response with explicit freshness may be stored whatever its status).
    AnyFinal,
}

impl Statuses {
    /// Never 1xx, 206, 304 or 5xx.
    pub(super) fn storable(s: StatusCode) -> bool {
        (200..500).contains(&s.as_u16())
            && s != StatusCode::PARTIAL_CONTENT
            && s != StatusCode::NOT_MODIFIED
    }
}

/// What a rule does with the requests it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Cache,
    Invalidate(Method),
}

impl Kind {
    fn label(&self) -> &str {
        match self {
            Kind::Cache => "GET",
            Kind::Invalidate(m) => m.as_str(),
        }
    }
}

/// A checked rule, ready to match.
pub(crate) struct CompiledRule {
    pub(super) kind: Kind,
    pub(crate) pattern: String,
    /// The names of the pattern's path parameters (read where axum's router
    /// matched the route).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) path_params: Vec<String>,
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
    pub(super) statuses: Statuses,
    pub(crate) invalidates: Vec<TagTemplate>,
    pub(crate) max_body_size: Option<usize>,
    pub(crate) ignore_query: bool,
    /// Canonical forms of parameters, by name.
    pub(super) params: Vec<(String, ParamFn)>,
    /// Placeholders filled from the request rather than the path.
    pub(super) request_params: Vec<(String, VaryOn)>,
    pub(crate) response_driven: bool,
    /// Freshness of a response that states none, on a response-driven rule.
    pub(crate) default_freshness: Option<Duration>,
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
            Statuses::AnyFinal => Statuses::storable(status),
        }
    }

    pub(crate) fn is_cache(&self) -> bool {
        self.kind == Kind::Cache
    }

    /// The canonical form of the parameter `name` (itself when the rule
    /// declares none); `None` when it does not parse.
    fn canonical(&self, name: &str, raw: String) -> Option<String> {
        match self.params.iter().find(|(n, _)| n == name) {
            Some((_, canonical)) => canonical(&raw),
            None => Some(raw),
        }
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

impl<'a> Matched<'a> {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads the values the rule declared with `param(..)` from the request
    /// (nothing to do, and no allocation, for rules that declare none).
    pub(crate) fn read_request_params(&mut self, parts: &Parts) -> Result<(), NoMatch> {
        let rule: &'a CompiledRule = self.rule;
        for (name, source) in &rule.request_params {
            let raw = source
                .extract_text(parts, |p| self.param(p).map(str::to_owned))
                .ok_or(NoMatch::BadParam)?;
            let value = rule.canonical(name, raw).ok_or(NoMatch::BadParam)?;
            self.params.push((name, value));
        }
        Ok(())
    }
}

/// Why a request matched no rule it could use.
#[derive(Debug)]
pub(crate) enum NoMatch {
    NoRule,
    /// A path parameter is not UTF-8 or not canonical.
    BadPath,
    /// A declared request value is missing, not text, or not canonical.
    BadParam,
}

impl RuleTable {
    pub(crate) fn insert(&mut self, rule: CompiledRule) -> Result<(), ConfigError> {
        // Found by its pattern, not by routing it: a pattern read as a path
        // may route elsewhere (`/a/{{x}}` is the path `/a/{x}`).
        let existing = self
            .routes
            .iter()
            .position(|r| r[0].pattern == rule.pattern);
        match existing {
            Some(idx) => {
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
            None => {
                let idx = self.routes.len();
                self.router
                    .insert(rule.pattern.clone(), idx)
                    .map_err(|e| ConfigError::new(format!("rule {}: {e}", rule.pattern)))?;
                self.routes.push(vec![Arc::new(rule)]);
                Ok(())
            }
        }
    }

    /// Whether a cache rule matches `path` (so something may be stored
    /// under it).
    pub(crate) fn caches(&self, path: &str) -> bool {
        self.router
            .at(path)
            .is_ok_and(|m| self.routes[*m.value].iter().any(|r| r.is_cache()))
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
            let value = rule
                .canonical(name, decoded.into_owned())
                .ok_or(NoMatch::BadPath)?;
            params.push((name, value));
        }
        Ok(Matched { rule, params })
    }
}

impl RuleTable {
    /// Finds the rule for `method` on a table of one route whose match was
    /// made elsewhere (axum's router), from the path parameters it found,
    /// already percent-decoded.
    #[cfg(feature = "axum")]
    pub(crate) fn find_matched<'a>(
        &'a self,
        method: &Method,
        path_params: &[(&str, &str)],
    ) -> Result<Matched<'a>, NoMatch> {
        let rule = self
            .routes
            .iter()
            .flatten()
            .find(|r| r.handles(method))
            .ok_or(NoMatch::NoRule)?;
        let mut params = Vec::with_capacity(rule.path_params.len());
        for name in &rule.path_params {
            let (_, raw) = path_params
                .iter()
                .find(|(n, _)| n == name)
                .ok_or(NoMatch::BadPath)?;
            let value = rule
                .canonical(name, (*raw).to_owned())
                .ok_or(NoMatch::BadPath)?;
            params.push((name.as_str(), value));
        }
        Ok(Matched { rule, params })
    }

    /// The rules (`"GET /post/{id}"`) whose pattern matches no route of
    /// `routes`, patterns in the same syntax (`/posts/{id}`,
    /// `/files/{*path}`): a rule matches a route when a path the rule
    /// matches is routed there.
    pub(crate) fn unmatched<'r>(&self, routes: impl IntoIterator<Item = &'r str>) -> Vec<String> {
        let mut router = matchit::Router::new();
        for route in routes {
            // A route matchit refuses (a conflict) cannot be routed to
            // either; axum refuses the same ones. One with too many
            // parameters would make it panic.
            if route_params(route).is_ok() {
                let _ = router.insert(route, ());
            }
        }
        self.routes
            .iter()
            .flatten()
            .filter(|rule| router.at(&sample_path(&rule.pattern)).is_err())
            .map(|rule| format!("{} {}", rule.kind.label(), rule.pattern))
            .collect()
    }
}

/// A path that `pattern` matches: every parameter filled with `x`, escaped
/// braces unescaped (a parameter's name may hold some).
fn sample_path(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                while let Some(c) = chars.next() {
                    if matches!(c, '{' | '}') && chars.peek() == Some(&c) {
                        chars.next();
                    } else if c == '}' {
                        break;
                    }
                }
                out.push('x');
            }
            c => out.push(c),
        }
    }
    out
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
    use crate::{rules::CacheRule, rules::Rule, rules::WriteRule};

    fn table<R: Into<Rule>>(rules: Vec<R>) -> Result<RuleTable, ConfigError> {
        let mut t = RuleTable::default();
        for r in rules {
            t.insert(r.into().compile()?)?;
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
            CacheRule::get("/u").ttl(Duration::ZERO),
            CacheRule::get("/u").vary_on(VaryOn::path_param("id")),
            CacheRule::get("/u").statuses([StatusCode::PARTIAL_CONTENT]),
            CacheRule::get("/u").statuses([StatusCode::BAD_GATEWAY]),
        ];
        for rule in cases {
            let shown = format!("{rule:?}");
            assert!(table(vec![rule]).is_err(), "{shown}");
        }
        // A cache rule that invalidates and a write rule that is cached do
        // not compile (see the compile_fail examples on `Rule`); a write
        // rule with nothing to bump is an error.
        assert!(table(vec![WriteRule::put("/u")]).is_err());
        let dup = table(vec![CacheRule::get("/u"), CacheRule::get("/u")]);
        assert!(dup.err().unwrap().to_string().contains("already exists"));
        let conflict = table(vec![CacheRule::get("/u/{id}"), CacheRule::get("/u/{name}")]);
        assert!(conflict.is_err());
    }

    #[test]
    fn matches_by_method_and_decodes_params() {
        let t = table::<Rule>(vec![
            CacheRule::get("/users/{id}").tags(["User:{id}"]).into(),
            WriteRule::put("/users/{id}")
                .invalidates(["User:{id}"])
                .into(),
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

    #[test]
    fn rules_that_match_no_route_are_named() {
        let t = table(vec![
            Rule::from(CacheRule::get("/post/{id}").tags(["Post:{id}"])),
            Rule::from(CacheRule::get("/users/{id}").tags(["User:{id}"])),
            Rule::from(CacheRule::get("/users/me").tags(["Me"])),
            Rule::from(CacheRule::get("/files/{*path}").tags(["Files"])),
            Rule::from(WriteRule::put("/users/{id}").invalidates(["User:{id}"])),
            Rule::from(CacheRule::get("/lit/{{x}}").tags(["Lit"])),
        ])
        .unwrap();
        // Parameter names may differ; a static rule under a dynamic route
        // and a catch-all both match.
        let routes = [
            "/posts/{post_id}",
            "/users/{user_id}",
            "/files/{*rest}",
            "/lit/{x}",
        ];
        assert_eq!(t.unmatched(routes), vec!["GET /post/{id}".to_owned()]);
        // Without the catch-all route, the files rule is reported too; the
        // escaped braces are literal and `/lit/{x}` routes `/lit/{x}`.
        assert_eq!(
            t.unmatched(["/posts/{id}", "/users/{id}", "/lit/{x}"]),
            vec!["GET /post/{id}".to_owned(), "GET /files/{*path}".to_owned()]
        );
        assert_eq!(t.unmatched([]).len(), 6);
        assert_eq!(sample_path("/a/{b}/{{c}}/{*d}"), "/a/x/{c}/x");
        assert_eq!(sample_path("/a/{b}}c}/d"), "/a/x/d");
    }

    #[test]
    fn a_write_rule_joins_the_cache_rule_of_its_pattern() {
        // Escaped braces: the pattern, read as a path, is not its own route.
        let t = table::<Rule>(vec![
            CacheRule::get("/lit/{{x}}").tags(["Lit"]).into(),
            WriteRule::put("/lit/{{x}}").invalidates(["Lit"]).into(),
        ])
        .unwrap();
        let get = t.find(&Method::GET, "/lit/{x}").ok().unwrap();
        let put = t.find(&Method::PUT, "/lit/{x}").ok().unwrap();
        assert!(get.rule.is_cache() && !put.rule.is_cache());
        // A parameter next to a literal route its pattern reads as.
        let t = table::<Rule>(vec![
            CacheRule::get("/a/{{x}}").tags(["Lit"]).into(),
            CacheRule::get("/a/{x}").tags(["A:{x}"]).into(),
            WriteRule::put("/a/{x}").invalidates(["A:{x}"]).into(),
        ])
        .unwrap();
        let m = t.find(&Method::PUT, "/a/1").ok().unwrap();
        assert_eq!(
            (m.rule.pattern.as_str(), m.param("x")),
            ("/a/{x}", Some("1"))
        );
    }

    #[test]
    fn matched_rules_need_a_route() {
        let err = table(vec![CacheRule::matched().tags(["User:{id}"])])
            .err()
            .unwrap();
        assert!(err.to_string().contains("route_rules"), "{err}");
        let err = table(vec![
            WriteRule::matched(Method::PUT).invalidates(["User:{id}"]),
        ])
        .err()
        .unwrap();
        assert!(err.to_string().contains("route_rules"), "{err}");
    }
}
