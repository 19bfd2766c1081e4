//! ResilienceLayer: the layers in their order, on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test
#![cfg(feature = "stack")]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, OutlierDetection, Strategy};
use tower_bulwark::cache::CacheConfig;
use tower_bulwark::circuit_breaker::{
    CircuitBreakerConfig, CircuitState, OpenDuration, error::CircuitOpen,
};
use tower_bulwark::retry::RetryConfig;
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};
use tower_bulwark::timeout::error::Elapsed;

const OPEN: Duration = Duration::from_secs(10);

/// A breaker that opens after `failures` failures in a row, for `OPEN`.
fn breaker(failures: u32) -> CircuitBreakerConfig {
    CircuitBreakerConfig::default()
        .consecutive_failures(failures)
        .open_duration(OpenDuration::fixed(OPEN))
}

/// A backend whose behaviour the test switches, counting its calls.
#[derive(Clone, Default)]
struct Backend {
    calls: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
}

impl Backend {
    fn service(
        &self,
    ) -> impl Service<u32, Response = String, Error = BoxError> + Clone + Send + Sync + 'static
    {
        let this = self.clone();
        service_fn(move |id: u32| {
            let this = this.clone();
            async move {
                this.calls.fetch_add(1, Ordering::SeqCst);
                if this.slow.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                if this.down.load(Ordering::SeqCst) {
                    Err::<String, BoxError>("backend down".into())
                } else {
                    Ok(format!("user {id}"))
                }
            }
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn fallback(id: u32) -> Result<String, Infallible> {
    Ok(format!("user {id} (fallback)"))
}

async fn call<S>(svc: &mut S, id: u32) -> Result<String, BoxError>
where
    S: Service<u32, Response = String, Error = BoxError>,
{
    svc.ready().await?.call(id).await
}

#[tokio::test(start_paused = true)]
async fn timeouts_count_as_failures_and_open_the_breaker() {
    let backend = Backend::default();
    backend.slow.store(true, Ordering::SeqCst);
    let layer = ResilienceLayer::new(
        ResilienceConfig::default()
            .timeout(Duration::from_millis(100))
            .circuit_breaker(breaker(3)),
    )
    .unwrap();
    let mut svc = layer.layer(backend.service());

    for _ in 0..3 {
        let err = call(&mut svc, 1).await.unwrap_err();
        assert!(err.is::<Elapsed>(), "{err}");
    }
    let handle = layer.circuit_breaker().unwrap();
    assert_eq!(handle.state(), CircuitState::Open);
    let err = call(&mut svc, 1).await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("fails fast");
    assert!(open.retry_after().unwrap() <= OPEN);
    assert_eq!(backend.calls(), 3, "the open breaker sent nothing on");
}

#[tokio::test(start_paused = true)]
async fn an_open_circuit_is_not_retried_and_answers_from_the_fallback() {
    let backend = Backend::default();
    backend.down.store(true, Ordering::SeqCst);
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default()
            .circuit_breaker(breaker(2))
            .retry(RetryConfig::default().max_attempts(3)),
    )
    .clone_requests()
    .fallback(service_fn(fallback))
    .build()
    .unwrap();
    let mut svc = layer.layer(backend.service());

    // The first request: attempt 1 and 2 fail and trip the breaker; the
    // third attempt meets the open breaker and gets the fallback's answer,
    // which is not retried.
    assert_eq!(call(&mut svc, 7).await.unwrap(), "user 7 (fallback)");
    assert_eq!(backend.calls(), 2);
    // While open, every request is answered by the fallback, at once.
    for id in 0..10 {
        assert_eq!(
            call(&mut svc, id).await.unwrap(),
            format!("user {id} (fallback)")
        );
    }
    assert_eq!(backend.calls(), 2, "no call reached the backend while open");

    // Back up: after the open period a probe goes through and closes it.
    backend.down.store(false, Ordering::SeqCst);
    tokio::time::advance(OPEN).await;
    assert_eq!(call(&mut svc, 7).await.unwrap(), "user 7");
    assert_eq!(
        layer.circuit_breaker().unwrap().state(),
        CircuitState::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn the_cache_prefers_a_stale_answer_to_the_fallback_and_never_stores_the_fallback() {
    let backend = Backend::default();
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default()
            .circuit_breaker(breaker(1))
            .cache(
                CacheConfig::default()
                    .ttl(Duration::from_secs(1))
                    .stale_if_error(Duration::from_secs(600)),
            ),
    )
    .cache_key(|id: &u32| Some(*id))
    .fallback(service_fn(fallback))
    .build()
    .unwrap();
    let mut svc = layer.layer(backend.service());

    assert_eq!(call(&mut svc, 1).await.unwrap(), "user 1");
    assert_eq!(call(&mut svc, 1).await.unwrap(), "user 1");
    assert_eq!(backend.calls(), 1, "the second answer was a hit");

    // The entry expires; the backend goes down and the breaker opens.
    tokio::time::advance(Duration::from_secs(2)).await;
    backend.down.store(true, Ordering::SeqCst);
    assert_eq!(
        call(&mut svc, 1).await.unwrap(),
        "user 1",
        "stale, not the fallback"
    );
    assert_eq!(layer.circuit_breaker().unwrap().state(), CircuitState::Open);
    assert_eq!(
        call(&mut svc, 1).await.unwrap(),
        "user 1",
        "stale while open"
    );
    // A key never stored has only the fallback.
    assert_eq!(call(&mut svc, 2).await.unwrap(), "user 2 (fallback)");

    // Recovery: key 2 is asked of the backend, not answered from a stored
    // fallback answer.
    backend.down.store(false, Ordering::SeqCst);
    tokio::time::advance(OPEN).await;
    let before = backend.calls();
    assert_eq!(call(&mut svc, 2).await.unwrap(), "user 2");
    assert_eq!(backend.calls(), before + 1);
}

#[tokio::test(start_paused = true)]
async fn retries_go_to_other_endpoints_and_the_failing_one_is_ejected() {
    let calls: Arc<Mutex<HashMap<&'static str, usize>>> = Arc::default();
    let endpoint = |name: &'static str| {
        let calls = calls.clone();
        service_fn(move |id: u32| {
            *calls.lock().unwrap().entry(name).or_default() += 1;
            async move {
                if name == "bad" {
                    Err::<String, BoxError>("instance down".into())
                } else {
                    Ok(format!("user {id} from {name}"))
                }
            }
        })
    };
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default()
            .retry(RetryConfig::default().max_attempts(3))
            .balance(
                BalanceConfig::default()
                    .strategy(Strategy::RoundRobin)
                    .seed(7)
                    .outlier_detection(OutlierDetection::default().consecutive_failures(Some(2))),
            ),
    )
    .clone_requests()
    .build()
    .unwrap();
    let lb_endpoints = [
        ("a", endpoint("a")),
        ("b", endpoint("b")),
        ("bad", endpoint("bad")),
    ];
    let mut svc = layer.balance(lb_endpoints).unwrap();

    for id in 0..300 {
        let answer = call(&mut svc, id).await.expect("every request is answered");
        assert!(answer.starts_with(&format!("user {id} from ")), "{answer}");
    }
    let calls = calls.lock().unwrap();
    assert!(
        calls["bad"] <= 4,
        "ejected after two failures in a row: {calls:?}"
    );
    assert!(calls["a"] + calls["b"] >= 300, "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn with_every_part_off_the_stack_passes_calls_through() {
    let backend = Backend::default();
    let layer = ResilienceLayer::new(
        ResilienceConfig::default()
            .metrics(false)
            .without_circuit_breaker()
            .without_timeout(),
    )
    .unwrap();
    assert!(layer.circuit_breaker().is_none());
    let mut svc = layer.layer(backend.service());
    assert_eq!(call(&mut svc, 3).await.unwrap(), "user 3");
    backend.down.store(true, Ordering::SeqCst);
    let err = call(&mut svc, 3).await.unwrap_err();
    assert_eq!(err.to_string(), "backend down");
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_breaker() {
    let backend = Backend::default();
    backend.down.store(true, Ordering::SeqCst);
    let layer =
        ResilienceLayer::new(ResilienceConfig::default().circuit_breaker(breaker(2))).unwrap();
    let mut a = layer.layer(backend.service());
    let mut b = a.clone();
    call(&mut a, 1).await.unwrap_err();
    call(&mut b, 1).await.unwrap_err();
    let err = call(&mut a, 1).await.unwrap_err();
    assert!(err.is::<CircuitOpen>(), "{err}");
}

/// A response type that cannot be copied, as `reqwest::Response` and
/// `http::Response<Incoming>` cannot.
#[derive(Debug, PartialEq)]
struct Unique(u32);

#[tokio::test(start_paused = true)]
async fn without_a_cache_key_nothing_asks_for_copies_of_responses_or_requests() {
    // Requests are not `Clone` either: copies come from the hook, only for
    // retries.
    #[derive(Debug)]
    struct Request(u32);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let backend = service_fn(move |Request(id): Request| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                Err::<Unique, BoxError>("first attempt fails".into())
            } else {
                Ok(Unique(id))
            }
        }
    });
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default().retry(RetryConfig::default().max_attempts(2)),
    )
    .clone_requests_with(|r: &Request| Some(Request(r.0)))
    .build()
    .unwrap();
    let mut svc = layer.layer(backend);
    let answer = svc.ready().await.unwrap().call(Request(5)).await.unwrap();
    assert_eq!(answer, Unique(5));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "retried once");
}

