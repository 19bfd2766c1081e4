//! The whole picture in one process: three user service instances, three
//! order service instances, and a gateway in front of them, all on
//! 127.0.0.1 with free ports; clients drive traffic through the gateway
//! while a script breaks things; a live table shows what the layers did.
//!
//! ```text
//! cargo run --release --example demo
//! cargo run --release --example demo -- --duration 120 --clients 32
//! cargo run --release --example demo -- --no-faults
//! cargo run --release --example demo -- --port 3000 --duration 600
//! ```
//!
//! Flags: `--duration` seconds (60), `--clients` (16), `--no-faults`,
//! `--port` of the gateway (any free port by default; 3000 is the one
//! `ops/prometheus/prometheus.yml` scrapes).
//!
//! The script (at these shares of `--duration`, 60 s by default):
//!
//! | when | fault | what should happen |
//! |---|---|---|
//! | 12 % | user-2 answers 400 ms late | peak EWMA sends it almost nothing; the tail stays short |
//! | 25 % | user-3 fails half its requests | retries hide the failures; outlier detection ejects it |
//! | 38 % | order-1 is killed | its connections reset; it is ejected, no request is lost |
//! | 50 % | all healed, order-1 back | the ejected return on probation and take traffic again |
//! | 62 % | every user instance down | the users breaker opens; reads are answered stale or by the fallback; new orders get 503 with `Retry-After` |
//! | 80 % | the user service is back | a probe closes the breaker; everything succeeds again |
//!
//! It exits with an error if any request went unanswered (no response and
//! no error within 15 s), which is what CI checks.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower::BoxError;
use tower_bulwark::balance::BalanceEvent;
use tower_bulwark::circuit_breaker::{CircuitEvent, CircuitState};
use tower_bulwark::event::{Event, Events};
use tower_bulwark::retry::RetryEvent;

use common::args::Args;
use common::faults::FaultSettings;
use common::fleet::{self, quantile};
use common::gateway::{CACHE_HEADER, FALLBACK_HEADER, Gateway};
use common::instance::Instance;

