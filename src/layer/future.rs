//! Response future of [`TaggedCache`](crate::TaggedCache).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use super::{ResponseBody, http::CACHE_STATUS};

type BoxFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// Response future of [`TaggedCache`](crate::TaggedCache).
    ///
    /// Requests that no rule caches run the inner future unboxed; cached
    /// routes (store lookup, then maybe the inner call) run boxed.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
        // Made by a layer for rules attached to an axum route: the response
        // says so to a layer around it (see `OnRoute`).
        on_route: bool,
    }
}

/// In the extensions of a response that a layer for rules attached to an
/// axum route answered: a layer of this crate around it (on the whole
/// router) then adds no `cache-status` member of its own, one per cache.
#[derive(Debug, Clone, Copy)]
struct OnRoute;

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Passthrough {
            #[pin]
            fut: F,
            status: Option<HeaderValue>,
        },
        Boxed {
            fut: BoxFuture<B, E>,
        },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn passthrough(fut: F, status: HeaderValue) -> Self {
        Self {
            kind: Kind::Passthrough {
                fut,
                status: Some(status),
            },
            on_route: false,
        }
    }

    pub(crate) fn boxed(
        fut: impl Future<Output = Result<Response<ResponseBody<B>>, E>> + Send + 'static,
    ) -> Self {
        Self {
            kind: Kind::Boxed { fut: Box::pin(fut) },
            on_route: false,
        }
    }

    /// The same future, for a layer of rules attached to an axum route.
    #[cfg(feature = "axum")]
    pub(crate) fn on_route(mut self) -> Self {
        self.on_route = true;
        self
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match this.kind.project() {
            KindProj::Passthrough { fut, status } => {
                let mut res = ready!(fut.poll(cx))?.map(ResponseBody::inner);
                // A layer for rules attached to the route, inside this one,
                // already said what happened: one member per cache.
                let said = res.extensions().get::<OnRoute>().is_some();
                if let Some(status) = status.take().filter(|_| !said) {
                    res.headers_mut().append(CACHE_STATUS, status);
                }
                res
            }
            KindProj::Boxed { fut } => ready!(fut.as_mut().poll(cx))?,
        };
        if *this.on_route {
            res.extensions_mut().insert(OnRoute);
        }
        Poll::Ready(Ok(res))
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Passthrough { .. } => "passthrough",
            Kind::Boxed { .. } => "cached",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
