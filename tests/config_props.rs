//! Configuration, as a property: arbitrary values in every field of every
//! layer's configuration (NaN, infinities, zero and the largest durations,
//! every integer) give a layer or a typed error, never a panic; and a layer
//! that is built runs calls that succeed, fail and wait without panicking.
#![cfg(feature = "stack")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use proptest::prelude::*;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::ConfigError;
use tower_bulwark::balance::{BalanceConfig, LoadBalance, OutlierDetection, Strategy as Pick};
use tower_bulwark::cache::{CacheConfig, CacheLayer};
use tower_bulwark::circuit_breaker::{
    CircuitBreakerConfig, CircuitBreakerLayer, OpenDuration, SlidingWindow,
};
use tower_bulwark::hedge::{HedgeConfig, HedgeDelay, HedgeLayer};
use tower_bulwark::retry::{RetryConfig, RetryLayer};
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
use tower_bulwark::timeout::TimeoutLayer;

/// Any duration, with the edges and everyday values well represented.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        1 => Just(Duration::MAX),
        8 => (1u64..10_000).prop_map(Duration::from_millis),
        1 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        1 => any::<u64>().prop_map(Duration::from_nanos),
    ]
}

/// Any float: NaN, infinities, negatives, and plausible ratios.
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => prop::num::f64::ANY,
        8 => 0.0f64..=1.0,
        1 => 0.0f64..=100.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
    ]
}

fn count() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(0u32), 8 => 1u32..200, 1 => any::<u32>()]
}

prop_compose! {
    fn breaker()(
        window in prop_oneof![
            count().prop_map(SlidingWindow::count),
            (duration(), count()).prop_map(|(d, b)| SlidingWindow::time_buckets(d, b)),
        ],
        open in prop_oneof![
            duration().prop_map(OpenDuration::fixed),
            (duration(), duration(), prop_oneof![8 => 1.0f64..4.0, 2 => float()], float())
                .prop_map(|(b, m, x, j)| OpenDuration::exponential(b, m).multiplier(x).jitter(j)),
            (duration(), duration(), float()).prop_map(|(b, m, j)| OpenDuration::linear(b, m).jitter(j)),
        ],
        minimum_calls in prop_oneof![8 => 1u32..20, 2 => count()],
        failure_rate in float(),
        slow in prop::option::of(duration()),
        slow_rate in float(),
        consecutive in prop::option::of(count()),
        probes in count(),
    ) -> CircuitBreakerConfig {
        let mut config = CircuitBreakerConfig::default()
            .sliding_window(window)
            .open_duration(open)
            .minimum_calls(minimum_calls)
            .failure_rate_threshold(failure_rate)
            .slow_call_rate_threshold(slow_rate)
            .half_open_probes(probes);
        config.slow_call_duration = slow;
        config.consecutive_failures = consecutive;
        config
    }
}

prop_compose! {
    fn retry()(
        attempts in count(),
        base in duration(),
        max in duration(),
        ratio in float(),
        floor in count(),
        saved in count(),
    ) -> RetryConfig {
        RetryConfig::default()
            .max_attempts(attempts)
            .backoff(base, max)
            .budget(ratio, floor, saved)
    }
}

prop_compose! {
    fn hedge()(
        delay in prop_oneof![float().prop_map(HedgeDelay::Percentile), duration().prop_map(HedgeDelay::Fixed)],
        samples in any::<u64>(),
        ratio in float(),
        floor in count(),
        saved in count(),
    ) -> HedgeConfig {
        HedgeConfig::default()
            .delay(delay)
            .minimum_samples(samples)
            .budget(ratio, floor, saved)
    }
}

prop_compose! {
    fn cache()(ttl in duration(), stale in duration(), entries in any::<u64>()) -> CacheConfig {
        CacheConfig::default().ttl(ttl).stale_if_error(stale).max_entries(entries)
    }
}

prop_compose! {
    fn balance()(
        strategy in prop_oneof![
            Just(Pick::RoundRobin),
            Just(Pick::WeightedRoundRobin),
            Just(Pick::Random),
            Just(Pick::WeightedRandom),
            Just(Pick::P2cLeastPending),
            (duration(), duration()).prop_map(|(default_rtt, decay)| Pick::P2cPeakEwma { default_rtt, decay }),
        ],
        outliers in prop::option::of((
            prop::option::of(count()),
            prop::option::of(float()),
            (count(), count()),
            (duration(), duration()),
            (float(), float(), float()),
        )),
    ) -> BalanceConfig {
        let config = BalanceConfig::default().strategy(strategy).seed(1);
        match outliers {
            None => config.no_outlier_detection(),
            Some((consecutive, rate, (window, minimum), (base, max), (jitter, percent, panic))) => {
                let mut detection = OutlierDetection::default()
                    .consecutive_failures(consecutive)
                    .ejection_time(base, max)
                    .jitter(jitter)
                    .max_ejection_percent(percent)
                    .panic_threshold(panic);
                if let Some(rate) = rate {
                    detection = detection.failure_rate(rate, window, minimum);
                }
                config.outlier_detection(detection)
            }
        }
    }
}

/// A backend whose calls take `delay` and fail when asked.
fn backend() -> impl Service<(u64, bool), Response = u64, Error = BoxError, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(|(delay_ms, fail): (u64, bool)| async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if fail {
            Err::<u64, BoxError>("failed".into())
        } else {
            Ok(delay_ms)
        }
    })
}

