//! The demo's clients, and what they saw.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::common::fleet::quantile;
use crate::common::gateway::{CACHE_HEADER, FALLBACK_HEADER, SHED_HEADER};

/// How long a request may go without an answer before it counts as lost.
pub(crate) const LOST_AFTER: Duration = Duration::from_secs(15);

/// How one request ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An answer from a service, or a fresh cache entry: any status but 5xx.
    Ok,
    /// An expired cache entry, served because the service failed.
    Stale,
    /// The users fallback's degraded answer, while its breaker was open.
    Fallback,
    /// A 503 at once from the gateway: more calls under way than the
    /// service can serve.
    Shed,
    /// Any other 5xx, or a connection error.
    Failed,
    /// No answer within [`LOST_AFTER`].
    Unanswered,
}

/// The demo's traffic to the gateway: clients in closed loops, and surges
/// that do not wait for answers.
#[derive(Clone)]
pub(crate) struct Traffic {
    client: reqwest::Client,
    gateway: Arc<str>,
    pub(crate) stats: Stats,
    deadline: Instant,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Traffic {
    /// Traffic to `gateway` until `deadline`, none yet.
    pub(crate) fn new(client: &reqwest::Client, gateway: &str, deadline: Instant) -> Self {
        Traffic {
            client: client.clone(),
            gateway: gateway.into(),
            stats: Stats::default(),
            deadline,
            tasks: Arc::default(),
        }
    }

    /// `clients` clients, each sending one request at a time until the
    /// deadline.
    pub(crate) fn clients(&self, clients: u64) {
        for n in 0..clients {
            self.spawn(drive(n, self.clone()));
        }
    }

    /// A surge: `rate` reads a second of users nobody has (so that none is
    /// in the cache and every one reaches the user service), for `length`
    /// or until the deadline, each sent on time whether or not the earlier
    /// ones were answered, as new callers arriving do.
    pub(crate) fn surge(&self, rate: u32, length: Duration) {
        let traffic = self.clone();
        let end = self.deadline.min(Instant::now() + length);
        self.spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
            let mut sent = tokio::task::JoinSet::new();
            let mut i = 0u64;
            while ticks.tick().await < end {
                while sent.try_join_next().is_some() {}
                i += 1;
                let request =
                    traffic
                        .client
                        .get(format!("{}/users/{}", traffic.gateway, 1_000_000 + i));
                let stats = traffic.stats.clone();
                sent.spawn(async move { send(request, &stats).await });
            }
            sent.join_all().await;
        });
    }

    /// Waits for every client and surge to end.
    pub(crate) async fn finish(&self) -> Result<(), tokio::task::JoinError> {
        loop {
            let tasks = std::mem::take(&mut *lock(&self.tasks));
            if tasks.is_empty() {
                return Ok(());
            }
            for task in tasks {
                task.await?;
            }
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        lock(&self.tasks).push(tokio::spawn(task));
    }
}

