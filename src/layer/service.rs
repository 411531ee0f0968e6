use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderValue, Method, Request, Response, header, request::Parts};
use http_body::Body;
use tower_service::Service;

use super::{
    ResponseBody,
    body::{OnComplete, Recorder},
    future::ResponseFuture,
    layer::Shared,
    policy::{self, CACHE_STATUS, Reason},
};
use crate::{
    Invalidator,
    key::{FragmentedKey, Tag},
    rules::{CompiledRule, Matched, NoMatch},
    store::{EntryKey, Store, entry::CachedResponse},
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
enum Plan {
    Bypass(Reason),
    Cache {
        rule: Arc<CompiledRule>,
        key: FragmentedKey,
    },
    Invalidate(Vec<Tag>),
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
            Plan::Bypass(reason) => {
                add_invalidator(&self.shared, &mut req);
                ResponseFuture::passthrough(self.inner.call(req), reason.header())
            }
            Plan::Cache { rule, key } => {
                // The ready service goes into the future; its clone stays.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::boxed(cached(self.shared.clone(), inner, req, rule, key))
            }
            Plan::Invalidate(tags) => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::boxed(invalidating(self.shared.clone(), inner, req, tags))
            }
        }
    }
}

/// Makes the [`Invalidator`] reachable from handlers as a request extension.
fn add_invalidator<St: Store, B>(shared: &Shared<St>, req: &mut Request<B>) {
    req.extensions_mut()
        .insert(Invalidator::new(shared.store.clone()).timeout(shared.store_timeout));
}

fn plan<St>(shared: &Shared<St>, parts: &Parts) -> Plan {
    let path = parts.uri.path();
    let matched = match shared.rules.find(&parts.method, path) {
        Ok(m) => m,
        Err(NoMatch::BadPath) => return Plan::Bypass(Reason::BadPath),
        Err(NoMatch::NoRule) => {
            let cacheable = parts.method == Method::GET || parts.method == Method::HEAD;
            return Plan::Bypass(if cacheable {
                Reason::NoRule
            } else {
                Reason::Method
            });
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
            Some(tags) => Plan::Invalidate(tags),
            None => Plan::Bypass(Reason::BadPath),
        };
    }
    if let Err(reason) = policy::check_request(parts, rule) {
        return Plan::Bypass(reason);
    }
    let Some(tags) = render(&rule.tags) else {
        return Plan::Bypass(Reason::BadPath);
    };
    Plan::Cache {
        rule: rule.clone(),
        key: derive_key(&shared.namespace, parts, rule, &matched, tags),
    }
}

