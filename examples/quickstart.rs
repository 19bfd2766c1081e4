//! A flaky backend behind a circuit breaker with a fallback and a timeout.
//!
//! The backend is healthy, then fails every call, then becomes slow, then
//! recovers. The client keeps calling it at a steady rate through
//!
//! ```text
//! CircuitBreaker (fallback: a cached answer) → Timeout (200 ms) → backend
//! ```
//!
//! and prints, per phase, what each layer did: answers from the backend,
//! answers from the fallback, timeouts, and the breaker's state changes.
//! Every call gets an answer. Run with:
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower::{BoxError, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_bulwark::circuit_breaker::{
    CircuitBreakerConfig, CircuitBreakerLayer, CircuitEvent, OpenDuration, SlidingWindow,
};
use tower_bulwark::event::{Event, Events};
use tower_bulwark::timeout::{TimeoutLayer, error::Elapsed};

const HEALTHY: u8 = 0;
const FAILING: u8 = 1;
const SLOW: u8 = 2;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mode = Arc::new(AtomicU8::new(HEALTHY));
    let backend = {
        let mode = mode.clone();
        service_fn(move |id: u32| {
            let mode = mode.load(Ordering::Relaxed);
            async move {
                match mode {
                    FAILING => Err::<String, BoxError>("backend error".into()),
                    SLOW => {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        Ok(format!("item {id} (slow)"))
                    }
                    _ => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        Ok(format!("item {id}"))
                    }
                }
            }
        })
    };

    // The breaker's state changes, as its events tell them.
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let log = transitions.clone();
    let events = Events::new();
    events.subscribe(move |event| {
        if let Event::Circuit(CircuitEvent::StateTransition { from, to, .. }) = event {
            if let Ok(mut log) = log.lock() {
                log.push((*from, *to));
            }
        }
    });
    let breaker = CircuitBreakerLayer::new(
        CircuitBreakerConfig::default()
            .service("inventory")
            .sliding_window(SlidingWindow::count(20))
            .minimum_calls(10)
            .failure_rate_threshold(0.5)
            .open_duration(OpenDuration::fixed(Duration::from_millis(500)))
            .events(&events),
    )?
    .fallback(service_fn(|id: u32| async move {
        Ok::<_, BoxError>(format!("item {id} (cached)"))
    }));
    let handle = breaker.handle();

    let mut client = ServiceBuilder::new()
        .layer(breaker)
        .layer(TimeoutLayer::new(Duration::from_millis(200))?)
        .service(backend);

    println!(
        "{:<22} {:>7} {:>8} {:>8} {:>8}   breaker",
        "phase", "backend", "fallback", "errors", "timeouts"
    );
    let phases = [
        ("healthy", HEALTHY, 1),
        ("failing every call", FAILING, 2),
        ("slow (2 s a call)", SLOW, 1),
        ("healthy again", HEALTHY, 2),
    ];
    let mut id = 0;
    for (name, phase_mode, seconds) in phases {
        mode.store(phase_mode, Ordering::Relaxed);
        let (mut backend_answers, mut fallback_answers, mut errors, mut timeouts) = (0, 0, 0, 0);
        let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
        while tokio::time::Instant::now() < until {
            id += 1;
            match client.ready().await?.call(id).await {
                Ok(answer) if answer.ends_with("(cached)") => fallback_answers += 1,
                Ok(_) => backend_answers += 1,
                Err(e) if e.is::<Elapsed>() => timeouts += 1,
                // The backend's own error, passed through while closed.
                Err(_) => errors += 1,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let changes = transitions
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        // The states the breaker went through: "closed → open → half_open → ...".
        let breaker = match changes.first() {
            None => handle.state().to_string(),
            Some((first, _)) => changes.iter().fold(first.to_string(), |chain, (_, to)| {
                format!("{chain} → {to}")
            }),
        };
        println!(
            "{name:<22} {backend_answers:>7} {fallback_answers:>8} {errors:>8} {timeouts:>8}   {breaker}"
        );
    }
    let snapshot = handle.snapshot();
    println!(
        "\nfinal state: {}, window: {} calls, {} failures",
        snapshot.state, snapshot.calls, snapshot.failures
    );
    Ok(())
}
