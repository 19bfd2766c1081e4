//! Reading configurations from files (feature `serde`): the field helpers
//! that the configs' `Deserialize` derives use.
//!
//! Durations are written as humans write them (`"250ms"`, `"2s"`,
//! `"1m 30s"`, parsed by `humantime`); a layer that is on by default is
//! turned off with `false`, and one that is off is turned on with `true`
//! (its defaults) or a table of its settings.

use std::fmt;
#[cfg(any(feature = "circuit-breaker", feature = "hedge"))]
use std::marker::PhantomData;
use std::time::Duration;

#[cfg(feature = "circuit-breaker")]
use serde::de::MapAccess;
use serde::de::{self, Deserializer, Visitor};
#[cfg(any(feature = "circuit-breaker", feature = "hedge"))]
use serde::de::{Deserialize, IntoDeserializer};

fn parse<E: de::Error>(text: &str) -> Result<Duration, E> {
    humantime::parse_duration(text).map_err(|e| {
        E::custom(format_args!(
            "invalid duration {text:?}: {e} (write e.g. \"250ms\", \"2s\" or \"1m\")"
        ))
    })
}

/// A duration such as `"250ms"`.
pub(crate) mod duration {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_str(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"250ms\" or \"2s\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text)
    }
}

#[cfg(any(feature = "circuit-breaker", feature = "hedge"))]
/// A duration such as `"250ms"`, or `false` for none.
pub(crate) mod option_duration {
    use super::*;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(maybe::deserialize::<D, HumanDuration>(d)?.map(|h| h.0))
    }
}

#[cfg(any(feature = "circuit-breaker", feature = "hedge"))]
/// A duration written as humans write it.
struct HumanDuration(Duration);

#[cfg(any(feature = "circuit-breaker", feature = "hedge"))]
impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration::deserialize(d).map(HumanDuration)
    }
}

#[cfg(feature = "balance")]
/// An optional part: `false` (off), `true` (on, with its defaults), or a
/// table of its settings.
pub(crate) mod switch {
    use super::*;

    pub(crate) fn deserialize<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        d.deserialize_any(SwitchVisitor(PhantomData))
    }
}

#[cfg(feature = "balance")]
struct SwitchVisitor<T>(PhantomData<T>);

#[cfg(feature = "balance")]
impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for SwitchVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("true, false, or a table of settings")
    }

    fn visit_bool<E: de::Error>(self, on: bool) -> Result<Self::Value, E> {
        Ok(on.then(T::default))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        // The table's own errors keep their place in the file.
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }
}

#[cfg(any(feature = "circuit-breaker", feature = "hedge"))]
/// An optional value: the value, or `false` for none.
pub(crate) mod maybe {
    use super::*;

    pub(crate) fn deserialize<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        d.deserialize_any(MaybeVisitor(PhantomData))
    }
}

#[cfg(any(feature = "circuit-breaker", feature = "hedge"))]
struct MaybeVisitor<T>(PhantomData<T>);

#[cfg(any(feature = "circuit-breaker", feature = "hedge"))]
impl<'de, T: Deserialize<'de>> Visitor<'de> for MaybeVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value, or false for none")
    }

    fn visit_bool<E: de::Error>(self, on: bool) -> Result<Self::Value, E> {
        if on {
            Err(E::custom("expected a value, or false for none"))
        } else {
            Ok(None)
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        T::deserialize(v.into_deserializer()).map(Some)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        T::deserialize(v.into_deserializer()).map(Some)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        T::deserialize(v.into_deserializer()).map(Some)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        T::deserialize(v.into_deserializer()).map(Some)
    }
}

#[cfg(feature = "circuit-breaker")]
/// An enum written as a table with a `kind` (`{ kind = "fixed", ... }`),
/// or, for a kind without settings, as its name alone (`"round_robin"`).
pub(crate) mod kind {
    use super::*;

    pub(crate) fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        d.deserialize_any(KindVisitor(PhantomData))
    }
}

#[cfg(feature = "circuit-breaker")]
struct KindVisitor<T>(PhantomData<T>);

#[cfg(feature = "circuit-breaker")]
impl<'de, T: Deserialize<'de>> Visitor<'de> for KindVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a name, or a table with a `kind`")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        // `"round_robin"` reads as `{ kind = "round_robin" }`.
        let table = [("kind", text)].into_iter();
        T::deserialize(de::value::MapDeserializer::new(table))
    }
}

/// How an [`OpenDuration`](crate::circuit_breaker::OpenDuration) is written:
/// `{ kind = "fixed", duration = "5s" }`,
/// `{ kind = "exponential", base = "5s", max = "60s" }` (with optional
/// `multiplier` and `jitter`) or `{ kind = "linear", base = "30s", max = "5m" }`.
#[cfg(feature = "circuit-breaker")]
#[derive(serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum OpenDurationFile {
    Fixed {
        #[serde(deserialize_with = "duration::deserialize")]
        duration: Duration,
    },
    Exponential {
        #[serde(deserialize_with = "duration::deserialize")]
        base: Duration,
        #[serde(deserialize_with = "duration::deserialize")]
        max: Duration,
        #[serde(default = "crate::circuit_breaker::OpenDuration::default_multiplier")]
        multiplier: f64,
        #[serde(default = "crate::circuit_breaker::OpenDuration::default_jitter")]
        jitter: f64,
    },
    Linear {
        #[serde(deserialize_with = "duration::deserialize")]
        base: Duration,
        #[serde(deserialize_with = "duration::deserialize")]
        max: Duration,
        #[serde(default = "crate::circuit_breaker::OpenDuration::default_jitter")]
        jitter: f64,
    },
}

#[cfg(feature = "circuit-breaker")]
impl From<OpenDurationFile> for crate::circuit_breaker::OpenDuration {
    fn from(file: OpenDurationFile) -> Self {
        use crate::circuit_breaker::OpenDuration;
        match file {
            OpenDurationFile::Fixed { duration } => OpenDuration::Fixed(duration),
            OpenDurationFile::Exponential {
                base,
                max,
                multiplier,
                jitter,
            } => OpenDuration::Exponential {
                base,
                max,
                multiplier,
                jitter,
            },
            OpenDurationFile::Linear { base, max, jitter } => {
                OpenDuration::Linear { base, max, jitter }
            }
        }
    }
}

/// How a [`HedgeDelay`](crate::hedge::HedgeDelay) is written:
/// `{ percentile = 0.95 }` or `{ fixed = "40ms" }`.
#[cfg(feature = "hedge")]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HedgeDelayFile {
    #[serde(default)]
    percentile: Option<f64>,
    #[serde(default, deserialize_with = "option_duration::deserialize")]
    fixed: Option<Duration>,
}

#[cfg(feature = "hedge")]
impl TryFrom<HedgeDelayFile> for crate::hedge::HedgeDelay {
    type Error = &'static str;

    fn try_from(file: HedgeDelayFile) -> Result<Self, Self::Error> {
        use crate::hedge::HedgeDelay;
        match (file.percentile, file.fixed) {
            (Some(p), None) => Ok(HedgeDelay::Percentile(p)),
            (None, Some(d)) => Ok(HedgeDelay::Fixed(d)),
            _ => Err("expected one of `percentile` or `fixed`"),
        }
    }
}
