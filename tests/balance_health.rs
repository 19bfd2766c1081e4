//! Active health checks: endpoints that fail their probes take no
//! requests until they pass again, ejected endpoints return through the
//! probes and never through a client's request, and the probing stops
//! with the balancer.
#![cfg(feature = "balance")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

#[path = "support/events.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{BoxError, Service, ServiceExt, service_fn};
use tower_bulwark::balance::{
    BalanceConfig, BalanceEvent, HealthCheck, LoadBalance, OutlierDetection, Strategy,
};

/// The fleet as the test sees it: which endpoints fail their probes,
/// which fail requests, and how many probes and requests each got.
#[derive(Default)]
struct Fleet {
    probe_fails: Mutex<HashSet<&'static str>>,
    request_fails: Mutex<HashSet<&'static str>>,
    probes: Mutex<HashMap<&'static str, usize>>,
    requests: Mutex<HashMap<&'static str, usize>>,
    events: Arc<Mutex<Vec<BalanceEvent>>>,
}

impl Fleet {
    fn probes(&self, key: &str) -> usize {
        self.probes.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn requests(&self, key: &str) -> usize {
        self.requests.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn saw(&self, event: impl Fn(&BalanceEvent) -> bool) -> bool {
        self.events.lock().unwrap().iter().any(event)
    }
}

fn endpoint(
    fleet: &Arc<Fleet>,
    name: &'static str,
) -> impl Service<(), Response = &'static str, Error = BoxError, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    let fleet = fleet.clone();
    service_fn(move |()| {
        *fleet.requests.lock().unwrap().entry(name).or_default() += 1;
        let fail = fleet.request_fails.lock().unwrap().contains(name);
        async move {
            if fail {
                Err::<&'static str, BoxError>("refused".into())
            } else {
                Ok(name)
            }
        }
    })
}

fn check(fleet: &Arc<Fleet>) -> HealthCheck<&'static str> {
    let fleet = fleet.clone();
    HealthCheck::new(move |key: &&'static str| {
        let key = *key;
        *fleet.probes.lock().unwrap().entry(key).or_default() += 1;
        let fail = fleet.probe_fails.lock().unwrap().contains(key);
        async move {
            if fail {
                Err::<(), BoxError>("unhealthy".into())
            } else {
                Ok(())
            }
        }
    })
    .interval(Duration::from_secs(1))
    .thresholds(2, 3)
}

fn config(fleet: &Arc<Fleet>) -> BalanceConfig {
    let fleet = fleet.clone();
    BalanceConfig::default()
        .strategy(Strategy::RoundRobin)
        .events(&support::record_balance(fleet.events.clone()))
}

async fn send<S>(lb: &mut S, n: usize) -> Vec<&'static str>
where
    S: Service<(), Response = &'static str, Error = BoxError>,
{
    let mut answers = Vec::new();
    for _ in 0..n {
        if let Ok(answer) = lb.ready().await.unwrap().call(()).await {
            answers.push(answer);
        }
    }
    answers
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_fails_its_probes_takes_no_requests_until_it_passes() {
    let fleet = Arc::new(Fleet::default());
    let mut lb = LoadBalance::new(
        config(&fleet).no_outlier_detection(),
        ["a", "b", "c"].map(|name| (name, endpoint(&fleet, name))),
    )
    .unwrap()
    .health_check(check(&fleet))
    .unwrap();

    fleet.probe_fails.lock().unwrap().insert("b");
    // Three failed probes, one a second.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert!(fleet.saw(
        |e| matches!(e, BalanceEvent::EndpointUnhealthy { endpoint, .. } if &**endpoint == "b")
    ));
    let before = fleet.requests("b");
    let answers = send(&mut lb, 300).await;
    assert_eq!(answers.len(), 300, "no request fails");
    assert_eq!(
        fleet.requests("b"),
        before,
        "the unhealthy endpoint took requests"
    );

    fleet.probe_fails.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(fleet.saw(
        |e| matches!(e, BalanceEvent::EndpointHealthy { endpoint, .. } if &**endpoint == "b")
    ));
    let answers = send(&mut lb, 300).await;
    assert_eq!(answers.iter().filter(|a| **a == "b").count(), 100);
    // Probes are the check's own: each endpoint's requests are exactly
    // the clients' requests.
    assert_eq!(
        fleet.requests("a") + fleet.requests("b") + fleet.requests("c"),
        600
    );
    assert!(fleet.probes("b") >= 5, "{} probes", fleet.probes("b"));
}

