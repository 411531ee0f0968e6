//! What cache and write rules share: the route pattern, the rule's name, and
//! where tag placeholders get their values (path parameters, declared
//! request values, their canonical forms).

use std::sync::Arc;

use crate::{error::ConfigError, key::TagTemplate, key::VaryOn};

/// Maps a raw parameter to its canonical form; `None` rejects it.
pub(super) type ParamFn = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The part of a rule that says where it applies and what its placeholders
/// read.
#[derive(Clone)]
pub(super) struct Route {
    pub(super) pattern: String,
    pub(super) name: Option<String>,
    /// Canonical forms, by parameter name (path or declared).
    pub(super) canonical: Vec<(String, ParamFn)>,
    /// Placeholders filled from the request rather than the path.
    pub(super) request_params: Vec<(String, VaryOn)>,
}

/// The builder methods both rule types have, written once.
macro_rules! route_methods {
    () => {
        /// The base name of this rule: hashed into every key of a cache
        /// rule, and the `rule` label of its metrics. Defaults to the route
        /// pattern.
        ///
        /// Two layers that share a store and see the same paths (routers
        /// nested under different prefixes see their paths without the
        /// prefix) must differ in rule names or in the layer's
        /// [`namespace`](crate::TaggedCacheLayer::namespace).
        pub fn name(mut self, name: impl Into<String>) -> Self {
            self.route.name = Some(name.into());
            self
        }

        /// Parses the parameter `name` as a `T` and uses `T`'s `Display`
        /// form in tags and vary-on values, so `/users/01`, `/users/+1` and
        /// `/users/1` all carry `User:1`, as a handler taking `Path<u64>`
        /// sees them. A request whose parameter does not parse is not
        /// cached (`detail=bad-path`, or `bad-param` for a declared
        /// [`param`](Self::param)).
        ///
        /// Use it on every parameter a handler parses: without it, tags hold
        /// the text of the request, and a write to `/users/01` would bump
        /// `User:01` while the page of user 1 is cached under `User:1`.
        pub fn parse_param<T>(self, name: impl Into<String>) -> Self
        where
            T: std::str::FromStr + std::fmt::Display + 'static,
        {
            self.param_with(name, |raw| raw.parse::<T>().ok().map(|v| v.to_string()))
        }

        /// Maps the parameter `name` to its canonical form with a closure;
        /// `None` means the request is not cached. See
        /// [`parse_param`](Self::parse_param).
        pub fn param_with<F>(mut self, name: impl Into<String>, f: F) -> Self
        where
            F: Fn(&str) -> Option<String> + Send + Sync + 'static,
        {
            self.route
                .canonical
                .push((name.into(), std::sync::Arc::new(f)));
            self
        }

        /// Declares the placeholder `{name}` for tag templates, filled from a
        /// request value: a query parameter (its first occurrence), a header
        /// (its values joined by `", "`, text only) or a closure over the
        /// request head. See the [module docs](crate::rules) for an example.
        pub fn param(
            mut self,
            name: impl Into<String>,
            value: impl Into<crate::key::VaryOn>,
        ) -> Self {
            self.route.request_params.push((name.into(), value.into()));
            self
        }
    };
}
pub(super) use route_methods;

impl Route {
    pub(super) fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
            name: None,
            canonical: Vec::new(),
            request_params: Vec::new(),
        }
    }

    /// Checks the pattern and the parameters; `label` (`GET`, `PUT`, ...)
    /// names the rule in errors.
    pub(super) fn check(&self, label: &str) -> Result<Checked, ConfigError> {
        let mut checked = Checked {
            context: format!("rule {label} {}", self.pattern),
            path_params: Vec::new(),
            request_params: self.request_params.iter().map(|(n, _)| n.clone()).collect(),
        };
        if self.pattern.is_empty() {
            return Err(checked.error(
                "a rule made with matched(..) takes its pattern from the axum route it is \
                 attached to: attach it with TaggedCacheLayer::route_rules (feature `axum`), \
                 not TaggedCacheLayer::rule",
            ));
        }
        if !self.pattern.starts_with('/') {
            return Err(checked.error("the route pattern must start with `/`"));
        }
        checked.path_params = route_params(&self.pattern).map_err(|e| checked.error(e))?;
        for (i, (name, value)) in self.request_params.iter().enumerate() {
            if name.is_empty() || name.contains(['{', '}']) {
                return Err(checked.error(format!("`{name}` is not a placeholder name")));
            }
            if checked.path_params.contains(name) || checked.request_params[..i].contains(name) {
                return Err(checked.error(format!("parameter `{name}` is declared twice")));
            }
            checked.path_param(value.path_param_name(), "param")?;
        }
        for (name, _) in &self.canonical {
            if !checked.knows(name) {
                return Err(checked.error(format!(
                    "parameter `{name}` to parse is not a parameter of the route"
                )));
            }
        }
        Ok(checked)
    }

    /// The rule's name: the one given, else the pattern.
    pub(super) fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.pattern.clone())
    }
}

