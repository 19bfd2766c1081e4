//! LoadBalance: pick distributions, readiness, outlier ejection on the
//! paused clock, discovery with requests in flight, errors and metrics.
#![cfg(feature = "balance")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

#[path = "support/events.rs"]
mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::mpsc;
use tower::discover::Change;
use tower::{BoxError, Service, ServiceExt, service_fn};
use tower_bulwark::balance::{
    BalanceConfig, BalanceEvent, LoadBalance, LoadBalanceLayer, OutlierDetection, Strategy,
    error::NoEndpointAvailable,
};
use tower_test::mock;

const PICKS: usize = 100_000;

/// An endpoint that answers with its own name.
fn named(
    name: &'static str,
) -> impl Service<(), Response = &'static str, Error = Infallible, Future: Send> + Clone + Send + Sync
{
    service_fn(move |()| async move { Ok::<_, Infallible>(name) })
}

fn config(strategy: Strategy) -> BalanceConfig {
    BalanceConfig::default()
        .service("test")
        .strategy(strategy)
        .seed(7)
}

/// The endpoint of each of `n` calls, in order.
async fn picks<S>(lb: &mut S, n: usize) -> Vec<&'static str>
where
    S: Service<(), Response = &'static str, Error = BoxError>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(lb.ready().await.unwrap().call(()).await.unwrap());
    }
    out
}

