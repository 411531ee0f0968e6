//! The response body of [`TaggedCache`](crate::TaggedCache).

use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::http::Reason;
use crate::{
    store::entry::CachedResponse,
    telemetry::{self, RuleTelemetry, Unstored},
};

/// Called once with the complete response (its body as the recorded chunks)
/// when a recorded body ends cleanly.
pub(crate) type OnComplete = Box<dyn FnOnce(CachedResponse, Vec<Bytes>) + Send>;

/// Copies a response body, frame by frame, while it streams to the client.
/// Copying means keeping a reference to each chunk: concatenating and
/// encoding happen later, off the response path.
///
/// A recorder dropped before the body completed (it failed, outgrew the
/// limit, or the client went away) records why the response was not stored.
pub(crate) struct Recorder {
    head: CachedResponse,
    chunks: Vec<Bytes>,
    size: u64,
    limit: u64,
    expected_len: Option<u64>,
    on_complete: OnComplete,
    unstored: Unstored,
}

impl Recorder {
    /// `head` carries status, headers and TTL. `expected_len` is the declared
    /// `Content-Length`: a body that ends short of it is not stored.
    pub(crate) fn new(
        head: CachedResponse,
        rule: RuleTelemetry,
        limit: usize,
        expected_len: Option<u64>,
        on_complete: OnComplete,
    ) -> Self {
        Self {
            head,
            chunks: Vec::new(),
            size: 0,
            limit: limit as u64,
            expected_len,
            on_complete,
            unstored: Unstored::new(rule),
        }
    }

    /// Records a data chunk; `false` when the body outgrew the limit.
    fn push(&mut self, chunk: &Bytes) -> bool {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            self.unstored.because(Reason::TooLarge);
            return false;
        }
        if !chunk.is_empty() {
            self.chunks.push(chunk.clone());
        }
        true
    }

    fn finish(self) {
        if self.expected_len.is_some_and(|n| n != self.size) {
            telemetry::length_mismatch(self.expected_len, self.size);
            return;
        }
        self.unstored.disarm();
        (self.on_complete)(self.head, self.chunks);
    }
}

pin_project! {
    /// Response body of [`TaggedCache`](crate::TaggedCache): a stored body
    /// replayed from the cache, or the inner service's body (copied for
    /// storage on a storable miss).
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Cached {
            data: Option<Bytes>,
            trailers: Option<HeaderMap>,
        },
        Inner {
            #[pin]
            body: B,
            recorder: Option<Box<Recorder>>,
        },
    }
}

impl<B> ResponseBody<B> {
    /// A body replayed from the cache.
    pub(crate) fn cached(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: Kind::Cached {
                data: (!data.is_empty()).then_some(data),
                trailers,
            },
        }
    }

    /// The inner body, passed through untouched.
    pub(crate) fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner {
                body,
                recorder: None,
            },
        }
    }
}

impl<B: Body> ResponseBody<B> {
    /// The inner body, copied into `recorder` as it streams. A body that is
    /// already at its end is recorded at once (hyper may never poll it).
    pub(crate) fn recording(body: B, recorder: Recorder) -> Self {
        if body.is_end_stream() {
            recorder.finish();
            return Self::inner(body);
        }
        Self {
            kind: Kind::Inner {
                body,
                recorder: Some(Box::new(recorder)),
            },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Cached { data, trailers } => {
                if let Some(data) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            KindProj::Inner { mut body, recorder } => {
                match ready!(body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        let frame = frame.map_data(|mut d| d.copy_to_bytes(d.remaining()));
                        if let Some(rec) = recorder.as_mut() {
                            if let Some(data) = frame.data_ref() {
                                if !rec.push(data) {
                                    *recorder = None;
                                }
                            } else if let Some(t) = frame.trailers_ref() {
                                rec.head.trailers = Some(t.clone());
                            }
                        }
                        // Trailers are the last frame: hyper stops polling
                        // after them, so the body may never report its end.
                        if (frame.is_trailers() || body.is_end_stream())
                            && let Some(rec) = recorder.take()
                        {
                            rec.finish();
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Some(Err(err)) => {
                        // An incomplete body is never stored.
                        *recorder = None;
                        Poll::Ready(Some(Err(err)))
                    }
                    None => {
                        if let Some(rec) = recorder.take() {
                            rec.finish();
                        }
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Cached { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Inner { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Cached { data, trailers } => {
                let len = data.as_ref().map_or(0, |d| d.len() as u64);
                if trailers.is_some() {
                    // Not exact: an exact length makes hyper drop trailers.
                    let mut hint = SizeHint::new();
                    hint.set_lower(len);
                    hint
                } else {
                    SizeHint::with_exact(len)
                }
            }
            Kind::Inner { body, .. } => body.size_hint(),
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Cached { data, .. } => f
                .debug_struct("ResponseBody::Cached")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Inner { recorder, .. } => f
                .debug_struct("ResponseBody::Inner")
                .field("recording", &recorder.is_some())
                .finish(),
        }
    }
}
