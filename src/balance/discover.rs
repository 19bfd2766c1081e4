//! The balancer's side of a [`Discover`] stream: polled only when its
//! waker fired, by whichever clone gets there first, and the clones that
//! wait for an endpoint woken when it reports a change.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures_core::Stream;
use tower::discover::{Change, Discover};

use super::service::lock;
use crate::BoxError;

/// A stream of weighted changes.
pub(crate) type ChangeStream<K, S> =
    Pin<Box<dyn Stream<Item = Result<Change<K, (S, u32)>, BoxError>> + Send>>;

pub(crate) struct Discovery<K, S> {
    stream: Mutex<Option<ChangeStream<K, S>>>,
    wake: Arc<DiscoveryWake>,
}

/// The waker the discovery stream is polled with: it raises a flag that
/// the next `poll_ready` of any clone checks with one atomic load, so the
/// stream is polled only when it has something to say, and wakes the
/// clones that are waiting for an endpoint.
#[derive(Default)]
struct DiscoveryWake {
    woken: AtomicBool,
    /// The waiting clones' wakers, by clone: one each at most, and a clone
    /// that is dropped (a caller that gave up) takes its own out. What
    /// waits is bounded by the clones alive, and adding one costs the same
    /// however many there are.
    waiters: Mutex<HashMap<u64, Waker>>,
}

impl Wake for DiscoveryWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Release);
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for waker in waiters.into_values() {
            waker.wake();
        }
    }
}

impl<K, S> Discovery<K, S> {
    pub(crate) fn new(stream: ChangeStream<K, S>) -> Self {
        let wake = Arc::new(DiscoveryWake::default());
        // Poll the stream on the first readiness check.
        wake.woken.store(true, Release);
        Discovery {
            stream: Mutex::new(Some(stream)),
            wake,
        }
    }

    /// What the stream has, if its waker fired since the last look and no
    /// other clone is taking it: changes, with each error given to
    /// `on_error`. Empty otherwise; one atomic load when nothing happened.
    #[inline]
    pub(crate) fn poll_changes(
        &self,
        mut on_error: impl FnMut(BoxError),
    ) -> Vec<Change<K, (S, u32)>> {
        if !self.wake.woken.load(Acquire) {
            return Vec::new();
        }
        let mut stream = match self.stream.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            // Another clone is taking the changes.
            Err(std::sync::TryLockError::WouldBlock) => return Vec::new(),
        };
        if !self.wake.woken.swap(false, AcqRel) {
            return Vec::new();
        }
        let waker = Waker::from(self.wake.clone());
        let mut cx = Context::from_waker(&waker);
        let mut changes = Vec::new();
        while let Some(s) = stream.as_mut() {
            match s.as_mut().poll_next(&mut cx) {
                Poll::Ready(Some(Ok(change))) => changes.push(change),
                Poll::Ready(Some(Err(error))) => on_error(error),
                Poll::Ready(None) => *stream = None,
                Poll::Pending => break,
            }
        }
        changes
    }

    /// Wakes `waker` when the stream reports a change; `waiter` names the
    /// clone, whose earlier waker this replaces.
    pub(crate) fn wait(&self, waiter: u64, waker: &Waker) {
        let mut waiters = lock(&self.wake.waiters);
        match waiters.get_mut(&waiter) {
            Some(old) if old.will_wake(waker) => {}
            Some(old) => old.clone_from(waker),
            None => {
                waiters.insert(waiter, waker.clone());
            }
        }
    }

    /// The clone `waiter` waits no more.
    pub(crate) fn forget(&self, waiter: u64) {
        lock(&self.wake.waiters).remove(&waiter);
    }

    /// How many clones wait.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.wake.waiters).len()
    }
}

pin_project_lite::pin_project! {
    /// A [`Discover`] stream as a stream of weighted changes, errors boxed:
    /// `weigh` gives each service its weight.
    pub(crate) struct Weighted<D, W> {
        #[pin]
        pub(crate) discover: D,
        pub(crate) weigh: W,
    }
}

impl<D, W, S> Stream for Weighted<D, W>
where
    D: Discover,
    D::Error: Into<BoxError>,
    W: Fn(D::Service) -> (S, u32),
{
    type Item = Result<Change<D::Key, (S, u32)>, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let weigh = this.weigh;
        this.discover.poll_discover(cx).map(|change| {
            change.map(|change| {
                change.map_err(Into::into).map(|change| match change {
                    Change::Insert(key, service) => Change::Insert(key, weigh(service)),
                    Change::Remove(key) => Change::Remove(key),
                })
            })
        })
    }
}
