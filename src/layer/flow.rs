//! The async part of a request: lookup, hit, revalidation, miss and store,
//! and the invalidation that follows a write.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use tower_service::Service;

use super::{
    ResponseBody,
    body::{OnComplete, Recorder},
    flight::{self, Leader, LeaseGuard, Role},
    layer::Shared,
    policy::{self, CACHE_STATUS, Fwd, Reason, RequestPolicy, Timing},
};
use crate::{
    Invalidator,
    key::Tag,
    rules::CompiledRule,
    store::{EntryKey, Op, Store, entry::CachedResponse},
    telemetry::{self, RuleTelemetry, Span},
};

/// The name of the per-URI tag every cached response carries, so that a
/// write to a URI invalidates what is stored for it (RFC 9111 §4.4). Names
/// starting with `_` are reserved for the crate.
pub(crate) const URI_TAG: &str = "_uri";

/// The per-URI tag of `host` + `path`. The query is left out: a write to
/// `/feed` invalidates `/feed?page=2` too.
pub(crate) fn uri_tag(host: &str, path: &str) -> Tag {
    Tag::from_parts(Arc::from(URI_TAG), format!("{host}{path}"))
}

/// Put this in the extensions of a response your service made because it
/// could not reach the origin (as the reverse proxy example does for its
/// `502`): the layer may then serve a stale stored response instead, which
/// RFC 9111 §4.2.4 allows a disconnected cache to do, unless the stored
/// response forbids it (`must-revalidate`, `proxy-revalidate`, `s-maxage`,
/// `no-cache`).
///
/// ```
/// use http::{Response, StatusCode};
/// use tower_tagged_cache::layer::OriginUnreachable;
///
/// let mut res = Response::new("upstream unreachable");
/// *res.status_mut() = StatusCode::BAD_GATEWAY;
/// res.extensions_mut().insert(OriginUnreachable);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct OriginUnreachable;

/// A request a cache rule handles.
pub(crate) struct CacheRequest {
    pub(crate) rule: Arc<CompiledRule>,
    pub(crate) key: crate::key::FragmentedKey,
    pub(crate) policy: RequestPolicy,
}

/// A write: the rule's tags (bumped after a 2xx) and the target URI
/// (invalidated after a 2xx or 3xx).
pub(crate) struct WriteRequest {
    /// The write rule (`NO_RULE` when none matched).
    pub(crate) rule: RuleTelemetry,
    pub(crate) rule_tags: Vec<Tag>,
    pub(crate) host: String,
    pub(crate) path: String,
}

/// Makes the [`Invalidator`] reachable from handlers as a request extension.
pub(crate) fn add_invalidator<St: Store, B>(
    shared: &Shared<St>,
    req: &mut Request<B>,
) -> Invalidator<St> {
    let invalidator = Invalidator::new(shared.store.clone()).timeout(shared.store_timeout);
    req.extensions_mut().insert(invalidator.clone());
    invalidator
}

fn with_status<B>(mut res: Response<B>, status: HeaderValue) -> Response<B> {
    res.headers_mut().append(CACHE_STATUS, status);
    res
}

type Result<B, E> = std::result::Result<Response<ResponseBody<B>>, E>;

