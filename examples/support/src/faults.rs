//! Fault injection for an instance: added latency, a share of 500s and a
//! cap on the requests it serves at once, set through an admin endpoint or
//! in process. (Going down and coming
//! back is the [`Instance`](super::instance::Instance)'s.)

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// What an instance does wrong on purpose.
#[derive(Debug, Default)]
pub struct Faults {
    latency_ms: AtomicU64,
    /// Errors per thousand requests.
    error_permille: AtomicU32,
    requests: AtomicU64,
    /// The requests served at once (the rest wait their turn), if capped.
    capacity: Mutex<Option<(u32, Arc<tokio::sync::Semaphore>)>>,
    /// Asks the instance to go down for a while (see
    /// [`Instance`](super::instance::Instance)).
    pub down: tokio::sync::watch::Sender<Option<Duration>>,
}

/// `POST /admin/down` with `{"seconds": 5}`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Down {
    pub seconds: f64,
}

/// The faults as the admin endpoint reads and writes them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct FaultSettings {
    /// Added to every request.
    #[serde(default)]
    pub latency_ms: u64,
    /// The share of requests answered with a 500, in [0, 1].
    #[serde(default)]
    pub error_rate: f64,
    /// How many requests are served at once, each taking at least
    /// `latency_ms`; the rest wait their turn, in order. 0: no cap.
    #[serde(default)]
    pub capacity: u32,
}

impl Faults {
    pub fn set(&self, settings: FaultSettings) {
        self.latency_ms
            .store(settings.latency_ms, Ordering::Relaxed);
        let permille = (settings.error_rate.clamp(0.0, 1.0) * 1000.0).round() as u32;
        self.error_permille.store(permille, Ordering::Relaxed);
        // Requests holding a place under the old cap finish under it.
        *self.capacity() = (settings.capacity > 0).then(|| {
            let places = tokio::sync::Semaphore::new(settings.capacity as usize);
            (settings.capacity, Arc::new(places))
        });
    }

    fn capacity(&self) -> std::sync::MutexGuard<'_, Option<(u32, Arc<tokio::sync::Semaphore>)>> {
        self.capacity.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self) -> FaultSettings {
        FaultSettings {
            latency_ms: self.latency_ms.load(Ordering::Relaxed),
            error_rate: f64::from(self.error_permille.load(Ordering::Relaxed)) / 1000.0,
            capacity: self.capacity().as_ref().map_or(0, |(cap, _)| *cap),
        }
    }

    /// Requests that reached the instance (not the admin or metrics ones).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn heal(&self) {
        self.set(FaultSettings::default());
    }

    /// Whether this request fails: errors are spread evenly, `permille` in
    /// every thousand requests, so the rate holds over any short run.
    fn fails(&self) -> bool {
        let permille = u64::from(self.error_permille.load(Ordering::Relaxed));
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        (n + 1) * permille / 1000 > n * permille / 1000
    }
}

/// The middleware that applies `faults` to every request but the metrics
/// ones.
pub async fn inject(State(faults): State<Arc<Faults>>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/metrics" {
        return next.run(request).await;
    }
    let places = faults.capacity().as_ref().map(|(_, places)| places.clone());
    // Held until the answer is made: a place among the requests served.
    let _place = match places {
        Some(places) => places.acquire_owned().await.ok(),
        None => None,
    };
    let latency = faults.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if faults.fails() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "injected fault").into_response();
    }
    next.run(request).await
}

/// The admin routes, for the admin listener only: `GET /admin/faults`
/// reads the faults, `POST /admin/faults` with
/// `{"latency_ms": 200, "error_rate": 0.5, "capacity": 4}` sets them, and
/// `POST /admin/down` with `{"seconds": 5}` takes the instance down (its
/// public port closed, its connections dropped) and brings it back after
/// that long.
pub fn admin_routes(faults: Arc<Faults>) -> Router {
    Router::new()
        .route(
            "/admin/down",
            axum::routing::post(
                |State(faults): State<Arc<Faults>>, Json(down): Json<Down>| async move {
                    let Ok(time) = Duration::try_from_secs_f64(down.seconds) else {
                        return (StatusCode::UNPROCESSABLE_ENTITY, "seconds: a duration in seconds")
                            .into_response();
                    };
                    faults.down.send_replace(Some(time));
                    (StatusCode::ACCEPTED, format!("down for {time:?}")).into_response()
                },
            ),
        )
        .route(
            "/admin/faults",
            axum::routing::get(|State(faults): State<Arc<Faults>>| async move {
                Json(faults.get())
            })
            .post(
                |State(faults): State<Arc<Faults>>, Json(settings): Json<FaultSettings>| async move {
                    faults.set(settings);
                    Json(faults.get())
                },
            ),
        )
        .with_state(faults)
}

/// `router` with `faults` applied. The admin routes are not added: they
/// are served on the instance's admin listener only.
pub fn with_faults(router: Router, faults: Arc<Faults>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(faults, inject))
}