#[tokio::test(start_paused = true)]
async fn hooks_take_capturing_closures() {
    let backend = Backend::default();
    let keys = Arc::new(Mutex::new(Vec::new()));
    let (seen, prefix) = (keys.clone(), String::from("user"));
    let copies = Arc::new(AtomicUsize::new(0));
    let copied = copies.clone();
    let hints = Arc::new(AtomicUsize::new(0));
    let hinted = hints.clone();
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default()
            .cache(CacheConfig::default())
            .retry(RetryConfig::default().max_attempts(2)),
    )
    .cache_key(move |id: &u32| {
        let key = format!("{prefix}/{id}");
        seen.lock().unwrap().push(key.clone());
        Some(key)
    })
    .clone_requests_with(move |id: &u32| {
        copied.fetch_add(1, Ordering::SeqCst);
        Some(*id)
    })
    .retry_after(move |_: &String| {
        hinted.fetch_add(1, Ordering::SeqCst);
        None
    })
    .build()
    .unwrap();
    let mut svc = layer.layer(backend.service());
    assert_eq!(call(&mut svc, 7).await.unwrap(), "user 7");
    assert_eq!(call(&mut svc, 7).await.unwrap(), "user 7", "from the cache");
    assert_eq!(backend.calls(), 1);
    assert_eq!(*keys.lock().unwrap(), vec!["user/7", "user/7"]);
    assert_eq!(copies.load(Ordering::SeqCst), 1, "one copy, for the miss");
    assert_eq!(hints.load(Ordering::SeqCst), 0, "read only before a retry");
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn a_fallbacks_answer_is_a_success_to_the_caller_and_a_failure_to_the_metrics() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let backend = Backend::default();
    backend.down.store(true, Ordering::SeqCst);
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        ResilienceLayer::builder(ResilienceConfig::default().circuit_breaker(breaker(1)))
            .fallback(service_fn(fallback))
            .build()
            .unwrap()
    });
    let mut svc = layer.layer(backend.service());
    call(&mut svc, 1).await.unwrap_err();
    for id in 0..3 {
        assert_eq!(
            call(&mut svc, id).await.unwrap(),
            format!("user {id} (fallback)")
        );
    }
    let failures = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let key = key.key();
            let failure = key.name() == "bulwark_requests_total"
                && key
                    .labels()
                    .any(|l| l.key() == "outcome" && l.value() == "failure");
            match (failure, value) {
                (true, DebugValue::Counter(n)) => Some(n),
                _ => None,
            }
        });
    assert_eq!(
        failures,
        Some(4),
        "the error and the three degraded answers"
    );
}

