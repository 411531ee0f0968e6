//! Response future of [`Admin`](super::Admin).

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;

type BoxFuture = Pin<Box<dyn Future<Output = Response<String>> + Send>>;

/// Response future of [`Admin`](super::Admin): ready at once for answers
/// that need no store call, boxed for those that do.
pub struct ResponseFuture {
    kind: Kind,
}

enum Kind {
    Ready(Option<Response<String>>),
    Boxed(BoxFuture),
}

impl ResponseFuture {
    pub(super) fn ready(res: Response<String>) -> Self {
        Self {
            kind: Kind::Ready(Some(res)),
        }
    }

    pub(super) fn boxed(fut: impl Future<Output = Response<String>> + Send + 'static) -> Self {
        Self {
            kind: Kind::Boxed(Box::pin(fut)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<String>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.kind {
            Kind::Ready(res) => Poll::Ready(Ok(res.take().expect("polled after completion"))),
            Kind::Boxed(fut) => fut.as_mut().poll(cx).map(Ok),
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Ready(_) => "ready",
            Kind::Boxed(_) => "boxed",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
