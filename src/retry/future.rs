//! Future types.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::{RetryAfter, RetryEvent, Shared, backoff};
use crate::classify::is_local_rejection;
use crate::classify::{Classify, Outcome};
use crate::request::CloneRequest;

pin_project! {
    /// Response future of [`Retry`](super::Retry): the first attempt, and
    /// the retries it leads to. Dropping it drops the attempt in flight and
    /// sends no more.
    pub struct ResponseFuture<S, F, Req, C, R, H> {
        #[pin]
        state: State<S, F>,
        // The copy of the request for the next retry, if one is possible.
        request: Option<Req>,
        // Attempts made so far.
        attempts: u32,
        shared: Arc<Shared<S, C, R, H>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        Calling {
            #[pin]
            future: F,
        },
        Backoff {
            #[pin]
            sleep: Sleep,
        },
        // The backoff is over: a clone of the service, getting ready.
        Ready {
            service: S,
        },
    }
}

impl<S, F, Req, C, R, H> ResponseFuture<S, F, Req, C, R, H> {
    pub(super) fn new(future: F, request: Option<Req>, shared: Arc<Shared<S, C, R, H>>) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            request,
            attempts: 1,
            shared,
        }
    }
}

/// Whether `error` is the breaker's [`CircuitOpen`], directly or boxed:
/// such a call never reached the service, and retrying it would only
/// hammer the breaker. (Nor is a local rejection by admission control
/// beneath, [`is_local_rejection`]: another attempt now would meet the
/// same full places.)
fn is_circuit_open<E: 'static>(error: &E) -> bool {
    #[cfg(feature = "circuit-breaker")]
    {
        use crate::circuit_breaker::error::CircuitOpen;
        let error = error as &dyn Any;
        if let Some(boxed) = error.downcast_ref::<crate::BoxError>() {
            return boxed.is::<CircuitOpen>();
        }
        error.is::<CircuitOpen>()
    }
    #[cfg(not(feature = "circuit-breaker"))]
    {
        let _ = error as &dyn Any;
        false
    }
}

impl<S, F, Req, C, R, H, T, E> Future for ResponseFuture<S, F, Req, C, R, H>
where
    S: Service<Req, Response = T, Error = E, Future = F> + Clone,
    F: Future<Output = Result<T, E>>,
    E: 'static,
    C: Classify<T, E>,
    R: CloneRequest<Req>,
    H: RetryAfter<T>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    let shared = &**this.shared;
                    let core = &*shared.core;
                    let settings = &core.settings;
                    let retry = this.request.is_some()
                        && *this.attempts < settings.config.max_attempts
                        && shared.classifier.classify(result.as_ref()) == Outcome::Failure
                        && !matches!(&result, Err(e) if is_circuit_open(e) || is_local_rejection(e));
                    if !retry {
                        return Poll::Ready(result);
                    }
                    if !core.budget.try_withdraw(Instant::now()) {
                        core.exhausted.increment(1);
                        let service = &settings.service;
                        settings.config.events.emit(|| RetryEvent::BudgetExhausted {
                            service: service.clone(),
                        });
                        return Poll::Ready(result);
                    }
                    let hinted = result
                        .as_ref()
                        .ok()
                        .and_then(|r| shared.hint.retry_after(r));
                    let wait = match hinted {
                        Some(wait) => wait.min(settings.config.backoff_max),
                        None => backoff(
                            settings.config.backoff_base,
                            settings.config.backoff_max,
                            *this.attempts,
                            rand::random::<f64>(),
                        ),
                    };
                    this.state.set(State::Backoff {
                        sleep: tokio::time::sleep(wait),
                    });
                }
                StateProj::Backoff { sleep } => {
                    ready!(sleep.poll(cx));
                    let service = this.shared.service.service();
                    this.state.set(State::Ready { service });
                }
                StateProj::Ready { service } => {
                    ready!(service.poll_ready(cx))?;
                    let Some(request) = this.request.take() else {
                        unreachable!("a retry is scheduled only with a copy of the request");
                    };
                    *this.attempts += 1;
                    let shared = &**this.shared;
                    if *this.attempts < shared.core.settings.config.max_attempts {
                        *this.request = shared.cloner.clone_request(&request);
                    }
                    shared.core.retries.increment(1);
                    let future = service.call(request);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

impl<S, F, Req, C, R, H> std::fmt::Debug for ResponseFuture<S, F, Req, C, R, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