/// An endpoint that pushes back forever: never ready.
#[derive(Clone)]
struct PushesBack;

impl Service<u32> for PushesBack {
    type Response = String;
    type Error = BoxError;
    type Future = std::future::Ready<Result<String, BoxError>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Pending
    }

    fn call(&mut self, _: u32) -> Self::Future {
        std::future::ready(Err("called without being ready".into()))
    }
}

#[tokio::test(start_paused = true)]
async fn the_timeout_bounds_the_wait_for_an_endpoint_that_pushes_back() {
    let layer = ResilienceLayer::new(
        ResilienceConfig::default()
            .timeout(Duration::from_millis(100))
            .circuit_breaker(breaker(3)),
    )
    .unwrap();
    let mut svc = layer
        .balance([("a", PushesBack), ("b", PushesBack)])
        .unwrap();
    for _ in 0..3 {
        let start = tokio::time::Instant::now();
        let err = call(&mut svc, 1).await.unwrap_err();
        assert!(err.is::<Elapsed>(), "{err}");
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    }
    // The breaker counted them: a service that never takes a call fails.
    assert_eq!(layer.circuit_breaker().unwrap().state(), CircuitState::Open);
}

#[test]
fn missing_parts_and_bad_values_are_typed_errors_naming_the_field() {
    fn field(result: Result<ResilienceLayer<u32, String>, tower_bulwark::ConfigError>) -> String {
        result.unwrap_err().path()
    }
    assert_eq!(
        field(ResilienceLayer::new(
            ResilienceConfig::default().cache(CacheConfig::default())
        )),
        "cache_key"
    );
    assert_eq!(
        field(ResilienceLayer::new(
            ResilienceConfig::default().retry(RetryConfig::default())
        )),
        "clone_requests"
    );
    assert_eq!(
        field(ResilienceLayer::new(
            ResilienceConfig::default()
                .circuit_breaker(CircuitBreakerConfig::default().failure_rate_threshold(0.0))
        )),
        "circuit_breaker.failure_rate_threshold"
    );
    assert_eq!(
        field(ResilienceLayer::new(
            ResilienceConfig::default().timeout(Duration::ZERO)
        )),
        "timeout"
    );
    assert_eq!(
        field(ResilienceLayer::new(
            ResilienceConfig::default().balance(
                BalanceConfig::default()
                    .outlier_detection(OutlierDetection::default().max_ejection_percent(101.0))
            )
        )),
        "balance.outlier_detection.max_ejection_percent"
    );
    let err = ResilienceLayer::<u32, String>::new(
        ResilienceConfig::default().retry(RetryConfig::default().max_attempts(0)),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid retry config: retry.max_attempts must be greater than zero"
    );
}

