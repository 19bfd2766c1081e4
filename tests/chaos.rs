//! Chaos over real TCP: instances of the example user service on
//! 127.0.0.1, the full `ResilienceLayer` stack in front of them over a
//! reqwest client, and a closed-loop load bounded in time. Each scenario
//! breaks something while the load runs and counts every request: each one
//! must get a response or a typed error; none may hang or vanish.
//!
//! These run on the real clock (real sockets cannot run on tokio's paused
//! one), one scenario at a time, each within a few seconds.
#![cfg(all(feature = "stack", feature = "http"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_examples as common;
use bytes::Bytes;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_bulwark::balance::{BalanceConfig, BalanceEvent, OutlierDetection};
use tower_bulwark::cache::CacheConfig;
use tower_bulwark::circuit_breaker::{
    CircuitBreakerConfig, CircuitEvent, CircuitState, OpenDuration, SlidingWindow,
};
use tower_bulwark::event::{Event, Events};
use tower_bulwark::retry::{RetryConfig, RetryEvent};
use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

use common::client::{HttpClient, Request, Response};
use common::db::{Db, TemporaryDb};
use common::faults::FaultSettings;
use common::instance::Instance;

/// One scenario at a time: they count calls.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A request that has no answer after this long is lost.
const LOST_AFTER: Duration = Duration::from_secs(10);
const WORKERS: usize = 8;

/// Three user service instances over one database, which lives as long
/// as the returned guard.
async fn fleet() -> (Vec<Arc<Instance>>, TemporaryDb) {
    let database = TemporaryDb::new("chaos");
    let db = Db::connect(&database.url()).await.unwrap();
    (common::fleet::users(3, &db).await.unwrap(), database)
}

/// Calls that left the client for the instances, retries and probes
/// included.
#[derive(Clone, Default)]
struct Attempts(Arc<AtomicU64>);

impl Attempts {
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the layers reported, with when.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Instant, Event)>>>);

impl Log {
    fn hub(&self) -> Events {
        let hub = Events::new();
        let log = self.clone();
        hub.subscribe(move |event| log.0.lock().unwrap().push((Instant::now(), event.clone())));
        hub
    }

    fn transitions(&self) -> Vec<(Instant, CircuitState)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(at, e)| match e {
                Event::Circuit(CircuitEvent::StateTransition { to, .. }) => Some((*at, *to)),
                _ => None,
            })
            .collect()
    }

    fn ejected(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Balance(BalanceEvent::EndpointEjected { endpoint, .. }) => {
                    Some(endpoint.to_string())
                }
                _ => None,
            })
            .collect()
    }

    fn budget_exhausted(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| matches!(e, Event::Retry(RetryEvent::BudgetExhausted { .. })))
            .count()
    }
}

/// The stack every scenario puts in front of the fleet: a per-attempt
/// timeout, budgeted retries of reads, a breaker, peak EWMA with outlier
/// ejection, and, when asked, a stale-if-error cache of single users and a
/// fallback.
fn stack(
    config: ResilienceConfig,
    instances: &[Arc<Instance>],
    attempts: &Attempts,
    log: &Log,
    degraded: bool,
) -> impl Service<Request, Response = Response, Error = BoxError, Future: Send> + Clone + Send + 'static
{
    let client = common::client::reqwest_client().unwrap();
    let endpoints: Vec<_> = instances
        .iter()
        .map(|instance| {
            let counter = attempts.0.clone();
            let endpoint = ServiceBuilder::new()
                .map_request(move |request: Request| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    request
                })
                .service(HttpClient::new(client.clone(), instance.url()));
            (instance.url(), endpoint)
        })
        .collect();
    // Single users are cached; lists are not, so that they reach the
    // service (or the fallback) whatever the cache holds.
    fn user_key(request: &Request) -> Option<String> {
        let path = request.uri().path();
        let single = path
            .strip_prefix("/users/")
            .is_some_and(|id| id.parse::<u64>().is_ok());
        (request.method() == http::Method::GET && single).then(|| path.to_owned())
    }
    let builder = ResilienceLayer::builder(config)
        .http()
        .cache_key(user_key)
        .events(&log.hub());
    let builder = if degraded {
        builder.fallback(service_fn(|_: Request| async {
            http::Response::builder()
                .status(200)
                .header(common::gateway::FALLBACK_HEADER, "circuit-open")
                .body(Bytes::from_static(b"{\"degraded\":true}"))
                .map_err(BoxError::from)
        }))
    } else {
        builder
    };
    builder.build().unwrap().balance(endpoints).unwrap()
}

