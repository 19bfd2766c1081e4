//! The whole picture in one process: three user service instances, three
//! order service instances over one SQLite database, and a gateway in
//! front of them, all on 127.0.0.1 with free ports; clients drive traffic
//! through the gateway while a script breaks things; a live view shows
//! what the layers did, and a summary defines every figure it gives.
//!
//! ```text
//! cargo run --release --example demo
//! cargo run --release --example demo -- --duration 120 --clients 32
//! cargo run --release --example demo -- --no-faults
//! cargo run --release --example demo -- --help
//! ```
//!
//! The script (at these shares of `--duration`, 60 s by default):
//!
//! | when | fault | what should happen |
//! |---|---|---|
//! | 10 % | user-2 answers 400 ms late | peak EWMA sends it almost nothing; the tail stays short |
//! | 20 % | user-3 fails half its requests | retries hide the failures; outlier detection ejects it |
//! | 30 % | order-1 is killed | its connections reset; it is ejected, no request is lost |
//! | 40 % | all healed, order-1 back | the ejected return on probation and take traffic again |
//! | 50 % | every user instance down | the users breaker opens; reads are answered stale or by the fallback; new orders get 503 with `Retry-After`, and the orders breaker stays closed |
//! | 64 % | the user service is back | a probe closes the breaker; everything succeeds again |
//! | 76 % | the user service serves 150 requests a second, and a surge asks 600 of it | the gateway's learned concurrency limit falls; what it cannot serve is shed at once (503, or the cached answer) instead of waiting for its timeout, and the breaker stays closed |
//! | 90 % | the overload is over | the limit grows back; everything succeeds again |
//!
//! It exits with an error if any request went unanswered (no response and
//! no error within 15 s), which is what CI checks. The instances and
//! the gateway are in `system.rs`, the script in `script.rs`, the clients
//! and their statistics in `traffic.rs`, the layers' events in
//! `events.rs`, the live view in `view.rs` and the summary in
//! `summary.rs`.

use bulwark_examples as common;
mod events;
mod script;
mod summary;
mod system;
mod traffic;
mod view;

use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;
use tower::BoxError;
use tower_bulwark::event::Events;

use common::db::TemporaryDb;
use events::EventLog;
use system::System;
use traffic::Traffic;
use view::{Frame, View};

/// tower-bulwark's demo: a gateway in front of user and order services
/// that survives the faults a script injects.
#[derive(Debug, Parser)]
struct Flags {
    /// How long the run lasts, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration: u64,
    /// Clients sending requests through the gateway, each one at a time.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=512))]
    clients: u64,
    /// Run without the fault script.
    #[arg(long)]
    no_faults: bool,
    /// The gateway's port on 127.0.0.1 (0: any free port; 3000 is the one
    /// `ops/prometheus/prometheus.yml` scrapes).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let flags = Flags::parse();
    let duration = Duration::from_secs(flags.duration);

    // The recorder first: layers resolve their metric handles when built.
    let metrics = common::prometheus();
    let log = EventLog::default();
    let events = Events::new();
    let logged = log.clone();
    events.subscribe(move |event| logged.record(event));

    let database = TemporaryDb::new("demo");
    let system = System::start(&database, flags.port, &events).await?;
    log.set_names(system.names());
    println!("{}", system.describe(flags.clients, duration));

    let start = Instant::now();
    let traffic = Traffic::new(&system.client, &system.gateway_url, start + duration);
    traffic.clients(flags.clients);

    // Once a second: the script's next steps, then a frame of the view.
    let (script, mut phase) = match flags.no_faults {
        true => (Vec::new(), "no faults"),
        false => (script::script(duration), "warming up"),
    };
    let mut steps = script.iter().peekable();
    let view = View::start(duration);
    let mut ticker =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    while start.elapsed() < duration {
        ticker.tick().await;
        let elapsed = start.elapsed();
        while let Some(step) = steps.next_if(|step| step.at <= elapsed) {
            phase = step.label;
            log.note(format!("fault script: {}", step.label));
            let problem = script::apply(step.action, &system.users, &system.orders, &traffic).await;
            if let Some(problem) = problem {
                log.note(problem);
            }
        }
        view.show(Frame {
            elapsed,
            phase: phase.to_owned(),
            window: traffic.stats.take_window(),
            breakers: system.breakers(),
            limits: system.limits(),
            ejected: log.ejected().join(", "),
            lines: log.take_pending(),
        });
    }
    traffic.finish().await?;
    view.finish();

    let totals = traffic.stats.totals();
    metrics.run_upkeep();
    println!("\n== summary after {:.0?}", start.elapsed());
    for line in summary::lines(&totals, &metrics.render(), &log.transitions()) {
        println!("{line}");
    }
    println!(
        "\nThe gateway's metrics are at {}/metrics while the demo runs:\n\
         for Prometheus (ops/prometheus/) and Grafana (ops/grafana/), run it\n\
         longer on port 3000: --duration 600 --port 3000.",
        system.gateway_url
    );
    drop(system);
    if totals.unanswered > 0 {
        return Err(format!("{} requests went unanswered", totals.unanswered).into());
    }
    Ok(())
}
