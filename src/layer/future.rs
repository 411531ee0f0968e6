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
    }
}

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
        }
    }

    pub(crate) fn boxed(
        fut: impl Future<Output = Result<Response<ResponseBody<B>>, E>> + Send + 'static,
    ) -> Self {
        Self {
            kind: Kind::Boxed { fut: Box::pin(fut) },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { fut, status } => {
                let mut res = ready!(fut.poll(cx))?.map(ResponseBody::inner);
                if let Some(status) = status.take() {
                    res.headers_mut().append(CACHE_STATUS, status);
                }
                Poll::Ready(Ok(res))
            }
            KindProj::Boxed { fut } => fut.as_mut().poll(cx),
        }
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