fn counts(picks: &[&'static str]) -> HashMap<&'static str, usize> {
    let mut counts = HashMap::new();
    for p in picks {
        *counts.entry(*p).or_default() += 1;
    }
    counts
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

#[tokio::test]
async fn round_robin_is_exactly_fair() {
    let mut lb =
        LoadBalance::new(config(Strategy::RoundRobin), NAMES.map(|n| (n, named(n)))).unwrap();
    let picks = picks(&mut lb, PICKS).await;
    assert_eq!(&picks[..8], &["a", "b", "c", "d", "a", "b", "c", "d"]);
    for name in NAMES {
        assert_eq!(counts(&picks)[name], PICKS / 4, "{name}");
    }
}

#[tokio::test]
async fn smooth_weighted_round_robin_follows_the_nginx_cycle_exactly() {
    let weights = [("a", 5), ("b", 1), ("c", 1)];
    let mut lb = LoadBalance::weighted(
        config(Strategy::WeightedRoundRobin),
        weights.map(|(n, w)| (n, named(n), w)),
    )
    .unwrap();
    let picks = picks(&mut lb, PICKS).await;
    // nginx: a a b a c a a — interleaved, never a burst of five.
    let cycle = ["a", "a", "b", "a", "c", "a", "a"];
    for (i, pick) in picks.iter().enumerate() {
        assert_eq!(*pick, cycle[i % 7], "pick {i}");
    }
    let full_cycles = PICKS / 7;
    let counts = counts(&picks[..full_cycles * 7]);
    assert_eq!(
        (counts["a"], counts["b"], counts["c"]),
        (5 * full_cycles, full_cycles, full_cycles)
    );
}

/// Shares within one percentage point of `expected` (fractions summing to 1).
fn assert_shares(picks: &[&'static str], expected: &[(&'static str, f64)]) {
    let counts = counts(picks);
    for (name, share) in expected {
        let got = counts.get(name).copied().unwrap_or(0) as f64 / picks.len() as f64;
        assert!((got - share).abs() <= 0.01, "{name}: {got:.4} vs {share}");
    }
}

#[tokio::test]
async fn random_is_uniform_within_one_point() {
    let mut lb = LoadBalance::new(config(Strategy::Random), NAMES.map(|n| (n, named(n)))).unwrap();
    let picks = picks(&mut lb, PICKS).await;
    assert_shares(&picks, &NAMES.map(|n| (n, 0.25)));
}

#[tokio::test]
async fn weighted_random_follows_the_weights_within_one_point() {
    let mut lb = LoadBalance::weighted(
        config(Strategy::WeightedRandom),
        [
            ("a", named("a"), 1),
            ("b", named("b"), 2),
            ("c", named("c"), 3),
            ("d", named("d"), 4),
        ],
    )
    .unwrap();
    let picks = picks(&mut lb, PICKS).await;
    assert_shares(&picks, &[("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4)]);
}

/// An endpoint that is never ready.
#[derive(Clone)]
struct NeverReady;

impl Service<()> for NeverReady {
    type Response = &'static str;
    type Error = Infallible;
    type Future = std::future::Ready<Result<&'static str, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Pending
    }

    fn call(&mut self, _: ()) -> Self::Future {
        std::future::ready(Ok("never ready"))
    }
}

/// `named` and `NeverReady` as one type.
#[derive(Clone)]
enum Either<A, B> {
    A(A),
    B(B),
}

impl<A, B> Service<()> for Either<A, B>
where
    A: Service<(), Response = &'static str, Error = Infallible>,
    B: Service<(), Response = &'static str, Error = Infallible>,
{
    type Response = &'static str;
    type Error = Infallible;
    type Future = futures::future::Either<A::Future, B::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self {
            Either::A(a) => a.poll_ready(cx),
            Either::B(b) => b.poll_ready(cx),
        }
    }

    fn call(&mut self, req: ()) -> Self::Future {
        match self {
            Either::A(a) => futures::future::Either::Left(a.call(req)),
            Either::B(b) => futures::future::Either::Right(b.call(req)),
        }
    }
}

#[tokio::test]
async fn p2c_never_picks_a_not_ready_endpoint() {
    for strategy in [
        Strategy::P2cLeastPending,
        Strategy::peak_ewma(),
        Strategy::RoundRobin,
        Strategy::Random,
    ] {
        let endpoints = [
            ("a", Either::A(named("a"))),
            ("stuck", Either::B(NeverReady)),
            ("c", Either::A(named("c"))),
            ("d", Either::A(named("d"))),
        ];
        let mut lb = LoadBalance::new(config(strategy), endpoints).unwrap();
        let picks = picks(&mut lb, 20_000).await;
        let counts = counts(&picks);
        assert!(!counts.contains_key("never ready"), "{}", strategy);
        assert_eq!(counts.len(), 3, "{}: {counts:?}", strategy);
        let state = lb.endpoints();
        assert_eq!(state.iter().map(|e| e.pending).sum::<u64>(), 0);
    }
}

#[tokio::test]
async fn p2c_least_pending_prefers_the_less_loaded_endpoint() {
    let (a, mut ha) = mock::pair::<(), &'static str>();
    let (b, mut hb) = mock::pair::<(), &'static str>();
    let mut lb = LoadBalance::new(config(Strategy::P2cLeastPending), [("a", a), ("b", b)]).unwrap();
    // Two endpoints: P2C compares both every time. Load `a` with one call.
    let first = lb.ready().await.unwrap().call(());
    let to_a = matches!(ha.poll_request(), Poll::Ready(Some(_)));
    let (busy, idle) = if to_a {
        (&mut ha, &mut hb)
    } else {
        (&mut hb, &mut ha)
    };
    if !to_a {
        assert!(matches!(busy.poll_request(), Poll::Ready(Some(_))));
    }
    for _ in 0..10 {
        let call = lb.ready().await.unwrap().call(());
        let (_, send) = idle.next_request().await.unwrap();
        send.send_response("idle");
        assert_eq!(call.await.unwrap(), "idle");
    }
    drop(first);
}

/// `call` without `poll_ready` breaks tower's contract, but the request
/// is not lost: the balancer picks at once among the ready endpoints, or
/// answers that none is.
#[tokio::test]
async fn a_call_without_poll_ready_still_reaches_a_ready_endpoint() {
    for strategy in [
        Strategy::P2cLeastPending,
        Strategy::peak_ewma(),
        Strategy::RoundRobin,
    ] {
        let endpoints = [
            ("stuck", Either::B(NeverReady)),
            ("a", Either::A(named("a"))),
        ];
        let mut lb = LoadBalance::new(config(strategy), endpoints).unwrap();
        for _ in 0..10 {
            assert_eq!(lb.call(()).await.unwrap(), "a", "{strategy}");
        }
        let mut lb = LoadBalance::new(config(strategy), [("stuck", NeverReady)]).unwrap();
        let err = lb.call(()).await.unwrap_err();
        assert!(err.is::<NoEndpointAvailable>(), "{strategy}: {err}");
    }
}

#[tokio::test]
async fn an_empty_set_fails_at_once() {
    let mut lb = LoadBalance::new(
        config(Strategy::peak_ewma()),
        Vec::<(&str, mock::Mock<(), ()>)>::new(),
    )
    .unwrap();
    let err = lb.ready().await.unwrap().call(()).await.unwrap_err();
    let err = err.downcast_ref::<NoEndpointAvailable>().unwrap();
    assert_eq!(err.endpoints(), 0);
    assert_eq!(
        err.to_string(),
        "no endpoint available: the endpoint set is empty"
    );

    // So does a discovery stream that has not reported anything yet.
    let (_tx, rx) = mpsc::unbounded::<Result<Change<&str, mock::Mock<(), ()>>, Infallible>>();
    let mut lb = LoadBalanceLayer::new(config(Strategy::RoundRobin))
        .unwrap()
        .layer(rx);
    let err = lb.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(err.is::<NoEndpointAvailable>());
}

use tower::Layer;

/// Three endpoints; `bad` fails while `failing` is set.
fn with_bad_endpoint(
    detection: OutlierDetection,
    events: Arc<Mutex<Vec<BalanceEvent>>>,
) -> (
    LoadBalance<
        &'static str,
        impl Service<(), Response = &'static str, Error = BoxError, Future: Send> + Clone + Send + Sync,
    >,
    Arc<AtomicBool>,
) {
    let failing = Arc::new(AtomicBool::new(true));
    let endpoint = |name: &'static str| {
        let failing = failing.clone();
        service_fn(move |()| {
            let fail = name == "bad" && failing.load(Ordering::SeqCst);
            async move {
                if fail {
                    Err::<&'static str, BoxError>("down".into())
                } else {
                    Ok(name)
                }
            }
        })
    };
    let lb = LoadBalance::new(
        config(Strategy::RoundRobin)
            .outlier_detection(detection)
            .endpoint_metrics(true)
            .events(&support::record_balance(events)),
        [
            ("a", endpoint("a")),
            ("bad", endpoint("bad")),
            ("c", endpoint("c")),
        ],
    )
    .unwrap();
    (lb, failing)
}

async fn call_n<S>(lb: &mut S, n: usize) -> Vec<Result<&'static str, String>>
where
    S: Service<(), Response = &'static str, Error = BoxError>,
{
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            lb.ready()
                .await
                .unwrap()
                .call(())
                .await
                .map_err(|e| e.to_string()),
        );
    }
    out
}

