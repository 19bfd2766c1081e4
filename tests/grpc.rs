//! A tonic client and server on 127.0.0.1, the stack between them: gRPC
//! statuses sent in trailers count for the breaker, outlier detection and
//! metrics, and the stack's own errors reach the caller as `tonic::Status`.
#![cfg(all(feature = "stack", feature = "grpc"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulwark_examples::greeter;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tonic::Code;
use tower::{BoxError, Layer, ServiceBuilder};
use tower_bulwark::balance::{BalanceConfig, BalanceEvent, OutlierDetection, Strategy};
use tower_bulwark::circuit_breaker::error::CircuitOpen;
use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitState, OpenDuration};
use tower_bulwark::event::{Event, Events};
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

use greeter::{Greeter, HelloReply, HelloRequest, SAY_HELLO};

/// One unary call; the status it failed with, if it did.
async fn say_hello<T>(client: &mut tonic::client::Grpc<T>, n: u32) -> Result<String, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::from_error(e.into()))?;
    let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
    let request = tonic::Request::new(HelloRequest {
        name: format!("call {n}"),
    });
    let reply = client
        .unary(request, SAY_HELLO.parse().unwrap(), codec)
        .await?;
    Ok(reply.into_inner().message)
}

fn caused_by_circuit_open(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<CircuitOpen>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The counters of one snapshot (a snapshot resets them), by name and
/// `outcome` label.
fn counters(snapshotter: &Snapshotter) -> Vec<(String, String, u64)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let outcome = key
                .labels()
                .find(|l| l.key() == "outcome")
                .map(|l| l.value().to_owned())?;
            match value {
                DebugValue::Counter(n) => Some((key.name().to_owned(), outcome, n)),
                _ => None,
            }
        })
        .collect()
}

fn counter(counters: &[(String, String, u64)], name: &str, outcome: &str) -> u64 {
    counters
        .iter()
        .find(|(n, o, _)| n == name && o == outcome)
        .map_or(0, |(_, _, v)| *v)
}

#[tokio::test]
async fn statuses_in_trailers_open_the_breaker_which_then_answers_unavailable() {
    let greeter = Greeter::default();
    let server = greeter::serve(greeter.clone()).await.unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || {
        ResilienceLayer::builder(
            ResilienceConfig::default()
                .service("greeter")
                .timeout(Duration::from_secs(5))
                .circuit_breaker(
                    CircuitBreakerConfig::default()
                        .consecutive_failures(3)
                        .open_duration(OpenDuration::fixed(Duration::from_secs(60))),
                ),
        )
        .grpc()
        .build()
        .unwrap()
    });
    // Beneath the stack: counts responses whose status came in their
    // headers (trailers-only), to show that these did not.
    let in_headers = Arc::new(AtomicU32::new(0));
    let seen = in_headers.clone();
    let channel = tonic::transport::Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect_lazy();
    let probed = ServiceBuilder::new()
        .map_response(move |response: http::Response<tonic::body::Body>| {
            if response.headers().contains_key("grpc-status") {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            response
        })
        .service(channel);
    let mut client = tonic::client::Grpc::new(layer.layer(probed));

    // Healthy first: a success.
    assert_eq!(say_hello(&mut client, 0).await.unwrap(), "hello call 0");

    greeter.fail(true);
    for n in 1..=3 {
        let status = say_hello(&mut client, n).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "greeter is restarting", "the server's");
        assert!(!caused_by_circuit_open(&status));
    }
    assert_eq!(
        in_headers.load(Ordering::SeqCst),
        0,
        "every status came in trailers"
    );
    let breaker = layer.circuit_breaker().unwrap();
    assert_eq!(breaker.state(), CircuitState::Open);

    for n in 4..=8 {
        let status = say_hello(&mut client, n).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "from the breaker");
        assert!(caused_by_circuit_open(&status), "{status:?}");
        assert!(status.metadata().get("grpc-retry-pushback-ms").is_some());
    }
    assert_eq!(greeter.calls(), 4, "no call reached the server once open");

    // The metrics saw what the breaker saw.
    let counters = counters(&snapshotter);
    assert_eq!(counter(&counters, "bulwark_requests_total", "success"), 1);
    assert_eq!(counter(&counters, "bulwark_requests_total", "failure"), 8);
    assert_eq!(
        counter(&counters, "bulwark_circuit_calls_total", "failure"),
        3
    );
    assert_eq!(
        counter(&counters, "bulwark_circuit_calls_total", "success"),
        1
    );
}