#[cfg(all(feature = "toml", feature = "yaml"))]
mod files {
    use super::*;
    use tower_bulwark::stack::ConfigFileError;

    const TOML: &str = r#"
service = "users"
timeout = "250ms"

[cache]
ttl = "30s"
stale_if_error = "10m"
max_entries = 5000

[retry]
max_attempts = 2
backoff_base = "10ms"
backoff_max = "200ms"
budget = { ratio = 0.1, min_per_second = 5, max = 50 }

[circuit_breaker]
failure_rate_threshold = 0.25
minimum_calls = 10
sliding_window = { kind = "time", size = "30s", buckets = 6 }
slow_call_duration = "1s"
consecutive_failures = 5
open_duration = { kind = "linear", base = "2s", max = "30s", jitter = 0.1 }
half_open_probes = 2

[hedge]
delay = { fixed = "40ms" }

[balance]
strategy = { kind = "p2c_peak_ewma", decay = "2s" }
outlier_detection = { consecutive_failures = false, failure_rate = 0.5, window = 10, minimum_calls = 5 }
"#;

    const YAML: &str = "
service: users
timeout: 250ms
cache:
  ttl: 30s
  stale_if_error: 10m
  max_entries: 5000
retry:
  max_attempts: 2
  backoff_base: 10ms
  backoff_max: 200ms
  budget: { ratio: 0.1, min_per_second: 5, max: 50 }
circuit_breaker:
  failure_rate_threshold: 0.25
  minimum_calls: 10
  sliding_window: { kind: time, size: 30s, buckets: 6 }
  slow_call_duration: 1s
  consecutive_failures: 5
  open_duration: { kind: linear, base: 2s, max: 30s, jitter: 0.1 }
  half_open_probes: 2
hedge:
  delay: { fixed: 40ms }
balance:
  strategy: { kind: p2c_peak_ewma, decay: 2s }
  outlier_detection: { consecutive_failures: false, failure_rate: 0.5, window: 10, minimum_calls: 5 }
";