#[tokio::test(start_paused = true)]
async fn an_ejected_endpoint_returns_through_its_probes_never_a_clients_request() {
    let fleet = Arc::new(Fleet::default());
    let mut lb = LoadBalance::new(
        config(&fleet).outlier_detection(
            OutlierDetection::default()
                .consecutive_failures(Some(1))
                .max_ejection_percent(100.0)
                .ejection_time(Duration::from_millis(500), Duration::from_secs(5)),
        ),
        ["a", "b", "c"].map(|name| (name, endpoint(&fleet, name))),
    )
    .unwrap()
    .health_check(check(&fleet))
    .unwrap();

    // `b` refuses requests, and its probes fail too.
    fleet.request_fails.lock().unwrap().insert("b");
    fleet.probe_fails.lock().unwrap().insert("b");
    send(&mut lb, 3).await;
    assert!(fleet.saw(|e| matches!(e, BalanceEvent::EndpointEjected { .. })));
    assert_eq!(fleet.requests("b"), 1);
    // Long past its ejection time, no client's request went to try it.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        send(&mut lb, 30).await;
    }
    assert_eq!(
        fleet.requests("b"),
        1,
        "a client's request probed the ejected endpoint"
    );

    // It recovers: two probes later it is back, and takes requests.
    fleet.request_fails.lock().unwrap().clear();
    fleet.probe_fails.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(fleet.saw(|e| matches!(e, BalanceEvent::EndpointReturned { .. })));
    let answers = send(&mut lb, 300).await;
    assert_eq!(answers.len(), 300);
    assert!(answers.iter().filter(|a| **a == "b").count() >= 90);
}

/// Discovery is applied by the probing task too: endpoints found before
/// the first request are probed before it, and the first requests skip
/// the one that fails.
#[tokio::test(start_paused = true)]
async fn endpoints_discovered_before_the_first_request_are_probed_before_it() {
    use futures::channel::mpsc;
    use tower::discover::Change;

    let fleet = Arc::new(Fleet::default());
    fleet.probe_fails.lock().unwrap().insert("b");
    let (changes, stream) = mpsc::unbounded();
    for name in ["a", "b"] {
        changes
            .unbounded_send(Ok::<_, std::convert::Infallible>(Change::Insert(
                name,
                endpoint(&fleet, name),
            )))
            .unwrap();
    }
    let mut lb = LoadBalance::discover(config(&fleet).no_outlier_detection(), stream)
        .unwrap()
        .health_check(check(&fleet).thresholds(1, 1))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let states: Vec<(&str, bool)> = lb.endpoints().iter().map(|e| (e.key, e.healthy)).collect();
    assert_eq!(states.len(), 2);
    assert!(
        states.contains(&("a", true)) && states.contains(&("b", false)),
        "{states:?}"
    );
    assert_eq!(send(&mut lb, 20).await, vec!["a"; 20]);
    assert_eq!(fleet.requests("b"), 0);
}

#[tokio::test(start_paused = true)]
async fn with_every_endpoint_unhealthy_the_balancer_uses_them_all() {
    let fleet = Arc::new(Fleet::default());
    let mut lb = LoadBalance::new(
        config(&fleet).no_outlier_detection(),
        ["a", "b"].map(|name| (name, endpoint(&fleet, name))),
    )
    .unwrap()
    .health_check(check(&fleet))
    .unwrap();
    fleet.probe_fails.lock().unwrap().extend(["a", "b"]);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert!(fleet.saw(
        |e| matches!(e, BalanceEvent::EndpointUnhealthy { endpoint, .. } if &**endpoint == "a")
    ));
    assert!(fleet.saw(
        |e| matches!(e, BalanceEvent::EndpointUnhealthy { endpoint, .. } if &**endpoint == "b")
    ));
    assert_eq!(send(&mut lb, 10).await.len(), 10);
}