/// How long a request may go without an answer before it counts as lost.
const LOST_AFTER: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse(&["no-faults"])?;
    let duration = Duration::from_secs(args.get("duration", 60u64)?.max(1));
    let clients: usize = args.get("clients", 16usize)?.clamp(1, 512);
    let port: u16 = args.get("port", 0u16)?;
    let faults = !args.switch("no-faults");

    // The recorder first: layers resolve their metric handles when built.
    let metrics = common::prometheus();
    let log = EventLog::default();
    let events = Events::new();
    {
        let log = log.clone();
        events.subscribe(move |event| log.record(event));
    }
    let client = common::client::reqwest_client()?;

    // Three user instances sharing one store, three order instances each
    // checking users through its own stack, and the gateway.
    let users = fleet::users(3).await?;
    let user_urls = fleet::urls(&users);
    let orders = fleet::orders(3, &user_urls, &client, &events).await?;
    let order_urls = fleet::urls(&orders);
    let gateway = Gateway::new(&user_urls, &order_urls, client.clone(), &events)?;
    let breakers = [
        ("users", gateway.users_breaker.clone()),
        ("orders", gateway.orders_breaker.clone()),
    ];
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let gateway_url = format!("http://{}", listener.local_addr()?);
    let app = gateway.router().merge(common::metrics_route());
    let (stop_gateway, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let names: BTreeMap<String, String> = users
        .iter()
        .chain(&orders)
        .map(|i| (i.url(), i.name().to_owned()))
        .collect();
    log.set_names(names);
    println!(
        "tower-bulwark demo: {} clients for {}s through the gateway at {gateway_url}",
        clients,
        duration.as_secs()
    );
    println!("  users:  {}", describe(&users));
    println!("  orders: {}", describe(&orders));
    println!("  metrics: {gateway_url}/metrics (while the demo runs)\n");

    // Traffic.
    let stats = Stats::default();
    let start = Instant::now();
    let deadline = start + duration;
    let mut drivers = Vec::new();
    for n in 0..clients {
        drivers.push(tokio::spawn(drive(
            n as u64,
            client.clone(),
            gateway_url.clone(),
            stats.clone(),
            deadline,
        )));
    }

    // The fault script and the live view, once a second.
    let script = if faults { script(duration) } else { Vec::new() };
    let mut next_step = 0;
    let mut view = View::new(std::io::stdout().is_terminal());
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut phase = if faults { "warming up" } else { "no faults" }.to_owned();
    while Instant::now() < deadline {
        ticker.tick().await;
        let elapsed = start.elapsed();
        while next_step < script.len() && script[next_step].at <= elapsed {
            let step = &script[next_step];
            phase = step.label.to_owned();
            log.note(format!("fault script: {}", step.label));
            apply(step.action, &users, &orders).await;
            next_step += 1;
        }
        let window = stats.take_window();
        let states: Vec<(&str, CircuitState)> = breakers
            .iter()
            .map(|(name, h)| (*name, h.state()))
            .collect();
        view.draw(elapsed, duration, &phase, &window, &states, &log);
    }
    for driver in drivers {
        driver.await?;
    }
    view.finish(&log);

    // The summary.
    let total = stats.summary();
    let text = {
        metrics.run_upkeep();
        metrics.render()
    };
    println!("\n== summary after {:.0?}", start.elapsed());
    println!(
        "requests {}  answered {}  unanswered {}",
        total.sent, total.answered, total.unanswered
    );
    println!(
        "  ok {} ({:.2} %)  failed {}  stale answers {}  fallback answers {}",
        total.ok,
        percent(total.ok, total.answered),
        total.failed,
        total.stale,
        total.fallback
    );
    println!(
        "  latency p50 {:.1?}  p99 {:.1?}  p99.9 {:.1?}  max {:.1?}",
        total.p50, total.p99, total.p999, total.max
    );
    println!("what the layers did:");
    for (what, metric) in [
        ("  retries sent", "bulwark_retry_retries_total"),
        (
            "  retries refused by the budget",
            "bulwark_retry_budget_exhausted_total",
        ),
        (
            "  calls rejected by open breakers",
            "bulwark_circuit_rejected_total",
        ),
        ("  endpoint ejections", "bulwark_balance_ejections_total"),
    ] {
        println!("{what}: {}", metric_sum(&text, metric, None));
    }
    println!(
        "  cache: {} hits, {} stale answers, {} coalesced",
        metric_sum(
            &text,
            "bulwark_cache_requests_total",
            Some("result=\"hit\"")
        ),
        metric_sum(
            &text,
            "bulwark_cache_requests_total",
            Some("result=\"stale\"")
        ),
        metric_sum(
            &text,
            "bulwark_cache_requests_total",
            Some("result=\"coalesced\"")
        ),
    );
    println!("  breaker transitions: {}", log.transitions().join(", "));
    println!(
        "\nmetrics are exported at {gateway_url}/metrics while the demo runs (longer runs: --duration 600);\n\
         point Prometheus at it with ops/prometheus/alerts.yml and import ops/grafana/dashboard.json."
    );

    let _ = stop_gateway.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    if total.unanswered > 0 {
        return Err(format!("{} requests went unanswered", total.unanswered).into());
    }
    Ok(())
}