/// Calls `svc` with successes, failures and waits in between, bounded in
/// (paused) time; every call gets an answer or an error.
async fn exercise<S>(mut svc: S, waits: &[Duration])
where
    S: Service<(u64, bool), Response = u64, Error = BoxError>,
{
    for (i, wait) in waits.iter().enumerate() {
        let request = (i as u64 % 3 * 20, i % 2 == 0);
        let call = async {
            let ready = svc.ready().await?;
            ready.call(request).await
        };
        // A layer may legitimately wait for a long backoff or a timeout:
        // the bound only keeps the test finite.
        let _ = tokio::time::timeout(Duration::from_secs(3600), call).await;
        // Waits up to a day: tokio's paused clock cannot move by `MAX`.
        tokio::time::advance((*wait).min(Duration::from_secs(86_400))).await;
    }
}

fn paused<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(f)
}

fn field_of<T>(built: &Result<T, ConfigError>) -> String {
    built.as_ref().err().map(|e| e.path()).unwrap_or_default()
}

fn waits() -> impl Strategy<Value = Vec<Duration>> {
    prop::collection::vec(duration(), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn circuit_breakers(config in breaker(), waits in waits()) {
        paused(async {
            let built = CircuitBreakerLayer::new(config);
            let _ = field_of(&built);
            if let Ok(layer) = built {
                exercise(layer.layer(backend()), &waits).await;
                let _ = layer.handle().snapshot();
            }
        });
    }

    #[test]
    fn retries(config in retry(), waits in waits()) {
        paused(async {
            if let Ok(layer) = RetryLayer::new(config) {
                exercise(layer.layer(backend()), &waits).await;
            }
        });
    }

    #[test]
    fn hedges(config in hedge(), waits in waits()) {
        paused(async {
            if let Ok(layer) = HedgeLayer::new(config) {
                exercise(layer.layer(backend()), &waits).await;
            }
        });
    }

    #[test]
    fn caches(config in cache(), waits in waits()) {
        paused(async {
            if let Ok(layer) = CacheLayer::new(config, |req: &(u64, bool)| Some(req.0)) {
                let svc = layer.layer(backend()).map_response(|cached| cached.into_inner());
                exercise(svc, &waits).await;
            }
        });
    }

    #[test]
    fn timeouts(timeout in duration(), waits in waits()) {
        paused(async {
            if let Ok(layer) = TimeoutLayer::new(timeout) {
                exercise(layer.layer(backend()), &waits).await;
            }
        });
    }

    #[test]
    fn balancers(config in balance(), weights in prop::collection::vec(count(), 0..5), waits in waits()) {
        paused(async {
            let endpoints = weights.into_iter().enumerate().map(|(i, w)| (i, backend(), w));
            if let Ok(lb) = LoadBalance::weighted(config, endpoints) {
                exercise(lb, &waits).await;
            }
        });
    }

    // Boxed strategies: nested ones this deep overflow the test thread's
    // stack when generating values in a debug build.
    #[test]
    fn whole_stacks(
        breaker in prop::option::of(breaker().boxed()).boxed(),
        retry in prop::option::of(retry().boxed()).boxed(),
        hedge in prop::option::of(hedge().boxed()).boxed(),
        cache in prop::option::of(cache().boxed()).boxed(),
        timeout in prop::option::of(duration().boxed()).boxed(),
        balance in balance().boxed(),
        waits in waits().boxed(),
    ) {
        paused(async {
            let mut config = ResilienceConfig::default().balance(balance);
            config.circuit_breaker = breaker;
            config.retry = retry;
            config.hedge = hedge;
            config.cache = cache;
            config.timeout = timeout;
            let built = ResilienceLayer::builder(config)
                .cache_key(|req: &(u64, bool)| Some(req.0))
                .clone_requests()
                .build();
            if let Ok(layer) = built {
                if let Ok(svc) = layer.balance([("a", backend()), ("b", backend())]) {
                    exercise(svc, &waits).await;
                }
            }
        });
    }

    #[test]
    #[cfg(all(feature = "toml", feature = "yaml"))]
    fn configuration_files(text in "[a-z_\\[\\]=\\.\" 0-9{},:\n-]{0,200}") {
        let _ = ResilienceConfig::from_toml(&text);
        let _ = ResilienceConfig::from_yaml(&text);
    }
}

/// The strategies above give valid configurations often enough that the
/// properties exercise built layers, not only rejections.
#[test]
fn arbitrary_configurations_often_build() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut breakers, mut stacks) = (0, 0);
    for _ in 0..200 {
        let config = breaker().new_tree(&mut runner).unwrap().current();
        breakers += usize::from(CircuitBreakerLayer::new(config).is_ok());
        let mut config = ResilienceConfig::default();
        config.retry = Some(retry().new_tree(&mut runner).unwrap().current());
        config.cache = Some(cache().new_tree(&mut runner).unwrap().current());
        let built = ResilienceLayer::<(u64, bool), u64>::builder(config)
            .cache_key(|req: &(u64, bool)| Some(req.0))
            .clone_requests()
            .build();
        stacks += usize::from(built.is_ok());
    }
    assert!(breakers >= 20, "{breakers} of 200 breakers built");
    assert!(stacks >= 20, "{stacks} of 200 stacks built");
}
