use std::sync::Arc;
use std::time::Duration;

use super::event::BalanceEvent;
use crate::circuit_breaker::{CircuitBreakerConfig, OpenDuration, SlidingWindow};
use crate::config::{Check, ConfigError};
use crate::event::Emitter;

/// How a [`LoadBalance`](super::LoadBalance) picks an endpoint for a request.
///
/// Whatever the strategy, an endpoint that is ejected or not ready is
/// skipped, and the next candidate is tried.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum Strategy {
    /// Each endpoint in turn.
    RoundRobin,
    /// Each endpoint in turn, `weight` times per cycle, interleaved without
    /// bursts: nginx's smooth weighted round robin (weights 5, 1, 1 give
    /// `a a b a c a a`).
    ///
    /// Exactly nginx's order up to 64 endpoints. Beyond, the endpoints are
    /// kept in groups of 64, each group in nginx's order, and the groups
    /// take turns by a walk through their total weights with a step near
    /// the golden ratio of the total: still exactly `weight` picks per
    /// cycle for each endpoint, evenly spread, and a change to the set
    /// costs O(log n) instead of a table of `weight × endpoints` rebuilt.
    WeightedRoundRobin,
    /// An endpoint chosen uniformly at random.
    Random,
    /// An endpoint chosen at random in proportion to its weight.
    WeightedRandom,
    /// Of two endpoints chosen at random, the one with fewer requests in
    /// flight ("power of two choices").
    P2cLeastPending,
    /// Of two endpoints chosen at random, the one with the lower expected
    /// cost: its peak-sensitive moving average of response time times its
    /// requests in flight plus one. The default.
    ///
    /// An endpoint's estimate jumps to any slower response at once and
    /// follows faster ones with a time constant of `decay`. While an endpoint
    /// is not chosen its estimate decays towards zero with the same time
    /// constant, so a slow endpoint is tried again now and then (about every
    /// `decay × ln(its estimate / the others' cost)`: 0.65 s for one 25
    /// times slower, with the default), and one that became fast gets its
    /// share back within about as long. A failure counts as twice the
    /// endpoint's estimate, so an endpoint that keeps failing is tried
    /// again after longer and longer (up to `decay × ln(1024 × default_rtt
    /// / the others' cost)`), where one that failed once is back soon. An
    /// endpoint with no answer yet is estimated at `default_rtt`, and its
    /// first answer replaces that guess.
    ///
    /// A call is timed by reading the clock when it is sent and when it is
    /// answered, which costs more than the rest of the pick. So a busy
    /// endpoint, whose timed answers come within a thousandth of `decay`
    /// of each other (five thousand a second with the default), has one
    /// call in two, four, up to eight timed, as long as its timed answers
    /// still come within four thousandths of `decay` of each other: 256
    /// or more per time constant. Its every failure still counts, and every
    /// call is timed again as soon as a call to any endpoint finds its last
    /// timed answer four thousandths of `decay` old (as when it turned
    /// slow).
    P2cPeakEwma {
        /// The estimate of an endpoint that has not answered yet. Default 5 ms.
        #[cfg_attr(
            feature = "serde",
            serde(
                default = "Strategy::default_rtt",
                deserialize_with = "crate::de::duration::deserialize"
            )
        )]
        default_rtt: Duration,
        /// The time constant of the moving average. Default 200 ms.
        #[cfg_attr(
            feature = "serde",
            serde(
                default = "Strategy::default_decay",
                deserialize_with = "crate::de::duration::deserialize"
            )
        )]
        decay: Duration,
    },
}

/// Peak EWMA's default time constant: short enough that an endpoint 25
/// times slower than the others is tried again within a second (and gets
/// its share back within one once it is fast), long enough that it takes
/// under 0.1 % of the calls while slow (`benches/balance_quality.rs`).
pub(crate) const PEAK_EWMA_DECAY: Duration = Duration::from_millis(200);

impl Strategy {
    /// Peak EWMA's estimate of an endpoint with no answer yet, unless said.
    const DEFAULT_RTT: Duration = Duration::from_millis(5);