pub(crate) async fn cached<S, St, ReqBody, ResBody>(
    shared: Arc<Shared<St>>,
    mut inner: S,
    mut req: Request<ReqBody>,
    plan: CacheRequest,
) -> Result<ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: Store,
    ResBody: Body,
{
    let lookup = match shared
        .guarded(Op::Lookup, shared.store.lookup(&plan.key))
        .await
    {
        Ok(lookup) => lookup,
        Err(reason) => {
            telemetry::bypass(&plan.rule.telemetry, reason.as_str());
            add_invalidator(&shared, &mut req);
            let res = inner.call(req).await?;
            return Ok(with_status(res.map(ResponseBody::inner), reason.header()));
        }
    };
    let now = policy::now_ms();
    let mut fwd = Fwd::Miss;
    let mut stale = None;
    if let Some(bytes) = lookup.entry {
        match CachedResponse::decode(bytes) {
            None => telemetry::unreadable_entry(lookup.entry_key.as_str()),
            Some(entry) if !policy::vary_matches(req.headers(), &entry.vary) => {
                fwd = Fwd::VaryMiss;
            }
            Some(entry)
                if plan.policy.authorized
                    && !policy::shareable_with_authorization(&entry.headers, &plan.rule) => {}
            Some(entry) => {
                if policy::usable_without_origin(&entry, &plan.rule, now, &plan.policy) {
                    telemetry::hit(&plan.rule.telemetry);
                    return Ok(answer(
                        entry,
                        req.headers(),
                        req.method(),
                        policy::hit_status(),
                    ));
                }
                fwd = if plan.policy.no_cache {
                    Fwd::Request
                } else {
                    Fwd::Stale
                };
                stale = Some(entry);
            }
        }
    }
    if plan.policy.only_if_cached {
        // RFC 9111 §5.2.1.7: no stored response to use, so 504.
        telemetry::miss(&plan.rule.telemetry);
        telemetry::not_stored(&plan.rule.telemetry, Reason::OnlyIfCached.as_str());
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_STATUS, Reason::OnlyIfCached.header());
        return Ok(from_store(
            StatusCode::GATEWAY_TIMEOUT,
            headers,
            Bytes::new(),
            None,
        ));
    }
    // Single-flight: one plain GET miss per entry key calls the inner
    // service; the others wait for what it stores (bounded), then fall back
    // to calling it themselves.
    let mut leader = None;
    if stale.is_none()
        && req.method() == Method::GET
        && !plan.policy.no_store
        && !shared.flight_wait.is_zero()
    {
        match single_flight(&shared, &plan, req.headers(), &lookup.entry_key).await {
            Flight::Answered(entry, status) => {
                return Ok(answer(*entry, req.headers(), req.method(), status));
            }
            Flight::Call(lead) => leader = lead,
        }
    }
    let req_headers = req.headers().clone();
    let method = req.method().clone();
    let conditionals = stale.as_ref().and_then(|e| validators(&e.headers));
    if let Some(conditionals) = &conditionals {
        // Ask the origin whether the stored response is still good.
        let headers = req.headers_mut();
        headers.remove(header::IF_NONE_MATCH);
        headers.remove(header::IF_MODIFIED_SINCE);
        for (name, value) in conditionals {
            headers.insert(name.clone(), value.clone());
        }
    }
    add_invalidator(&shared, &mut req);
    let request_ms = policy::now_ms();
    let res = inner.call(req).await?;
    let timing = Timing {
        request_ms,
        response_ms: policy::now_ms(),
    };
    if let Some(entry) = stale {
        if conditionals.is_some() && res.status() == StatusCode::NOT_MODIFIED {
            return Ok(refreshed(
                &shared,
                &plan,
                entry,
                res.headers(),
                &req_headers,
                &method,
                timing,
                lookup.entry_key,
            ));
        }
        let unreachable = res.extensions().get::<OriginUnreachable>().is_some();
        if policy::may_serve_stale(
            &entry,
            &plan.rule,
            &plan.policy,
            res.status(),
            unreachable,
            timing.response_ms,
        ) {
            let status = format!(
                "tower-tagged-cache; fwd=stale; fwd-status={}; detail=served-stale",
                res.status().as_u16()
            );
            let status = HeaderValue::from_str(&status).unwrap_or_else(|_| policy::hit_status());
            telemetry::served_stale(&plan.rule.telemetry);
            return Ok(answer(entry, &req_headers, &method, status));
        }
    }
    telemetry::miss(&plan.rule.telemetry);
    match policy::check_response(
        &method,
        &plan.policy,
        &res,
        &plan.rule,
        shared.max_body_size,
        timing,
    ) {
        Ok(storable) => {
            let head = CachedResponse {
                status: res.status(),
                headers: policy::storable_headers(res.headers()),
                body: Bytes::new(),
                trailers: None,
                stored_at_ms: timing.response_ms,
                ttl: storable.ttl,
                initial_age_ms: storable.initial_age_ms,
                freshness: storable.freshness,
                vary: policy::vary_values(&req_headers, res.headers()),
            };
            let limit = plan.rule.max_body_size.unwrap_or(shared.max_body_size);
            let expected_len = policy::content_length(res.headers());
            let rule = &plan.rule.telemetry;
            let store = store_later(shared, rule.clone(), lookup.entry_key, leader);
            let recorder = Recorder::new(head, rule.clone(), limit, expected_len, store);
            let res = res.map(|body| ResponseBody::recording(body, recorder));
            Ok(with_status(res, fwd.stored()))
        }
        Err(reason) => {
            telemetry::not_stored(&plan.rule.telemetry, reason.as_str());
            Ok(with_status(res.map(ResponseBody::inner), reason.header()))
        }
    }
}

