//! `ResilienceLayer::server` in an axum `Router` on 127.0.0.1, called by a
//! real client: a breaker and metric labels per route, answers by the
//! layers themselves, and bounded label values. One test in this binary:
//! it installs the process's metrics recorder.
#![cfg(all(feature = "axum", feature = "stack"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitState, OpenDuration};
use tower_bulwark::key::ByRoute;
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

#[tokio::test]
async fn the_server_stack_keeps_a_breaker_and_metrics_per_route() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let layer = ResilienceLayer::server(
        ResilienceConfig::default()
            .service("api")
            .timeout(Duration::from_millis(200))
            .circuit_breaker(
                CircuitBreakerConfig::default()
                    .consecutive_failures(3)
                    .open_duration(OpenDuration::fixed(Duration::from_secs(30))),
            ),
    )
    .per_route(ByRoute, 3)
    .build()
    .unwrap();
    let app = Router::new()
        .route("/ok/{id}", get(|| async { "fine" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }))
        .layer(layer.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let url = url.clone();
        async move { client.get(format!("{url}{path}")).send().await.unwrap() }
    };

    for id in 0..3 {
        assert_eq!(get(format!("/ok/{id}")).await.status(), 200);
        assert_eq!(get("/fail".into()).await.status(), 500);
    }
    let rejected = get("/fail".into()).await;
    assert_eq!(rejected.status(), 503);
    assert_eq!(rejected.headers()["retry-after"], "30");
    assert_eq!(
        get("/ok/9".into()).await.status(),
        200,
        "/ok keeps answering"
    );
    assert_eq!(get("/slow".into()).await.status(), 504);
    assert_eq!(get("/nowhere".into()).await.status(), 404);
    let breakers = layer.breakers().unwrap();
    assert_eq!(breakers.state_of("/fail"), Some(CircuitState::Open));
    assert_eq!(breakers.state_of("/ok/{id}"), Some(CircuitState::Closed));
    assert_eq!(breakers.handles().len(), 3);

    // Past the bound of 3 routes: at most 3 breakers are kept (the least
    // recently used goes), and further routes are labelled `other`.
    assert_eq!(get("/a".into()).await.status(), 200);
    assert_eq!(get("/b".into()).await.status(), 200);
    assert!(breakers.handles().len() <= 3);

    let snapshot = snapshotter.snapshot().into_vec();
    let requests: BTreeSet<(String, String, String, String)> = snapshot
        .iter()
        .filter(|(key, ..)| key.key().name() == "bulwark_requests_total")
        .filter(|(.., value)| *value != DebugValue::Counter(0))
        .map(|(key, ..)| {
            let label = |name: &str| {
                key.key()
                    .labels()
                    .find(|l| l.key() == name)
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default()
            };
            (
                label("route"),
                label("method"),
                label("status_class"),
                label("outcome"),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String, String)> = [
        ("/ok/{id}", "GET", "2xx", "success"),
        ("/fail", "GET", "5xx", "failure"),
        ("/slow", "GET", "5xx", "failure"),
        ("none", "GET", "4xx", "success"),
        ("other", "GET", "2xx", "success"),
    ]
    .into_iter()
    .map(|(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
    .collect();
    assert_eq!(requests, expected, "route patterns, never paths; bounded");
    server.abort();
}