    #[test]
    fn toml_and_yaml_read_the_same_configuration() {
        let toml = ResilienceConfig::from_toml(TOML).unwrap();
        let yaml = ResilienceConfig::from_yaml(YAML).unwrap();
        assert_eq!(format!("{toml:?}"), format!("{yaml:?}"));
        assert_eq!(toml.service, "users");
        assert_eq!(toml.timeout, Some(Duration::from_millis(250)));
        let breaker = toml.circuit_breaker.as_ref().unwrap();
        assert_eq!(breaker.failure_rate_threshold, 0.25);
        assert_eq!(breaker.consecutive_failures, Some(5));
        assert_eq!(
            breaker.open_duration,
            OpenDuration::Linear {
                base: Duration::from_secs(2),
                max: Duration::from_secs(30),
                jitter: 0.1
            }
        );
        assert_eq!(breaker.half_open_probes, 2);
        assert_eq!(toml.retry.as_ref().unwrap().budget.ratio, 0.1);
        assert_eq!(toml.cache.as_ref().unwrap().max_entries, 5000);
        let outliers = toml.balance.outlier_detection.unwrap();
        assert_eq!(
            (outliers.consecutive_failures, outliers.failure_rate),
            (None, Some(0.5))
        );
        assert_eq!(
            toml.balance.strategy,
            Strategy::P2cPeakEwma {
                default_rtt: Duration::from_millis(5),
                decay: Duration::from_secs(2)
            }
        );
        // And it builds.
        ResilienceLayer::<u32, String>::builder(toml)
            .cache_key(|id: &u32| Some(*id))
            .clone_requests()
            .build()
            .unwrap();
    }

    #[test]
    fn an_empty_file_is_the_default_and_parts_switch_on_and_off() {
        let empty = ResilienceConfig::from_toml("").unwrap();
        assert_eq!(
            format!("{empty:?}"),
            format!("{:?}", ResilienceConfig::default())
        );
        let switched = ResilienceConfig::from_toml(
            "timeout = false\ncircuit_breaker = false\nretry = true\n[balance]\nstrategy = \"round_robin\"\noutlier_detection = false\n",
        )
        .unwrap();
        assert!(switched.timeout.is_none() && switched.circuit_breaker.is_none());
        assert!(switched.retry.is_some() && switched.balance.outlier_detection.is_none());
        assert_eq!(switched.balance.strategy, Strategy::RoundRobin);
    }

    fn placed(err: ConfigFileError) -> (String, Option<usize>) {
        println!("{err}");
        (err.field().to_owned(), err.line())
    }

