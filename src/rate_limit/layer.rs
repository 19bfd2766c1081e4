use std::hash::Hash;
use std::sync::Arc;

use tower_layer::Layer;

use super::config::RateLimitConfig;
use super::limiter::{Global, Keyed};
use super::service::{RateLimiter, Shared};
use crate::admission::telemetry::Telemetry;
use crate::config::ConfigError;

/// Applies a [`RateLimiter`] to services; every service it wraps shares its
/// limit (or its keys' limits). See the [module docs](super).
#[derive(Debug)]
pub struct RateLimitLayer<L = Global> {
    shared: Arc<Shared<L>>,
}

impl<L> Clone for RateLimitLayer<L> {
    fn clone(&self) -> Self {
        RateLimitLayer {
            shared: self.shared.clone(),
        }
    }
}

impl RateLimitLayer {
    /// One limit for every call.
    ///
    /// # Errors
    ///
    /// A zero `calls`, `period` or `max_keys`, or more calls than
    /// nanoseconds in the period, as a [`ConfigError`] naming the field.
    pub fn new(config: RateLimitConfig) -> Result<Self, ConfigError> {
        let quota = config.quota()?;
        Ok(Self::with(&config, Global::new(quota)))
    }

    /// One limit per key, `key` reading it from each request (a client's
    /// address, an API key, a tenant); at most
    /// [`max_keys`](RateLimitConfig::max_keys) keys are held.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn keyed<F, K, Req>(
        config: RateLimitConfig,
        key: F,
    ) -> Result<RateLimitLayer<Keyed<F, K>>, ConfigError>
    where
        F: Fn(&Req) -> K,
        K: Hash + Eq + Clone + Send + Sync + 'static,
    {
        let quota = config.quota()?;
        Ok(RateLimitLayer::with(
            &config,
            Keyed::new(quota, key, config.max_keys),
        ))
    }
}

impl<L> RateLimitLayer<L> {
    #[cfg(feature = "stack")]
    pub(crate) fn shared(&self) -> &Arc<Shared<L>> {
        &self.shared
    }

    fn with(config: &RateLimitConfig, limiter: L) -> Self {
        RateLimitLayer {
            shared: Arc::new(Shared {
                limiter,
                max_wait: config.max_wait,
                telemetry: Telemetry::rejections(
                    config.service_name(),
                    "rate_limit",
                    config.events.clone(),
                ),
            }),
        }
    }
}

impl<F, K: Hash + Eq + Clone + Send + Sync + 'static> RateLimitLayer<Keyed<F, K>> {
    /// Keys whose limits are held now (at most `max_keys`).
    pub fn keys(&self) -> u64 {
        self.shared.limiter.keys()
    }
}

impl<S, L> Layer<S> for RateLimitLayer<L> {
    type Service = RateLimiter<S, L>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimiter::new(inner, self.shared.clone())
    }
}
