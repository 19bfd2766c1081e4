//! The Metrics layer, and the crate's one metrics table against what every
//! layer emits.
#![cfg(all(
    feature = "metrics",
    feature = "balance",
    feature = "cache",
    feature = "circuit-breaker",
    feature = "hedge",
    feature = "retry"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, LoadBalance};
use tower_bulwark::cache::{CacheConfig, CacheLayer};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use tower_bulwark::hedge::{HedgeConfig, HedgeLayer};
use tower_bulwark::metrics::MetricsLayer;
use tower_bulwark::retry::{RetryConfig, RetryLayer};

type Values = Vec<(String, Vec<(String, String)>, DebugValue)>;

/// One snapshot (a snapshot resets the recorder's counters).
fn snapshot(snapshotter: &Snapshotter) -> Values {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            (key.name().to_string(), labels, value)
        })
        .collect()
}

fn find<'a>(values: &'a Values, name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    values.iter().find_map(|(n, ls, v)| {
        let matches = n == name
            && labels
                .iter()
                .all(|(k, val)| ls.iter().any(|(lk, lv)| lk == k && lv == val));
        matches.then_some(v)
    })
}

#[tokio::test(start_paused = true)]
async fn requests_are_counted_by_outcome_timed_and_tracked_in_flight() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || MetricsLayer::new("users"));
    let mut svc = layer.layer(service_fn(|ok: bool| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if ok {
            Ok::<_, BoxError>(())
        } else {
            Err("down".into())
        }
    }));
    svc.ready().await.unwrap().call(true).await.unwrap();
    svc.ready().await.unwrap().call(false).await.unwrap_err();
    // A call dropped half-way counts as cancelled and leaves the gauge.
    let cancelled = svc.ready().await.unwrap().call(true);
    let during = snapshot(&snapshotter);
    assert_eq!(
        find(&during, "bulwark_requests_in_flight", &[]),
        Some(&DebugValue::Gauge(1.0.into()))
    );
    drop(cancelled);
    let after = snapshot(&snapshotter);

    let count = |outcome| {
        [&during, &after]
            .iter()
            .map(|values| {
                match find(
                    values,
                    "bulwark_requests_total",
                    &[("service", "users"), ("outcome", outcome)],
                ) {
                    Some(DebugValue::Counter(n)) => *n,
                    _ => 0,
                }
            })
            .sum::<u64>()
    };
    assert_eq!(
        (
            count("success"),
            count("failure"),
            count("cancelled"),
            count("ignored")
        ),
        (1, 1, 1, 0)
    );
    // The recorder resets gauges on snapshot too: the changes since sum to
    // zero, so the gauge is back where it started.
    assert_eq!(
        find(&after, "bulwark_requests_in_flight", &[]),
        Some(&DebugValue::Gauge((-1.0).into()))
    );
    match find(
        &during,
        "bulwark_request_duration_seconds",
        &[("service", "users")],
    ) {
        Some(DebugValue::Histogram(samples)) => {
            assert_eq!(samples.len(), 2);
            assert!(
                samples.iter().all(|s| s.into_inner() == 0.02),
                "{samples:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn infallible_stays_infallible() {
    let svc = MetricsLayer::new("axum").layer(service_fn(|()| async { Ok::<_, Infallible>("ok") }));
    fn infallible<S: Service<(), Error = Infallible>>(_: &S) {}
    infallible(&svc);
    assert_eq!(svc.oneshot(()).await.unwrap(), "ok");
}

/// The rows of the metrics table in the crate docs: name, type, label keys.
fn documented() -> BTreeSet<(String, String, Vec<String>)> {
    let lib = include_str!("../src/lib.rs");
    let section = lib
        .split("//! # Metrics")
        .nth(1)
        .expect("a Metrics section")
        .split("//! # ")
        .next()
        .unwrap();
    section
        .lines()
        .filter_map(|line| line.strip_prefix("//! | `bulwark_"))
        .map(|row| {
            let cells: Vec<&str> = row.split(" | ").collect();
            let name = format!("bulwark_{}", cells[0].trim_end_matches('`'));
            let mut labels: Vec<String> = cells[2]
                .split(", ")
                .map(|l| l.trim_matches('`').to_string())
                .collect();
            labels.sort();
            (name, cells[1].to_string(), labels)
        })
        .collect()
}

/// Every layer, run once under a debugging recorder: what they emit.
async fn emitted() -> BTreeSet<(String, String, Vec<String>)> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let echo = || service_fn(|x: u32| async move { Ok::<_, BoxError>(x) });
    let failing = || service_fn(|_: u32| async { Err::<u32, BoxError>("down".into()) });
    metrics::with_local_recorder(&recorder, || {
        let m = MetricsLayer::new("m").layer(echo());
        let key = |x: &u32| Some(*x);
        let c = CacheLayer::new(CacheConfig::default().service("c"), key)
            .unwrap()
            .layer(echo());
        let r = RetryLayer::new(RetryConfig::default().service("r"))
            .unwrap()
            .layer(failing());
        let b = CircuitBreakerLayer::new(CircuitBreakerConfig::default().service("b"))
            .unwrap()
            .layer(echo());
        let h = HedgeLayer::new(HedgeConfig::default().service("h"))
            .unwrap()
            .layer(echo());
        let lb = LoadBalance::new(BalanceConfig::default().service("lb"), [("e", echo())]).unwrap();
        (m, c, r, b, h, lb)
    });
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, _)| {
            let kind = match key.kind() {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
                MetricKind::Histogram => "histogram",
            };
            let key = key.key();
            let mut labels: Vec<String> = key.labels().map(|l| l.key().to_string()).collect();
            labels.sort();
            (key.name().to_string(), kind.to_string(), labels)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_documented_table_is_what_the_layers_emit() {
    let documented = documented();
    let emitted = emitted().await;
    assert!(documented.len() >= 19, "{documented:?}");
    assert_eq!(documented, emitted);
    for (name, kind, labels) in &documented {
        assert!(name.starts_with("bulwark_"));
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "{name}"),
            "histogram" => assert!(name.ends_with("_seconds"), "{name}"),
            _ => assert!(!name.ends_with("_total"), "{name}"),
        }
        assert!(labels.contains(&"service".to_string()), "{name}");
    }
}

