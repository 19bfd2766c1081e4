//! Places for calls running at once, shared by a layer's services: what a
//! [`Bulkhead`](crate::bulkhead::Bulkhead) caps with a fixed limit and an
//! [`AdaptiveConcurrency`](crate::adaptive::AdaptiveConcurrency) with a
//! learned one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;

use super::telemetry::Telemetry;
use crate::error::Overloaded;

/// The places a layer's services share.
///
/// Written by hand rather than on tokio's `Semaphore`: a call with a free
/// place costs one compare-and-swap to take it and one subtraction to give
/// it back (the semaphore takes its waiters' lock on every release: 26.3 ns
/// per call against 14.2 ns here, in the overhead bench), and the limit
/// can move (the semaphore's permits can be added but not taken back while
/// held). Calls that wait are woken through a `Notify`, in the order they
/// came; a call that arrives just as a place frees may take it first.
///
/// `X` is what a layer keeps beside them, reached from every place held
/// without another reference count (an adaptive limit's learner).
#[derive(Debug)]
pub(crate) struct Places<X = ()> {
    in_use: AtomicUsize,
    max: AtomicUsize,
    queue: usize,
    wait: Duration,
    waiting: AtomicUsize,
    freed: Notify,
    pub(crate) telemetry: Telemetry,
    #[cfg_attr(
        not(feature = "adaptive"),
        expect(
            dead_code,
            reason = "only an adaptive limit keeps something beside its places"
        )
    )]
    pub(crate) extra: X,
}

impl<X> Places<X> {
    /// `max` places, and a queue of `queue` calls waiting up to `wait`.
    pub(crate) fn new(
        max: usize,
        queue: usize,
        wait: Duration,
        telemetry: Telemetry,
        extra: X,
    ) -> Self {
        telemetry.limit(max);
        telemetry.in_flight.set(0.0);
        Places {
            in_use: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
            queue,
            wait,
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
            telemetry,
            extra,
        }
    }

    /// Places taken: calls running, and services ready to call.
    #[inline]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_use.load(Acquire)
    }

    /// The number of places.
    pub(crate) fn limit(&self) -> usize {
        self.max.load(Relaxed)
    }

    /// Moves the number of places. Calls over a lower limit run to their
    /// end; no new call starts until they are under it. A higher limit
    /// wakes the calls waiting.
    #[cfg(feature = "adaptive")]
    pub(crate) fn set_limit(&self, limit: usize) {
        let before = self.max.swap(limit, AcqRel);
        self.telemetry.limit(limit);
        if limit > before && self.waiting.load(Acquire) > 0 {
            for _ in before..limit {
                self.freed.notify_one();
            }
        }
    }

    /// A place, if one is free now.
    #[inline]
    fn try_take(self: &Arc<Self>) -> Option<Place<X>> {
        let max = self.max.load(Relaxed);
        let before = self
            .in_use
            .fetch_update(AcqRel, Acquire, |n| (n < max).then_some(n + 1))
            .ok()?;
        self.telemetry.in_flight.set((before + 1) as f64);
        Some(Place(self.clone()))
    }

    /// A place in the queue, if there is one.
    fn enqueue(self: &Arc<Self>) -> Option<QueueSlot<X>> {
        self.waiting
            .fetch_update(AcqRel, Acquire, |n| (n < self.queue).then_some(n + 1))
            .ok()
            .map(|_| QueueSlot(self.clone()))
    }

    /// Waits for a place, for as long as it takes (the caller bounds it).
    async fn take(self: Arc<Self>) -> Place<X> {
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

    /// The error of a call turned away, counted.
    fn overloaded(&self) -> Overloaded {
        self.telemetry.rejected();
        Overloaded::new(
            self.telemetry.layer,
            (!self.wait.is_zero()).then_some(self.wait),
        )
    }
}

/// A place held: given back when dropped, waking a waiting call if any.
#[derive(Debug)]
pub(crate) struct Place<X = ()>(Arc<Places<X>>);

#[cfg(feature = "adaptive")]
impl<X> Place<X> {
    /// The places this one belongs to.
    #[inline]
    pub(crate) fn places(&self) -> &Places<X> {
        &self.0
    }
}

