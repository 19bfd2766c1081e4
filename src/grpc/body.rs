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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http::HeaderMap;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::classify::{Classify, GrpcClassifier, Record};

    /// What a recording layer was told: `Some(outcome)`, or `None` when it
    /// was dropped without being told.
    #[derive(Clone, Default)]
    struct Told(Arc<Mutex<Vec<Option<Outcome>>>>);

    struct Recorder {
        told: Told,
        done: bool,
    }

    impl Record for Recorder {
        fn record(&mut self, outcome: Outcome) {
            self.done = true;
            self.told.0.lock().unwrap().push(Some(outcome));
        }

        fn defer(&mut self) -> Self {
            self.done = true;
            Recorder {
                told: self.told.clone(),
                done: false,
            }
        }
    }

    impl Drop for Recorder {
        fn drop(&mut self) {
            if !self.done {
                self.told.0.lock().unwrap().push(None);
            }
        }
    }

    type Frames = Vec<Result<Frame<Bytes>, &'static str>>;
    type TestBody =
        StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, &'static str>>>>;

    /// A gRPC response of `frames` whose outcome two layers wait for, as
    /// [`watch`](crate::grpc::watch) leaves it.
    fn watched(frames: Frames, told: &Told) -> GrpcBody<TestBody> {
        let mut response = http::Response::new(StreamBody::new(futures::stream::iter(frames)));
        let classifier = GrpcClassifier::default();
        for _ in 0..2 {
            let mut result: Result<_, ()> = Ok(response);
            let mut recorder = Recorder {
                told: told.clone(),
                done: false,
            };
            crate::classify::record(&classifier, &mut result, &mut recorder);
            response = result.unwrap();
        }
        assert!(<GrpcClassifier as Classify<_, ()>>::at_end(&classifier, &mut response).is_some());
        crate::grpc::watch(response).into_body()
    }

    fn trailers(code: &str) -> Frame<Bytes> {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", code.parse().unwrap());
        Frame::trailers(trailers)
    }

    fn told(told: &Told) -> Vec<Option<Outcome>> {
        told.0.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn the_trailers_status_is_told_to_every_layer_at_the_end() {
        let t = Told::default();
        let body = watched(
            vec![Ok(Frame::data(Bytes::from("m"))), Ok(trailers("14"))],
            &t,
        );
        assert!(!body.is_end_stream());
        assert!(told(&t).is_empty(), "nothing before the end");
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "14");
        assert_eq!(told(&t), vec![Some(Outcome::Failure); 2]);

        let t = Told::default();
        watched(vec![Ok(trailers("0"))], &t)
            .collect()
            .await
            .unwrap();
        assert_eq!(told(&t), vec![Some(Outcome::Success); 2]);
    }

    #[tokio::test]
    async fn a_body_that_ends_without_a_status_or_fails_is_a_failure() {
        let t = Told::default();
        watched(vec![Ok(Frame::data(Bytes::from("m")))], &t)
            .collect()
            .await
            .unwrap();
        assert_eq!(told(&t), vec![Some(Outcome::Failure); 2], "UNKNOWN");

        let t = Told::default();
        let err = watched(vec![Err("reset")], &t).collect().await.unwrap_err();
        assert_eq!(err, "reset");
        assert_eq!(told(&t), vec![Some(Outcome::Failure); 2]);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_tells_nothing() {
        let t = Told::default();
        let mut body = watched(
            vec![Ok(Frame::data(Bytes::from("m"))), Ok(trailers("14"))],
            &t,
        );
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        drop(body);
        assert_eq!(
            told(&t),
            vec![None; 2],
            "dropped untold, as a call dropped by its caller"
        );
    }
}