/// The fragmented key of a request under a cache rule: everything but the
/// tag versions, derived once, before the inner service runs.
fn derive_key(
    namespace: &str,
    parts: &Parts,
    rule: &CompiledRule,
    matched: &Matched<'_>,
    tags: Vec<Tag>,
) -> FragmentedKey {
    let mut b = FragmentedKey::builder(&rule.name, rule.key_version, &rule.group);
    b.push_vary(":namespace", Some(namespace.as_bytes()));
    // GET and HEAD share entries: the method class is constant for a cache rule.
    b.push_vary(":method", Some(b"GET"));
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().as_bytes())
        .or_else(|| parts.headers.get(header::HOST).map(HeaderValue::as_bytes));
    b.push_vary(":authority", host);
    b.push_vary(":path", Some(parts.uri.path().as_bytes()));
    if !rule.ignore_query {
        b.push_vary(":query", parts.uri.query().map(str::as_bytes));
    }
    for (name, vary) in &rule.vary {
        let value = vary.extract(parts, |p| matched.param(p));
        b.push_vary(name, value.as_deref());
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

fn with_status<B>(mut res: Response<B>, status: HeaderValue) -> Response<B> {
    res.headers_mut().append(CACHE_STATUS, status);
    res
}

async fn cached<S, St, ReqBody, ResBody>(
    shared: Arc<Shared<St>>,
    mut inner: S,
    mut req: Request<ReqBody>,
    rule: Arc<CompiledRule>,
    key: FragmentedKey,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: Store,
    ResBody: Body,
{
    let lookup = match shared.guarded(shared.store.lookup(&key)).await {
        Ok(lookup) => lookup,
        Err(reason) => {
            add_invalidator(&shared, &mut req);
            let res = inner.call(req).await?;
            return Ok(with_status(res.map(ResponseBody::inner), reason.header()));
        }
    };
    let head = req.method() == Method::HEAD;
    if let Some(bytes) = lookup.entry {
        match CachedResponse::decode(bytes) {
            Some(entry) => return Ok(hit(entry, head)),
            None => tracing::warn!(
                key = lookup.entry_key.as_str(),
                "unreadable cache entry; recomputing"
            ),
        }
    }
    let method = req.method().clone();
    add_invalidator(&shared, &mut req);
    let res = inner.call(req).await?;
    match policy::check_response(&method, &res, &rule, shared.max_body_size) {
        Ok(ttl) => {
            let head = CachedResponse {
                status: res.status(),
                headers: policy::storable_headers(res.headers()),
                body: bytes::Bytes::new(),
                trailers: None,
                stored_at_ms: CachedResponse::now_ms(),
                ttl,
            };
            let limit = rule.max_body_size.unwrap_or(shared.max_body_size);
            let expected_len = policy::content_length(res.headers());
            let recorder = Recorder::new(
                head,
                limit,
                expected_len,
                store_later(shared, lookup.entry_key),
            );
            let res = res.map(|body| ResponseBody::recording(body, recorder));
            Ok(with_status(res, policy::stored_status()))
        }
        Err(reason) => {
            tracing::trace!(reason = reason.as_str(), "response not stored");
            Ok(with_status(res.map(ResponseBody::inner), reason.header()))
        }
    }
}

/// Stores a completed response off the response path, under the key the
/// lookup derived (never a re-derived one). Encoding happens in the spawned
/// task, not while the last frame is on its way to the client.
fn store_later<St: Store>(shared: Arc<Shared<St>>, key: EntryKey) -> OnComplete {
    Box::new(move |head, chunks| {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let bytes = head.encode_with_body(&chunks);
            let store = shared.store.clone();
            if shared
                .guarded(store.put(key, bytes, head.ttl))
                .await
                .is_ok()
            {
                tracing::trace!("response stored");
            }
        });
    })
}

fn hit<B>(entry: CachedResponse, head: bool) -> Response<ResponseBody<B>> {
    let age = entry.age_secs(CachedResponse::now_ms());
    let CachedResponse {
        status,
        mut headers,
        body,
        trailers,
        ..
    } = entry;
    headers.insert(header::AGE, HeaderValue::from(age));
    if trailers.is_none() && !headers.contains_key(header::CONTENT_LENGTH) {
        // A HEAD answer carries the length of the GET body it stands for.
        // (With trailers the body goes chunked, so no length.)
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    headers.append(CACHE_STATUS, policy::hit_status());
    let body = if head {
        ResponseBody::cached(bytes::Bytes::new(), None)
    } else {
        ResponseBody::cached(body, trailers)
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

async fn invalidating<S, St, ReqBody, ResBody>(
    shared: Arc<Shared<St>>,
    mut inner: S,
    mut req: Request<ReqBody>,
    tags: Vec<Tag>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: Store,
{
    let invalidator = Invalidator::new(shared.store.clone()).timeout(shared.store_timeout);
    req.extensions_mut().insert(invalidator.clone());
    let res = inner.call(req).await?;
    // Bump only after the handler answered 2xx, i.e. after it committed: a
    // bump before the commit would let a reader cache old data under the new
    // version.
    let mut status = Reason::Method;
    if res.status().is_success()
        && let Err(err) = invalidator.invalidate(&tags).await
    {
        tracing::error!(error = %err, tags = ?tags, "invalidation after a successful write failed; entries stay until their TTL");
        status = Reason::InvalidationFailed;
    }
    Ok(with_status(res.map(ResponseBody::inner), status.header()))
}