fn describe(instances: &[Arc<Instance>]) -> String {
    instances
        .iter()
        .map(|i| format!("{} {}", i.name(), i.url()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The sum of a metric's series in Prometheus text, those with `label`
/// when given.
fn metric_sum(text: &str, name: &str, label: Option<&str>) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| label.is_none_or(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------- traffic

/// One client: requests back to back until the deadline.
async fn drive(n: u64, client: reqwest::Client, gateway: String, stats: Stats, deadline: Instant) {
    let mut i = n * 7919;
    while Instant::now() < deadline {
        i += 1;
        let user = 1 + (i * 31) % 60;
        let request = match i % 20 {
            0..=12 => client.get(format!("{gateway}/users/{user}")),
            // A user nobody asked for before (not found): nothing cached.
            13 => client.get(format!("{gateway}/users/{}", 1000 + i)),
            14..=16 => client.get(format!("{gateway}/orders?user_id={user}")),
            17 => client.get(format!("{gateway}/users?limit=10")),
            _ => client
                .post(format!("{gateway}/orders"))
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"user_id":{user},"item":"book","quantity":1}}"#
                )),
        };
        let started = Instant::now();
        let outcome = match tokio::time::timeout(LOST_AFTER, request.send()).await {
            Err(_) => Outcome::Unanswered,
            Ok(Err(_)) => Outcome::Failed,
            Ok(Ok(response)) => {
                let fallback = response.headers().contains_key(FALLBACK_HEADER);
                let stale = response
                    .headers()
                    .get(CACHE_HEADER)
                    .is_some_and(|v| v == "stale");
                let status = response.status();
                // The body is part of the answer.
                let _ = response.bytes().await;
                if status.is_server_error() {
                    Outcome::Failed
                } else if fallback {
                    Outcome::Fallback
                } else if stale {
                    Outcome::Stale
                } else {
                    Outcome::Ok
                }
            }
        };
        stats.record(outcome, started.elapsed());
        if outcome == Outcome::Failed {
            // A client backs off a little after an error.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Stale,
    Fallback,
    Failed,
    Unanswered,
}

#[derive(Clone, Default)]
struct Stats {
    inner: Arc<StatsInner>,
}

#[derive(Default)]
struct StatsInner {
    counts: [AtomicU64; 5],
    window: Mutex<Vec<(Outcome, Duration)>>,
    all: Mutex<Vec<Duration>>,
}

/// One second of traffic.
struct Window {
    requests: usize,
    ok: usize,
    stale: usize,
    fallback: usize,
    failed: usize,
    p50: Duration,
    p99: Duration,
}

struct Summary {
    sent: u64,
    answered: u64,
    unanswered: u64,
    ok: u64,
    stale: u64,
    fallback: u64,
    failed: u64,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
}

impl Stats {
    fn record(&self, outcome: Outcome, latency: Duration) {
        self.inner.counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.window).push((outcome, latency));
        if outcome != Outcome::Unanswered {
            lock(&self.inner.all).push(latency);
        }
    }

    fn take_window(&self) -> Window {
        let window = std::mem::take(&mut *lock(&self.inner.window));
        let count = |o: Outcome| window.iter().filter(|(x, _)| *x == o).count();
        let mut latencies: Vec<Duration> = window.iter().map(|(_, l)| *l).collect();
        latencies.sort();
        Window {
            requests: window.len(),
            ok: count(Outcome::Ok),
            stale: count(Outcome::Stale),
            fallback: count(Outcome::Fallback),
            failed: count(Outcome::Failed) + count(Outcome::Unanswered),
            p50: quantile(&latencies, 0.5),
            p99: quantile(&latencies, 0.99),
        }
    }

    fn summary(&self) -> Summary {
        let count = |o: Outcome| self.inner.counts[o as usize].load(Ordering::Relaxed);
        let mut all = std::mem::take(&mut *lock(&self.inner.all));
        all.sort();
        let unanswered = count(Outcome::Unanswered);
        let answered = count(Outcome::Ok)
            + count(Outcome::Stale)
            + count(Outcome::Fallback)
            + count(Outcome::Failed);
        Summary {
            sent: answered + unanswered,
            answered,
            unanswered,
            ok: count(Outcome::Ok),
            stale: count(Outcome::Stale),
            fallback: count(Outcome::Fallback),
            failed: count(Outcome::Failed),
            p50: quantile(&all, 0.5),
            p99: quantile(&all, 0.99),
            p999: quantile(&all, 0.999),
            max: all.last().copied().unwrap_or_default(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

// ----------------------------------------------------------------- faults

#[derive(Debug, Clone, Copy)]
enum Action {
    SlowUser(usize),
    FailingUser(usize),
    KillOrder(usize),
    HealAll,
    UsersDown,
    UsersUp,
}

struct Step {
    at: Duration,
    label: &'static str,
    action: Action,
}

fn script(duration: Duration) -> Vec<Step> {
    let at = |share: f64| duration.mul_f64(share);
    vec![
        Step {
            at: at(0.12),
            label: "user-2 answers 400 ms late",
            action: Action::SlowUser(1),
        },
        Step {
            at: at(0.25),
            label: "user-3 fails half its requests",
            action: Action::FailingUser(2),
        },
        Step {
            at: at(0.38),
            label: "order-1 killed",
            action: Action::KillOrder(0),
        },
        Step {
            at: at(0.50),
            label: "all healed, order-1 restarted",
            action: Action::HealAll,
        },
        Step {
            at: at(0.62),
            label: "every user instance down",
            action: Action::UsersDown,
        },
        Step {
            at: at(0.80),
            label: "the user service is back",
            action: Action::UsersUp,
        },
    ]
}

async fn apply(action: Action, users: &[Arc<Instance>], orders: &[Arc<Instance>]) {
    match action {
        Action::SlowUser(i) => users[i].faults().set(FaultSettings {
            latency_ms: 400,
            error_rate: 0.0,
        }),
        Action::FailingUser(i) => users[i].faults().set(FaultSettings {
            latency_ms: 0,
            error_rate: 0.5,
        }),
        Action::KillOrder(i) => orders[i].kill(),
        Action::HealAll => {
            for instance in users.iter().chain(orders) {
                instance.faults().heal();
                if let Err(e) = instance.revive().await {
                    eprintln!("cannot restart {}: {e}", instance.name());
                }
            }
        }
        Action::UsersDown => users.iter().for_each(|i| i.kill()),
        Action::UsersUp => {
            for instance in users {
                if let Err(e) = instance.revive().await {
                    eprintln!("cannot restart {}: {e}", instance.name());
                }
            }
        }
    }
}

// ----------------------------------------------------------------- events

/// What the layers reported, for the live view and the summary.
#[derive(Clone, Default)]
struct EventLog {
    inner: Arc<Mutex<EventLogInner>>,
}

#[derive(Default)]
struct EventLogInner {
    names: BTreeMap<String, String>,
    /// Lines not shown yet.
    pending: Vec<String>,
    ejected: BTreeSet<String>,
    transitions: Vec<String>,
    budget_exhausted: BTreeSet<String>,
}

impl EventLog {
    fn set_names(&self, names: BTreeMap<String, String>) {
        lock(&self.inner).names = names;
    }

    fn note(&self, line: String) {
        lock(&self.inner).pending.push(line);
    }

    fn record(&self, event: &Event) {
        let mut log = lock(&self.inner);
        let name = |log: &EventLogInner, endpoint: &str| {
            log.names
                .get(endpoint)
                .cloned()
                .unwrap_or_else(|| endpoint.to_owned())
        };
        match event {
            Event::Circuit(CircuitEvent::StateTransition {
                service,
                from,
                to,
                reason,
                ..
            }) => {
                let line = format!(
                    "{service} breaker {} -> {} ({reason:?})",
                    from.as_str(),
                    to.as_str()
                );
                log.transitions.push(format!("{service} {}", to.as_str()));
                log.pending.push(line);
            }
            Event::Balance(BalanceEvent::EndpointEjected {
                service, endpoint, ..
            }) => {
                let endpoint = name(&log, endpoint);
                log.ejected.insert(format!("{endpoint} (by {service})"));
                log.pending.push(format!("{service}: {endpoint} ejected"));
            }
            Event::Balance(BalanceEvent::EndpointReturned {
                service, endpoint, ..
            }) => {
                let endpoint = name(&log, endpoint);
                log.ejected.remove(&format!("{endpoint} (by {service})"));
                log.pending
                    .push(format!("{service}: {endpoint} back on probation"));
            }
            Event::Retry(RetryEvent::BudgetExhausted { service, .. })
                if log.budget_exhausted.insert(service.to_string()) =>
            {
                log.pending.push(format!(
                    "{service}: retry budget exhausted, retries refused"
                ));
            }
            _ => {}
        }
    }

    fn take_pending(&self) -> Vec<String> {
        let mut log = lock(&self.inner);
        log.budget_exhausted.clear();
        std::mem::take(&mut log.pending)
    }

    fn ejected(&self) -> Vec<String> {
        lock(&self.inner).ejected.iter().cloned().collect()
    }

    fn transitions(&self) -> Vec<String> {
        let log = lock(&self.inner);
        if log.transitions.is_empty() {
            vec!["none".to_owned()]
        } else {
            log.transitions.clone()
        }
    }
}

// ------------------------------------------------------------------- view

/// The live view: on a terminal, a status block redrawn in place under the
/// event lines; elsewhere (CI), one line a second.
struct View {
    terminal: bool,
    drawn: usize,
}

impl View {
    fn new(terminal: bool) -> Self {
        View { terminal, drawn: 0 }
    }

    fn draw(
        &mut self,
        elapsed: Duration,
        total: Duration,
        phase: &str,
        window: &Window,
        breakers: &[(&str, CircuitState)],
        log: &EventLog,
    ) {
        let mut out = std::io::stdout().lock();
        if self.terminal && self.drawn > 0 {
            // Up to the top of the status block, and clear it.
            let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn);
        }
        for line in log.take_pending() {
            let _ = writeln!(out, "  {:>5.1}s  {line}", elapsed.as_secs_f64());
        }
        let answered = window.ok + window.stale + window.fallback + window.failed;
        let good = percent(
            (window.ok + window.stale + window.fallback) as u64,
            answered as u64,
        );
        let breakers = breakers
            .iter()
            .map(|(name, state)| format!("{name} {}", state.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let ejected = log.ejected();
        let ejected = if ejected.is_empty() {
            "none".to_owned()
        } else {
            ejected.join(", ")
        };
        if self.terminal {
            let width = 30;
            let done = ((elapsed.as_secs_f64() / total.as_secs_f64()) * width as f64) as usize;
            let bar: String = (0..width)
                .map(|i| if i < done.min(width) { '#' } else { '-' })
                .collect();
            let lines = [
                format!(
                    "[{bar}] {:>3}s/{}s  {phase}",
                    elapsed.as_secs(),
                    total.as_secs()
                ),
                format!(
                    "  req/s {:>6}  answered well {:>6.2} %  p50 {:>8.1?}  p99 {:>8.1?}",
                    window.requests, good, window.p50, window.p99
                ),
                format!(
                    "  stale {:>5}  fallback {:>5}  failed {:>5}",
                    window.stale, window.fallback, window.failed
                ),
                format!("  breakers: {breakers}"),
                format!("  ejected: {ejected}"),
            ];
            for line in &lines {
                let _ = writeln!(out, "{line}");
            }
            self.drawn = lines.len();
        } else {
            let _ = writeln!(
                out,
                "{:>3}s  req/s {:>6}  good {:>6.2} %  p50 {:>7.1?}  p99 {:>7.1?}  stale {:>4}  fallback {:>4}  failed {:>4}  breakers: {breakers}  ejected: {ejected}  [{phase}]",
                elapsed.as_secs(),
                window.requests,
                good,
                window.p50,
                window.p99,
                window.stale,
                window.fallback,
                window.failed,
            );
        }
        let _ = out.flush();
    }

    fn finish(&mut self, log: &EventLog) {
        let mut out = std::io::stdout().lock();
        for line in log.take_pending() {
            let _ = writeln!(out, "  {line}");
        }
    }
}
