//! Three axum instances on 127.0.0.1 behind a balancer of reqwest-based
//! client services; one instance is stopped mid-run. Every request gets an
//! answer (a response or an error, never a hang), the stopped instance is
//! ejected, and once it is, every request succeeds.
#![cfg(feature = "balance")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

#[path = "support/events.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tower::{BoxError, Service, ServiceExt, service_fn};
use tower_bulwark::balance::{
    BalanceConfig, BalanceEvent, LoadBalance, OutlierDetection, Strategy,
};

/// Starts an instance answering `GET /` with its name; the sender stops it.
async fn instance(
    name: &'static str,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { name }));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_is_ejected_and_every_request_is_answered() {
    let mut stops = Vec::new();
    let mut servers = Vec::new();
    let mut endpoints = Vec::new();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for name in ["one", "two", "three"] {
        let (addr, stop, server) = instance(name).await;
        stops.push(Some(stop));
        servers.push(server);
        let (client, url) = (client.clone(), format!("http://{addr}/"));
        let endpoint = service_fn(move |()| {
            let request = client.get(&url);
            async move {
                Ok::<String, BoxError>(request.send().await?.error_for_status()?.text().await?)
            }
        });
        endpoints.push((name, endpoint));
    }
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let lb = LoadBalance::new(
        BalanceConfig::default()
            .service("tcp")
            .strategy(Strategy::P2cLeastPending)
            .outlier_detection(
                OutlierDetection::default()
                    .consecutive_failures(Some(2))
                    .ejection_time(Duration::from_secs(60), Duration::from_secs(60)),
            )
            .events(&support::record_balance(seen)),
        endpoints,
    )
    .unwrap();

    // 8 clients, 50 requests each; instance "two" stops after the first
    // 100 requests.
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop_two = Arc::new(Mutex::new(stops[1].take()));
    let run = async {
        let mut clients = Vec::new();
        for _ in 0..8 {
            let (mut lb, answered, stop_two) = (lb.clone(), answered.clone(), stop_two.clone());
            clients.push(tokio::spawn(async move {
                let mut results = Vec::new();
                for _ in 0..50 {
                    let n = answered.load(std::sync::atomic::Ordering::SeqCst);
                    if n >= 100 {
                        if let Some(stop) = stop_two.lock().unwrap().take() {
                            stop.send(()).unwrap();
                        }
                    }
                    let result = lb
                        .ready()
                        .await
                        .unwrap()
                        .call(())
                        .await
                        .map_err(|e| e.to_string());
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    results.push(result);
                }
                results
            }));
        }
        let mut per_client = Vec::new();
        for client in clients {
            per_client.push(client.await.unwrap());
        }
        per_client
    };
    let per_client = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("every request answered within the bound");
    // Once the instance is ejected, every request goes to a live one: each
    // client's last ten requests succeed.
    for client in &per_client {
        assert!(
            client.iter().rev().take(10).all(|r| r.is_ok()),
            "{client:?}"
        );
    }
    let results: Vec<_> = per_client.into_iter().flatten().collect();

    assert_eq!(results.len(), 400, "every request got an answer");
    let failures = results.iter().filter(|r| r.is_err()).count();
    // Only the requests in flight or sent before the ejection can fail: at
    // most the two failures that eject it, plus one in flight per client.
    assert!(failures <= 2 + 8, "{failures} failures: {results:?}");
    let ejected: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            BalanceEvent::EndpointEjected { endpoint, .. } => Some(endpoint.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(ejected, vec!["two"]);
    let state = lb.endpoints();
    assert!(state.iter().any(|e| e.key == "two" && e.ejected));
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_deref().ok())
            .all(|body| body == "one" || body == "two" || body == "three")
    );

    for stop in stops.into_iter().flatten() {
        let _ = stop.send(());
    }
    for server in servers {
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}
