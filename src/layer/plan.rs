//! Stage 1, before anything is awaited: which rule handles the request, and
//! with which key (cache rules) or which tags (writes).

use std::sync::Arc;

use http::{Method, header, request::Parts};

use super::{
    http::{Reason, RequestPolicy, check_request},
    layer::Shared,
};
use crate::{
    key::{FragmentedKey, HttpKey, Tag, TagTemplate},
    rules::{CompiledRule, Matched, NoMatch},
    telemetry::RuleTelemetry,
};

/// What to do with one request.
pub(crate) enum Plan<'a> {
    /// Why, and the name of the rule that matched (empty when none did).
    Bypass(Reason, &'a RuleTelemetry),
    Cache(CacheRequest),
    Invalidate(WriteRequest),
}

/// A request a cache rule handles, with the key derived for it: everything
/// but the tag versions, derived once, before the inner service runs.
pub(crate) struct CacheRequest {
    pub(crate) rule: Arc<CompiledRule>,
    pub(crate) key: FragmentedKey,
    pub(crate) policy: RequestPolicy,
}

/// A write: the rule's tags (bumped after a 2xx) and the target URI
/// (invalidated after a 2xx or 3xx).
pub(crate) struct WriteRequest {
    /// The write rule (the layer's `no_rule` when none matched).
    pub(crate) rule: RuleTelemetry,
    pub(crate) rule_tags: Vec<Tag>,
    pub(crate) host: String,
    /// The `Host` field, when it names another host than the target's
    /// authority: the service behind may have written to either, so the
    /// per-URI tags of both are bumped.
    pub(crate) other_host: Option<String>,
    pub(crate) path: String,
}

impl WriteRequest {
    /// An unsafe request no write rule names (or whose parameters do not
    /// parse): it still invalidates its URI.
    fn uri_only<St>(shared: &Shared<St>, parts: &Parts) -> Self {
        Self {
            rule: shared.no_rule.clone(),
            rule_tags: Vec::new(),
            host: request_host(parts),
            other_host: other_host(parts),
            path: parts.uri.path().to_owned(),
        }
    }
}

/// Decides what the layer does with a request.
pub(crate) fn plan<'a, St>(shared: &'a Shared<St>, parts: &Parts) -> Plan<'a> {
    plan_found(
        shared,
        parts,
        shared.rules.find(&parts.method, parts.uri.path()),
    )
}

/// Decides what the layer does with a request, given the rule its method
/// and path matched (found by the layer's own route table, or by axum's
/// router for rules attached to a route).
pub(crate) fn plan_found<'a, St>(
    shared: &'a Shared<St>,
    parts: &Parts,
    found: Result<Matched<'a>, NoMatch>,
) -> Plan<'a> {
    let path = parts.uri.path();
    let safe = parts.method == Method::GET || parts.method == Method::HEAD;
    let unsafe_method = !safe && parts.method != Method::OPTIONS && parts.method != Method::TRACE;
    let found = found.and_then(|mut m| {
        m.read_request_params(parts)?;
        Ok(m)
    });
    let matched = match found {
        Ok(m) => m,
        // A write still invalidates its URI when no rule names it or its
        // parameters do not parse.
        Err(_) if unsafe_method && shared.invalidate_unsafe => {
            return Plan::Invalidate(WriteRequest::uri_only(shared, parts));
        }
        Err(NoMatch::BadPath) => return Plan::Bypass(Reason::BadPath, &shared.no_rule),
        Err(NoMatch::BadParam) => return Plan::Bypass(Reason::BadParam, &shared.no_rule),
        Err(NoMatch::NoRule) => {
            let reason = if safe { Reason::NoRule } else { Reason::Method };
            return Plan::Bypass(reason, &shared.no_rule);
        }
    };
    let rule = matched.rule;
    let render = |templates: &[TagTemplate]| -> Option<Vec<Tag>> {
        templates
            .iter()
            .map(|t| t.render(|p| matched.param(p)))
            .collect()
    };
    if !rule.is_cache() {
        return match render(&rule.invalidates) {
            Some(rule_tags) => Plan::Invalidate(WriteRequest {
                rule: rule.telemetry.clone(),
                rule_tags,
                host: request_host(parts),
                other_host: other_host(parts),
                path: path.to_owned(),
            }),
            None => Plan::Bypass(Reason::BadPath, &rule.telemetry),
        };
    }
    if !one_host(parts) {
        return Plan::Bypass(Reason::HostMismatch, &rule.telemetry);
    }
    let policy = match check_request(parts, rule) {
        Ok(policy) => policy,
        Err(reason) => return Plan::Bypass(reason, &rule.telemetry),
    };
    let Some(tags) = render(&rule.tags) else {
        return Plan::Bypass(Reason::BadPath, &rule.telemetry);
    };
    Plan::Cache(CacheRequest {
        rule: rule.clone(),
        key: derive_key(shared, parts, rule, &matched, tags),
        policy,
    })
}

