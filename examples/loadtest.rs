//! Load test: the gateway with the full stack against a bare proxy with the
//! same routes and no layer, over the same instances on loopback.
//!
//! ```text
//! cargo run --release --example loadtest
//! cargo run --release --example loadtest -- --duration 20 --clients 64 --rounds 5
//! ```
//!
//! For each mode it starts three user and three order instances and a
//! gateway on 127.0.0.1, lets clients warm it up for a second, then drives
//! a closed loop (`--clients` clients, each sending its next request when
//! the last is answered: 80 % reads of users, 10 % reads of orders, 10 %
//! new orders) for `--duration` seconds, and prints requests per second,
//! success, p50, p99 and the process's CPU time per request. The modes
//! take turns for `--rounds` rounds (3): each figure is the median over
//! the rounds, and a mode's share of the bare proxy's figure is the median
//! of the rounds' shares (the runs of one round meet the same spell of a
//! shared machine). The modes:
//!
//! - `bare`: each instance in turn, nothing else;
//! - `stack`: the gateway's `ResilienceLayer` without its cache (metrics,
//!   retries, breaker, timeout, peak EWMA with outlier ejection): the cost
//!   of the layers;
//! - `stack+cache`: the gateway as the demo runs it, whose cache answers
//!   most reads from memory.
//!
//! Everything runs in one process on the same cores, so the figures are
//! for comparing the modes with each other, not for sizing a server.

use bulwark_examples as common;

use std::time::{Duration, Instant};

use tower::BoxError;
use tower_bulwark::event::Events;

use clap::Parser;
use common::db::{Db, TemporaryDb};
use common::fleet;
use common::gateway::{Gateway, bare_router};

/// Load test of the gateway: the full stack against a bare proxy.
#[derive(Debug, Parser)]
struct Flags {
    /// Seconds each run lasts, after a second of warm-up.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Clients, each sending its next request when the last is answered.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    clients: u64,
    /// The modes to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "bare,stack,stack+cache")]
    modes: Vec<Mode>,
    /// How many times each mode runs, in turn with the others.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
    rounds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// Each instance in turn, nothing else.
    Bare,
    /// The gateway's stack without its cache.
    Stack,
    /// The gateway as the demo runs it.
    #[value(name = "stack+cache")]
    StackCache,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Mode::Bare => "bare",
            Mode::Stack => "stack",
            Mode::StackCache => "stack+cache",
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let flags = Flags::parse();
    let duration = Duration::from_secs(flags.duration);
    let clients = flags.clients as usize;
    let (modes, rounds) = (flags.modes, flags.rounds);
    let _ = common::prometheus();
    println!(
        "{clients} clients, {}s per run after a 1s warm-up, {rounds} rounds of the modes in turn \
         (medians over the rounds), gateway and instances on 127.0.0.1\n",
        duration.as_secs()
    );
    // The modes take turns, so that a slower or faster spell of the
    // machine falls on all of them.
    let mut runs: Vec<Vec<Figures>> = modes.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for (mode, runs) in modes.iter().zip(&mut runs) {
            let figures = run(*mode, clients, duration).await?;
            eprintln!(
                "round {round}: {mode:<12} {:>8.0} req/s  p99 {:>8.2?}  cpu/request {:>8.2?}",
                figures.rate, figures.p99, figures.cpu_per_request
            );
            runs.push(figures);
        }
    }
    println!(
        "{:<12} {:>10} {:>9} {:>9} {:>9} {:>11} {:>13} {:>11}",
        "mode", "req/s", "ok %", "p50", "p99", "vs bare", "cpu/request", "vs bare"
    );
    // Against bare: the median over rounds of each round's ratio, the runs
    // of one round having met the same spell of the machine.
    let bare_runs = modes
        .iter()
        .position(|m| *m == Mode::Bare)
        .map(|i| &runs[i]);
    let ratios = |i: usize, of: &dyn Fn(&Figures) -> f64| -> String {
        let Some(bare) = bare_runs else {
            return String::new();
        };
        let mut ratios: Vec<f64> = runs[i]
            .iter()
            .zip(bare)
            .map(|(r, b)| of(r) / of(b))
            .collect();
        ratios.sort_by(f64::total_cmp);
        format!("{:.1} %", ratios[ratios.len() / 2] * 100.0)
    };
    for (i, mode) in modes.iter().enumerate() {
        let median = |of: &dyn Fn(&Figures) -> f64| {
            let mut values: Vec<f64> = runs[i].iter().map(of).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let (rate_ratio, cpu_ratio) = if *mode == Mode::Bare {
            (String::new(), String::new())
        } else {
            (
                ratios(i, &|f| f.rate),
                ratios(i, &|f| f.cpu_per_request.as_secs_f64()),
            )
        };
        println!(
            "{:<12} {:>10.0} {:>9.2} {:>9.2?} {:>9.2?} {:>11} {:>13.1?} {:>11}",
            mode.to_string(),
            median(&|f| f.rate),
            median(&|f| f.ok) * 100.0,
            Duration::from_secs_f64(median(&|f| f.p50.as_secs_f64())),
            Duration::from_secs_f64(median(&|f| f.p99.as_secs_f64())),
            rate_ratio,
            Duration::from_secs_f64(median(&|f| f.cpu_per_request.as_secs_f64())),
            cpu_ratio
        );
    }
    Ok(())
}

