//! End to end: a service exporting `/metrics` on 127.0.0.1, a real
//! Prometheus scraping it every second with `ops/prometheus/alerts.yml`
//! loaded, and a failure that opens the breaker. Through Prometheus's HTTP
//! API, `BulwarkCircuitOpen` must become pending (it fires after a minute).
//!
//! Needs the `prometheus` binary (Debian's `prometheus` package, which
//! `.ci/run` installs). Under CI (`CI` set) a missing binary fails the
//! test; elsewhere the test says it was skipped.
#![cfg(all(feature = "metrics", feature = "circuit-breaker"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tower::{BoxError, Layer, Service, ServiceExt, service_fn};
use tower_bulwark::circuit_breaker::{
    CircuitBreakerConfig, CircuitBreakerLayer, CircuitState, OpenDuration,
};

/// Kills and reaps Prometheus however the test ends.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_raises_the_circuit_open_alert() {
    let binary = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    if Command::new(&binary).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{binary}` is not installed: CI must install Debian's prometheus package"
        );
        eprintln!("skipped: `{binary}` is not installed (apt-get install prometheus)");
        return;
    }

    // The service: metrics exported on 127.0.0.1, a breaker that opens on
    // one failure and stays open for the test.
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let layer = CircuitBreakerLayer::new(
        CircuitBreakerConfig::default()
            .service("e2e")
            .consecutive_failures(1)
            .open_duration(OpenDuration::fixed(Duration::from_secs(600))),
    )
    .unwrap();
    let breaker = layer.handle();
    let mut svc = layer.layer(service_fn(|()| async {
        Err::<(), BoxError>("down".into())
    }));
    svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(breaker.state(), CircuitState::Open);

    // Prometheus, scraping every second, with the crate's alert rules.
    let dir = std::env::temp_dir().join(format!("bulwark-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = std::fs::canonicalize("ops/prometheus/alerts.yml").unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: e2e\n    static_configs:\n      - targets: ['{exporter}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Prometheus(
        Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Wait, at most a minute, for the alert to be pending or firing.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/v1/alerts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let raised = loop {
        if let Ok(response) = client.get(&url).send().await {
            last = response.text().await.unwrap_or_default();
            if last.contains("\"alertname\":\"BulwarkCircuitOpen\"")
                && last.contains("\"service\":\"e2e\"")
                && (last.contains("\"state\":\"pending\"") || last.contains("\"state\":\"firing\""))
            {
                break true;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        raised,
        "BulwarkCircuitOpen was not raised; last answer: {last}"
    );
}
