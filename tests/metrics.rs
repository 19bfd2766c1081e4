//! The Metrics layer, and the crate's one metrics table against what every
//! layer emits.
#![cfg(all(
    feature = "metrics",
    feature = "balance",
    feature = "cache",
    feature = "circuit-breaker",
    feature = "hedge",
    feature = "retry",
    feature = "bulkhead",
    feature = "adaptive",
    feature = "rate-limit"
))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::adaptive::{AdaptiveConcurrencyLayer, AdaptiveConfig};
use tower_bulwark::balance::{BalanceConfig, LoadBalance};
use tower_bulwark::bulkhead::{BulkheadConfig, BulkheadLayer};
use tower_bulwark::cache::{CacheConfig, CacheLayer};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
use tower_bulwark::hedge::{HedgeConfig, HedgeLayer};
use tower_bulwark::metrics::MetricsLayer;
use tower_bulwark::rate_limit::{RateLimitConfig, RateLimitLayer};
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

#[tokio::test]
async fn a_panic_in_call_or_in_its_future_leaves_no_call_in_flight() {
    use std::future::Future;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::task::{Context, Waker};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || MetricsLayer::new("users"));
    // `true` panics in `call`, `false` in the future it returns.
    let mut svc = layer.layer(service_fn(|in_call: bool| {
        assert!(!in_call, "a panic in call()");
        async move {
            if !in_call {
                panic!("a panic in the future");
            }
            Ok::<_, BoxError>(())
        }
    }));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10 {
        svc.ready().await.unwrap();
        assert!(catch_unwind(AssertUnwindSafe(|| svc.call(true))).is_err());
        svc.ready().await.unwrap();
        let mut future = Box::pin(svc.call(false));
        assert!(catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))).is_err());
        // Whoever owned the future drops it as the panic unwinds.
        drop(future);
    }
    let values = snapshot(&snapshotter);
    // The gauge's changes sum to zero: every call that went in came out,
    // each counted as cancelled.
    assert_eq!(
        find(&values, "bulwark_requests_in_flight", &[]),
        Some(&DebugValue::Gauge(0.0.into()))
    );
    assert_eq!(
        find(
            &values,
            "bulwark_requests_total",
            &[("service", "users"), ("outcome", "cancelled")]
        ),
        Some(&DebugValue::Counter(20))
    );
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

/// The rows of the metrics table in the crate docs: name, type, label keys
/// (the optional ones too).
fn documented() -> BTreeSet<(String, String, Vec<String>)> {
    documented_rows()
        .into_iter()
        .map(|(name, kind, mut required, optional)| {
            required.extend(optional);
            required.sort();
            (name, kind, required)
        })
        .collect()
}

/// The rows of the metrics table in the crate docs: name, type, the labels
/// every series has, and the optional ones.
fn documented_rows() -> Vec<(String, String, Vec<String>, Vec<String>)> {
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
            let list = |cell: &str| -> Vec<String> {
                let mut labels: Vec<String> = cell
                    .split(", ")
                    .map(|l| l.trim_matches('`').to_string())
                    .filter(|l| !l.is_empty())
                    .collect();
                labels.sort();
                labels
            };
            let (required, optional) = match cells[2].split_once("; optional ") {
                Some((required, optional)) => (list(required), list(optional)),
                None => (list(cells[2]), Vec::new()),
            };
            (name, cells[1].to_string(), required, optional)
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
        let lb = LoadBalance::new(
            BalanceConfig::default()
                .service("lb")
                .endpoint_metrics(true),
            [("e", echo())],
        )
        .unwrap();
        let bulkhead = BulkheadLayer::new(BulkheadConfig::default().service("bh")).unwrap();
        let adaptive =
            AdaptiveConcurrencyLayer::new(AdaptiveConfig::default().service("ac")).unwrap();
        let rate = RateLimitLayer::new(RateLimitConfig::default().service("rl")).unwrap();
        (m, c, r, b, h, lb, bulkhead, adaptive, rate)
    });
    series(&snapshotter)
}

/// The layers that add optional labels, with every one of them, run once
/// under a debugging recorder: the series that carry them.
async fn emitted_with_optional_labels() -> BTreeSet<(String, String, Vec<String>)> {
    use tower_bulwark::metrics::HttpLabels;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let route = |req: &http::Request<()>| Some(req.uri().path().to_owned());
    let http =
        service_fn(|_: http::Request<()>| async { Ok::<_, BoxError>(http::Response::new(())) });
    let mut m = MetricsLayer::new("m")
        .labels(HttpLabels::new().route(route).method().status_class())
        .unwrap()
        .layer(http);
    m.ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    let breakers = CircuitBreakerLayer::new(CircuitBreakerConfig::default().service("b"))
        .unwrap()
        .per_key(route, 10)
        .unwrap();
    let mut b = breakers.layer(http);
    b.ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap();
    breakers.handles()[0].1.force_open();
    series(&snapshotter)
        .into_iter()
        .filter(|(_, _, labels)| {
            ["route", "key"]
                .iter()
                .any(|l| labels.contains(&l.to_string()))
        })
        .collect()
}