/// What single-flight decided for a GET that missed.
enum Flight {
    /// Answer with this entry, computed by another request (or stored
    /// meanwhile), under this `cache-status`.
    Answered(Box<CachedResponse>, HeaderValue),
    /// Call the inner service, as the leader of this key's flight if any.
    Call(Option<Leader>),
}

/// Joins the flight of `entry_key` in this process: follows its leader
/// (and, should that one give up, joins again, so that one follower leads)
/// until the layer's single-flight wait is over, or leads it. A leader on a
/// rule with a lease also coordinates with other app servers.
async fn single_flight<St: Store>(
    shared: &Shared<St>,
    plan: &CacheRequest,
    req_headers: &HeaderMap,
    entry_key: &EntryKey,
) -> Flight {
    let coalesced = |entry| {
        telemetry::coalesced(&plan.rule.telemetry);
        Flight::Answered(entry, policy::coalesced_status())
    };
    let until = tokio::time::Instant::now() + shared.flight_wait;
    let mut leader = loop {
        match shared.flights.join(entry_key.as_str()) {
            Role::Lead(l) => break Some(l),
            Role::Follow(rx) => {
                telemetry::single_flight_join(&plan.rule.telemetry);
                let wait = until.saturating_duration_since(tokio::time::Instant::now());
                if let Some(entry) = flight::follow(rx, wait).await
                    && shareable(req_headers, plan, &entry)
                {
                    return coalesced(Box::new((*entry).clone()));
                }
                // The leader gave up (its client went away, its response was
                // not stored): one of its followers leads now, the others
                // follow that one, until the wait is over.
                if tokio::time::Instant::now() >= until {
                    break None;
                }
            }
        }
    };
    // A flight may have finished between our lookup and now (or the one we
    // followed gave up, its response stored all the same): look once more
    // before calling the inner service.
    if let Some(entry) = recheck(shared, plan, entry_key).await
        && shareable(req_headers, plan, &entry)
    {
        if let Some(leader) = &leader {
            leader.publish(Arc::new(entry.clone()));
        }
        telemetry::hit(&plan.rule.telemetry);
        return Flight::Answered(Box::new(entry), policy::hit_status());
    }
    // Fleet-wide, for rules that ask for it: the local leader takes the
    // store's lease, or waits for the entry another app server computes.
    // Requests whose response would rarely be shareable (Authorization)
    // take no lease.
    if let Some(local) = &mut leader
        && let Some(ttl) = plan.rule.lease
        && !plan.policy.authorized
    {
        match fleet(shared, plan, entry_key, ttl).await {
            Fleet::Lead(lease) => local.hold(lease),
            Fleet::Served(entry) if shareable(req_headers, plan, &entry) => {
                local.publish(Arc::new((*entry).clone()));
                return coalesced(entry);
            }
            Fleet::Served(_) | Fleet::Alone => {}
        }
    }
    Flight::Call(leader)
}

/// Whether a response stored by another request may answer this one (its
/// learned Vary and the Authorization rule).
fn shareable(req_headers: &HeaderMap, plan: &CacheRequest, entry: &CachedResponse) -> bool {
    policy::vary_matches(req_headers, &entry.vary)
        && (!plan.policy.authorized
            || policy::shareable_with_authorization(&entry.headers, &plan.rule))
}