/// The base configuration of the scenarios.
fn config() -> ResilienceConfig {
    ResilienceConfig::default()
        .service("chaos")
        .timeout(Duration::from_millis(500))
        .retry(
            RetryConfig::default()
                .max_attempts(3)
                .backoff(Duration::from_millis(5), Duration::from_millis(50)),
        )
        .balance(
            BalanceConfig::default().outlier_detection(
                OutlierDetection::default()
                    .consecutive_failures(Some(3))
                    .failure_rate(0.5, 20, 10)
                    .ejection_time(Duration::from_millis(500), Duration::from_secs(5)),
            ),
        )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    Stale,
    Fallback,
    /// A response with a 5xx status.
    ServerError,
    /// A typed error from the stack.
    Error,
    Lost,
}

#[derive(Debug)]
struct Record {
    at: Instant,
    answer: Answer,
}

/// Closed-loop load on `svc` for `duration`: `WORKERS` clients, each
/// sending its next request `pace` after the last is answered. Reads of
/// single users, and every fifth a list.
async fn load<S>(svc: S, duration: Duration, pace: Duration) -> Vec<Record>
where
    S: Service<Request, Response = Response, Error = BoxError, Future: Send>
        + Clone
        + Send
        + 'static,
{
    let deadline = Instant::now() + duration;
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                let mut records = Vec::new();
                let mut n = w as u64 * 1_000;
                while Instant::now() < deadline {
                    n += 1;
                    let path = if n % 5 == 0 {
                        format!("/users?after={}&limit=5", n % 50)
                    } else {
                        format!("/users/{}", 1 + n % 20)
                    };
                    let request = http::Request::get(path).body(Bytes::new()).unwrap();
                    let started = Instant::now();
                    let call = async {
                        let ready = svc.ready().await?;
                        ready.call(request).await
                    };
                    let answer = match tokio::time::timeout(LOST_AFTER, call).await {
                        Err(_) => Answer::Lost,
                        Ok(Err(_)) => Answer::Error,
                        Ok(Ok(response)) if response.status().is_server_error() => {
                            Answer::ServerError
                        }
                        Ok(Ok(response)) => {
                            if response
                                .headers()
                                .contains_key(common::gateway::FALLBACK_HEADER)
                            {
                                Answer::Fallback
                            } else if response
                                .extensions()
                                .get::<tower_bulwark::cache::CacheStatus>()
                                == Some(&tower_bulwark::cache::CacheStatus::Stale)
                            {
                                Answer::Stale
                            } else {
                                Answer::Ok
                            }
                        }
                    };
                    records.push(Record {
                        at: started,
                        answer,
                    });
                    if !pace.is_zero() {
                        tokio::time::sleep(pace).await;
                    }
                }
                records
            })
        })
        .collect();
    let mut records = Vec::new();
    for worker in workers {
        records.extend(worker.await.unwrap());
    }
    records
}

fn count(records: &[Record], answers: &[Answer]) -> usize {
    records
        .iter()
        .filter(|r| answers.contains(&r.answer))
        .count()
}

fn summary(records: &[Record]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for r in records {
        *out.entry(format!("{:?}", r.answer)).or_default() += 1;
    }
    out
}

