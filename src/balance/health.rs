//! Active health checks: a probe of each endpoint at an interval, apart
//! from the requests.
//!
//! [`LoadBalance::health_check`](super::LoadBalance::health_check) starts
//! one task per balancer. Each round it probes every endpoint once, the
//! probes spread over the interval (each gap stretched or shrunk by up to
//! `jitter`, so that many balancers do not probe in step) and at most
//! `concurrency` at a time; the task ends when the last clone of the
//! balancer is dropped. Each round also applies what discovery reported,
//! so that endpoints found before the first request are probed before it.
//!
//! - A probe that fails, or takes longer than `timeout`, counts against
//!   the endpoint; `unhealthy_threshold` failures in a row mark it
//!   unhealthy, and it takes no requests. `healthy_threshold` successes in
//!   a row mark it healthy again. New endpoints start healthy.
//! - With passive outlier detection as well, an endpoint that the
//!   requests' failures ejected comes back only through the probes
//!   (`healthy_threshold` successes in a row while ejected), never by
//!   letting a client's request through to try it.
//! - Unhealthy endpoints count with the ejected ones towards the panic
//!   threshold; without outlier detection, when every endpoint is
//!   unhealthy the balancer uses them all rather than fail every request.
//!
//! A probe is the caller's closure ([`HealthCheck::new`]) or an HTTP `GET`
//! of a path on the endpoint's address ([`HealthCheck::http_get`]): never
//! a client's request.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::endpoint::Endpoint;
use super::service::Shared;
use crate::BoxError;
use crate::config::{Check, ConfigError};

type Probe<K> =
    Arc<dyn Fn(&K) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> + Send + Sync>;

/// An active health check: how to probe an endpoint, how often, and how
/// many results in a row change its health. See the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use tower_bulwark::balance::HealthCheck;
///
/// // Any check: here, that a TCP connection opens.
/// let check = HealthCheck::new(|addr: &std::net::SocketAddr| {
///     let addr = *addr;
///     async move {
///         tokio::net::TcpStream::connect(addr).await?;
///         Ok::<(), std::io::Error>(())
///     }
/// })
/// .interval(Duration::from_secs(5))
/// .thresholds(2, 3);
/// # let _ = check;
/// ```
pub struct HealthCheck<K> {
    probe: Probe<K>,
    pub(crate) interval: Duration,
    jitter: f64,
    timeout: Duration,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
    concurrency: usize,
}

impl<K> Clone for HealthCheck<K> {
    fn clone(&self) -> Self {
        HealthCheck {
            probe: self.probe.clone(),
            interval: self.interval,
            jitter: self.jitter,
            timeout: self.timeout,
            healthy_threshold: self.healthy_threshold,
            unhealthy_threshold: self.unhealthy_threshold,
            concurrency: self.concurrency,
        }
    }
}

