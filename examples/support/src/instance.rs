//! An HTTP server on 127.0.0.1 that can be killed (its listener and every
//! open connection close at once, as when a process dies) and revived on
//! the same port, with its admin routes on a listener of their own.
//!
//! The public listener serves the service's routes, with the injected
//! faults. The admin listener, on another port of 127.0.0.1, serves
//! `/admin/faults` and `/admin/down` and nothing else: no request to the
//! public port (or through the gateway) can reach them. Both serve with
//! [`server::serve`](super::server::serve)'s timeouts and limits.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::faults::Faults;
use super::server::{Limits, serve};

/// A running (or killed) server.
#[derive(Debug)]
pub struct Instance {
    name: String,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    router: Router,
    faults: Arc<Faults>,
    limits: Limits,
    server: Mutex<Option<JoinHandle<()>>>,
    admin: JoinHandle<()>,
    connections: Arc<AtomicU64>,
}

impl Instance {
    /// Serves `router`, with `faults` applied, on `127.0.0.1:port`, and
    /// the admin routes on `127.0.0.1:admin_port` (0 for any free port).
    pub async fn start(
        name: impl Into<String>,
        port: u16,
        admin_port: u16,
        router: Router,
        faults: Arc<Faults>,
        limits: Limits,
    ) -> std::io::Result<Arc<Instance>> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let admin_listener = TcpListener::bind(("127.0.0.1", admin_port)).await?;
        let (addr, admin_addr) = (listener.local_addr()?, admin_listener.local_addr()?);
        let router = super::faults::with_faults(router, faults.clone());
        let admin = tokio::spawn(serve(
            admin_listener,
            super::faults::admin_routes(faults.clone()),
            limits,
            Arc::default(),
        ));
        let instance = Arc::new(Instance {
            name: name.into(),
            addr,
            admin_addr,
            router,
            faults,
            limits,
            server: Mutex::new(None),
            admin,
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
                if let Err(error) = this.revive().await {
                    tracing::error!(instance = this.name, %error, "cannot come back");
                }
            }
        });
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin listener's URL.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn is_up(&self) -> bool {
        self.lock().as_ref().is_some_and(|s| !s.is_finished())
    }

    /// Stops listening and drops every connection at once.
    pub fn kill(&self) {
        if let Some(server) = self.lock().take() {
            server.abort();
        }
    }

    /// Listens again on the same address.
    pub async fn revive(&self) -> std::io::Result<()> {
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
        // Aborted with its connections when the instance is killed.
        let server = tokio::spawn(serve(
            listener,
            self.router.clone(),
            self.limits,
            self.connections.clone(),
        ));
        *self.lock() = Some(server);
    }
}

/// What a standalone service binary does: serves `app` and `/metrics` on
/// `127.0.0.1:port`, its admin routes on `admin_port`, with `limits`,
/// until Ctrl-C.
pub async fn run(
    name: &str,
    port: u16,
    admin_port: u16,
    app: Router,
    limits: Limits,
) -> Result<(), tower::BoxError> {
    let app = app.merge(super::metrics_route());
    let instance = Instance::start(name, port, admin_port, app, Arc::default(), limits).await?;
    tracing::info!(
        url = instance.url(),
        admin = instance.admin_url(),
        "{name} up"
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        self.admin.abort();
    }
}
