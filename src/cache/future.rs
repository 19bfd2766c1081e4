//! Future types.

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;
use tower_service::Service;

use super::error::{SharedError, share};
use super::store::{Flight, Published, Store};
use super::{CacheStatus, MarkStatus};
use crate::classify::{Classify, Outcome};

pin_project! {
    /// Response future of [`Cache`](super::Cache).
    pub struct ResponseFuture<S, F, Req, K, C, M, T, E>
    where
        K: Hash,
        K: Eq,
        K: Clone,
    {
        #[pin]
        state: State<S, F, Req, K, C, T, E>,
        marker: M,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, Req, K, C, T, E>
    where
        K: Hash,
        K: Eq,
        K: Clone,
    {
        // A stored answer, or one of a call this one waited for.
        Ready {
            answer: Option<(T, CacheStatus)>,
        },
        // A call of the inner service that the cache only passes on: not
        // cacheable, or made after the call it waited for was cancelled.
        Passing {
            #[pin]
            future: F,
        },
        // The call that identical calls wait for.
        Leading {
            #[pin]
            future: F,
            guard: Landing<K, T, E>,
            stale: Option<T>,
            classifier: C,
        },
        // Waiting for an identical call in flight.
        Waiting {
            #[pin]
            notified: OwnedNotified,
            flight: Arc<Flight<T, E>>,
            stale: Option<T>,
            // Kept to make the call itself if the one it waits for is
            // cancelled.
            fallback: Option<(Req, S)>,
            store: Arc<Store<K, T, E>>,
        },
        // Getting a clone of the inner service ready for that own call.
        Readying {
            fallback: Option<(Req, S)>,
        },
    }
}

/// Lands the leader's flight as abandoned if the leading call is dropped
/// before it finishes, so that its waiters make their own calls.
pub(crate) struct Landing<K: Hash + Eq + Clone, V, E> {
    store: Arc<Store<K, V, E>>,
    flight: Arc<Flight<V, E>>,
    key: K,
    landed: bool,
}

impl<K: Hash + Eq + Clone, V, E> Landing<K, V, E> {
    /// Closes the flight to newcomers; returns whether anyone waited.
    fn close(&mut self) -> bool {
        self.landed = true;
        self.store.close(&self.key, &self.flight)
    }

    fn publish(&self, published: Published<V, E>) {
        self.store.publish(&self.flight, published);
    }
}

impl<K: Hash + Eq + Clone, V, E> Drop for Landing<K, V, E> {
    fn drop(&mut self) {
        if !self.landed {
            self.store.close(&self.key, &self.flight);
            self.store.publish(&self.flight, Published::Abandoned);
        }
    }
}

impl<S, F, Req, K, C, M, T, E> ResponseFuture<S, F, Req, K, C, M, T, E>
where
    K: Hash + Eq + Clone,
{
    pub(super) fn hit(response: T, marker: M, store: &Store<K, T, E>) -> Self {
        store.count(CacheStatus::Hit);
        ResponseFuture {
            state: State::Ready {
                answer: Some((response, CacheStatus::Hit)),
            },
            marker,
        }
    }

    pub(super) fn bypass(future: F, marker: M) -> Self {
        ResponseFuture {
            state: State::Passing { future },
            marker,
        }
    }

    pub(super) fn leader(
        future: F,
        flight: Arc<Flight<T, E>>,
        key: K,
        stale: Option<T>,
        classifier: C,
        marker: M,
        store: Arc<Store<K, T, E>>,
    ) -> Self {
        ResponseFuture {
            state: State::Leading {
                future,
                guard: Landing {
                    store,
                    flight,
                    key,
                    landed: false,
                },
                stale,
                classifier,
            },
            marker,
        }
    }

    pub(super) fn waiter(
        flight: Arc<Flight<T, E>>,
        stale: Option<T>,
        request: Req,
        service: S,
        marker: M,
        store: Arc<Store<K, T, E>>,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                notified: flight.notify().clone().notified_owned(),
                flight,
                stale,
                fallback: Some((request, service)),
                store,
            },
            marker,
        }
    }
}