/// Runs `f` after `delay`, alongside the load.
fn after(delay: Duration, f: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        f.await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_three_instances_killed_and_restarted() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (instances, _database) = fleet().await;
    let (attempts, log) = (Attempts::default(), Log::default());
    let svc = stack(config(), &instances, &attempts, &log, false);

    let victim = instances[1].clone();
    let restarted = Arc::new(Mutex::new(None));
    {
        let victim = victim.clone();
        after(Duration::from_millis(1000), async move { victim.kill() });
    }
    {
        let (victim, restarted) = (victim.clone(), restarted.clone());
        after(Duration::from_millis(2000), async move {
            victim.revive().await.unwrap();
            *restarted.lock().unwrap() = Some(victim.faults().requests());
        });
    }
    let records = load(svc, Duration::from_millis(4500), Duration::ZERO).await;

    let total = records.len();
    let ok = count(&records, &[Answer::Ok]);
    println!(
        "{total} requests: {:?}; ejected {:?}",
        summary(&records),
        log.ejected()
    );
    assert_eq!(
        count(&records, &[Answer::Lost]),
        0,
        "every request is answered"
    );
    assert!(
        ok as f64 >= total as f64 * 0.999,
        "{ok} of {total} succeeded"
    );
    assert!(
        log.ejected().contains(&victim.url()),
        "the dead instance is ejected"
    );
    let at_restart = restarted.lock().unwrap().expect("restarted during the run");
    assert!(
        victim.faults().requests() > at_restart,
        "the restarted instance takes requests again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_twenty_times_slower_keeps_the_tail() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (instances, _database) = fleet().await;
    let healthy = FaultSettings {
        latency_ms: 10,
        error_rate: 0.0,
        ..FaultSettings::default()
    };
    for instance in &instances {
        instance.faults().set(healthy);
    }
    let (attempts, log) = (Attempts::default(), Log::default());
    let svc = stack(
        config().timeout(Duration::from_secs(2)),
        &instances,
        &attempts,
        &log,
        false,
    );

    let baseline = load(svc.clone(), Duration::from_millis(1500), Duration::ZERO).await;
    let slow = &instances[0];
    slow.faults().set(FaultSettings {
        latency_ms: 200,
        error_rate: 0.0,
        ..FaultSettings::default()
    });
    let before = slow.faults().requests();
    let slowed = load(svc, Duration::from_millis(3000), Duration::ZERO).await;
    let to_slow = slow.faults().requests() - before;

    println!(
        "{} requests healthy; {} with one instance 20x slower, {to_slow} of which went to it",
        baseline.len(),
        slowed.len()
    );
    for records in [&baseline, &slowed] {
        assert_eq!(
            count(records, &[Answer::Ok]),
            records.len(),
            "{:?}",
            summary(records)
        );
    }
    // Evenly spread, it would take a third. Peak EWMA sends it a few
    // requests to measure it, and the rest elsewhere.
    assert!(
        to_slow * 20 <= slowed.len() as u64,
        "the slow instance took {to_slow} of {} requests",
        slowed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_failing_half_its_requests() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (instances, _database) = fleet().await;
    instances[2].faults().set(FaultSettings {
        latency_ms: 0,
        error_rate: 0.5,
        ..FaultSettings::default()
    });
    let (attempts, log) = (Attempts::default(), Log::default());
    let svc = stack(config(), &instances, &attempts, &log, false);

    let records = load(svc, Duration::from_millis(3000), Duration::ZERO).await;

    let total = records.len();
    let ok = count(&records, &[Answer::Ok]);
    let ratio = attempts.get() as f64 / total as f64;
    println!(
        "{total} requests: {:?}; {} attempts ({ratio:.3} per request); budget exhausted {} times",
        summary(&records),
        attempts.get(),
        log.budget_exhausted()
    );
    assert_eq!(count(&records, &[Answer::Lost]), 0);
    assert!(
        ok as f64 >= total as f64 * 0.99,
        "{ok} of {total} succeeded"
    );
    assert_eq!(
        log.budget_exhausted(),
        0,
        "the retries stay inside the budget"
    );
    assert!(ratio <= 1.2, "{ratio:.3} attempts per request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_upstream_down_and_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (instances, _database) = fleet().await;
    let open_for = Duration::from_secs(1);
    let config = config()
        .cache(
            CacheConfig::default()
                .ttl(Duration::from_millis(300))
                .stale_if_error(Duration::from_secs(60)),
        )
        .circuit_breaker(
            CircuitBreakerConfig::default()
                .sliding_window(SlidingWindow::time(Duration::from_secs(2)))
                .minimum_calls(10)
                .consecutive_failures(5)
                .open_duration(OpenDuration::fixed(open_for)),
        );
    let (attempts, log) = (Attempts::default(), Log::default());
    let svc = stack(config, &instances, &attempts, &log, true);

    // Up for a second, down for two, up for two.
    let (down_at, up_at) = (Duration::from_millis(1000), Duration::from_millis(3000));
    let started = Instant::now();
    let outage = Arc::new(Mutex::new((0u64, 0u64)));
    let recovered = Arc::new(Mutex::new(None));
    {
        let (instances, attempts, outage) = (instances.clone(), attempts.clone(), outage.clone());
        after(down_at, async move {
            outage.lock().unwrap().0 = attempts.get();
            instances.iter().for_each(|i| i.kill());
        });
    }
    {
        let (instances, attempts, outage, recovered) = (
            instances.clone(),
            attempts.clone(),
            outage.clone(),
            recovered.clone(),
        );
        after(up_at, async move {
            outage.lock().unwrap().1 = attempts.get();
            for instance in &instances {
                instance.revive().await.unwrap();
            }
            *recovered.lock().unwrap() = Some(Instant::now());
        });
    }
    // Clients a millisecond apart: the outage is about the breaker, not
    // about how fast the cache answers.
    let records = load(svc, Duration::from_millis(5000), Duration::from_millis(1)).await;
    let recovered = recovered.lock().unwrap().expect("the instances came back");

    let (down, up) = (started + down_at, started + up_at);
    let during: Vec<&Record> = records
        .iter()
        .filter(|r| r.at >= down && r.at < up)
        .collect();
    let (before_outage, after_outage) = *outage.lock().unwrap();
    let upstream = after_outage - before_outage;
    let offered = during.len() as u64;
    let transitions = log.transitions();
    println!(
        "{} requests: {:?}; during the outage {offered} requests, {upstream} attempts; transitions {:?}",
        records.len(),
        summary(&records),
        transitions
            .iter()
            .map(|(at, s)| (at.duration_since(started), *s))
            .collect::<Vec<_>>()
    );

    assert_eq!(
        count(&records, &[Answer::Lost]),
        0,
        "every request is answered"
    );
    // The breaker opened during the outage...
    let opened = transitions
        .iter()
        .find(|(at, to)| *at >= down && *to == CircuitState::Open)
        .expect("the breaker opens");
    assert!(opened.0 < up);
    // ...callers got answers from the cache (fresh, then stale) or the
    // fallback, and no error...
    let after_open: Vec<&&Record> = during.iter().filter(|r| r.at > opened.0).collect();
    let stale = after_open
        .iter()
        .filter(|r| r.answer == Answer::Stale)
        .count();
    let fallback = after_open
        .iter()
        .filter(|r| r.answer == Answer::Fallback)
        .count();
    let answered = after_open
        .iter()
        .filter(|r| matches!(r.answer, Answer::Ok | Answer::Stale | Answer::Fallback))
        .count();
    assert!(
        stale > 0 && fallback > 0,
        "{stale} stale answers, {fallback} from the fallback"
    );
    assert_eq!(
        answered,
        after_open.len(),
        "no error once the breaker is open"
    );
    // ...the upstream saw no retry storm...
    assert!(
        upstream as f64 <= offered as f64 * 1.2,
        "{upstream} attempts for {offered} requests offered during the outage"
    );
    // ...and the breaker closed within its wait plus one probe after the
    // upstream came back.
    let closed = transitions
        .iter()
        .find(|(at, to)| *at >= recovered && *to == CircuitState::Closed)
        .expect("the breaker closes after recovery");
    assert!(
        closed.0.duration_since(recovered) <= open_for + Duration::from_millis(500),
        "closed {:?} after the upstream came back",
        closed.0.duration_since(recovered)
    );
    let once_closed: Vec<&Record> = records.iter().filter(|r| r.at > closed.0).collect();
    assert!(!once_closed.is_empty());
    assert_eq!(
        once_closed
            .iter()
            .filter(|r| r.answer == Answer::Ok)
            .count(),
        once_closed.len(),
        "once closed, every request succeeds: {:?}",
        summary(
            &once_closed
                .iter()
                .map(|r| Record { ..**r })
                .collect::<Vec<_>>()
        )
    );
}