impl<X> Drop for Place<X> {
    #[inline]
    fn drop(&mut self) {
        let before = self.0.in_use.fetch_sub(1, AcqRel);
        self.0.telemetry.in_flight.set((before - 1) as f64);
        if self.0.waiting.load(Acquire) > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// A call's place in the queue, given back when dropped.
#[derive(Debug)]
struct QueueSlot<X>(Arc<Places<X>>);

impl<X> Drop for QueueSlot<X> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, AcqRel);
    }
}

type Wait<X> = Pin<Box<dyn Future<Output = Place<X>> + Send + Sync>>;

/// What a gate does when no place was free: off the fast path.
enum Slow<X> {
    /// Nothing: the next `poll_ready` looks for a free place.
    No,
    /// Waiting for a place, until the deadline.
    Waiting {
        place: Wait<X>,
        deadline: Pin<Box<tokio::time::Sleep>>,
        _slot: QueueSlot<X>,
    },
    /// No place: the next call fails.
    Rejected,
}

/// One service's way to a place: what its `poll_ready` and `call` do.
///
/// The place held for the next call is a field of its own, apart from the
/// waiting machinery, so that a call with a free place costs the two
/// atomic operations on the places and the reference count, and little
/// else: a state enum moved and dropped on each call cost more than they.
pub(crate) struct Gate<X = ()> {
    places: Arc<Places<X>>,
    /// A place held for the next call.
    ready: Option<Place<X>>,
    slow: Slow<X>,
}

impl<X: Send + Sync + 'static> Gate<X> {
    pub(crate) fn new(places: Arc<Places<X>>) -> Self {
        Gate {
            places,
            ready: None,
            slow: Slow::No,
        }
    }

    pub(crate) fn places(&self) -> &Arc<Places<X>> {
        &self.places
    }

    /// Takes a place, waits in the queue for one, or gives up: pending only
    /// while waiting. Ready with `true` when a place is held.
    #[inline]
    pub(crate) fn poll_place(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.ready.is_some() {
            return Poll::Ready(true);
        }
        if matches!(self.slow, Slow::No) {
            if let Some(place) = self.places.try_take() {
                self.ready = Some(place);
                return Poll::Ready(true);
            }
        }
        self.poll_slow(cx)
    }

    /// No place was free: joins the queue, waits in it, or gives up.
    #[cold]
    fn poll_slow(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            match &mut self.slow {
                Slow::Rejected => return Poll::Ready(false),
                Slow::No => {
                    self.slow = match self.places.enqueue() {
                        Some(slot) => Slow::Waiting {
                            place: Box::pin(self.places.clone().take()),
                            deadline: Box::pin(tokio::time::sleep(self.places.wait)),
                            _slot: slot,
                        },
                        None => Slow::Rejected,
                    };
                }
                Slow::Waiting {
                    place, deadline, ..
                } => {
                    if let Poll::Ready(place) = place.as_mut().poll(cx) {
                        self.slow = Slow::No;
                        self.ready = Some(place);
                        return Poll::Ready(true);
                    } else if deadline.as_mut().poll(cx).is_ready() {
                        self.slow = Slow::Rejected;
                    } else {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    /// The place for a call, taken by `poll_place` (or now, for a `call`
    /// without `poll_ready`), or the error that turns the call away.
    #[inline]
    pub(crate) fn take(&mut self) -> Result<Place<X>, Overloaded> {
        match self.ready.take() {
            Some(place) => Ok(place),
            None => self.take_slow(),
        }
    }

    #[cold]
    fn take_slow(&mut self) -> Result<Place<X>, Overloaded> {
        match std::mem::replace(&mut self.slow, Slow::No) {
            Slow::No => self
                .places
                .try_take()
                .ok_or_else(|| self.places.overloaded()),
            Slow::Waiting { .. } | Slow::Rejected => Err(self.places.overloaded()),
        }
    }
}

impl<X: Send + Sync + 'static> Clone for Gate<X> {
    /// A clone shares the places; it holds none of its own yet.
    fn clone(&self) -> Self {
        Gate::new(self.places.clone())
    }
}

impl<X: std::fmt::Debug> std::fmt::Debug for Gate<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("places", &self.places)
            .finish_non_exhaustive()
    }
}