/// One client: requests back to back until the deadline. About 65 % are
/// reads of known users (mostly cache hits), 5 % reads of unknown users,
/// 15 % reads of a user's orders, 5 % a page of users, 10 % new orders
/// (with an `Idempotency-Key`, so the gateway may retry them).
async fn drive(n: u64, traffic: Traffic) {
    let (client, gateway) = (&traffic.client, &traffic.gateway);
    let mut i = n * 7919;
    while Instant::now() < traffic.deadline {
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
                .header("idempotency-key", format!("demo-{n}-{i}"))
                .body(format!(
                    r#"{{"user_id":{user},"item":"book","quantity":1}}"#
                )),
        };
        if matches!(
            send(request, &traffic.stats).await,
            Outcome::Failed | Outcome::Shed
        ) {
            // A client backs off a little after an error or a 503.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends `request`, and records how it ended in `stats`.
async fn send(request: reqwest::RequestBuilder, stats: &Stats) -> Outcome {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(LOST_AFTER, request.send()).await {
        Err(_) => Outcome::Unanswered,
        Ok(Err(_)) => Outcome::Failed,
        Ok(Ok(response)) => {
            let fallback = response.headers().contains_key(FALLBACK_HEADER);
            let shed = response.headers().contains_key(SHED_HEADER);
            let cache = response.headers().get(CACHE_HEADER).cloned();
            let status = response.status();
            // The body is part of the answer.
            let _ = response.bytes().await;
            stats.note_cache(cache.as_ref().and_then(|v| v.to_str().ok()));
            if shed {
                Outcome::Shed
            } else if status.is_server_error() {
                Outcome::Failed
            } else if fallback {
                Outcome::Fallback
            } else if cache.is_some_and(|v| v == "stale") {
                Outcome::Stale
            } else {
                Outcome::Ok
            }
        }
    };
    stats.record(outcome, started.elapsed());
    outcome
}

/// What every client saw, shared.
#[derive(Clone, Default)]
pub(crate) struct Stats {
    inner: Arc<StatsInner>,
}

#[derive(Default)]
struct StatsInner {
    counts: [AtomicU64; 6],
    cache_hits: AtomicU64,
    window: Mutex<Vec<(Outcome, Duration)>>,
    all: Mutex<Vec<Duration>>,
}

/// One second of traffic.
#[derive(Debug, Clone, Default)]
pub(crate) struct Window {
    pub(crate) requests: usize,
    pub(crate) ok: usize,
    pub(crate) stale: usize,
    pub(crate) fallback: usize,
    pub(crate) shed: usize,
    pub(crate) failed: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
}

impl Window {
    /// Answers that were not failures, in % of answers.
    pub(crate) fn good_percent(&self) -> f64 {
        let answered = self.ok + self.stale + self.fallback + self.shed + self.failed;
        percent(
            (self.ok + self.stale + self.fallback) as u64,
            answered as u64,
        )
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub(crate) struct Totals {
    pub(crate) sent: u64,
    pub(crate) answered: u64,
    pub(crate) unanswered: u64,
    pub(crate) ok: u64,
    pub(crate) stale: u64,
    pub(crate) fallback: u64,
    pub(crate) shed: u64,
    pub(crate) failed: u64,
    pub(crate) cache_hits: u64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) p999: Duration,
    pub(crate) max: Duration,
}

impl Stats {
    fn record(&self, outcome: Outcome, latency: Duration) {
        self.inner.counts[outcome as usize].fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.window).push((outcome, latency));
        if outcome != Outcome::Unanswered {
            lock(&self.inner.all).push(latency);
        }
    }

    fn note_cache(&self, status: Option<&str>) {
        if matches!(status, Some("hit" | "coalesced")) {
            self.inner.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The traffic since the last call.
    pub(crate) fn take_window(&self) -> Window {
        let window = std::mem::take(&mut *lock(&self.inner.window));
        let count = |o: Outcome| window.iter().filter(|(x, _)| *x == o).count();
        let mut latencies: Vec<Duration> = window.iter().map(|(_, l)| *l).collect();
        latencies.sort();
        Window {
            requests: window.len(),
            ok: count(Outcome::Ok),
            stale: count(Outcome::Stale),
            fallback: count(Outcome::Fallback),
            shed: count(Outcome::Shed),
            failed: count(Outcome::Failed) + count(Outcome::Unanswered),
            p50: quantile(&latencies, 0.5),
            p99: quantile(&latencies, 0.99),
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        let count = |o: Outcome| self.inner.counts[o as usize].load(Ordering::Relaxed);
        let mut all = std::mem::take(&mut *lock(&self.inner.all));
        all.sort();
        let unanswered = count(Outcome::Unanswered);
        let answered = count(Outcome::Ok)
            + count(Outcome::Stale)
            + count(Outcome::Fallback)
            + count(Outcome::Shed)
            + count(Outcome::Failed);
        Totals {
            sent: answered + unanswered,
            answered,
            unanswered,
            ok: count(Outcome::Ok),
            stale: count(Outcome::Stale),
            fallback: count(Outcome::Fallback),
            shed: count(Outcome::Shed),
            failed: count(Outcome::Failed),
            cache_hits: self.inner.cache_hits.load(Ordering::Relaxed),
            p50: quantile(&all, 0.5),
            p99: quantile(&all, 0.99),
            p999: quantile(&all, 0.999),
            max: all.last().copied().unwrap_or_default(),
        }
    }
}

pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