    /// [`Strategy::P2cPeakEwma`] with its defaults: 5 ms prior, 200 ms
    /// decay.
    pub fn peak_ewma() -> Self {
        Strategy::P2cPeakEwma {
            default_rtt: Self::DEFAULT_RTT,
            decay: PEAK_EWMA_DECAY,
        }
    }

    #[cfg(feature = "serde")]
    fn default_rtt() -> Duration {
        Self::DEFAULT_RTT
    }

    #[cfg(feature = "serde")]
    fn default_decay() -> Duration {
        PEAK_EWMA_DECAY
    }
}

/// The strategy's name, for logs and messages: `p2c peak ewma`,
/// `round robin`...
impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that widths and alignment apply (`{:<22}`).
        f.pad(match self {
            Strategy::RoundRobin => "round robin",
            Strategy::WeightedRoundRobin => "weighted round robin",
            Strategy::Random => "random",
            Strategy::WeightedRandom => "weighted random",
            Strategy::P2cLeastPending => "p2c least pending",
            Strategy::P2cPeakEwma { .. } => "p2c peak ewma",
        })
    }
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy::peak_ewma()
    }
}

/// Passive outlier detection: an endpoint whose calls fail is ejected (not
/// ready, so requests go elsewhere) for a while.
///
/// An endpoint is ejected after `consecutive_failures` failures in a row,
/// and/or when its failure rate over its last `window` calls reaches
/// `failure_rate` (once it has had `minimum_calls`). It stays out for
/// `base_ejection_time` times the number of times it was ejected in a row,
/// at most `max_ejection_time`, shortened by a random fraction of at most
/// `jitter`. Then it returns on probation: one request at a time goes to it;
/// a success ends the probation, a failure ejects it again at once, for
/// longer. Ejections are remembered for `max_ejection_time` after it is back.
///
/// At most `max_ejection_percent` of the endpoints are ejected at once
/// (rounded down, but one when the set has two or more endpoints; never all
/// of them). When fewer than `panic_threshold` percent of the endpoints are
/// healthy, the balancer ignores ejections and uses every endpoint.
///
/// What a failure is comes from the layer's classifier (see
/// [`crate::classify`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct OutlierDetection {
    /// Failures in a row that eject an endpoint. Default: 5. `None` turns
    /// this rule off.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::maybe::deserialize")
    )]
    pub consecutive_failures: Option<u32>,
    /// Failure rate in (0, 1] over the window that ejects an endpoint.
    /// Default: `None` (off).
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::maybe::deserialize")
    )]
    pub failure_rate: Option<f64>,
    /// The calls per endpoint the failure rate is judged over. Default: 20.
    pub window: u32,
    /// Calls an endpoint's window must hold before its rate is judged.
    /// Default: 10.
    pub minimum_calls: u32,
    /// Default: 30 s.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub base_ejection_time: Duration,
    /// Default: 300 s.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::duration::deserialize")
    )]
    pub max_ejection_time: Duration,
    /// Default: 0.1.
    pub jitter: f64,
    /// Default: 50 (Envoy's default is 10, which with a handful of endpoints
    /// still ejects one).
    pub max_ejection_percent: f64,
    /// Default: 50.
    pub panic_threshold: f64,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_failures: Some(5),
            failure_rate: None,
            window: 20,
            minimum_calls: 10,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            jitter: 0.1,
            max_ejection_percent: 50.0,
            panic_threshold: 50.0,
        }
    }
}

impl OutlierDetection {
    /// Sets [`consecutive_failures`](Self::consecutive_failures).
    pub fn consecutive_failures(mut self, failures: Option<u32>) -> Self {
        self.consecutive_failures = failures;
        self
    }

    /// Sets [`failure_rate`](Self::failure_rate), [`window`](Self::window)
    /// and [`minimum_calls`](Self::minimum_calls).
    pub fn failure_rate(mut self, rate: f64, window: u32, minimum_calls: u32) -> Self {
        self.failure_rate = Some(rate);
        self.window = window;
        self.minimum_calls = minimum_calls;
        self
    }

