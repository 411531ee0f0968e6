//! A request a cache rule handles, top to bottom: lookup, then a hit or the
//! origin (coalesced with other misses, conditional when a stale entry has
//! validators), then a stale copy, a refreshed entry or a recorded response.
//! Each stage lives in its own file; this one only strings them together.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use tower_service::Service;

use super::{
    ResponseBody,
    answer::{Result, answer, only_if_cached, served_stale_status, with_status},
    http::{Reason, Timing, hit_status, may_serve_stale},
    layer::Shared,
    lookup::{Flight, Found, lookup, single_flight},
    persist,
    plan::CacheRequest,
    write::add_invalidator,
};
use crate::{
    clock::now_ms,
    store::{EntryKey, Store, variants::Prior},
    telemetry,
};

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

/// A cached request that goes to the origin: what the stages after the
/// lookup need.
pub(crate) struct Ctx<St> {
    pub(crate) shared: Arc<Shared<St>>,
    pub(crate) plan: CacheRequest,
    /// The key the lookup derived; the response is stored under it.
    pub(crate) entry_key: EntryKey,
    pub(crate) method: Method,
    /// The request's headers as the client sent them (the origin may get
    /// conditionals of the cache's own).
    pub(crate) req_headers: HeaderMap,
    /// What the lookup read under the key: the variants the response may be
    /// stored beside.
    pub(crate) prior: Prior,
}

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
    let rule = &plan.rule.telemetry;
    let (entry_key, fwd, stale, vary, prior) = match lookup(&shared, &plan, req.headers()).await {
        Ok(Found::Fresh(entry)) => {
            telemetry::hit(rule);
            return Ok(answer(entry, req.headers(), req.method(), hit_status()));
        }
        Ok(Found::Miss {
            entry_key,
            fwd,
            stale,
            vary,
            prior,
        }) => (entry_key, fwd, stale, vary, prior),
        Err(reason) => {
            telemetry::bypass(rule, reason);
            add_invalidator(&shared, &mut req);
            let res = inner.call(req).await?;
            return Ok(with_status(res.map(ResponseBody::inner), reason.header()));
        }
    };
    if plan.policy.only_if_cached {
        telemetry::miss(rule);
        telemetry::not_stored(rule, Reason::OnlyIfCached);
        return Ok(only_if_cached());
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
        match single_flight(&shared, &plan, req.headers(), &entry_key, &vary).await {
            Flight::Answered(entry, status) => {
                return Ok(answer(*entry, req.headers(), req.method(), status));
            }
            Flight::Call(lead) => leader = lead,
        }
    }
    let ctx = Ctx {
        shared,
        plan,
        entry_key,
        method: req.method().clone(),
        req_headers: req.headers().clone(),
        prior,
    };
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
    add_invalidator(&ctx.shared, &mut req);
    let request_ms = now_ms();
    let res = inner.call(req).await?;
    let timing = Timing {
        request_ms,
        response_ms: now_ms(),
    };
    if let Some(entry) = stale {
        if conditionals.is_some() && res.status() == StatusCode::NOT_MODIFIED {
            return Ok(persist::refreshed(ctx, *entry, res.headers(), timing));
        }
        let unreachable = res.extensions().get::<OriginUnreachable>().is_some();
        let plan = &ctx.plan;
        if may_serve_stale(
            &entry,
            &plan.rule,
            &plan.policy,
            res.status(),
            unreachable,
            timing.response_ms,
        ) {
            telemetry::served_stale(&plan.rule.telemetry);
            let status = served_stale_status(res.status());
            return Ok(answer(*entry, &ctx.req_headers, &ctx.method, status));
        }
    }
    telemetry::miss(&ctx.plan.rule.telemetry);
    Ok(persist::record(ctx, res, timing, leader, fwd))
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
