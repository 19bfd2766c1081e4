//! Per-endpoint series under discovery churn, with the Prometheus exporter
//! and its idle timeout: the series of endpoints that left go, those of
//! the endpoints in the set stay, and a quiet endpoint's series comes back
//! with its next request.
#![cfg(all(feature = "balance", feature = "metrics"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use futures::channel::mpsc;
use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_util::MetricKindMask;
use tower::discover::Change;
use tower::{Service, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, LoadBalance, Strategy};

/// The endpoints with a `bulwark_balance_requests_total` series on the page.
fn endpoints_on(page: &str) -> BTreeSet<u32> {
    page.lines()
        .filter(|line| line.starts_with("bulwark_balance_requests_total{"))
        .map(|line| {
            let at = line.find("endpoint=\"").unwrap() + "endpoint=\"".len();
            line[at..].split('"').next().unwrap().parse().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn the_series_of_endpoints_that_left_go_at_the_idle_timeout() {
    const IDLE: Duration = Duration::from_millis(100);
    let recorder = PrometheusBuilder::new()
        .idle_timeout(MetricKindMask::COUNTER, Some(IDLE))
        .build_recorder();
    let page = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let echo = service_fn(|()| async { Ok::<_, Infallible>(()) });
    let (changes, stream) = mpsc::unbounded();
    for key in 0..3u32 {
        changes
            .unbounded_send(Ok::<_, Infallible>(Change::Insert(key, echo)))
            .unwrap();
    }
    let mut lb = LoadBalance::discover(
        BalanceConfig::default()
            .strategy(Strategy::RoundRobin)
            .endpoint_metrics(true),
        stream,
    )
    .unwrap();
    let mut send = async |n: usize| {
        for _ in 0..n {
            lb.ready().await.unwrap().call(()).await.unwrap();
        }
    };
    send(3).await;
    assert_eq!(endpoints_on(&page.render()), BTreeSet::from([0, 1, 2]));

    // 300 replacements: the set ends as 300, 301, 302.
    for key in 3..303u32 {
        changes.unbounded_send(Ok(Change::Remove(key - 3))).unwrap();
        changes
            .unbounded_send(Ok(Change::Insert(key, echo)))
            .unwrap();
        send(1).await;
    }
    let live = BTreeSet::from([300, 301, 302]);
    assert!(
        endpoints_on(&page.render()).len() > 3,
        "the old series are there until the timeout"
    );
    // Past the timeout, with requests to the endpoints in the set.
    for _ in 0..3 {
        tokio::time::sleep(IDLE / 2).await;
        send(6).await;
    }
    assert_eq!(endpoints_on(&page.render()), live);

    // Quiet past the timeout: gone; one round of requests: back.
    tokio::time::sleep(IDLE * 2).await;
    assert_eq!(endpoints_on(&page.render()), BTreeSet::new());
    send(3).await;
    assert_eq!(endpoints_on(&page.render()), live);
}