/// Looks the key up again: a fresh entry under the same versions, if one
/// was stored since the first lookup.
async fn recheck<St: Store>(
    shared: &Shared<St>,
    plan: &CacheRequest,
    entry_key: &EntryKey,
) -> Option<CachedResponse> {
    match look_again(shared, plan, entry_key).await {
        Again::Usable(entry) => Some(*entry),
        Again::Moved | Again::Nothing => None,
    }
}

/// What a local leader does on a rule with a fleet-wide lease.
enum Fleet<St: Store> {
    /// It holds the lease: it calls the inner service.
    Lead(LeaseGuard<St>),
    /// Another app server stored the entry meanwhile.
    Served(Box<CachedResponse>),
    /// The store could not say, or the wait ran out: it calls the inner
    /// service without the lease.
    Alone,
}

/// Takes the lease on `key`, or, while another app server holds it, waits
/// for its entry (checking the store with a backoff from 2 to 50 ms), for at
/// most the lease TTL and half the layer's single-flight wait (the other
/// half is for this process's followers to be served).
async fn fleet<St: Store>(
    shared: &Shared<St>,
    plan: &CacheRequest,
    key: &EntryKey,
    ttl: std::time::Duration,
) -> Fleet<St> {
    let until = tokio::time::Instant::now() + ttl.min(shared.flight_wait / 2);
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        // Guarded before it is asked for: if the acquire times out after
        // reaching the store, or this request goes away, it is given back.
        let guard = LeaseGuard::new(
            shared.store.clone(),
            shared.store.new_lease(key),
            shared.store_timeout,
        );
        let Some(lease) = guard.lease() else {
            return Fleet::Alone;
        };
        match shared
            .guarded(Op::AcquireLease, shared.store.acquire_lease(lease, ttl))
            .await
        {
            Ok(true) => {
                // The last holder may have stored the entry and let go
                // between our last look and now.
                return match look_again(shared, plan, key).await {
                    Again::Usable(entry) => Fleet::Served(entry),
                    _ => Fleet::Lead(guard),
                };
            }
            Ok(false) => guard.disarm(),
            Err(_) => return Fleet::Alone,
        }
        if tokio::time::Instant::now() + pause > until {
            return Fleet::Alone;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
        match look_again(shared, plan, key).await {
            Again::Usable(entry) => return Fleet::Served(entry),
            // A tag was bumped meanwhile: what the holder computes is for a
            // key no one reads any more.
            Again::Moved => return Fleet::Alone,
            Again::Nothing => {}
        }
    }
}

/// What a second look at an entry key found.
enum Again {
    Usable(Box<CachedResponse>),
    /// The versions changed: the key is not the current one any more.
    Moved,
    Nothing,
}

async fn look_again<St: Store>(shared: &Shared<St>, plan: &CacheRequest, key: &EntryKey) -> Again {
    let Ok(again) = shared
        .guarded(Op::Lookup, shared.store.lookup(&plan.key))
        .await
    else {
        return Again::Nothing;
    };
    if again.entry_key != *key {
        return Again::Moved;
    }
    match again.entry.and_then(CachedResponse::decode) {
        Some(entry)
            if policy::usable_without_origin(
                &entry,
                &plan.rule,
                policy::now_ms(),
                &plan.policy,
            ) =>
        {
            Again::Usable(Box::new(entry))
        }
        _ => Again::Nothing,
    }
}

/// The conditional headers that revalidate a stored response, if it has a
/// validator.
fn validators(stored: &HeaderMap) -> Option<Vec<(header::HeaderName, HeaderValue)>> {
    let mut out = Vec::new();
    if let Some(etag) = stored.get(header::ETAG) {
        out.push((header::IF_NONE_MATCH, etag.clone()));
    }
    if let Some(modified) = stored.get(header::LAST_MODIFIED) {
        out.push((header::IF_MODIFIED_SINCE, modified.clone()));
    }
    (!out.is_empty()).then_some(out)
}

