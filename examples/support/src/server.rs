//! How every listener of the example services serves: timeouts on the
//! request head (which also closes idle keep-alive connections), on the
//! body and on the whole request, a cap on the body (413) and on open
//! connections, and a pause instead of a spin when the process runs out of
//! file descriptors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// The limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client has to send a request's head, counted from the
    /// connection (or the end of the previous answer): an idle keep-alive
    /// connection is closed after this long.
    pub header_timeout: Duration,
    /// How long a client has to send a request's body.
    pub body_timeout: Duration,
    /// The largest body read (a larger one gets 413).
    pub max_body: usize,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_body: 1 << 20,
            max_connections: 1024,
        }
    }
}

/// `router` with the body limits of `limits`.
pub fn limited(router: Router, limits: Limits) -> Router {
    router
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(RequestBodyLimitLayer::new(limits.max_body))
}

/// Serves `router` on `listener` with `limits` until the future is
/// dropped, which closes every connection at once (as a process that dies
/// would). `accepted` counts the connections accepted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    accepted: Arc<AtomicU64>,
) {
    let router = limited(router, limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => break stream,
                    Err(error) => {
                        // Out of file descriptors (EMFILE, ENFILE) or a
                        // connection reset before it was accepted: pause
                        // rather than retry at once and spin.
                        // Counted in the log, a line a second at most.
                        super::log::repeated("accepts failed, each paused 100 ms", &error.to_string());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next() => {}
            }
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let _slot = slot;
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
