use std::time::Duration;

use crate::adaptive::AdaptiveConfig;
use crate::balance::BalanceConfig;
use crate::bulkhead::BulkheadConfig;
use crate::cache::CacheConfig;
use crate::circuit_breaker::CircuitBreakerConfig;
use crate::config::{Check, ConfigError};
use crate::hedge::HedgeConfig;
use crate::rate_limit::RateLimitConfig;
use crate::retry::RetryConfig;

/// Configuration of a [`ResilienceLayer`](super::ResilienceLayer): one
/// section per layer, each optional.
///
/// | section | default | |
/// |---|---|---|
/// | `metrics` | on | RED metrics of the whole stack |
/// | `cache` | off | needs a key function ([`cache_key`](super::ResilienceBuilder::cache_key)) |
/// | `rate_limit` | off | calls per unit of time ([`crate::rate_limit`]) |
/// | `bulkhead` | off | a fixed cap on calls in flight ([`crate::bulkhead`]) |
/// | `adaptive_concurrency` | off | a cap learned from latency ([`crate::adaptive`]); not with `bulkhead` |
/// | `retry` | off | sends requests again: turn on for idempotent requests only |
/// | `circuit_breaker` | on, [`CircuitBreakerConfig::default`] | |
/// | `hedge` | off | sends requests twice: idempotent requests only |
/// | `timeout` | 10 s | per attempt |
/// | `balance` | [`BalanceConfig::default`] | used by [`ResilienceLayer::balance`](super::ResilienceLayer::balance) and [`discover`](super::ResilienceLayer::discover) |
///
/// [`service`](Self::service) names the downstream service: it is the
/// `service` label of every layer's metrics and the name in every event,
/// whatever the sections say.
///
/// With the `toml` or `yaml` feature the configuration can be read from a
/// file; see `ResilienceConfig::from_toml`, `from_yaml` and `from_file`
/// (with `serde` alone, it is `Deserialize` for any format serde reads).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bulwark::retry::RetryConfig;
/// use tower_bulwark::stack::ResilienceConfig;
///
/// let config = ResilienceConfig::default()
///     .service("users")
///     .timeout(Duration::from_millis(500))
///     .retry(RetryConfig::default().max_attempts(2));
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ResilienceConfig {
    /// The downstream service's name, for every layer's metrics and events.
    /// Default: `"default"`.
    pub service: String,
    /// Whether the stack reports `bulwark_requests_*` metrics. Default: on.
    pub metrics: bool,
    /// The response cache. Default: off.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::switch::deserialize")
    )]
    pub cache: Option<CacheConfig>,
    /// A rate limit (admission control). Default: off.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::switch::deserialize")
    )]
    pub rate_limit: Option<RateLimitConfig>,
    /// A fixed cap on calls in flight (admission control). Default: off.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::switch::deserialize")
    )]
    pub bulkhead: Option<BulkheadConfig>,
    /// A cap on calls in flight learned from their latency (admission
    /// control). Default: off.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::switch::deserialize")
    )]
    pub adaptive_concurrency: Option<AdaptiveConfig>,
    /// Retries with a budget. Default: off.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::switch::deserialize")
    )]
    pub retry: Option<RetryConfig>,
    /// The circuit breaker. Default: on, with its defaults.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::switch::deserialize")
    )]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
    /// Hedged requests. Default: off.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::switch::deserialize")
    )]
    pub hedge: Option<HedgeConfig>,
    /// The deadline of each attempt. Default: 10 s.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::option_duration::deserialize")
    )]
    pub timeout: Option<Duration>,
    /// How requests are spread over endpoints, when the stack balances.
    pub balance: BalanceConfig,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            service: "default".to_owned(),
            metrics: true,
            cache: None,
            rate_limit: None,
            bulkhead: None,
            adaptive_concurrency: None,
            retry: None,
            circuit_breaker: Some(CircuitBreakerConfig::default()),
            hedge: None,
            timeout: Some(Duration::from_secs(10)),
            balance: BalanceConfig::default(),
        }
    }
}

impl ResilienceConfig {
    /// Sets [`service`](Self::service).
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = name.into();
        self
    }

    /// Sets [`metrics`](Self::metrics).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Turns the cache on with `config`.
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = Some(config);
        self
    }

    /// Turns a rate limit on with `config`.
    pub fn rate_limit(mut self, config: RateLimitConfig) -> Self {
        self.rate_limit = Some(config);
        self
    }

    /// Turns a fixed cap on calls in flight on with `config`.
    pub fn bulkhead(mut self, config: BulkheadConfig) -> Self {
        self.bulkhead = Some(config);
        self
    }

    /// Turns a cap on calls in flight learned from latency on with `config`.
    pub fn adaptive_concurrency(mut self, config: AdaptiveConfig) -> Self {
        self.adaptive_concurrency = Some(config);
        self
    }

    /// Turns retries on with `config`.
    pub fn retry(mut self, config: RetryConfig) -> Self {
        self.retry = Some(config);
        self
    }

    /// Sets the circuit breaker's configuration.
    pub fn circuit_breaker(mut self, config: CircuitBreakerConfig) -> Self {
        self.circuit_breaker = Some(config);
        self
    }

    /// Turns the circuit breaker off.
    pub fn without_circuit_breaker(mut self) -> Self {
        self.circuit_breaker = None;
        self
    }

    /// Turns hedging on with `config`.
    pub fn hedge(mut self, config: HedgeConfig) -> Self {
        self.hedge = Some(config);
        self
    }

    /// Sets the deadline of each attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Turns the timeout off.
    pub fn without_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// Sets the balancer's configuration.
    pub fn balance(mut self, config: BalanceConfig) -> Self {
        self.balance = config;
        self
    }

    /// Checks every section, as the layers would when built; the error's
    /// field is prefixed with its section (`circuit_breaker.minimum_calls`).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(cache) = &self.cache {
            cache.validate().map_err(|e| e.in_section("cache"))?;
        }
        if let Some(rate_limit) = &self.rate_limit {
            rate_limit.quota().map_err(|e| e.in_section("rate_limit"))?;
        }
        if let Some(bulkhead) = &self.bulkhead {
            bulkhead.validate().map_err(|e| e.in_section("bulkhead"))?;
            if self.adaptive_concurrency.is_some() {
                return Err(Check::layer("resilience stack").unsupported(
                    "adaptive_concurrency",
                    "a bulkhead caps the calls in flight already: choose one of the two",
                ));
            }
        }
        if let Some(adaptive) = &self.adaptive_concurrency {
            adaptive
                .validate()
                .map_err(|e| e.in_section("adaptive_concurrency"))?;
        }
        if let Some(retry) = &self.retry {
            retry.validate().map_err(|e| e.in_section("retry"))?;
        }
        if let Some(breaker) = &self.circuit_breaker {
            breaker
                .validate()
                .map_err(|e| e.in_section("circuit_breaker"))?;
        }
        if let Some(hedge) = &self.hedge {
            hedge.validate().map_err(|e| e.in_section("hedge"))?;
        }
        if let Some(timeout) = self.timeout {
            Check::layer("timeout").duration("timeout", timeout)?;
        }
        self.balance
            .validate()
            .map_err(|e| e.in_section("balance"))?;
        Ok(())
    }
}