    #[test]
    fn a_bad_value_names_its_field_and_line() {
        let cases: [(&str, &str, usize); 8] = [
            // A value a layer rejects.
            (
                "service = \"a\"\n\n[circuit_breaker]\nminimum_calls = 0\n",
                "circuit_breaker.minimum_calls",
                4,
            ),
            // Two fields checked together: the default window of 100 calls
            // is smaller than the minimum.
            (
                "[circuit_breaker]\nminimum_calls = 500\n",
                "circuit_breaker.minimum_calls",
                2,
            ),
            (
                "[circuit_breaker]\nopen_duration = { kind = \"exponential\", base = \"10s\", max = \"5s\" }\n",
                "circuit_breaker.open_duration.max",
                2,
            ),
            (
                "[balance.outlier_detection]\njitter = 0.1\nmax_ejection_percent = 150\n",
                "balance.outlier_detection.max_ejection_percent",
                3,
            ),
            // A duration that is not one.
            (
                "[retry]\nbackoff_base = \"soon\"\n",
                "retry.backoff_base",
                2,
            ),
            // A typo.
            (
                "service = \"a\"\n[hedge]\ndelays = { fixed = \"1s\" }\n",
                "hedge.delays",
                3,
            ),
            // A value of the wrong type.
            ("[cache]\nmax_entries = \"many\"\n", "cache.max_entries", 2),
            ("timeout = \"0s\"\n", "timeout", 1),
        ];
        for (text, field, line) in cases {
            let err = ResilienceConfig::from_toml(text).unwrap_err();
            assert_eq!(placed(err), (field.to_owned(), Some(line)), "{text}");
        }
        let yaml_cases: [(&str, &str, usize); 4] = [
            (
                "service: a\ncircuit_breaker:\n  minimum_calls: 0\n",
                "circuit_breaker.minimum_calls",
                3,
            ),
            ("retry:\n  backoff_base: soon\n", "retry.backoff_base", 2),
            ("service: a\nhedge:\n  delays: 1s\n", "hedge.delays", 3),
            (
                "balance:\n  outlier_detection:\n    max_ejection_percent: 150\n",
                "balance.outlier_detection.max_ejection_percent",
                3,
            ),
        ];
        for (text, field, line) in yaml_cases {
            let err = ResilienceConfig::from_yaml(text).unwrap_err();
            assert_eq!(placed(err), (field.to_owned(), Some(line)), "{text}");
        }
        let syntax = ResilienceConfig::from_toml("service = \n").unwrap_err();
        assert_eq!(syntax.line(), Some(1));
        assert!(
            syntax
                .to_string()
                .starts_with("invalid resilience config (TOML) at line 1")
        );
    }

