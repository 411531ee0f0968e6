use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Method, Request, Response, header, request::Parts};
use http_body::Body;
use tower_service::Service;

use super::{
    ResponseBody,
    flow::{self, CacheRequest, WriteRequest},
    future::ResponseFuture,
    layer::Shared,
    policy::{self, Reason},
};
use crate::{
    key::{FragmentedKey, Tag},
    rules::{CompiledRule, Matched, NoMatch},
    store::Store,
    telemetry::{self, RuleTelemetry, Span},
};

/// Middleware that caches responses under fragmented keys. Made by
/// [`TaggedCacheLayer`](crate::TaggedCacheLayer).
#[derive(Clone)]
pub struct TaggedCache<S, St> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared<St>>,
}

impl<S, St> TaggedCache<S, St> {
    /// Gets a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug, St: fmt::Debug> fmt::Debug for TaggedCache<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaggedCache")
            .field("inner", &self.inner)
            .field("store", &self.shared.store)
            .field("rules", &self.shared.rules)
            .finish()
    }
}

/// What to do with one request, decided before anything is awaited.
enum Plan<'a> {
    /// Why, and the name of the rule that matched (empty when none did).
    Bypass(Reason, &'a RuleTelemetry),
    Cache(CacheRequest),
    Invalidate(WriteRequest),
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for TaggedCache<S, St>
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
        let (parts, body) = req.into_parts();
        let plan = plan(&self.shared, &parts);
        let mut req = Request::from_parts(parts, body);
        match plan {
            Plan::Bypass(reason, rule) => {
                telemetry::bypass(rule, reason.as_str());
                flow::add_invalidator(&self.shared, &mut req);
                ResponseFuture::passthrough(self.inner.call(req), reason.header())
            }
            Plan::Cache(plan) => {
                // The ready service goes into the future; its clone stays.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let span = Span::request(&plan.rule.telemetry);
                let fut = flow::cached(self.shared.clone(), inner, req, plan);
                ResponseFuture::boxed(span.instrument(fut))
            }
            Plan::Invalidate(plan) => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let span = Span::request(&plan.rule);
                let fut = flow::invalidating(self.shared.clone(), inner, req, plan);
                ResponseFuture::boxed(span.instrument(fut))
            }
        }
    }
}

fn plan<'a, St>(shared: &'a Shared<St>, parts: &Parts) -> Plan<'a> {
    let path = parts.uri.path();
    let safe = parts.method == Method::GET || parts.method == Method::HEAD;
    let unsafe_method = !safe && parts.method != Method::OPTIONS && parts.method != Method::TRACE;
    let matched = match shared.rules.find(&parts.method, path) {
        Ok(m) => m,
        Err(NoMatch::NoRule) if unsafe_method && shared.invalidate_unsafe => {
            return Plan::Invalidate(WriteRequest {
                rule: telemetry::NO_RULE.clone(),
                rule_tags: Vec::new(),
                host: request_host(parts),
                path: path.to_owned(),
            });
        }
        // A write still invalidates its URI when its parameters do not parse.
        Err(NoMatch::BadPath) if unsafe_method && shared.invalidate_unsafe => {
            return Plan::Invalidate(WriteRequest {
                rule: telemetry::NO_RULE.clone(),
                rule_tags: Vec::new(),
                host: request_host(parts),
                path: path.to_owned(),
            });
        }
        Err(NoMatch::BadPath) => return Plan::Bypass(Reason::BadPath, &telemetry::NO_RULE),
        Err(NoMatch::NoRule) => {
            let reason = if safe { Reason::NoRule } else { Reason::Method };
            return Plan::Bypass(reason, &telemetry::NO_RULE);
        }
    };
    let rule = matched.rule;
    let render = |templates: &[crate::key::TagTemplate]| -> Option<Vec<Tag>> {
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
    let policy = match policy::check_request(parts, rule) {
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

/// The host of a request, lowercased: the URI's authority, else `Host`.
fn request_host(parts: &Parts) -> String {
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

/// The fragmented key of a request under a cache rule: everything but the
/// tag versions, derived once, before the inner service runs.
fn derive_key<St>(
    shared: &Shared<St>,
    parts: &Parts,
    rule: &CompiledRule,
    matched: &Matched<'_>,
    tags: Vec<Tag>,
) -> FragmentedKey {
    let mut b = FragmentedKey::builder(&rule.name, rule.key_version, &rule.group);
    b.push_vary(":namespace", Some(shared.namespace.as_bytes()));
    // GET and HEAD share entries: the method class is constant for a cache rule.
    b.push_vary(":method", Some(b"GET"));
    let host = request_host(parts);
    b.push_vary(":authority", Some(host.as_bytes()));
    b.push_vary(":path", Some(parts.uri.path().as_bytes()));
    if !rule.ignore_query {
        b.push_vary(":query", parts.uri.query().map(str::as_bytes));
    }
    for (name, vary) in &rule.vary {
        let value = vary.extract(parts, |p| matched.param(p));
        b.push_vary(name, value.as_deref());
    }
    if shared.invalidate_unsafe {
        b.push_tag(flow::uri_tag(&host, parts.uri.path()));
    }
    for tag in tags {
        b.push_tag(tag);
    }
    if let Some(f) = &rule.tags_fn {
        for tag in f(parts) {
            b.push_tag(tag);
        }
    }
    b.finish()
}
