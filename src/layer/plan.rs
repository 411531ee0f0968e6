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
                // `Host` never carries the target's userinfo.
                let target = authority.as_str().rsplit('@').next().unwrap_or("");
                host.eq_ignore_ascii_case(target)
            }
        },
    }
}

/// The host of a request, lowercased: the URI's authority, else `Host`.
pub(crate) fn request_host(parts: &Parts) -> String {
    let host = match parts.uri.authority() {
        Some(a) => a.as_str(),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    };
    host.to_ascii_lowercase()
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