    /// Sets [`base_ejection_time`](Self::base_ejection_time) and
    /// [`max_ejection_time`](Self::max_ejection_time).
    pub fn ejection_time(mut self, base: Duration, max: Duration) -> Self {
        self.base_ejection_time = base;
        self.max_ejection_time = max;
        self
    }

    /// Sets [`jitter`](Self::jitter).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets [`max_ejection_percent`](Self::max_ejection_percent).
    pub fn max_ejection_percent(mut self, percent: f64) -> Self {
        self.max_ejection_percent = percent;
        self
    }

    /// Sets [`panic_threshold`](Self::panic_threshold).
    pub fn panic_threshold(mut self, percent: f64) -> Self {
        self.panic_threshold = percent;
        self
    }

    /// The per-endpoint breaker that implements these rules.
    fn breaker(&self) -> CircuitBreakerConfig {
        let mut breaker = CircuitBreakerConfig::default()
            .sliding_window(SlidingWindow::count(self.window))
            .minimum_calls(self.minimum_calls)
            // Without a rate rule the balancer keeps no window at all
            // (the breaker's `rates` setting), so this threshold is never
            // judged; 1.0 only passes validation.
            .failure_rate_threshold(self.failure_rate.unwrap_or(1.0))
            .open_duration(
                OpenDuration::linear(self.base_ejection_time, self.max_ejection_time)
                    .jitter(self.jitter),
            )
            .half_open_probes(1);
        breaker.consecutive_failures = self.consecutive_failures;
        breaker
    }
}

/// Configuration of a [`LoadBalanceLayer`](super::LoadBalanceLayer) or
/// [`LoadBalance`](super::LoadBalance). Checked when the balancer is built.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower_bulwark::balance::{BalanceConfig, OutlierDetection, Strategy};
///
/// let config = BalanceConfig::default()
///     .service("users")
///     .strategy(Strategy::P2cLeastPending)
///     .outlier_detection(
///         OutlierDetection::default()
///             .consecutive_failures(Some(3))
///             .ejection_time(Duration::from_secs(10), Duration::from_secs(120)),
///     );
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct BalanceConfig {
    /// The `service` label of the metrics and the name in events.
    /// Default: `"default"`.
    pub service: String,
    /// Default: [`Strategy::P2cPeakEwma`] with its defaults.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::kind::deserialize")
    )]
    pub strategy: Strategy,
    /// Default: on, with [`OutlierDetection::default`]. `None` turns it off.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::switch::deserialize")
    )]
    pub outlier_detection: Option<OutlierDetection>,
    /// Seeds the random choices, for reproducible tests. Default: `None`
    /// (seeded from the operating system).
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::maybe::deserialize")
    )]
    pub seed: Option<u64>,
    /// Counts requests per endpoint in `bulwark_balance_requests_total`,
    /// labelled with the endpoint's key. Default: off.
    ///
    /// The `metrics` facade cannot remove a series, so each endpoint key
    /// ever seen keeps its series until the process ends, unless the
    /// exporter drops idle ones: with discovery churn (a pod's new address
    /// at each deploy), turn this on only with such an exporter, such as
    /// `metrics-exporter-prometheus` with
    /// `idle_timeout(MetricKindMask::COUNTER, Some(..))`. The balancer asks
    /// the recorder for the counter at each request rather than holding
    /// it, so the series of an endpoint that left goes at the timeout, and
    /// a quiet endpoint's series comes back with its next request. That
    /// lookup costs about as much as a pick; off, nothing.
    /// [`LoadBalance::endpoints`](super::LoadBalance::endpoints) and the
    /// [`BalanceEvent`]s give per-endpoint figures at any scale.
    pub endpoint_metrics: bool,
    /// With consistent hashing ([`LoadBalance::hash_by`](super::LoadBalance::hash_by)),
    /// the most requests in flight an endpoint takes, as a percentage of
    /// the average over all endpoints (at least 100); a key whose endpoint
    /// is over it goes to its next candidate. `None`: no bound, keys stay
    /// on their endpoint however hot. Default: 125, as Envoy's
    /// `hash_balance_factor` suggests.
    #[cfg_attr(
        feature = "serde",
        serde(deserialize_with = "crate::de::maybe::deserialize")
    )]
    pub hash_balance_factor: Option<u32>,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) events: Emitter<BalanceEvent>,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            service: "default".to_owned(),
            strategy: Strategy::default(),
            outlier_detection: Some(OutlierDetection::default()),
            seed: None,
            endpoint_metrics: false,
            hash_balance_factor: Some(125),
            events: Emitter::none(),
        }
    }
}