impl<K> fmt::Debug for HealthCheck<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthCheck")
            .field("interval", &self.interval)
            .field("jitter", &self.jitter)
            .field("timeout", &self.timeout)
            .field("healthy_threshold", &self.healthy_threshold)
            .field("unhealthy_threshold", &self.unhealthy_threshold)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl<K> HealthCheck<K> {
    /// Probes an endpoint with `probe`, given its key: `Ok` is healthy.
    ///
    /// Defaults: every 10 s with 10 % jitter, a 1 s timeout, healthy after
    /// 2 successes in a row and unhealthy after 3 failures, 64 probes at a
    /// time at most.
    pub fn new<F, Fut, E>(probe: F) -> Self
    where
        F: Fn(&K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let probe: Probe<K> = Arc::new(move |key: &K| {
            let probe = probe(key);
            Box::pin(async move { probe.await.map_err(Into::into) })
        });
        HealthCheck {
            probe,
            interval: Duration::from_secs(10),
            jitter: 0.1,
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            concurrency: 64,
        }
    }

    /// Probes with an HTTP `GET` of `path` at `http://{key}{path}` (the
    /// key is the endpoint's address, as discovery gives it), sent by
    /// `client` (hyper-util's `Client`, say): healthy on a 2xx answer.
    ///
    /// # Errors
    ///
    /// A `path` that does not start with `/` or is not a valid path and
    /// query (`health_check.path`), as a [`ConfigError`].
    #[cfg(feature = "http")]
    pub fn http_get<C, B, RB>(client: C, path: &str) -> Result<Self, ConfigError>
    where
        K: fmt::Display,
        C: tower_service::Service<http::Request<B>, Response = http::Response<RB>>
            + Clone
            + Send
            + Sync
            + 'static,
        C::Future: Send,
        C::Error: Into<BoxError>,
        B: Default + Send + 'static,
        RB: Send + 'static,
    {
        let check = Check::layer("load balance");
        if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(check.invalid(
                "health_check.path",
                "an absolute path and query, such as /healthz",
            ));
        }
        let path: Arc<str> = Arc::from(path);
        Ok(Self::new(move |key: &K| {
            let uri = format!("http://{key}{path}");
            let mut client = client.clone();
            async move {
                // Not `ServiceExt::oneshot`: tower's `util` may be off.
                let request = http::Request::get(uri).body(B::default())?;
                std::future::poll_fn(|cx| client.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let response = client.call(request).await.map_err(Into::into)?;
                if response.status().is_success() {
                    Ok::<(), BoxError>(())
                } else {
                    Err(format!("health check answered {}", response.status()).into())
                }
            }
        }))
    }

    /// Probes every endpoint once per `interval`. Default: 10 s.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Stretches or shrinks each gap between probes by up to this share,
    /// at random, in [0, 1]. Default: 0.1.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// A probe that takes longer fails. Default: 1 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Successes in a row that mark an unhealthy (or ejected) endpoint
    /// healthy, and failures in a row that mark a healthy one unhealthy.
    /// Default: 2 and 3.
    pub fn thresholds(mut self, healthy: u32, unhealthy: u32) -> Self {
        self.healthy_threshold = healthy;
        self.unhealthy_threshold = unhealthy;
        self
    }

    /// Probes in flight at most. Default: 64.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let check = Check::layer("load balance");
        check.duration("health_check.interval", self.interval)?;
        check.duration("health_check.timeout", self.timeout)?;
        check.ratio("health_check.jitter", self.jitter)?;
        check.nonzero(
            "health_check.healthy_threshold",
            self.healthy_threshold.into(),
        )?;
        check.nonzero(
            "health_check.unhealthy_threshold",
            self.unhealthy_threshold.into(),
        )?;
        check.nonzero("health_check.concurrency", self.concurrency as u64)?;
        Ok(())
    }
}

/// The probing task: round after round over the set, until the balancer
/// is gone.
pub(crate) async fn run<K, S>(
    shared: Weak<Shared<K, S>>,
    check: HealthCheck<K>,
    number: u64,
    seed: u64,
) where
    K: Eq + std::hash::Hash + Clone + fmt::Display + Send + Sync + 'static,
    S: Send + Sync + 'static,
{
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut probes = tokio::task::JoinSet::new();
    loop {
        let set = match shared.upgrade() {
            Some(shared) if shared.checks(number) => {
                // Discovery is otherwise applied by the requests: endpoints
                // found before the first one are probed before it too.
                shared.poll_discovery();
                shared.current()
            }
            _ => return,
        };
        if set.len() == 0 {
            tokio::time::sleep(check.interval).await;
            continue;
        }
        let gap = check.interval / u32::try_from(set.len().max(1)).unwrap_or(u32::MAX);
        for endpoint in set.iter() {
            let stretch = 1.0 + check.jitter * (rng.random::<f64>() * 2.0 - 1.0);
            tokio::time::sleep(gap.mul_f64(stretch)).await;
            if !shared.upgrade().is_some_and(|shared| shared.checks(number)) {
                return;
            }
            if endpoint.is_removed() {
                continue;
            }
            while probes.len() >= check.concurrency {
                probes.join_next().await;
            }
            let probe = tokio::time::timeout(check.timeout, (check.probe)(&endpoint.key));
            let endpoint: Arc<Endpoint<K, S>> = endpoint.clone();
            let thresholds = (check.healthy_threshold, check.unhealthy_threshold);
            probes.spawn(async move {
                let healthy = matches!(probe.await, Ok(Ok(())));
                endpoint.probed(healthy, thresholds);
            });
        }
        // Finished probes are not kept.
        while probes.try_join_next().is_some() {}
    }
}