struct Figures {
    rate: f64,
    ok: f64,
    p50: Duration,
    p99: Duration,
    /// CPU time of the whole process (clients, gateway, instances) per
    /// request: steadier than the rate on a shared machine.
    cpu_per_request: Duration,
}

/// CPU time this process has used, from `/proc/self/stat` (Linux; zero
/// elsewhere).
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces): utime and
    // stime are the 12th and 13th, in clock ticks of 1/100 s.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

async fn run(mode: Mode, clients: usize, duration: Duration) -> Result<Figures, BoxError> {
    let client = common::client::reqwest_client()?;
    let events = Events::new();
    let database = TemporaryDb::new("loadtest");
    let db = Db::connect(&database.url()).await?;
    let users = fleet::users(3, &db).await?;
    let user_urls = fleet::urls(&users);
    let orders = fleet::orders(3, &db, &user_urls, &client, &events).await?;
    let order_urls = fleet::urls(&orders);
    let app = match mode {
        Mode::Bare => bare_router(&user_urls, &order_urls, client.clone()),
        Mode::Stack => {
            Gateway::with_cache(&user_urls, &order_urls, client.clone(), &events, None)?.router()
        }
        Mode::StackCache => {
            Gateway::new(&user_urls, &order_urls, client.clone(), &events)?.router()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = format!("http://{}", listener.local_addr()?);
    let limits = common::server::Limits::default();
    let server = tokio::spawn(common::server::serve(
        listener,
        app,
        limits,
        Default::default(),
    ));

    let _ = drive(&client, &gateway, clients, Duration::from_secs(1)).await;
    let (started, cpu) = (Instant::now(), cpu_time());
    let mut latencies = drive(&client, &gateway, clients, duration).await;
    let (elapsed, cpu) = (started.elapsed(), cpu_time().saturating_sub(cpu));
    server.abort();
    let connections: u64 = users.iter().chain(&orders).map(|i| i.connections()).sum();
    eprintln!("{mode}: {connections} connections opened to the instances");
    drop((users, orders, db));

    let answered = latencies.len();
    let ok = latencies.iter().filter(|(_, ok)| *ok).count();
    latencies.sort();
    let sorted: Vec<Duration> = latencies.iter().map(|(latency, _)| *latency).collect();
    let quantile = |q: f64| fleet::quantile(&sorted, q);
    Ok(Figures {
        rate: answered as f64 / elapsed.as_secs_f64(),
        ok: ok as f64 / answered as f64,
        p50: quantile(0.5),
        p99: quantile(0.99),
        cpu_per_request: cpu / u32::try_from(answered).unwrap_or(u32::MAX).max(1),
    })
}

/// `clients` closed loops for `duration`: each request's latency, and
/// whether it succeeded.
async fn drive(
    client: &reqwest::Client,
    gateway: &str,
    clients: usize,
    duration: Duration,
) -> Vec<(Duration, bool)> {
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (client, gateway) = (client.clone(), gateway.to_owned());
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut i = c as u64 * 7919;
                while Instant::now() < deadline {
                    i += 1;
                    let user = 1 + (i * 31) % 60;
                    let request = match i % 10 {
                        0..=7 => client.get(format!("{gateway}/users/{user}")),
                        8 => client.get(format!("{gateway}/orders?user_id={user}")),
                        _ => client
                            .post(format!("{gateway}/orders"))
                            .header("content-type", "application/json")
                            .body(format!(r#"{{"user_id":{user},"item":"book"}}"#)),
                    };
                    let started = Instant::now();
                    let ok = match request.send().await {
                        Ok(response) => {
                            let ok = response.status().is_success();
                            ok && response.bytes().await.is_ok()
                        }
                        Err(_) => false,
                    };
                    out.push((started.elapsed(), ok));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        if let Ok(out) = task.await {
            all.extend(out);
        }
    }
    all
}