/// Whether the request names one host: the key is made from it, and the
/// service behind must answer for that host and no other. An absolute-form
/// target (`GET http://a.example/p`) with a `Host: b.example` beside it, two
/// `Host` fields, or one that is not text, would let a request pick what
/// the service answers (its virtual host) by a header the key does not
/// hold, and store it for everyone who asks for the host the key names.
fn one_host(parts: &Parts) -> bool {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => true,
        (Some(_), Some(_)) => false,
        (Some(host), None) => match (host.to_str(), parts.uri.authority()) {
            (Err(_), _) => false,
            (Ok(_), None) => true,
            (Ok(host), Some(authority)) => {
                same_host(host, authority.as_str(), parts.uri.scheme_str())
            }
        },
    }
}

/// The `Host` field of a request whose target names another host,
/// normalised.
fn other_host(parts: &Parts) -> Option<String> {
    let authority = parts.uri.authority()?;
    let scheme = parts.uri.scheme_str();
    let host = parts.headers.get(header::HOST)?.to_str().ok()?;
    (!same_host(host, authority.as_str(), scheme)).then(|| normalize_host(host, scheme))
}

/// The host of a request, normalised: the URI's authority, else `Host`.
pub(crate) fn request_host(parts: &Parts) -> String {
    let host = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    };
    normalize_host(host, parts.uri.scheme_str())
}

/// One spelling per host, so that every spelling of a host shares its
/// entries and its per-URI tags (a write through one form invalidates the
/// others): no userinfo, lowercase, no default port for the scheme (80, or
/// 443 for `https`), no trailing dot.
pub(crate) fn normalize_host(raw: &str, scheme: Option<&str>) -> String {
    host_part(raw, scheme).to_ascii_lowercase()
}

/// Whether two spellings name one host (see [`normalize_host`]), without
/// allocating: this runs on every request that carries both.
pub(crate) fn same_host(a: &str, b: &str, scheme: Option<&str>) -> bool {
    host_part(a, scheme).eq_ignore_ascii_case(host_part(b, scheme))
}

/// `raw` without userinfo, default port and trailing dot (case kept).
fn host_part<'a>(raw: &'a str, scheme: Option<&str>) -> &'a str {
    let host = raw.rsplit('@').next().unwrap_or("");
    let default_port = if scheme == Some("https") {
        ":443"
    } else {
        ":80"
    };
    let host = host.strip_suffix(default_port).unwrap_or(host);
    host.strip_suffix('.').unwrap_or(host)
}

/// The fragmented key of a request under a cache rule (the schema is
/// [`HttpKey`]'s).
fn derive_key<St>(
    shared: &Shared<St>,
    parts: &Parts,
    rule: &CompiledRule,
    matched: &Matched<'_>,
    tags: Vec<Tag>,
) -> FragmentedKey {
    let host = request_host(parts);
    let schema = HttpKey {
        rule: &rule.name,
        key_version: rule.key_version,
        group: &rule.group,
        namespace: &shared.namespace,
        host: &host,
        path: parts.uri.path(),
        query: (!rule.ignore_query).then(|| parts.uri.query()),
        uri_tag: shared.invalidate_unsafe,
    };
    let vary = rule
        .vary
        .iter()
        .map(|(name, vary)| (name.as_str(), vary.extract(parts, |p| matched.param(p))));
    let from_request = rule.tags_fn.as_ref().map(|f| f(parts)).unwrap_or_default();
    schema.derive(vary, tags.into_iter().chain(from_request))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_host_is_one() {
        for (raw, scheme, want) in [
            ("A.Example", None, "a.example"),
            ("a.example:80", None, "a.example"),
            ("a.example:80", Some("http"), "a.example"),
            ("a.example:443", Some("https"), "a.example"),
            ("a.example:443", Some("http"), "a.example:443"),
            ("a.example:8080", None, "a.example:8080"),
            ("user:pw@a.example", Some("http"), "a.example"),
            ("a.example.", None, "a.example"),
            ("[::1]:80", None, "[::1]"),
            ("[::1]:8080", None, "[::1]:8080"),
            ("", None, ""),
        ] {
            assert_eq!(normalize_host(raw, scheme), want, "{raw} {scheme:?}");
        }
    }
}
