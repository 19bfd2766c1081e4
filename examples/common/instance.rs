//! An HTTP server on 127.0.0.1 that can be killed (its listener and every
//! open connection close at once, as when a process dies) and revived on
//! the same port.
//!
//! Written on hyper's connection API rather than `axum::serve`, whose
//! connection tasks outlive a stopped server: a killed instance must drop
//! its keep-alive connections too, or clients would not notice.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::faults::Faults;

/// A running (or killed) server.
#[derive(Debug)]
pub(crate) struct Instance {
    name: String,
    addr: SocketAddr,
    router: Router,
    faults: Arc<Faults>,
    server: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<std::sync::atomic::AtomicU64>,
}

impl Instance {
    /// Serves `router`, with `faults` applied, on `127.0.0.1:port` (0 for
    /// any free port).
    pub(crate) async fn start(
        name: impl Into<String>,
        port: u16,
        router: Router,
        faults: Arc<Faults>,
    ) -> std::io::Result<Arc<Instance>> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let router = super::faults::with_faults(router, faults.clone());
        let instance = Arc::new(Instance {
            name: name.into(),
            addr,
            router,
            faults,
            server: Mutex::new(None),
            connections: Arc::default(),
        });
        instance.serve(listener);
        instance.obey_admin();
        Ok(instance)
    }

    /// Goes down when the admin endpoint asks, and comes back after the
    /// time it gave.
    fn obey_admin(self: &Arc<Self>) {
        let mut asked = self.faults.down.subscribe();
        let instance = Arc::downgrade(self);
        tokio::spawn(async move {
            while asked.changed().await.is_ok() {
                let Some(time) = *asked.borrow_and_update() else {
                    continue;
                };
                let Some(this) = instance.upgrade() else {
                    return;
                };
                // Let the admin call's answer leave first.
                tokio::time::sleep(Duration::from_millis(100)).await;
                this.kill();
                tokio::time::sleep(time).await;
                if let Err(e) = this.revive().await {
                    eprintln!("{} cannot come back: {e}", this.name);
                }
            }
        });
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn is_up(&self) -> bool {
        self.lock().as_ref().is_some_and(|s| !s.is_finished())
    }

    /// Stops listening and drops every connection at once.
    pub(crate) fn kill(&self) {
        if let Some(server) = self.lock().take() {
            server.abort();
        }
    }

    /// Listens again on the same address.
    pub(crate) async fn revive(&self) -> std::io::Result<()> {
        if self.is_up() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.server.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn serve(&self, listener: TcpListener) {
        let router = self.router.clone();
        let counter = self.connections.clone();
        let server = tokio::spawn(async move {
            // Dropped with the task when the instance is killed: every
            // connection task is aborted with it.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let service = TowerToHyperService::new(router.clone());
                        connections.spawn(async move {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        *self.lock() = Some(server);
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}