/// A route whose parameters are known: checks templates against them.
pub(super) struct Checked {
    context: String,
    pub(super) path_params: Vec<String>,
    request_params: Vec<String>,
}

impl Checked {
    /// A configuration error about this rule.
    pub(super) fn error(&self, why: impl std::fmt::Display) -> ConfigError {
        ConfigError::new(format!("{}: {why}", self.context))
    }

    fn knows(&self, name: &str) -> bool {
        self.path_params.iter().any(|p| p == name) || self.request_params.iter().any(|p| p == name)
    }

    /// Parses tag templates whose placeholders must all be known.
    pub(super) fn templates(&self, templates: &[String]) -> Result<Vec<TagTemplate>, ConfigError> {
        templates
            .iter()
            .map(|t| {
                let template = TagTemplate::parse(t).map_err(|e| self.error(e))?;
                if let Some(p) = template.placeholders().find(|p| !self.knows(p)) {
                    return Err(self.error(format!(
                        "tag template `{t}` uses `{{{p}}}`, which is not a parameter of the \
                         route (parameters: {:?}) nor declared with param(..)",
                        self.path_params
                    )));
                }
                Ok(template)
            })
            .collect()
    }

    /// Checks that a path parameter named by a request value exists.
    pub(super) fn path_param(&self, name: Option<&str>, what: &str) -> Result<(), ConfigError> {
        match name {
            Some(p) if !self.path_params.iter().any(|n| n == p) => Err(self.error(format!(
                "{what} path parameter `{p}` is not a parameter of the route"
            ))),
            _ => Ok(()),
        }
    }
}

/// The most parameters (catch-alls aside) a route may have: matchit panics
/// on more.
const MAX_PARAMS: usize = 25;

/// The names of the parameters of a matchit route pattern, read as matchit
/// reads them: `{{` and `}}` are literal braces, also inside a name (`{x}}}`
/// is the parameter `x}`). An error for a pattern matchit would refuse or
/// panic on.
pub(super) fn route_params(pattern: &str) -> Result<Vec<String>, String> {
    let mut params = Vec::new();
    let mut named = 0;
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
                        Some(c @ ('{' | '}')) if chars.peek() == Some(&c) => {
                            chars.next();
                            name.push(c);
                        }
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err("a `{` in the route is never closed".into()),
                    }
                }
                let catch_all = name.starts_with('*');
                let name = name.strip_prefix('*').unwrap_or(&name).to_owned();
                if name.is_empty() {
                    return Err("the route has an empty parameter".into());
                }
                named += usize::from(!catch_all);
                if named > MAX_PARAMS {
                    return Err(format!("the route has more than {MAX_PARAMS} parameters"));
                }
                params.push(name);
            }
            _ => {}
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_read_as_matchit_reads_them() {
        assert_eq!(
            route_params("/a/{id}/{{lit}}/{*rest}"),
            Ok(vec!["id".to_owned(), "rest".to_owned()])
        );
        // Escaped braces inside a name belong to it.
        assert_eq!(route_params("/f/{x}}}"), Ok(vec!["x}".to_owned()]));
        assert_eq!(route_params("/f/{a{{b}"), Ok(vec!["a{b".to_owned()]));
        assert!(route_params("/f/{x}}").is_err());
    }

    #[test]
    fn more_parameters_than_matchit_takes_are_an_error() {
        let route = |n: usize, tail: &str| {
            let params: String = (0..n).map(|i| format!("/{{p{i}}}")).collect();
            format!("{params}{tail}")
        };
        let mut router = matchit::Router::new();
        router.insert(route(MAX_PARAMS, "/{*rest}"), ()).unwrap();
        assert_eq!(
            route_params(&route(MAX_PARAMS, "/{*rest}")).unwrap().len(),
            MAX_PARAMS + 1
        );
        let err = route_params(&route(MAX_PARAMS + 1, "")).unwrap_err();
        assert!(err.contains("more than 25"), "{err}");
    }
}