/// A stale entry the origin confirmed with `304`: its headers are updated,
/// its freshness recomputed, it is stored again and served.
#[allow(clippy::too_many_arguments)]
fn refreshed<St: Store, B>(
    shared: &Arc<Shared<St>>,
    plan: &CacheRequest,
    mut entry: CachedResponse,
    not_modified: &HeaderMap,
    req_headers: &HeaderMap,
    method: &Method,
    timing: Timing,
    key: EntryKey,
) -> Response<ResponseBody<B>> {
    telemetry::revalidated(&plan.rule.telemetry);
    policy::merge_not_modified(&mut entry.headers, not_modified);
    // The 304's own Age and Date say how old the confirmation is; the
    // merged headers keep no Age, so judge freshness with the 304's.
    let mut judged = entry.headers.clone();
    if let Some(age) = not_modified.get(header::AGE) {
        judged.insert(header::AGE, age.clone());
    }
    let status =
        match policy::check_headers(entry.status, &judged, &plan.policy, &plan.rule, timing) {
            Ok(storable) => {
                entry.freshness = storable.freshness;
                entry.ttl = storable.ttl;
                entry.initial_age_ms = storable.initial_age_ms;
                entry.stored_at_ms = timing.response_ms;
                let body = entry.body.clone();
                let rule = plan.rule.telemetry.clone();
                store_later(shared.clone(), rule, key, None)(entry.clone(), vec![body]);
                policy::revalidated_status()
            }
            Err(reason) => {
                telemetry::not_stored(&plan.rule.telemetry, reason.as_str());
                reason.header()
            }
        };
    answer(entry, req_headers, method, status)
}

/// Stores a completed response off the response path, under the key the
/// lookup derived (never a re-derived one). Encoding happens in the spawned
/// task, not while the last frame is on its way to the client.
///
/// A single-flight `leader` hands the complete response to the requests
/// waiting on it before the store write.
fn store_later<St: Store>(
    shared: Arc<Shared<St>>,
    rule: RuleTelemetry,
    key: EntryKey,
    leader: Option<Leader>,
) -> OnComplete {
    // The request's span, for the write spawned once the body is done.
    let span = Span::current();
    Box::new(move |mut head, chunks| {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(span.instrument(async move {
            let bytes = match &leader {
                Some(leader) => {
                    head.body = match &chunks[..] {
                        [one] => one.clone(),
                        many => Bytes::from(many.concat()),
                    };
                    let bytes = head.encode_with_body(std::slice::from_ref(&head.body));
                    leader.publish(Arc::new(head.clone()));
                    bytes
                }
                None => head.encode_with_body(&chunks),
            };
            let store = shared.store.clone();
            if shared
                .guarded(Op::Put, store.put(key, bytes, head.ttl))
                .await
                .is_ok()
            {
                telemetry::stored(&rule);
            }
            // Only now may a new miss lead: the entry is in the store.
            drop(leader);
        }));
    })
}

/// Answers from a stored response: `304` when the request's conditionals
/// match it, else the stored status, headers, body and trailers (no body for
/// `HEAD`), with `Age`.
fn answer<B>(
    entry: CachedResponse,
    req_headers: &HeaderMap,
    method: &Method,
    status: HeaderValue,
) -> Response<ResponseBody<B>> {
    let age = HeaderValue::from(entry.age_secs(policy::now_ms()));
    let head = method == Method::HEAD;
    if entry.status.is_success() && policy::not_modified(req_headers, &entry.headers) {
        let mut headers = policy::not_modified_headers(&entry.headers);
        headers.insert(header::AGE, age);
        headers.append(CACHE_STATUS, status);
        return from_store(StatusCode::NOT_MODIFIED, headers, Bytes::new(), None);
    }
    let CachedResponse {
        status: code,
        mut headers,
        body,
        trailers,
        ..
    } = entry;
    headers.insert(header::AGE, age);
    headers.append(CACHE_STATUS, status);
    if code == StatusCode::OK
        && let Some(range) = policy::byte_range(req_headers, &headers, body.len() as u64)
    {
        // A single range of a stored complete response (RFC 9110 §15.3.7).
        let content_range = format!("bytes {}-{}/{}", range.start, range.end - 1, body.len());
        if let Ok(value) = HeaderValue::from_str(&content_range) {
            headers.insert(header::CONTENT_RANGE, value);
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(range.end - range.start),
            );
            let part = body.slice(range.start as usize..range.end as usize);
            let part = if head { Bytes::new() } else { part };
            return from_store(StatusCode::PARTIAL_CONTENT, headers, part, None);
        }
    }
    if trailers.is_none() && !headers.contains_key(header::CONTENT_LENGTH) {
        // A HEAD answer carries the length of the GET body it stands for.
        // (With trailers the body goes chunked, so no length.)
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    if head {
        from_store(code, headers, Bytes::new(), None)
    } else {
        from_store(code, headers, body, trailers)
    }
}