fn ejected(lb: &LoadBalance<&'static str, impl Clone>) -> Vec<&'static str> {
    lb.endpoints()
        .into_iter()
        .filter(|e| e.ejected)
        .map(|e| e.key)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn without_a_rule_that_applies_nothing_is_ejected() {
    // Neither failures in a row nor a failure rate: outlier detection is on
    // but has no rule, so `bad` failing all its 30 calls stays in (with the
    // 20-call window of old, 20 failures of 20 ejected it).
    let detection = OutlierDetection::default().consecutive_failures(None);
    let (mut lb, _failing) = with_bad_endpoint(detection, Arc::default());
    let results = call_n(&mut lb, 90).await;
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 30);
    assert!(ejected(&lb).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_is_ejected_returns_and_is_ejected_longer_the_second_time() {
    let base = Duration::from_secs(10);
    let events = Arc::new(Mutex::new(Vec::new()));
    let detection = OutlierDetection::default()
        .consecutive_failures(Some(3))
        .ejection_time(base, Duration::from_secs(100))
        .jitter(0.0);
    let (mut lb, failing) = with_bad_endpoint(detection, events.clone());

    // Round robin: `bad` gets every third call and fails it.
    let results = call_n(&mut lb, 9).await;
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 3);
    assert_eq!(ejected(&lb), vec!["bad"]);
    // Ejected: the others take everything.
    assert!(call_n(&mut lb, 30).await.iter().all(|r| r.is_ok()));

    // After its ejection time it returns on probation; one failure ejects
    // it again at once, now for twice the base time.
    tokio::time::advance(base).await;
    let results = call_n(&mut lb, 3).await;
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        1,
        "one probe"
    );
    assert_eq!(ejected(&lb), vec!["bad"]);
    tokio::time::advance(base * 2 - Duration::from_millis(1)).await;
    assert!(
        call_n(&mut lb, 30).await.iter().all(|r| r.is_ok()),
        "still ejected"
    );

    // It recovers: after its time, a successful probe brings it back.
    failing.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_millis(1)).await;
    let picks = call_n(&mut lb, 30).await;
    assert_eq!(
        picks.iter().filter(|r| r.as_deref() == Ok("bad")).count(),
        10
    );
    assert!(ejected(&lb).is_empty());

    let service: Arc<str> = Arc::from("test");
    let endpoint: Arc<str> = Arc::from("bad");
    let lifecycle: Vec<BalanceEvent> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| !matches!(e, BalanceEvent::EndpointAdded { .. }))
        .cloned()
        .collect();
    let ejected_event = BalanceEvent::EndpointEjected {
        service: service.clone(),
        endpoint: endpoint.clone(),
    };
    let returned_event = BalanceEvent::EndpointReturned { service, endpoint };
    assert_eq!(
        lifecycle,
        vec![
            ejected_event.clone(),
            returned_event.clone(),
            ejected_event,
            returned_event
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn no_more_than_the_max_share_is_ejected_and_panic_uses_everyone() {
    let all_failing = |name: &'static str| {
        service_fn(move |()| async move { Err::<&'static str, BoxError>(name.into()) })
    };
    let detection = OutlierDetection::default()
        .consecutive_failures(Some(1))
        .max_ejection_percent(50.0)
        .panic_threshold(0.0);
    let mut lb = LoadBalance::new(
        config(Strategy::RoundRobin).outlier_detection(detection),
        NAMES.map(|n| (n, all_failing(n))),
    )
    .unwrap();
    let results = call_n(&mut lb, 40).await;
    assert_eq!(ejected(&lb).len(), 2, "half of four");
    let tried: HashMap<_, _> = counts(
        &results
            .iter()
            .map(|r| match r.as_ref().unwrap_err().as_str() {
                "a" => "a",
                "b" => "b",
                "c" => "c",
                _ => "d",
            })
            .collect::<Vec<_>>(),
    );
    assert_eq!(tried.len(), 4);

    // With a panic threshold of 75 %, two healthy endpoints of four are too
    // few: ejections are ignored and every endpoint takes requests.
    let detection = detection.panic_threshold(75.0);
    let mut lb = LoadBalance::new(
        config(Strategy::RoundRobin).outlier_detection(detection),
        NAMES.map(|n| (n, all_failing(n))),
    )
    .unwrap();
    call_n(&mut lb, 40).await;
    assert_eq!(ejected(&lb).len(), 2);
    let after: Vec<String> = call_n(&mut lb, 8)
        .await
        .into_iter()
        .map(|r| r.unwrap_err())
        .collect();
    let mut seen: Vec<&str> = after.iter().map(String::as_str).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, NAMES.to_vec(), "panic mode balances over all");
}

#[tokio::test(start_paused = true)]
async fn a_clone_dropped_while_it_holds_a_probe_gives_the_probe_back() {
    // `bad` is ejected; when its time is up, the next pick that reaches it
    // reserves its one probe. Clones that reserve and are dropped unused
    // (a caller that gave up after `ready`) must give the probe back, or
    // `bad` would wait on probation for a probe that never comes.
    let detection = OutlierDetection::default().consecutive_failures(Some(1));
    let (mut lb, failing) = with_bad_endpoint(detection, Arc::default());
    call_n(&mut lb, 3).await;
    assert_eq!(ejected(&lb), ["bad"]);
    failing.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(31)).await;
    // Round robin: one of three reservations in turn falls on `bad`.
    for _ in 0..3 {
        let mut clone = lb.clone();
        futures::future::poll_fn(|cx| clone.poll_ready(cx))
            .await
            .unwrap();
    }
    let results = call_n(&mut lb, 6).await;
    assert!(results.contains(&Ok("bad")), "{results:?}");
    assert!(ejected(&lb).is_empty());
}

#[tokio::test]
async fn pending_counts_calls_not_reservations_whatever_the_strategy() {
    let (a, mut ha) = mock::pair::<(), &'static str>();
    let lb = LoadBalance::new(config(Strategy::RoundRobin), [("a", a)]).unwrap();
    let mut one = lb.clone();
    futures::future::poll_fn(|cx| one.poll_ready(cx))
        .await
        .unwrap();
    assert_eq!(lb.endpoints()[0].pending, 0, "reserved, not called yet");
    let call = one.call(());
    let (_, send) = ha.next_request().await.unwrap();
    assert_eq!(lb.endpoints()[0].pending, 1, "called, not answered");
    send.send_response("ok");
    assert_eq!(call.await.unwrap(), "ok");
    assert_eq!(lb.endpoints()[0].pending, 0);
}

#[tokio::test(start_paused = true)]
async fn the_last_endpoint_is_never_ejected() {
    let failing = service_fn(|()| async { Err::<&'static str, BoxError>("down".into()) });
    let mut lb = LoadBalance::new(
        config(Strategy::RoundRobin)
            .outlier_detection(OutlierDetection::default().consecutive_failures(Some(1))),
        [("only", failing)],
    )
    .unwrap();
    let results = call_n(&mut lb, 10).await;
    assert!(
        results.iter().all(|r| matches!(r, Err(e) if e == "down")),
        "{results:?}"
    );
    assert!(ejected(&lb).is_empty());
}

#[tokio::test(start_paused = true)]
async fn discovery_adds_and_removes_endpoints_while_requests_are_in_flight() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let (tx, rx) =
        mpsc::unbounded::<Result<Change<&'static str, mock::Mock<u32, u32>>, Infallible>>();
    let layer =
        LoadBalanceLayer::new(config(Strategy::RoundRobin).events(&support::record_balance(seen)))
            .unwrap();
    let mut lb = layer.layer(rx);

    let (a, mut ha) = mock::pair::<u32, u32>();
    tx.unbounded_send(Ok(Change::Insert("a", a))).unwrap();
    let first = lb.ready().await.unwrap().call(1);
    let (req, send_a) = ha.next_request().await.unwrap();
    assert_eq!(req, 1);

    // `b` joins: it takes the very next request.
    let (b, mut hb) = mock::pair::<u32, u32>();
    tx.unbounded_send(Ok(Change::Insert("b", b))).unwrap();
    let second = lb.ready().await.unwrap().call(2);
    let (req, send_b) = hb.next_request().await.unwrap();
    assert_eq!(req, 2);

    // `a` leaves with a request in flight: no new requests go to it, and
    // the one in flight still completes.
    tx.unbounded_send(Ok(Change::Remove("a"))).unwrap();
    let mut later = Vec::new();
    for i in 3..8 {
        later.push(lb.ready().await.unwrap().call(i));
        let (req, send) = hb.next_request().await.unwrap();
        assert_eq!(req, i);
        send.send_response(req * 10);
    }
    assert!(matches!(
        ha.poll_request(),
        Poll::Ready(None) | Poll::Pending
    ));
    send_a.send_response(10);
    send_b.send_response(20);
    assert_eq!(first.await.unwrap(), 10);
    assert_eq!(second.await.unwrap(), 20);
    for (i, call) in later.into_iter().enumerate() {
        assert_eq!(call.await.unwrap(), (i as u32 + 3) * 10);
    }
    assert_eq!(
        lb.endpoints().iter().map(|e| e.key).collect::<Vec<_>>(),
        vec!["b"]
    );
    assert!(lb.endpoints().iter().all(|e| e.pending == 0));
    let names: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            BalanceEvent::EndpointAdded { endpoint, .. } => format!("+{endpoint}"),
            BalanceEvent::EndpointRemoved { endpoint, .. } => format!("-{endpoint}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names, vec!["+a", "+b", "-a"]);
}

#[tokio::test(start_paused = true)]
async fn a_reservation_on_a_removed_endpoint_is_dropped_not_moved_to_another() {
    // tower#856: a balancer that reserved an endpoint by index could, after
    // a removal shifted the indices, send the request to another endpoint
    // than the one it checked. Here the reservation is a place in the
    // clone's own snapshot, which it keeps while it holds the reservation;
    // when that endpoint leaves, the next readiness check picks again.
    let (tx, rx) =
        mpsc::unbounded::<Result<Change<&'static str, mock::Mock<u32, u32>>, Infallible>>();
    let mut lb = LoadBalanceLayer::new(config(Strategy::RoundRobin))
        .unwrap()
        .layer(rx);
    let (a, mut ha) = mock::pair::<u32, u32>();
    let (b, mut hb) = mock::pair::<u32, u32>();
    tx.unbounded_send(Ok(Change::Insert("a", a))).unwrap();
    tx.unbounded_send(Ok(Change::Insert("b", b))).unwrap();
    // Round robin: the first reservation is `a`.
    futures::future::poll_fn(|cx| lb.poll_ready(cx))
        .await
        .unwrap();
    tx.unbounded_send(Ok(Change::Remove("a"))).unwrap();
    futures::future::poll_fn(|cx| lb.poll_ready(cx))
        .await
        .unwrap();
    let call = lb.call(7);
    let (req, send) = tokio::time::timeout(Duration::from_secs(1), hb.next_request())
        .await
        .expect("the request went to `b`")
        .unwrap();
    assert_eq!(req, 7);
    send.send_response(70);
    assert_eq!(call.await.unwrap(), 70);
    assert!(
        matches!(ha.poll_request(), Poll::Ready(None) | Poll::Pending),
        "nothing reached the removed endpoint"
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_set_waits_and_wakes_when_an_endpoint_is_ready() {
    let (a, mut ha) = mock::pair::<(), &'static str>();
    ha.allow(0);
    let lb = LoadBalance::new(config(Strategy::peak_ewma()), [("a", a)]).unwrap();
    let mut task = tokio_test::task::spawn(lb.ready_oneshot());
    assert!(task.poll().is_pending());
    ha.allow(1);
    assert!(task.is_woken());
    let mut lb = match task.poll() {
        Poll::Ready(Ok(lb)) => lb,
        _ => panic!("ready after the endpoint is"),
    };
    let call = lb.call(());
    ha.next_request().await.unwrap().1.send_response("ok");
    assert_eq!(call.await.unwrap(), "ok");
}

#[tokio::test]
async fn clones_share_the_set_and_its_load() {
    let (a, mut ha) = mock::pair::<(), &'static str>();
    let lb = LoadBalance::new(config(Strategy::P2cLeastPending), [("a", a)]).unwrap();
    let mut one = lb.clone();
    let mut two = lb.clone();
    let call = one.ready().await.unwrap().call(());
    let _request = ha.next_request().await.unwrap();
    assert_eq!(two.endpoints()[0].pending, 1);
    drop(call);
    assert_eq!(
        lb.endpoints()[0].pending,
        0,
        "a dropped call leaves the pending count"
    );
    let _ = two.ready().await.unwrap();
}

#[test]
fn bad_configuration_is_a_typed_error_naming_the_field() {
    let d = Duration::from_secs(1);
    let cases: Vec<(BalanceConfig, &str)> = vec![
        (
            BalanceConfig::default().strategy(Strategy::P2cPeakEwma {
                default_rtt: d,
                decay: Duration::ZERO,
            }),
            "strategy.decay",
        ),
        (
            BalanceConfig::default().strategy(Strategy::P2cPeakEwma {
                default_rtt: Duration::ZERO,
                decay: d,
            }),
            "strategy.default_rtt",
        ),
        (
            BalanceConfig::default()
                .outlier_detection(OutlierDetection::default().max_ejection_percent(101.0)),
            "outlier_detection.max_ejection_percent",
        ),
        (
            BalanceConfig::default()
                .outlier_detection(OutlierDetection::default().max_ejection_percent(-1.0)),
            "outlier_detection.max_ejection_percent",
        ),
        (
            BalanceConfig::default()
                .outlier_detection(OutlierDetection::default().panic_threshold(f64::NAN)),
            "outlier_detection.panic_threshold",
        ),
        (
            BalanceConfig::default()
                .outlier_detection(OutlierDetection::default().consecutive_failures(Some(0))),
            "outlier_detection.consecutive_failures",
        ),
        (
            BalanceConfig::default()
                .outlier_detection(OutlierDetection::default().failure_rate(1.5, 10, 5)),
            "outlier_detection.failure_rate",
        ),
        (
            BalanceConfig::default()
                .outlier_detection(OutlierDetection::default().failure_rate(0.5, 10, 11)),
            "outlier_detection.minimum_calls",
        ),
        (
            BalanceConfig::default()
                .outlier_detection(OutlierDetection::default().ejection_time(Duration::ZERO, d)),
            "outlier_detection.base_ejection_time",
        ),
        (
            BalanceConfig::default()
                .outlier_detection(OutlierDetection::default().ejection_time(d * 2, d)),
            "outlier_detection.max_ejection_time",
        ),
        (
            BalanceConfig::default().outlier_detection(OutlierDetection::default().jitter(2.0)),
            "outlier_detection.jitter",
        ),
    ];
    for (config, field) in cases {
        let err = LoadBalanceLayer::new(config).unwrap_err();
        assert_eq!((err.layer(), err.field()), ("load balance", field), "{err}");
    }
    let err = LoadBalance::weighted(BalanceConfig::default(), [("a", named("a"), 0)]).unwrap_err();
    assert_eq!(err.field(), "endpoints.weight");
    assert_eq!(
        err.to_string(),
        "invalid load balance config: endpoints.weight must be greater than zero"
    );
}

#[cfg(feature = "metrics")]
#[tokio::test(start_paused = true)]
async fn metrics_count_requests_per_endpoint_ejections_and_endpoint_states() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Requests too are counted under it: an endpoint's counter is looked
    // up per request.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (mut lb, _failing) = with_bad_endpoint(
        OutlierDetection::default().consecutive_failures(Some(2)),
        Arc::default(),
    );
    call_n(&mut lb, 12).await;

    let mut values: HashMap<String, DebugValue> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        values.insert(format!("{}{{{}}}", key.name(), labels.join(",")), value);
    }
    let get = |k: &str| values.remove(k).unwrap_or_else(|| panic!("{k} missing"));
    let mut get = get;
    assert_eq!(
        get("bulwark_balance_requests_total{endpoint=a,service=test}"),
        DebugValue::Counter(5)
    );
    assert_eq!(
        get("bulwark_balance_requests_total{endpoint=bad,service=test}"),
        DebugValue::Counter(2)
    );
    assert_eq!(
        get("bulwark_balance_requests_total{endpoint=c,service=test}"),
        DebugValue::Counter(5)
    );
    assert_eq!(
        get("bulwark_balance_ejections_total{service=test}"),
        DebugValue::Counter(1)
    );
    assert_eq!(
        get("bulwark_balance_endpoints{service=test,state=ejected}"),
        DebugValue::Gauge(1.0.into())
    );
    assert_eq!(
        get("bulwark_balance_endpoints{service=test,state=ready}"),
        DebugValue::Gauge(2.0.into())
    );
    assert_eq!(
        get("bulwark_balance_endpoints{service=test,state=pending}"),
        DebugValue::Gauge(0.0.into())
    );
}

/// Discovery churn does not grow the metrics: by default no series is
/// labelled with an endpoint, as the `metrics` facade could never remove
/// one; 1 000 endpoints replaced leave the same series as none.
#[cfg(feature = "metrics")]
#[tokio::test]
async fn endpoint_churn_leaves_the_number_of_series_unchanged() {
    use futures::FutureExt;
    use metrics_util::debugging::DebuggingRecorder;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (changes, stream) = mpsc::unbounded();
    let mut lb = metrics::with_local_recorder(&recorder, || {
        LoadBalance::discover(config(Strategy::RoundRobin), stream).unwrap()
    });
    let echo = service_fn(|()| async { Ok::<_, Infallible>("ok") });
    let series = || {
        let snapshot = snapshotter.snapshot().into_vec();
        assert!(
            snapshot
                .iter()
                .all(|(key, ..)| key.key().labels().all(|l| l.key() != "endpoint")),
            "a series labelled with an endpoint"
        );
        snapshot.len()
    };
    // The changes are applied, and the endpoints made, in `poll_ready`.
    let mut call = async || {
        metrics::with_local_recorder(&recorder, || lb.ready().now_or_never())
            .expect("an endpoint is ready")
            .unwrap()
            .call(())
            .await
            .unwrap()
    };
    changes
        .unbounded_send(Ok::<_, Infallible>(Change::Insert(0, echo)))
        .unwrap();
    call().await;
    let before = series();
    for key in 1..=1_000 {
        changes.unbounded_send(Ok(Change::Remove(key - 1))).unwrap();
        changes
            .unbounded_send(Ok(Change::Insert(key, echo)))
            .unwrap();
        call().await;
    }
    assert_eq!(series(), before);
    assert_eq!(lb.endpoints().len(), 1);
}

/// Peak EWMA learns from calls dropped at the caller's deadline: an
/// endpoint that turned slower than the deadline is seen to be slow and
/// gets few calls, instead of keeping the share its old speed earned.
#[tokio::test(start_paused = true)]
async fn calls_dropped_at_a_deadline_teach_peak_ewma_the_endpoint_is_slow() {
    let slow = Arc::new(AtomicBool::new(false));
    let endpoint = |name: &'static str| {
        let slow = slow.clone();
        service_fn(move |()| {
            let delay = if name == "turns-slow" && slow.load(Ordering::SeqCst) {
                10_000
            } else {
                1
            };
            async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                Ok::<_, Infallible>(name)
            }
        })
    };
    let lb = LoadBalance::new(
        config(Strategy::peak_ewma()).no_outlier_detection(),
        [
            ("fast", endpoint("fast")),
            ("turns-slow", endpoint("turns-slow")),
            ("also-fast", endpoint("also-fast")),
        ],
    )
    .unwrap();
    let mut sent = HashMap::<&str, usize>::new();
    let mut timeouts = 0;
    for round in 0..400 {
        if round == 100 {
            slow.store(true, Ordering::SeqCst);
            sent.clear();
        }
        let mut lb = lb.clone();
        let call = lb.ready().await.unwrap().call(());
        match tokio::time::timeout(Duration::from_millis(50), call).await {
            Ok(answer) => *sent.entry(answer.unwrap()).or_default() += 1,
            Err(_) => timeouts += 1,
        }
    }
    // Of the 300 calls after it turned slow, the slow endpoint got the
    // first one and the rare probes as its estimate decays: without the
    // lesson it would take about a third (100 timeouts).
    assert!(timeouts <= 10, "{timeouts} timeouts; answered: {sent:?}");
    assert_eq!(sent.values().sum::<usize>() + timeouts, 300);
}

