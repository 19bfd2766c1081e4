//! What the criterion benches share: calls driven by hand with a no-op
//! waker. Every future in these benches is ready on its first poll, so what
//! is measured is the layers, not an executor.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::Criterion;
use tower::Service;

/// One call: `poll_ready`, `call`, one poll of the response future.
#[inline]
pub(crate) fn call<S: Service<u64>>(
    svc: &mut S,
    cx: &mut Context<'_>,
    req: u64,
) -> Result<S::Response, S::Error> {
    match svc.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        _ => unreachable!("always ready"),
    }
    match pin!(svc.call(req)).poll(cx) {
        Poll::Ready(result) => result,
        Poll::Pending => unreachable!("ready on the first poll"),
    }
}

/// Benchmarks calls of `svc` under `name`.
pub(crate) fn bench<S: Service<u64>>(c: &mut Criterion, name: &str, mut svc: S) {
    let mut cx = Context::from_waker(Waker::noop());
    c.bench_function(name, |b| {
        let mut i = 0u64;
        b.iter(|| {
            i = i.wrapping_add(1);
            let _ = black_box(call(&mut svc, &mut cx, black_box(i)));
        })
    });
}

/// A runtime context for timers; nothing is spawned on it.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}