/// Every `bulwark_*` metric named in `text`, with the `_bucket`, `_sum` and
/// `_count` series of histograms read as the histogram itself.
fn queried(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("bulwark_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|b| b.ends_with("_seconds"))
            })
            .unwrap_or(name);
        // Alert names (`BulwarkCircuitOpen`) start upper case and are skipped.
        names.insert(base.to_string());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_alert_rules_and_the_dashboard_query_only_documented_metrics() {
    let documented: BTreeSet<String> = documented().into_iter().map(|(name, _, _)| name).collect();
    for (file, text) in [
        (
            "ops/prometheus/alerts.yml",
            include_str!("../ops/prometheus/alerts.yml"),
        ),
        (
            "ops/prometheus/alerts_test.yml",
            include_str!("../ops/prometheus/alerts_test.yml"),
        ),
        (
            "ops/grafana/dashboard.json",
            include_str!("../ops/grafana/dashboard.json"),
        ),
    ] {
        let used = queried(text);
        assert!(!used.is_empty(), "{file} queries no metric");
        let unknown: Vec<_> = used.difference(&documented).collect();
        assert!(
            unknown.is_empty(),
            "{file} queries undocumented metrics: {unknown:?}"
        );
    }
    // The dashboard has a panel on every documented metric.
    let on_dashboard = queried(include_str!("../ops/grafana/dashboard.json"));
    let missing: Vec<_> = documented.difference(&on_dashboard).collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");
}
