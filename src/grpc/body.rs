use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::classify::{Outcome, PendingOutcome};

pin_project! {
    /// The body of a gRPC response, as it is, watched for its end: when
    /// the trailers come (or the body ends or fails without them), the
    /// outcome they carry is told to every layer that waits for it.
    ///
    /// Dropped before its end, it tells nothing: the call counts as
    /// dropped by its caller.
    #[derive(Debug)]
    pub struct GrpcBody<B> {
        #[pin]
        inner: B,
        pending: Option<PendingOutcome>,
    }
}

impl<B> GrpcBody<B> {
    pub(crate) fn new(inner: B, pending: Option<PendingOutcome>) -> Self {
        GrpcBody { inner, pending }
    }

    /// The body inside.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Consumes `self`, returning the body inside; its outcome is then
    /// never told.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for GrpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = std::task::ready!(this.inner.poll_frame(cx));
        if let Some(pending) = this.pending.as_ref() {
            let outcome = match &frame {
                Some(Ok(frame)) => frame
                    .trailers_ref()
                    .map(|trailers| pending.judge_trailers(Some(trailers))),
                Some(Err(_)) => Some(Outcome::Failure),
                None => Some(pending.judge_trailers(None)),
            };
            if let Some(outcome) = outcome {
                if let Some(pending) = this.pending.take() {
                    pending.tell(outcome);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        // Until the outcome is told, the end is still to be seen: a caller
        // that trusts this polls once more, and the end is recorded.
        self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
