//! The layers in a server's own stack: an axum `Router` and a tonic
//! `Server` on 127.0.0.1, called by real clients. The layers answer by
//! themselves (503 with `Retry-After`, 504; `UNAVAILABLE`,
//! `DEADLINE_EXCEEDED`), and a breaker per route keeps a failing route from
//! closing the others. Counts and states only: no timing is asserted.
#![cfg(all(feature = "axum", feature = "grpc", feature = "stack"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use bulwark_examples::greeter;
use tower_bulwark::circuit_breaker::{
    CircuitBreakerConfig, CircuitBreakerLayer, CircuitState, OpenDuration,
};
use tower_bulwark::classify::HttpClassifier;
use tower_bulwark::key::ByRoute;
use tower_bulwark::server::Respond;
use tower_bulwark::timeout::TimeoutLayer;

const OPEN: Duration = Duration::from_secs(30);

async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[tokio::test]
async fn a_failing_route_opens_its_own_breaker_and_the_others_keep_answering() {
    let breakers = CircuitBreakerLayer::new(
        CircuitBreakerConfig::default()
            .service("api")
            .consecutive_failures(3)
            .open_duration(OpenDuration::fixed(OPEN)),
    )
    .unwrap()
    .classify(HttpClassifier::default())
    .respond(Respond::http())
    .per_key(ByRoute, 100)
    .unwrap();
    let app = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
        .route(
            "/slow",
            post(|body: String| async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                body
            }),
        )
        .layer(
            TimeoutLayer::new(Duration::from_millis(200))
                .unwrap()
                .respond(Respond::http()),
        )
        .layer(breakers.clone());
    let (url, server) = serve(app).await;
    let client = reqwest::Client::new();
    let status = |path: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.get(format!("{url}{path}")).send().await.unwrap() }
    };

    for _ in 0..3 {
        assert_eq!(status("/fail").await.status(), 500);
    }
    assert_eq!(breakers.state_of("/fail"), Some(CircuitState::Open));
    let rejected = status("/fail").await;
    assert_eq!(rejected.status(), 503);
    assert_eq!(
        rejected.headers()["retry-after"],
        OPEN.as_secs().to_string().as_str(),
        "the remaining open time, rounded up"
    );
    assert_eq!(rejected.text().await.unwrap(), "circuit open");

    for _ in 0..5 {
        let ok = status("/ok").await;
        assert_eq!(ok.status(), 200, "/ok has a breaker of its own");
    }
    assert_eq!(breakers.state_of("/ok"), Some(CircuitState::Closed));

    // A slow route is answered at its deadline; its body (not `Clone`) was
    // never copied.
    let slow = client
        .post(format!("{url}/slow"))
        .body("a request body")
        .send()
        .await
        .unwrap();
    assert_eq!(slow.status(), 504);
    assert_eq!(slow.text().await.unwrap(), "timed out");
    server.abort();
}

#[tokio::test]
async fn the_timeout_can_answer_408() {
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .layer(
            TimeoutLayer::new(Duration::from_millis(100))
                .unwrap()
                .respond(Respond::http().timeout_status(StatusCode::REQUEST_TIMEOUT)),
        );
    let (url, server) = serve(app).await;
    let response = reqwest::get(format!("{url}/slow")).await.unwrap();
    assert_eq!(response.status(), 408);
    server.abort();
}

/// One unary call of the greeter; the status it failed with, if it did.
async fn say_hello(url: &str) -> Result<String, tonic::Status> {
    use greeter::{HelloReply, HelloRequest, SAY_HELLO};
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect_lazy();
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::from_error(e.into()))?;
    let codec = tonic_prost::ProstCodec::<HelloRequest, HelloReply>::default();
    let request = tonic::Request::new(HelloRequest { name: "me".into() });
    let reply = client
        .unary(request, SAY_HELLO.parse().unwrap(), codec)
        .await?;
    Ok(reply.into_inner().message)
}

#[tokio::test]
async fn a_tonic_server_behind_the_layers_answers_unavailable_and_deadline_exceeded() {
    use tonic::Code;
    use tower::ServiceBuilder;
    use tower_bulwark::classify::GrpcClassifier;
    use tower_bulwark::grpc::GrpcOutcomeLayer;

    let greeter = greeter::Greeter::default();
    let breaker = CircuitBreakerLayer::new(
        CircuitBreakerConfig::default()
            .service("greeter-server")
            .consecutive_failures(2)
            .open_duration(OpenDuration::fixed(OPEN)),
    )
    .unwrap()
    .classify(GrpcClassifier::default())
    .respond(Respond::grpc());
    let handle = breaker.handle();
    let layers = ServiceBuilder::new()
        // Outermost, so the statuses the greeter sends in trailers count.
        .layer(GrpcOutcomeLayer::new())
        .layer(breaker)
        .layer(
            TimeoutLayer::new(Duration::from_millis(200))
                .unwrap()
                .respond(Respond::grpc()),
        )
        .into_inner();
    let server = greeter::serve_with(greeter.clone(), layers).await.unwrap();

    assert_eq!(say_hello(&server.url).await.unwrap(), "hello me");

    greeter.slow(true);
    let status = say_hello(&server.url).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(status.message(), "timed out");
    greeter.slow(false);

    greeter.fail(true);
    let status = say_hello(&server.url).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "greeter is restarting",
        "the greeter's own"
    );
    assert_eq!(
        handle.state(),
        CircuitState::Open,
        "the timeout and this failure"
    );
    let calls = greeter.calls();
    let status = say_hello(&server.url).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "circuit open", "the breaker's");
    assert!(status.metadata().get("grpc-retry-pushback-ms").is_some());
    assert_eq!(
        greeter.calls(),
        calls,
        "the open breaker did not call the greeter"
    );
}

/// A route served by a client stack (a gateway's upstream): its errors are
/// answered by `RespondLayer`, and no answer names an internal address.
#[tokio::test]
async fn a_routes_upstream_errors_are_answered_without_addresses() {
    use tower::{BoxError, Layer, service_fn};
    use tower_bulwark::balance::{BalanceConfig, LoadBalance};
    use tower_bulwark::server::RespondLayer;

    type Upstream = tower::util::BoxCloneSyncService<
        axum::extract::Request,
        axum::response::Response,
        BoxError,
    >;
    // No instance of the upstream is up: no endpoint available.
    let none: Vec<(&str, Upstream)> = Vec::new();
    let empty = LoadBalance::new(BalanceConfig::default(), none).unwrap();
    // An upstream whose connection fails.
    let refused = service_fn(|_req: axum::extract::Request| async {
        Err::<axum::response::Response, BoxError>("connect to 10.0.0.7:8080 refused".into())
    });
    let app = Router::new()
        .route_service("/users", RespondLayer::http().layer(empty))
        .route_service("/orders", RespondLayer::http().layer(refused));
    let (url, server) = serve(app).await;

    let users = reqwest::get(format!("{url}/users")).await.unwrap();
    assert_eq!(users.status(), 503);
    assert_eq!(users.text().await.unwrap(), "no endpoint available");
    let orders = reqwest::get(format!("{url}/orders")).await.unwrap();
    assert_eq!(orders.status(), 502);
    let body = orders.text().await.unwrap();
    assert_eq!(body, "Bad Gateway");
    assert!(!body.contains("10.0.0.7"));
    server.abort();
}