/// A balancer (peak EWMA, seeded with `seed`) over two endpoints that
/// answer at once on the paused clock: every answer comes at the same
/// instant as the last, so it times one call in eight. An untried
/// endpoint's prior is as fast, so that both are tried while the clock
/// stands still. Setting the flag makes `name` fail (`fails`) or take
/// 50 ms.
fn busy_balancer(
    name: &'static str,
    fails: bool,
    seed: u64,
) -> (
    Arc<AtomicBool>,
    LoadBalance<
        &'static str,
        impl Service<(), Response = &'static str, Error = BoxError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static,
    >,
) {
    let turned = Arc::new(AtomicBool::new(false));
    let endpoints = ["fast", name].map(|key| {
        let turned = turned.clone();
        let svc = service_fn(move |()| {
            let turned = key == name && turned.load(Ordering::SeqCst);
            async move {
                if turned && fails {
                    return Err::<&str, BoxError>("refused".into());
                }
                if turned {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(key)
            }
        });
        (key, svc)
    });
    let instant_prior = Strategy::P2cPeakEwma {
        default_rtt: Duration::from_nanos(1),
        decay: Duration::from_millis(200),
    };
    let config = config(instant_prior).seed(seed).no_outlier_detection();
    (turned, LoadBalance::new(config, endpoints).unwrap())
}

/// A busy endpoint's calls are timed one in eight, but its failures all
/// teach peak EWMA: the first one makes it look slow.
#[tokio::test(start_paused = true)]
async fn peak_ewma_learns_every_failure_of_a_busy_endpoint() {
    let (turned, lb) = busy_balancer("fails", true, 7);
    let mut failures = 0;
    for round in 0..400 {
        turned.store(round >= 100, Ordering::SeqCst);
        let mut lb = lb.clone();
        if lb.ready().await.unwrap().call(()).await.is_err() {
            failures += 1;
        }
    }
    // The clock stands still, so its estimate never decays back: one
    // failure, where only the timed ones teaching would let it fail about
    // eight times.
    assert_eq!(failures, 1);
}

/// A busy endpoint that turns slow is seen within a few calls, though one
/// call in eight is timed: once a call to any endpoint has read the clock
/// past its last timed answer, its every call is timed again.
#[tokio::test(start_paused = true)]
async fn peak_ewma_sees_a_busy_endpoint_turn_slow_within_a_few_calls() {
    let mut slow_calls = Vec::new();
    for seed in 0..20 {
        let (turned, lb) = busy_balancer("slow", false, seed);
        let mut slow = 0;
        for round in 0..300 {
            turned.store(round >= 100, Ordering::SeqCst);
            let mut lb = lb.clone();
            let answer = lb.ready().await.unwrap().call(()).await.unwrap();
            if round >= 100 && answer == "slow" {
                slow += 1;
            }
        }
        slow_calls.push(slow);
    }
    // The other answers at once, so its estimate never decays back: the
    // calls it got are those before it was seen to be slow, five on
    // average over these seeds (102); found by its own timed calls only,
    // nine (186).
    let total: usize = slow_calls.iter().sum();
    assert!(total <= 20 * 6, "{slow_calls:?}");
    assert!(slow_calls.iter().all(|&n| n >= 1), "{slow_calls:?}");
}

/// When one of P2C's two candidates is ejected, the other is compared with
/// a third, not taken for want of a choice: a slow endpoint does not get
/// every call that drew it with an ejected one.
#[tokio::test(start_paused = true)]
async fn p2c_draws_again_when_a_candidate_is_ejected() {
    let endpoint = |name: &'static str| {
        service_fn(move |()| async move {
            match name {
                "down" => Err::<&str, BoxError>("down".into()),
                "slow" => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(name)
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    Ok(name)
                }
            }
        })
    };
    let lb = LoadBalance::new(
        config(Strategy::peak_ewma()).outlier_detection(
            OutlierDetection::default()
                .consecutive_failures(Some(1))
                .ejection_time(Duration::from_secs(600), Duration::from_secs(600)),
        ),
        [
            ("down", endpoint("down")),
            ("slow", endpoint("slow")),
            ("fast", endpoint("fast")),
        ],
    )
    .unwrap();
    // Until each has answered once, and "down" is ejected.
    let mut sent = HashMap::<&str, usize>::new();
    for round in 0..320 {
        let mut lb = lb.clone();
        let answer = lb.ready().await.unwrap().call(()).await;
        if round >= 20 {
            *sent.entry(answer.unwrap_or("error")).or_default() += 1;
        }
    }
    assert!(ejected(&lb) == vec!["down"], "{:?}", lb.endpoints());
    // Without the third draw, "slow" would take a third of the calls (every
    // pair with "down"); with it, only the probes its decaying estimate
    // allows.
    assert!(sent.get("slow").copied().unwrap_or(0) <= 15, "{sent:?}");
    assert_eq!(sent.get("error"), None, "{sent:?}");
}

/// A failure is no answer: peak EWMA counts it as slow, so an endpoint that
/// fails fast does not look the fastest and draw the calls it fails.
#[tokio::test(start_paused = true)]
async fn peak_ewma_does_not_prefer_an_endpoint_that_fails_fast() {
    let endpoint = |name: &'static str| {
        service_fn(move |()| async move {
            if name == "fails-fast" {
                return Err::<&str, BoxError>("refused".into());
            }
            // Slower than the 5 ms prior, so that the other is tried.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(name)
        })
    };
    let lb = LoadBalance::new(
        config(Strategy::peak_ewma()).no_outlier_detection(),
        [
            ("fails-fast", endpoint("fails-fast")),
            ("works", endpoint("works")),
        ],
    )
    .unwrap();
    let mut failures = 0;
    for _ in 0..500 {
        let mut lb = lb.clone();
        if lb.ready().await.unwrap().call(()).await.is_err() {
            failures += 1;
        }
    }
    // It is tried again now and then, as its estimate decays: far from the
    // nearly every call it would draw as the "fastest" endpoint.
    assert!(failures <= 25, "{failures} of 500 calls failed");
}