    #[test]
    fn files_are_read_by_extension() {
        let dir = std::env::temp_dir().join(format!("bulwark-stack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("stack.toml");
        let yaml = dir.join("stack.yml");
        std::fs::write(&toml, TOML).unwrap();
        std::fs::write(&yaml, YAML).unwrap();
        assert_eq!(ResilienceConfig::from_file(&toml).unwrap().service, "users");
        assert_eq!(ResilienceConfig::from_file(&yaml).unwrap().service, "users");
        let err = ResilienceConfig::from_file(dir.join("stack.ini")).unwrap_err();
        assert!(err.message().contains("expected a .toml"), "{err}");
        let err = ResilienceConfig::from_file(dir.join("missing.toml")).unwrap_err();
        assert!(err.message().contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A cache hit does not call the service beneath it, so what that service
/// reserved when it was made ready (here the breaker's one half-open probe
/// slot) is given back at once instead of being held by an idle clone.
#[tokio::test(start_paused = true)]
async fn a_cache_hit_gives_back_the_probe_slot_it_was_ready_with() {
    use tower_bulwark::cache::CacheLayer;
    use tower_bulwark::circuit_breaker::CircuitBreakerLayer;

    let backend = Backend::default();
    let breaker = CircuitBreakerLayer::new(breaker(1).half_open_probes(1)).unwrap();
    let handle = breaker.handle();
    let cache = CacheLayer::new(CacheConfig::default(), |id: &u32| Some(*id)).unwrap();
    let mut a = cache.layer(breaker.layer(backend.service()));
    let mut b = a.clone();

    assert_eq!(
        a.ready().await.unwrap().call(1).await.unwrap().into_inner(),
        "user 1"
    );
    backend.down.store(true, Ordering::SeqCst);
    a.ready().await.unwrap().call(2).await.unwrap_err();
    assert_eq!(handle.state(), CircuitState::Open);
    backend.down.store(false, Ordering::SeqCst);
    tokio::time::advance(OPEN).await;

    // `a` is made ready (taking the probe slot), then answered from the
    // cache.
    let hit = a.ready().await.unwrap().call(1).await.unwrap();
    assert!(hit.status() == tower_bulwark::cache::CacheStatus::Hit);
    // `b` gets the slot, probes, and closes the breaker.
    let probe = b.ready().await.unwrap().call(3).await.unwrap();
    assert_eq!(probe.into_inner(), "user 3");
    assert_eq!(handle.state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_weighed_cache_keeps_no_more_than_its_weight() {
    // Each answer weighs 600; the cache holds 1 000: one entry at a time.
    let cache = || {
        CacheConfig::default()
            .ttl(Duration::from_secs(60))
            .max_entries(1_000)
    };
    let weighed = ResilienceLayer::builder(ResilienceConfig::default().cache(cache()))
        .cache_key(|id: &u32| Some(*id))
        .cache_weigher(|_: &u32, _: &String| 600)
        .build()
        .unwrap();
    let counted = ResilienceLayer::builder(ResilienceConfig::default().cache(cache()))
        .cache_key(|id: &u32| Some(*id))
        .build()
        .unwrap();
    let mut second_pass = Vec::new();
    for layer in [weighed, counted] {
        let backend = Backend::default();
        let mut svc = layer.layer(backend.service());
        for id in 0..500 {
            call(&mut svc, id).await.unwrap();
        }
        let before = backend.calls();
        for id in 0..500 {
            assert_eq!(call(&mut svc, id).await.unwrap(), format!("user {id}"));
        }
        second_pass.push(backend.calls() - before);
    }
    // Weighed, nearly every read misses again (moka evicts in batches, so
    // a few more than one entry may be held for a while); counted, 1 000
    // entries hold all 500.
    assert!(second_pass[0] >= 450, "{} of 500 missed", second_pass[0]);
    assert_eq!(second_pass[1], 0);
}

#[tokio::test(start_paused = true)]
async fn cache_if_stores_only_the_answers_it_admits() {
    let backend = Backend::default();
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default().cache(
            CacheConfig::default()
                .ttl(Duration::from_secs(60))
                .stale_if_error(Duration::from_secs(600)),
        ),
    )
    .cache_key(|id: &u32| Some(*id))
    // Odd ids stand for "not found": not kept.
    .cache_if(|answer: &String| answer.ends_with(['0', '2', '4', '6', '8']))
    .build()
    .unwrap();
    let mut svc = layer.layer(backend.service());
    for _ in 0..3 {
        call(&mut svc, 2).await.unwrap();
        call(&mut svc, 3).await.unwrap();
    }
    assert_eq!(backend.calls(), 1 + 3, "2 was kept, 3 asked each time");

    // Nor is an answer not admitted served stale when the backend fails.
    tokio::time::advance(Duration::from_secs(61)).await;
    backend.down.store(true, Ordering::SeqCst);
    assert_eq!(call(&mut svc, 2).await.unwrap(), "user 2", "stale");
    assert!(call(&mut svc, 3).await.is_err());
}
