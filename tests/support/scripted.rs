//! A response body that plays back scripted frames (data, trailers,
//! errors), for origins in tests.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

#[derive(Debug)]
pub enum Step {
    Data(Bytes),
    Trailers(HeaderMap),
    Error(&'static str),
}

#[derive(Debug, Default)]
pub struct Scripted {
    steps: VecDeque<Step>,
    exact_len: Option<u64>,
}

impl Scripted {
    /// One data frame, with an exact size hint.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        Self {
            exact_len: Some(data.len() as u64),
            steps: VecDeque::from([Step::Data(data)]),
        }
    }

    /// Frames of unknown total length.
    pub fn steps(steps: impl IntoIterator<Item = Step>) -> Self {
        Self {
            steps: steps.into_iter().collect(),
            exact_len: None,
        }
    }
}

impl Body for Scripted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(self.steps.pop_front().map(|step| match step {
            Step::Data(d) => Ok(Frame::data(d)),
            Step::Trailers(t) => Ok(Frame::trailers(t)),
            Step::Error(e) => Err(std::io::Error::other(e)),
        }))
    }

    /// A streamed body never knows it has ended before it is polled
    /// again (as `StreamBody`); a full one does.
    fn is_end_stream(&self) -> bool {
        self.exact_len.is_some() && self.steps.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact_len {
            Some(n) if self.steps.len() == 1 => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