/// A response made by the cache itself, from stored parts.
fn from_store<B>(
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
) -> Response<ResponseBody<B>> {
    let mut res = Response::new(ResponseBody::cached(body, trailers));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

pub(crate) async fn invalidating<S, St, ReqBody, ResBody>(
    shared: Arc<Shared<St>>,
    mut inner: S,
    mut req: Request<ReqBody>,
    plan: WriteRequest,
) -> Result<ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: Store,
{
    let invalidator = add_invalidator(&shared, &mut req);
    let res = inner.call(req).await?;
    // Bump only after the handler answered, i.e. after it committed: a bump
    // before the commit would let a reader cache old data under the new
    // version.
    let mut tags = Vec::new();
    if res.status().is_success() {
        tags.extend(plan.rule_tags);
    }
    if shared.invalidate_unsafe && (res.status().is_success() || res.status().is_redirection()) {
        tags.push(uri_tag(&plan.host, &plan.path));
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            if let Some(path) = res
                .headers()
                .get(&name)
                .and_then(|v| same_host_path(v, &plan.host, &plan.path))
            {
                tags.push(uri_tag(&plan.host, &path));
            }
        }
    }
    let mut status = Reason::Method;
    if !tags.is_empty()
        && let Err(err) = invalidator.invalidate(&tags).await
    {
        telemetry::invalidation_failed(&err, &tags);
        status = Reason::InvalidationFailed;
    }
    telemetry::bypass(&plan.rule, status.as_str());
    Ok(with_status(res.map(ResponseBody::inner), status.header()))
}

/// The path a `Location` or `Content-Location` value points to, when it is
/// on the request's host (RFC 9111 §4.4 invalidates only those).
fn same_host_path(value: &HeaderValue, host: &str, request_path: &str) -> Option<String> {
    let value = value.to_str().ok()?.trim();
    let strip = |s: &str| s.split(['?', '#']).next().unwrap_or("").to_owned();
    if let Some(rest) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let authority = authority.split(['?', '#']).next().unwrap_or("");
        if !authority.eq_ignore_ascii_case(host) {
            return None;
        }
        let path = strip(path);
        return Some(if path.is_empty() {
            "/".to_owned()
        } else {
            path
        });
    }
    if value.starts_with("//") || value.contains("://") {
        return None;
    }
    if value.starts_with('/') {
        return Some(strip(value));
    }
    // Relative to the request's directory.
    let dir = &request_path[..request_path.rfind('/').map_or(0, |i| i + 1)];
    Some(format!("{dir}{}", strip(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_on_the_same_host() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        let host = "example.com:8020";
        assert_eq!(
            same_host_path(&h("/a/b?x=1"), host, "/p/q"),
            Some("/a/b".into())
        );
        assert_eq!(
            same_host_path(&h("http://Example.com:8020/a#f"), host, "/p"),
            Some("/a".into())
        );
        assert_eq!(
            same_host_path(&h("https://example.com:8020"), host, "/p"),
            Some("/".into())
        );
        assert_eq!(same_host_path(&h("http://other.com/a"), host, "/p"), None);
        assert_eq!(same_host_path(&h("//example.com:8020/a"), host, "/p"), None);
        assert_eq!(same_host_path(&h("c"), host, "/p/q"), Some("/p/c".into()));
    }
}