/// The name, type and label keys of every series `snapshotter` saw, with
/// a check that each has HELP text.
fn series(snapshotter: &Snapshotter) -> BTreeSet<(String, String, Vec<String>)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, description, _)| {
            let kind = match key.kind() {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
                MetricKind::Histogram => "histogram",
            };
            let key = key.key();
            assert!(
                description.is_some_and(|d| !d.is_empty()),
                "{} has no HELP text",
                key.name()
            );
            let mut labels: Vec<String> = key.labels().map(|l| l.key().to_string()).collect();
            labels.sort();
            (key.name().to_string(), kind.to_string(), labels)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_documented_table_is_what_the_layers_emit() {
    let rows = documented_rows();
    // Without optional labels: the required ones.
    let required: BTreeSet<(String, String, Vec<String>)> = rows
        .iter()
        .map(|(name, kind, required, _)| (name.clone(), kind.clone(), required.clone()))
        .collect();
    let emitted = emitted().await;
    assert!(required.len() >= 19, "{required:?}");
    assert_eq!(required, emitted);
    // With them: every optional label of the rows that have some.
    let with_optional: BTreeSet<(String, String, Vec<String>)> = rows
        .iter()
        .filter(|(_, _, _, optional)| !optional.is_empty())
        .map(|(name, kind, required, optional)| {
            let mut labels = required.clone();
            labels.extend(optional.iter().cloned());
            labels.sort();
            (name.clone(), kind.clone(), labels)
        })
        .collect();
    assert_eq!(with_optional, emitted_with_optional_labels().await);
    let documented = documented();
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

/// The PromQL expressions of the alert rules and the dashboard.
fn expressions() -> Vec<(&'static str, String)> {
    let mut exprs = Vec::new();
    // The rules: each `expr:` and the indented lines under it.
    let rules = include_str!("../ops/prometheus/alerts.yml");
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let mut expr = rest.trim().trim_start_matches('|').to_string();
        while let Some(next) = lines.peek() {
            let next_indent = next.len() - next.trim_start().len();
            if next.trim().is_empty() || next_indent <= indent {
                break;
            }
            expr.push(' ');
            expr.push_str(next.trim());
            lines.next();
        }
        exprs.push(("ops/prometheus/alerts.yml", expr));
    }
    // The dashboard: every `expr` of every target.
    fn walk(value: &serde_json::Value, out: &mut Vec<(&'static str, String)>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => {
                            out.push(("ops/grafana/dashboard.json", expr.clone()))
                        }
                        _ => walk(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../ops/grafana/dashboard.json")).unwrap();
    walk(&dashboard, &mut exprs);
    exprs
}

/// The label names `expr` groups by or matches on.
fn labels_in(expr: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    let name = |s: &str| {
        s.trim()
            .trim_start_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .to_string()
    };
    for (open, close) in [("by (", ')'), ("without (", ')'), ("on (", ')'), ("{", '}')] {
        let mut rest = expr;
        while let Some(at) = rest.find(open) {
            let tail = &rest[at + open.len()..];
            let end = tail.find(close).unwrap_or(tail.len());
            for part in tail[..end].split(',') {
                let label = match part.find(['=', '!']) {
                    Some(op) => &part[..op],
                    None if open == "{" => continue,
                    None => part,
                };
                let label = name(label);
                if !label.is_empty() && !label.starts_with("__") && !label.starts_with('$') {
                    labels.insert(label);
                }
            }
            rest = &tail[end..];
        }
    }
    labels
}

#[test]
fn the_alert_rules_and_the_dashboard_use_only_documented_labels() {
    let mut documented: BTreeSet<String> = documented()
        .into_iter()
        .flat_map(|(_, _, labels)| labels)
        .collect();
    // A histogram's bucket bound.
    documented.insert("le".to_string());
    let exprs = expressions();
    assert!(exprs.len() > 20, "{}", exprs.len());
    for (file, expr) in exprs {
        let unknown: Vec<_> = labels_in(&expr).difference(&documented).cloned().collect();
        assert!(
            unknown.is_empty(),
            "{file}: {expr}\nuses undocumented labels {unknown:?}"
        );
    }
    // The optional labels are used: per route, and per key.
    let all: BTreeSet<String> = expressions()
        .iter()
        .flat_map(|(_, e)| labels_in(e))
        .collect();
    for label in ["route", "status_class", "key"] {
        assert!(all.contains(label), "no rule or panel uses `{label}`");
    }
}
