//! Validation shared by every layer's configuration.
//!
//! Each layer checks its configuration once, when the layer is built, and
//! reports the first bad value as a [`ConfigError`] naming the layer and the
//! field. Nothing in the crate panics on a configuration value.

use std::fmt;

/// A configuration value was rejected when a layer was built.
///
/// The message names the layer, the field and what was wrong, e.g.
/// `invalid circuit breaker config: failure_rate_threshold must be in (0, 1], got 1.5`.
///
/// # Example
///
/// ```
/// use tower_bulwark::circuit_breaker::{CircuitBreakerConfig, CircuitBreakerLayer};
///
/// let err = CircuitBreakerLayer::new(
///     CircuitBreakerConfig::default().failure_rate_threshold(1.5),
/// )
/// .unwrap_err();
/// assert_eq!(err.field(), "failure_rate_threshold");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    layer: &'static str,
    /// The section of a stack's configuration the layer's config sits in.
    section: Option<&'static str>,
    field: &'static str,
    problem: Problem,
}

/// What was wrong with a value; kept private so new checks can be added.
#[derive(Debug, Clone, PartialEq)]
enum Problem {
    #[cfg(bulwark_checks_unit)]
    RateOutOfRange { value: f64, zero_allowed: bool },
    #[cfg(bulwark_checks_nonzero)]
    Zero,
    #[cfg(bulwark_checks_duration)]
    ZeroDuration,
    #[cfg(bulwark_checks_order)]
    Smaller { value: String, other: &'static str },
    #[cfg(feature = "balance")]
    Percent { value: f64 },
    #[cfg(feature = "circuit-breaker")]
    TooLarge { value: u64, max: u64 },
    #[cfg(any(feature = "stack", feature = "balance"))]
    Missing { what: &'static str },
    #[cfg(bulwark_checks_form)]
    Invalid { expected: &'static str },
    #[cfg(feature = "cache")]
    TooLong { max: &'static str },
    #[cfg(feature = "stack")]
    Unsupported { why: &'static str },
}

impl ConfigError {
    /// The layer whose configuration was rejected, e.g. `"circuit breaker"`.
    pub fn layer(&self) -> &'static str {
        self.layer
    }

    /// The name of the rejected field, as spelled by its setter.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Where the field is: [`field`](Self::field), prefixed with its
    /// section when the configuration is a stack's
    /// (`circuit_breaker.minimum_calls`), as in a configuration file.
    pub fn path(&self) -> String {
        match self.section {
            Some(section) => format!("{section}.{}", self.field),
            None => self.field.to_owned(),
        }
    }

    /// The same error, for a field of the section `section` of a stack.
    #[cfg(feature = "stack")]
    pub(crate) fn in_section(mut self, section: &'static str) -> Self {
        self.section = Some(section);
        self
    }

    /// What was wrong, without the layer and field.
    #[cfg(any(feature = "toml", feature = "yaml"))]
    pub(crate) fn problem(&self) -> String {
        self.problem.to_string()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} config: {} {}",
            self.layer,
            self.path(),
            self.problem
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(bulwark_checks_unit)]
            Problem::RateOutOfRange {
                value,
                zero_allowed,
            } => {
                let lower = if *zero_allowed { '[' } else { '(' };
                write!(f, "must be in {lower}0, 1], got {value}")
            }
            #[cfg(bulwark_checks_nonzero)]
            Problem::Zero => f.write_str("must be greater than zero"),
            #[cfg(bulwark_checks_duration)]
            Problem::ZeroDuration => f.write_str("must be a duration greater than zero"),
            #[cfg(bulwark_checks_order)]
            Problem::Smaller { value, other } => {
                write!(f, "must not be smaller than {other}, got {value}")
            }
            #[cfg(feature = "circuit-breaker")]
            Problem::TooLarge { value, max } => write!(f, "must be at most {max}, got {value}"),
            #[cfg(any(feature = "stack", feature = "balance"))]
            Problem::Missing { what } => write!(f, "is missing: {what}"),
            #[cfg(bulwark_checks_form)]
            Problem::Invalid { expected } => write!(f, "must be {expected}"),
            #[cfg(feature = "cache")]
            Problem::TooLong { max } => write!(f, "must be at most {max}"),
            #[cfg(feature = "stack")]
            Problem::Unsupported { why } => write!(f, "must not be set: {why}"),
            #[cfg(feature = "balance")]
            Problem::Percent { value } => {
                write!(f, "must be a percentage in [0, 100], got {value}")
            }
            // (A build with no layer that checks values has no variant.)
            #[allow(unreachable_patterns)]
            _ => f.write_str("is invalid"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The checks every config uses; one place so that every layer words its
/// errors the same way.
#[cfg(bulwark_checks)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Check {
    layer: &'static str,
}

#[cfg(bulwark_checks)]
impl Check {
    pub(crate) fn layer(layer: &'static str) -> Self {
        Check { layer }
    }

    fn error(self, field: &'static str, problem: Problem) -> ConfigError {
        ConfigError {
            layer: self.layer,
            section: None,
            field,
            problem,
        }
    }

    /// A part of the configuration that was not given.
    #[cfg(any(feature = "stack", feature = "balance"))]
    pub(crate) fn missing(self, field: &'static str, what: &'static str) -> ConfigError {
        self.error(field, Problem::Missing { what })
    }

    /// A value that is not of the form `expected` describes.
    #[cfg(bulwark_checks_form)]
    pub(crate) fn invalid(self, field: &'static str, expected: &'static str) -> ConfigError {
        self.error(field, Problem::Invalid { expected })
    }

    /// A part of the configuration that has no use where it is.
    #[cfg(feature = "stack")]
    pub(crate) fn unsupported(self, field: &'static str, why: &'static str) -> ConfigError {
        self.error(field, Problem::Unsupported { why })
    }

    /// A ratio in (0, 1]; NaN is rejected.
    #[cfg(any(feature = "adaptive", feature = "hedge", feature = "circuit-breaker"))]
    pub(crate) fn rate(self, field: &'static str, value: f64) -> Result<(), ConfigError> {
        self.unit_interval(field, value, false)
    }

    /// A ratio in [0, 1]; NaN is rejected.
    #[cfg(any(feature = "circuit-breaker", feature = "retry", feature = "hedge"))]
    pub(crate) fn ratio(self, field: &'static str, value: f64) -> Result<(), ConfigError> {
        self.unit_interval(field, value, true)
    }

    #[cfg(bulwark_checks_unit)]
    fn unit_interval(
        self,
        field: &'static str,
        value: f64,
        zero_allowed: bool,
    ) -> Result<(), ConfigError> {
        let lower_ok = value > 0.0 || (zero_allowed && value == 0.0);
        if lower_ok && value <= 1.0 {
            Ok(())
        } else {
            Err(self.error(
                field,
                Problem::RateOutOfRange {
                    value,
                    zero_allowed,
                },
            ))
        }
    }

    /// A percentage in [0, 100]; NaN is rejected.
    #[cfg(feature = "balance")]
    pub(crate) fn percent(self, field: &'static str, value: f64) -> Result<(), ConfigError> {
        if (0.0..=100.0).contains(&value) {
            Ok(())
        } else {
            Err(self.error(field, Problem::Percent { value }))
        }
    }

    #[cfg(bulwark_checks_nonzero)]
    pub(crate) fn nonzero(self, field: &'static str, value: u64) -> Result<(), ConfigError> {
        if value > 0 {
            Ok(())
        } else {
            Err(self.error(field, Problem::Zero))
        }
    }

    #[cfg(feature = "circuit-breaker")]
    pub(crate) fn at_most(
        self,
        field: &'static str,
        value: u64,
        max: u64,
    ) -> Result<(), ConfigError> {
        if value <= max {
            Ok(())
        } else {
            Err(self.error(field, Problem::TooLarge { value, max }))
        }
    }

    #[cfg(bulwark_checks_duration)]
    pub(crate) fn duration(
        self,
        field: &'static str,
        value: std::time::Duration,
    ) -> Result<(), ConfigError> {
        if value.is_zero() {
            Err(self.error(field, Problem::ZeroDuration))
        } else {
            Ok(())
        }
    }

    /// A duration no longer than `max`, described as `max_text`.
    #[cfg(feature = "cache")]
    pub(crate) fn not_longer(
        self,
        field: &'static str,
        value: std::time::Duration,
        max: std::time::Duration,
        max_text: &'static str,
    ) -> Result<(), ConfigError> {
        if value <= max {
            Ok(())
        } else {
            Err(self.error(field, Problem::TooLong { max: max_text }))
        }
    }

    /// `value` must be at least `min`, which is the value of the field `other`.
    #[cfg(bulwark_checks_order)]
    pub(crate) fn not_smaller<T: PartialOrd + fmt::Debug>(
        self,
        field: &'static str,
        value: T,
        other: &'static str,
        min: T,
    ) -> Result<(), ConfigError> {
        if value >= min {
            Ok(())
        } else {
            Err(self.error(
                field,
                Problem::Smaller {
                    value: format!("{value:?}"),
                    other,
                },
            ))
        }
    }
}