#[tokio::test]
async fn outlier_detection_ejects_an_endpoint_failing_in_trailers() {
    let (good, bad) = (Greeter::default(), Greeter::default());
    bad.fail(true);
    let good_server = greeter::serve(good.clone()).await.unwrap();
    let bad_server = greeter::serve(bad.clone()).await.unwrap();
    let events = Events::new();
    let ejected = Arc::new(Mutex::new(Vec::new()));
    let seen = ejected.clone();
    events.subscribe(move |event: &Event| {
        if let Event::Balance(BalanceEvent::EndpointEjected { endpoint, .. }) = event {
            seen.lock().unwrap().push(endpoint.to_string());
        }
    });
    let layer = ResilienceLayer::builder(
        ResilienceConfig::default()
            .service("greeter")
            .without_circuit_breaker()
            .balance(
                BalanceConfig::default()
                    .strategy(Strategy::RoundRobin)
                    .outlier_detection(
                        OutlierDetection::default()
                            .consecutive_failures(Some(2))
                            .ejection_time(Duration::from_secs(60), Duration::from_secs(60)),
                    ),
            ),
    )
    .grpc()
    .events(&events)
    .build()
    .unwrap();
    let channel = |url: &str| {
        tonic::transport::Endpoint::from_shared(url.to_owned())
            .unwrap()
            .connect_lazy()
    };
    let stack = layer
        .balance([
            ("good", channel(&good_server.url)),
            ("bad", channel(&bad_server.url)),
        ])
        .unwrap();
    let mut client = tonic::client::Grpc::new(stack);

    let mut failed = 0;
    for n in 0..20 {
        if say_hello(&mut client, n).await.is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 2, "two failures, then the endpoint is out");
    assert_eq!(bad.calls(), 2);
    assert_eq!(good.calls(), 18);
    assert_eq!(*ejected.lock().unwrap(), vec!["bad".to_string()]);
}

/// Each layer alone wraps a tonic `Channel` as it is, under `GrpcOutcome`,
/// and `tonic::client::Grpc` takes the result.
#[tokio::test]
async fn each_layer_alone_wraps_a_tonic_channel() {
    use tower_bulwark::balance::LoadBalance;
    use tower_bulwark::circuit_breaker::CircuitBreakerLayer;
    use tower_bulwark::classify::GrpcClassifier;
    use tower_bulwark::grpc::GrpcOutcomeLayer;
    use tower_bulwark::hedge::{HedgeConfig, HedgeLayer};
    use tower_bulwark::metrics::MetricsLayer;
    use tower_bulwark::retry::{RetryConfig, RetryLayer};
    use tower_bulwark::timeout::TimeoutLayer;

    type Request = http::Request<tonic::body::Body>;
    /// gRPC calls are POSTs: not copied, so never sent twice.
    fn never(_: &Request) -> Option<Request> {
        None
    }

    let greeter = Greeter::default();
    let server = greeter::serve(greeter.clone()).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect_lazy();
    let grpc = GrpcClassifier::default();
    let outer = || ServiceBuilder::new().layer(GrpcOutcomeLayer::new());

    let mut timeout = tonic::client::Grpc::new(
        outer()
            .layer(TimeoutLayer::new(Duration::from_secs(5)).unwrap())
            .service(channel.clone()),
    );
    let mut breaker = tonic::client::Grpc::new(
        outer()
            .layer(
                CircuitBreakerLayer::new(CircuitBreakerConfig::default())
                    .unwrap()
                    .classify(grpc),
            )
            .service(channel.clone()),
    );
    let mut metrics = tonic::client::Grpc::new(
        outer()
            .layer(MetricsLayer::new("greeter").classify(grpc))
            .service(channel.clone()),
    );
    let mut retry = tonic::client::Grpc::new(
        outer()
            .layer(
                RetryLayer::new(RetryConfig::default())
                    .unwrap()
                    .classify(grpc)
                    .clone_requests_with(never),
            )
            .service(channel.clone()),
    );
    let mut hedge = tonic::client::Grpc::new(
        outer()
            .layer(
                HedgeLayer::new(HedgeConfig::default())
                    .unwrap()
                    .classify(grpc)
                    .clone_requests_with(never),
            )
            .service(channel.clone()),
    );
    let balancer = LoadBalance::new(BalanceConfig::default(), [("one", channel)])
        .unwrap()
        .classify(grpc);
    let mut balance = tonic::client::Grpc::new(outer().service(balancer));

    for n in 0..2 {
        assert_eq!(
            say_hello(&mut timeout, n).await.unwrap(),
            format!("hello call {n}")
        );
        assert_eq!(
            say_hello(&mut breaker, n).await.unwrap(),
            format!("hello call {n}")
        );
        assert_eq!(
            say_hello(&mut metrics, n).await.unwrap(),
            format!("hello call {n}")
        );
        assert_eq!(
            say_hello(&mut retry, n).await.unwrap(),
            format!("hello call {n}")
        );
        assert_eq!(
            say_hello(&mut hedge, n).await.unwrap(),
            format!("hello call {n}")
        );
        assert_eq!(
            say_hello(&mut balance, n).await.unwrap(),
            format!("hello call {n}")
        );
    }
    assert_eq!(greeter.calls(), 12);
}