impl<S, F, Req, K, C, M, T, E> Future for ResponseFuture<S, F, Req, K, C, M, T, E>
where
    S: Service<Req, Response = T, Error = E, Future = F>,
    F: Future<Output = Result<T, E>>,
    T: Clone + Send + Sync + 'static,
    E: From<SharedError<E>> + 'static,
    K: Hash + Eq + Clone + Send + Sync + 'static,
    C: Classify<T, E>,
    M: MarkStatus<T>,
{
    type Output = Result<M::Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let marker = this.marker;
        let mut state = this.state;
        loop {
            match state.as_mut().project() {
                StateProj::Ready { answer } => {
                    return Poll::Ready(match answer.take() {
                        Some((response, status)) => Ok(marker.mark(response, status)),
                        None => unreachable!("polled after completion"),
                    });
                }
                StateProj::Passing { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(marker.mark(response, CacheStatus::Miss)));
                }
                StateProj::Leading {
                    future,
                    guard,
                    stale,
                    classifier,
                } => {
                    let result = ready!(future.poll(cx));
                    let outcome = classifier.classify(result.as_ref());
                    let store = guard.store.clone();
                    if outcome == Outcome::Success {
                        if let Ok(response) = &result {
                            store.store(guard.key.clone(), response.clone());
                        }
                    }
                    // Stale-if-error: a failure is answered from a stale
                    // entry when there is one.
                    let stale = stale.take().filter(|_| outcome == Outcome::Failure);
                    let waited = guard.close();
                    let value = match result {
                        Ok(response) => {
                            if waited {
                                guard.publish(Published::Done {
                                    value: Ok(response.clone()),
                                    outcome,
                                });
                            }
                            Ok(response)
                        }
                        // Nobody waited: the caller gets its error itself.
                        Err(error) if !waited => Err(error),
                        Err(error) => {
                            let shared = Arc::new(error);
                            guard.publish(Published::Done {
                                value: Err(shared.clone()),
                                outcome,
                            });
                            Err(share(&shared))
                        }
                    };
                    let (value, status) = match (stale, value) {
                        (Some(stale), _) => (Ok(stale), CacheStatus::Stale),
                        (None, value) => (value, CacheStatus::Miss),
                    };
                    store.count(status);
                    return Poll::Ready(value.map(|response| marker.mark(response, status)));
                }
                StateProj::Waiting {
                    notified,
                    flight,
                    stale,
                    fallback,
                    store,
                } => {
                    if flight.published().is_none() {
                        ready!(notified.poll(cx));
                    }
                    match flight.published() {
                        Some(Published::Done { value, outcome }) => {
                            let stale = stale.take().filter(|_| *outcome == Outcome::Failure);
                            let (value, status) = match stale {
                                Some(stale) => (Ok(stale), CacheStatus::Stale),
                                None => {
                                    (value.clone().map_err(|e| share(&e)), CacheStatus::Coalesced)
                                }
                            };
                            store.count(status);
                            return Poll::Ready(
                                value.map(|response| marker.mark(response, status)),
                            );
                        }
                        // The call it waited for was dropped: make its own.
                        Some(Published::Abandoned) | None => {
                            let fallback = fallback.take();
                            state.set(State::Readying { fallback });
                        }
                    }
                }
                StateProj::Readying { fallback } => {
                    let Some((_, service)) = fallback.as_mut() else {
                        unreachable!("a waiter keeps its request until it calls");
                    };
                    ready!(service.poll_ready(cx))?;
                    let Some((request, mut service)) = fallback.take() else {
                        unreachable!("a waiter keeps its request until it calls");
                    };
                    let future = service.call(request);
                    state.set(State::Passing { future });
                }
            }
        }
    }
}

impl<S, F, Req, K, C, M, T, E> std::fmt::Debug for ResponseFuture<S, F, Req, K, C, M, T, E>
where
    K: Hash + Eq + Clone,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
