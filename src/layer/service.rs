use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{
    ResponseBody, cached,
    future::ResponseFuture,
    layer::Shared,
    plan::{Plan, plan},
    write,
};
use crate::{
    store::{DefaultStore, Store},
    telemetry::{self, Span},
};

/// Middleware that caches responses under fragmented keys. Made by
/// [`TaggedCacheLayer`](crate::TaggedCacheLayer).
#[derive(Clone)]
pub struct TaggedCache<S, St = DefaultStore> {
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
        dispatch(
            &self.shared,
            &mut self.inner,
            Request::from_parts(parts, body),
            plan,
        )
    }
}

/// Runs the plan made for `req`: passes it through, or starts the cached
/// or invalidating future with the ready `inner` (its clone stays).
pub(crate) fn dispatch<S, St, ReqBody, ResBody>(
    shared: &Arc<Shared<St>>,
    inner: &mut S,
    mut req: Request<ReqBody>,
    plan: Plan<'_>,
) -> ResponseFuture<S::Future, ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    St: Store,
    ReqBody: Send + 'static,
    ResBody: Body + Send + 'static,
{
    match plan {
        Plan::Bypass(reason, rule) => {
            telemetry::bypass(rule, reason);
            write::add_invalidator(shared, &mut req);
            ResponseFuture::passthrough(inner.call(req), reason.header())
        }
        Plan::Cache(plan) => {
            // The ready service goes into the future; its clone stays.
            let clone = inner.clone();
            let inner = std::mem::replace(inner, clone);
            let span = Span::request(&plan.rule.telemetry);
            let fut = cached::cached(shared.clone(), inner, req, plan);
            ResponseFuture::boxed(span.instrument(fut))
        }
        Plan::Invalidate(plan) => {
            let clone = inner.clone();
            let inner = std::mem::replace(inner, clone);
            let span = Span::request(&plan.rule);
            let fut = write::invalidating(shared.clone(), inner, req, plan);
            ResponseFuture::boxed(span.instrument(fut))
        }
    }
}