impl BalanceConfig {
    service_setter!();

    /// Sets [`strategy`](Self::strategy).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Turns outlier detection on with `detection`.
    pub fn outlier_detection(mut self, detection: OutlierDetection) -> Self {
        self.outlier_detection = Some(detection);
        self
    }

    /// Turns outlier detection off.
    pub fn no_outlier_detection(mut self) -> Self {
        self.outlier_detection = None;
        self
    }

    /// Sets [`seed`](Self::seed).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets [`hash_balance_factor`](Self::hash_balance_factor).
    pub fn hash_balance_factor(mut self, percent: Option<u32>) -> Self {
        self.hash_balance_factor = percent;
        self
    }

    /// Sets [`endpoint_metrics`](Self::endpoint_metrics).
    pub fn endpoint_metrics(mut self, on: bool) -> Self {
        self.endpoint_metrics = on;
        self
    }

    events_setter!();

    pub(crate) fn validate(&self) -> Result<Settings, ConfigError> {
        let check = Check::layer("load balance");
        if let Strategy::P2cPeakEwma { default_rtt, decay } = self.strategy {
            check.duration("strategy.default_rtt", default_rtt)?;
            check.duration("strategy.decay", decay)?;
        }
        if let Some(o) = &self.outlier_detection {
            if let Some(n) = o.consecutive_failures {
                check.nonzero("outlier_detection.consecutive_failures", n.into())?;
            }
            if let Some(rate) = o.failure_rate {
                check.rate("outlier_detection.failure_rate", rate)?;
            }
            check.nonzero("outlier_detection.window", o.window.into())?;
            check.at_most("outlier_detection.window", o.window.into(), 100_000)?;
            check.nonzero("outlier_detection.minimum_calls", o.minimum_calls.into())?;
            check.at_most(
                "outlier_detection.minimum_calls",
                o.minimum_calls.into(),
                o.window.into(),
            )?;
            check.duration("outlier_detection.base_ejection_time", o.base_ejection_time)?;
            check.not_smaller(
                "outlier_detection.max_ejection_time",
                o.max_ejection_time,
                "outlier_detection.base_ejection_time",
                o.base_ejection_time,
            )?;
            check.ratio("outlier_detection.jitter", o.jitter)?;
            check.percent(
                "outlier_detection.max_ejection_percent",
                o.max_ejection_percent,
            )?;
            check.percent("outlier_detection.panic_threshold", o.panic_threshold)?;
        }
        if let Some(percent) = self.hash_balance_factor {
            check.not_smaller("hash_balance_factor", percent, "100 (the average)", 100)?;
        }
        Ok(Settings {
            service: Arc::from(self.service.as_str()),
            config: self.clone(),
        })
    }
}

/// A checked configuration, and the service's name as the layer's events
/// and metrics share it.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) service: Arc<str>,
    pub(crate) config: BalanceConfig,
}

impl Settings {
    /// The outlier detection, if on; lent, not copied (a pick asks on
    /// every call).
    #[inline]
    pub(crate) fn outlier(&self) -> Option<&OutlierDetection> {
        self.config.outlier_detection.as_ref()
    }

    /// The breaker configuration of each endpoint's outlier detector.
    pub(crate) fn endpoint_breaker(&self) -> Option<CircuitBreakerConfig> {
        self.config
            .outlier_detection
            .as_ref()
            .map(OutlierDetection::breaker)
    }
}
