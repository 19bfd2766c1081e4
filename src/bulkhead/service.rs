use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;
use tower_service::Service;

use super::config::BulkheadConfig;
use super::future::ResponseFuture;
use crate::BoxError;
use crate::error::Overloaded;

/// The places a layer's services share.
///
/// Written by hand rather than on tokio's `Semaphore`: a call with a free
/// place costs one compare-and-swap to take it and one subtraction to give
/// it back (the semaphore takes its waiters' lock on every release: 36.7 ns
/// per call against 20.8 ns here, in the overhead bench). Calls that wait are
/// woken through a `Notify`, in the order they came; a call that arrives
/// just as a place frees may take it first.
#[derive(Debug)]
pub(crate) struct Places {
    in_use: AtomicUsize,
    max: usize,
    queue: usize,
    wait: Duration,
    waiting: AtomicUsize,
    freed: Notify,
}

impl Places {
    pub(crate) fn new(config: &BulkheadConfig) -> Self {
        Places {
            in_use: AtomicUsize::new(0),
            max: config.max_concurrent_calls,
            queue: config.max_queue,
            wait: config.max_wait,
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        }
    }

    /// Places taken: calls running, and services ready to call.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_use.load(Acquire)
    }

    /// A place, if one is free now.
    #[inline]
    fn try_take(self: &Arc<Self>) -> Option<Place> {
        self.in_use
            .fetch_update(AcqRel, Acquire, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| Place(self.clone()))
    }

    /// A place in the queue, if there is one.
    fn enqueue(self: &Arc<Self>) -> Option<QueueSlot> {
        self.waiting
            .fetch_update(AcqRel, Acquire, |n| (n < self.queue).then_some(n + 1))
            .ok()
            .map(|_| QueueSlot(self.clone()))
    }

    /// Waits for a place, for as long as it takes (the caller bounds it).
    async fn take(self: Arc<Self>) -> Place {
        loop {
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            // Registered before looking, so that a place freed between the
            // look and the wait still wakes this call.
            freed.as_mut().enable();
            if let Some(place) = self.try_take() {
                return place;
            }
            freed.await;
        }
    }

    fn overloaded(&self) -> Overloaded {
        Overloaded::new("bulkhead", (!self.wait.is_zero()).then_some(self.wait))
    }
}

/// A place held: given back when dropped, waking a waiting call if any.
#[derive(Debug)]
pub(crate) struct Place(Arc<Places>);

impl Drop for Place {
    #[inline]
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, AcqRel);
        if self.0.waiting.load(Acquire) > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// A call's place in the queue, given back when dropped.
#[derive(Debug)]
struct QueueSlot(Arc<Places>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, AcqRel);
    }
}

type Wait = Pin<Box<dyn Future<Output = Place> + Send>>;

enum State {
    Idle,
    /// A place is held for the next call.
    Ready(Place),
    /// Waiting for a place, until the deadline.
    Waiting {
        place: Wait,
        deadline: Pin<Box<tokio::time::Sleep>>,
        _slot: QueueSlot,
    },
    /// No place: the next call fails.
    Rejected,
}

/// Caps the calls running at once. See the [module docs](super).
pub struct Bulkhead<S> {
    inner: S,
    places: Arc<Places>,
    state: State,
}

impl<S> Bulkhead<S> {
    pub(crate) fn new(inner: S, places: Arc<Places>) -> Self {
        Bulkhead {
            inner,
            places,
            state: State::Idle,
        }
    }

    /// Takes a place, waits in the queue for one, or gives up: pending only
    /// while waiting.
    fn poll_place(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.state {
                State::Ready(_) | State::Rejected => return Poll::Ready(()),
                State::Idle => {
                    self.state = match self.places.try_take() {
                        Some(place) => State::Ready(place),
                        None => match self.places.enqueue() {
                            Some(slot) => State::Waiting {
                                place: Box::pin(self.places.clone().take()),
                                deadline: Box::pin(tokio::time::sleep(self.places.wait)),
                                _slot: slot,
                            },
                            None => State::Rejected,
                        },
                    };
                }
                State::Waiting {
                    place, deadline, ..
                } => {
                    if let Poll::Ready(place) = place.as_mut().poll(cx) {
                        self.state = State::Ready(place);
                    } else if deadline.as_mut().poll(cx).is_ready() {
                        self.state = State::Rejected;
                    } else {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl<S: Clone> Clone for Bulkhead<S> {
    /// A clone shares the places; it holds none of its own yet.
    fn clone(&self) -> Self {
        Bulkhead::new(self.inner.clone(), self.places.clone())
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Bulkhead<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bulkhead")
            .field("inner", &self.inner)
            .field("places", &self.places)
            .finish_non_exhaustive()
    }
}

impl<S, Req> Service<Req> for Bulkhead<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    /// Takes a place (or waits for one), then asks the inner service. With
    /// no place to be had it is ready all the same, and the call fails
    /// with [`Overloaded`].
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        std::task::ready!(self.poll_place(cx));
        match self.state {
            State::Ready(_) => self.inner.poll_ready(cx).map_err(Into::into),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Ready(place) => ResponseFuture::called(self.inner.call(req), place),
            // `call` without `poll_ready`: a place if one is free now.
            State::Idle => match self.places.try_take() {
                Some(place) => ResponseFuture::called(self.inner.call(req), place),
                None => ResponseFuture::overloaded(self.places.overloaded()),
            },
            State::Waiting { .. } | State::Rejected => {
                ResponseFuture::overloaded(self.places.overloaded())
            }
        }
    }
}
