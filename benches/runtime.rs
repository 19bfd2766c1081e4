//! Per-call cost the way callers meet it: `ready().await`, then
//! `call().await`, in an async loop on a current-thread tokio runtime, over
//! an always-ready inner service. The `overhead` bench polls by hand with a
//! no-op waker, which leaves out what the futures' moves and the runtime's
//! plumbing cost; this one keeps them, so its figures are the ones a user
//! sees. Subtract the bare `service_fn` for a layer's own cost.
//!
//! The rows named `reference:` are peers measured in the same run, so that
//! a figure can be read against theirs on a machine whose speed moves from
//! day to day: tower's own `Timeout`, recloser's breaker, and
//! tower-resilience's Retry + CircuitBreaker + TimeLimiter (each with its
//! defaults, over the same inner service).
//!
//! Run with `cargo bench --bench runtime`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, LoadBalance, Strategy};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use tower_bulwark::metrics::MetricsLayer;
use tower_bulwark::retry::{RetryConfig, RetryLayer};
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
use tower_bulwark::timeout::TimeoutLayer;

fn echo()
-> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone + Send + Sync + 'static
{
    service_fn(|x: u64| async move { Ok::<_, BoxError>(x) })
}

/// `iters` calls of `svc`, each `ready().await` then `call().await`.
async fn drive<S: Service<u64>>(svc: &mut S, iters: u64) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        match svc.ready().await {
            Ok(ready) => {
                let _ = black_box(ready.call(black_box(i)).await.is_ok());
            }
            Err(_) => panic!("always ready"),
        }
    }
    start.elapsed()
}

/// recloser's breaker as a tower service: it wraps futures, not services.
#[derive(Clone)]
struct Reclosed<S> {
    inner: S,
    breaker: recloser::AsyncRecloser,
}

impl<S: Service<u64>> Service<u64> for Reclosed<S> {
    type Response = S::Response;
    type Error = recloser::Error<S::Error>;
    type Future = recloser::RecloserFuture<S::Future, recloser::AnyError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(recloser::Error::Inner)
    }

    fn call(&mut self, request: u64) -> Self::Future {
        self.breaker.call(self.inner.call(request))
    }
}

/// tower-resilience's Retry + CircuitBreaker + TimeLimiter, each with its
/// defaults, over `inner`.
fn tower_resilience_stack<S>(inner: S) -> impl Service<u64, Response = u64>
where
    S: Service<u64, Response = u64, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    use tower_resilience::circuitbreaker::{CircuitBreakerError, CircuitBreakerLayer as Breaker};
    use tower_resilience::retry::RetryLayer as Retry;
    use tower_resilience::timelimiter::{TimeLimiterError, TimeLimiterLayer as TimeLimiter};
    type Error = CircuitBreakerError<TimeLimiterError<BoxError>>;
    ServiceBuilder::new()
        .layer(Retry::<u64, u64, Error>::exponential_backoff().build())
        .layer(Breaker::standard().build().unwrap())
        .layer(TimeLimiter::standard().build())
        .service(inner)
}

fn bench<S: Service<u64>>(c: &mut Criterion, rt: &Runtime, name: &str, mut svc: S) {
    c.bench_function(name, |b| {
        b.iter_custom(|iters| rt.block_on(drive(&mut svc, iters)))
    });
}

fn balancer(strategy: Strategy) -> impl Service<u64, Response = u64, Error = BoxError> {
    LoadBalance::new(
        BalanceConfig::default().strategy(strategy),
        (0..4).map(|i| (i, echo())),
    )
    .unwrap()
}

fn runtime(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    // A no-op recorder, as the Metrics layer's target is stated with one.
    let _ = metrics::set_global_recorder(metrics::NoopRecorder);
    let breaker = || CircuitBreakerLayer::new(CircuitBreakerConfig::default()).unwrap();
    let timeout = || TimeoutLayer::new(Duration::from_secs(1)).unwrap();

    bench(c, &rt, "bare service_fn", echo());
    bench(c, &rt, "circuit breaker closed", breaker().layer(echo()));
    bench(
        c,
        &rt,
        "reference: recloser, closed",
        Reclosed {
            inner: echo(),
            breaker: recloser::AsyncRecloser::from(recloser::Recloser::default()),
        },
    );
    bench(c, &rt, "timeout", timeout().layer(echo()));
    bench(
        c,
        &rt,
        "reference: tower::timeout::Timeout",
        tower::timeout::TimeoutLayer::new(Duration::from_secs(1)).layer(echo()),
    );
    bench(
        c,
        &rt,
        "metrics (no-op recorder)",
        MetricsLayer::new("bench").layer(echo()),
    );
    bench(
        c,
        &rt,
        "retry (no retry needed)",
        RetryLayer::new(RetryConfig::default())
            .unwrap()
            .layer(echo()),
    );
    bench(
        c,
        &rt,
        "p2c least pending over 4",
        balancer(Strategy::P2cLeastPending),
    );
    bench(
        c,
        &rt,
        "p2c peak ewma over 4",
        balancer(Strategy::peak_ewma()),
    );
    bench(
        c,
        &rt,
        "metrics + breaker + timeout + p2c least pending over 4",
        ServiceBuilder::new()
            .layer(MetricsLayer::new("bench"))
            .layer(breaker())
            .layer(timeout())
            .service(balancer(Strategy::P2cLeastPending)),
    );
    bench(
        c,
        &rt,
        "ResilienceLayer default over 4",
        ResilienceLayer::new(ResilienceConfig::default())
            .unwrap()
            .balance((0..4).map(|i| (i, echo())))
            .unwrap(),
    );
    bench(
        c,
        &rt,
        "reference: tower-resilience Retry + CircuitBreaker + TimeLimiter",
        tower_resilience_stack(echo()),
    );
    #[cfg(feature = "bulkhead")]
    {
        use tower_bulwark::bulkhead::{BulkheadConfig, BulkheadLayer};
        let bulkhead = BulkheadLayer::new(BulkheadConfig::default()).unwrap();
        bench(c, &rt, "bulkhead with a free place", bulkhead.layer(echo()));
    }
    #[cfg(feature = "adaptive")]
    {
        use tower_bulwark::adaptive::{AdaptiveConcurrencyLayer, AdaptiveConfig};
        let adaptive = AdaptiveConcurrencyLayer::new(AdaptiveConfig::default()).unwrap();
        bench(
            c,
            &rt,
            "adaptive concurrency (gradient2)",
            adaptive.layer(echo()),
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = runtime
}
criterion_main!(benches);
