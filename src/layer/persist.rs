//! The persist stage: a response from the origin streams to the client
//! while its frames are recorded, and is stored after the last one, off the
//! response path, under the key the lookup derived; a stale entry the origin
//! confirmed with `304` is refreshed and stored again. A response that
//! varies is stored beside the other variants the lookup read under the key
//! (see [`variants`](crate::store::variants)).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response, header};
use http_body::Body;

use super::{
    ResponseBody,
    answer::{answer, with_status},
    body::{OnComplete, Recorder},
    cached::Ctx,
    http::{
        Fwd, Timing, check_headers, check_response, content_length, merge_not_modified,
        revalidated_status, storable_headers, vary_values,
    },
};
use crate::{
    clock::now_ms,
    flight::Leader,
    store::{
        Store,
        entry::CachedResponse,
        variants::{self, Bounds},
    },
    telemetry::{self, Span},
};

/// A response from the origin: when its headers allow storing it, its body
/// is recorded while it streams and stored once complete (a single-flight
/// `leader` hands it to its followers first); otherwise it passes through
/// and `cache-status` says why.
pub(crate) fn record<St: Store, B: Body>(
    ctx: Ctx<St>,
    res: Response<B>,
    timing: Timing,
    leader: Option<Leader<Arc<CachedResponse>>>,
    fwd: Fwd,
) -> Response<ResponseBody<B>> {
    let (plan, max_body_size) = (&ctx.plan, ctx.shared.max_body_size);
    let storable = check_response(
        &ctx.method,
        &plan.policy,
        &res,
        &plan.rule,
        max_body_size,
        timing,
    );
    let storable = match storable {
        Ok(storable) => storable,
        Err(reason) => {
            telemetry::not_stored(&plan.rule.telemetry, reason);
            return with_status(res.map(ResponseBody::inner), reason.header());
        }
    };
    let head = CachedResponse {
        status: res.status(),
        headers: storable_headers(res.headers()),
        body: Bytes::new(),
        trailers: None,
        stored_at_ms: timing.response_ms,
        ttl: storable.ttl,
        initial_age_ms: storable.initial_age_ms,
        freshness: storable.freshness,
        vary: vary_values(&ctx.req_headers, res.headers()),
    };
    let limit = plan.rule.max_body_size.unwrap_or(max_body_size);
    let expected_len = content_length(res.headers());
    let rule = plan.rule.telemetry.clone();
    let recorder = Recorder::new(head, rule, limit, expected_len, store_later(ctx, leader));
    with_status(
        res.map(|body| ResponseBody::recording(body, recorder)),
        fwd.stored(),
    )
}

/// A stale entry the origin confirmed with `304`: its headers are updated,
/// its freshness recomputed, it is stored again and served.
pub(crate) fn refreshed<St: Store, B>(
    ctx: Ctx<St>,
    mut entry: CachedResponse,
    not_modified: &HeaderMap,
    timing: Timing,
) -> Response<ResponseBody<B>> {
    let plan = &ctx.plan;
    telemetry::revalidated(&plan.rule.telemetry);
    merge_not_modified(&mut entry.headers, not_modified);
    // The 304's own Age and Date say how old the confirmation is; the
    // merged headers keep no Age, so judge freshness with the 304's.
    let mut judged = entry.headers.clone();
    if let Some(age) = not_modified.get(header::AGE) {
        judged.insert(header::AGE, age.clone());
    }
    match check_headers(entry.status, &judged, &plan.policy, &plan.rule, timing) {
        Ok(storable) => {
            entry.freshness = storable.freshness;
            entry.ttl = storable.ttl;
            entry.initial_age_ms = storable.initial_age_ms;
            entry.stored_at_ms = timing.response_ms;
            let res = answer(
                entry.clone(),
                &ctx.req_headers,
                &ctx.method,
                revalidated_status(),
            );
            let body = entry.body.clone();
            store_later(ctx, None)(entry, vec![body]);
            res
        }
        Err(reason) => {
            telemetry::not_stored(&plan.rule.telemetry, reason);
            answer(entry, &ctx.req_headers, &ctx.method, reason.header())
        }
    }
}

/// Stores a completed response off the response path, under the key the
/// lookup derived (never a re-derived one), beside the variants the lookup
/// read there that it keeps ([`variants::beside`]). Encoding happens in the
/// spawned task, not while the last frame is on its way to the client.
///
/// A single-flight `leader` hands the complete response to the requests
/// waiting on it before the store write.
fn store_later<St: Store>(ctx: Ctx<St>, leader: Option<Leader<Arc<CachedResponse>>>) -> OnComplete {
    let Ctx {
        shared,
        plan,
        entry_key: key,
        prior,
        ..
    } = ctx;
    let rule = plan.rule.telemetry.clone();
    let bounds = Bounds {
        max_variants: shared.max_variants,
        max_bytes: plan.rule.max_body_size.unwrap_or(shared.max_body_size),
    };
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
            let (bytes, ttl) = variants::beside(&head, bytes, &prior, bounds, now_ms());
            drop(prior);
            if shared.store.put(key, bytes, ttl).await.is_ok() {
                telemetry::stored(&rule);
            }
            // Only now may a new miss lead: the entry is in the store.
            drop(leader);
        }));
    })
}