#[tokio::test(start_paused = true)]
async fn the_probes_stop_with_the_balancer() {
    let fleet = Arc::new(Fleet::default());
    let lb = LoadBalance::new(
        config(&fleet),
        ["a"].map(|name| (name, endpoint(&fleet, name))),
    )
    .unwrap()
    .health_check(check(&fleet))
    .unwrap();
    let clone = lb.clone();
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let probed = fleet.probes("a");
    assert!((4..=6).contains(&probed), "{probed} probes in 5.5 s at 1 s");
    drop(lb);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        fleet.probes("a") > probed,
        "one clone left: probing goes on"
    );
    drop(clone);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let last = fleet.probes("a");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(fleet.probes("a"), last);
}

#[test]
fn bad_checks_are_refused_with_the_field_named() {
    let fleet = Arc::new(Fleet::default());
    let lb = || {
        LoadBalance::new(
            config(&fleet),
            ["a"].map(|name| (name, endpoint(&fleet, name))),
        )
        .unwrap()
    };
    // No runtime to probe on.
    let error = lb().health_check(check(&fleet)).unwrap_err();
    assert_eq!(error.field(), "health_check.runtime");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let error = lb()
        .health_check(check(&fleet).interval(Duration::ZERO))
        .unwrap_err();
    assert_eq!(error.field(), "health_check.interval");
    let error = lb()
        .health_check(check(&fleet).thresholds(0, 3))
        .unwrap_err();
    assert_eq!(error.field(), "health_check.healthy_threshold");
    let error = lb().health_check(check(&fleet).jitter(1.5)).unwrap_err();
    assert_eq!(error.field(), "health_check.jitter");
}

/// `HealthCheck::http_get` over loopback TCP: a real server whose
/// `/healthz` turns to 503, probed by hyper's client.
#[cfg(feature = "http")]
#[tokio::test]
async fn http_get_probes_a_real_server() {
    use axum::http::StatusCode;
    use axum::routing::get;
    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let healthy = Arc::new(AtomicBool::new(true));
    let served = Arc::new(AtomicUsize::new(0));
    let app = {
        let (healthy, served) = (healthy.clone(), served.clone());
        axum::Router::new().route(
            "/healthz",
            get(move || {
                served.fetch_add(1, Ordering::SeqCst);
                let ok = healthy.load(Ordering::SeqCst);
                async move {
                    if ok {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let events = Arc::new(Mutex::new(Vec::<BalanceEvent>::new()));
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let check = HealthCheck::http_get(client, "/healthz")
        .unwrap()
        .interval(Duration::from_millis(20))
        .thresholds(1, 1);
    let echo = service_fn(|()| async { Ok::<_, BoxError>("ok") });
    let recorded = events.clone();
    let lb = LoadBalance::new(
        BalanceConfig::default()
            .no_outlier_detection()
            .events(&support::record_balance(recorded)),
        [(addr, echo)],
    )
    .unwrap()
    .health_check(check)
    .unwrap();

    let wait_for = |unhealthy: bool| {
        let events = events.clone();
        async move {
            for _ in 0..250 {
                let seen = events.lock().unwrap().iter().any(|e| match e {
                    BalanceEvent::EndpointUnhealthy { .. } => unhealthy,
                    BalanceEvent::EndpointHealthy { .. } => !unhealthy,
                    _ => false,
                });
                if seen {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("no health change to unhealthy={unhealthy}");
        }
    };
    healthy.store(false, Ordering::SeqCst);
    wait_for(true).await;
    healthy.store(true, Ordering::SeqCst);
    wait_for(false).await;
    assert!(served.load(Ordering::SeqCst) >= 2);
    let error = HealthCheck::<std::net::SocketAddr>::http_get(
        Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>(),
        "healthz",
    )
    .unwrap_err();
    assert_eq!(error.field(), "health_check.path");
    assert!(
        error.to_string().contains("must be an absolute path"),
        "{error}"
    );
    drop(lb);
    server.abort();
}
