//! One notion of success and failure for the whole crate.
//!
//! Every layer that reacts to failures — the circuit breaker, and later outlier
//! ejection, retries and metrics — asks a [`Classify`] implementation what a
//! call's result means. None of them has a notion of failure of its own, so a
//! service that answers `Ok(500)` is judged the same way everywhere once you
//! give the stack one classifier.
//!
//! - [`DefaultClassifier`]: `Err` is a [`Failure`](Outcome::Failure), `Ok` a
//!   [`Success`](Outcome::Success). The default of every layer.
//! - Any closure `Fn(&Result<Res, Err>) -> Outcome` is a classifier.
//! - With the `http` feature, [`HttpClassifier`] judges `http::Response` by
//!   status: every 5xx is a failure unless you say otherwise, and you can add
//!   any other status (429 is the usual one).
//!
//! # Example
//!
//! ```
//! use tower_bulwark::classify::{Classify, DefaultClassifier, Outcome};
//!
//! let ok: Result<u16, &str> = Ok(200);
//! let err: Result<u16, &str> = Err("connection refused");
//! assert_eq!(DefaultClassifier.classify(&ok), Outcome::Success);
//! assert_eq!(DefaultClassifier.classify(&err), Outcome::Failure);
//!
//! // A closure: a "not found" error is the caller's problem, not the
//! // service's, so it does not count either way.
//! let classify = |result: &Result<u16, &str>| match result {
//!     Ok(status) if *status >= 500 => Outcome::Failure,
//!     Ok(_) => Outcome::Success,
//!     Err(e) if *e == "not found" => Outcome::Ignored,
//!     Err(_) => Outcome::Failure,
//! };
//! assert_eq!(classify.classify(&Ok(503)), Outcome::Failure);
//! assert_eq!(classify.classify(&Err("not found")), Outcome::Ignored);
//! ```

/// What a call's result means for the layers that count failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The service did its job.
    Success,
    /// The service failed; breakers, outlier ejection and retries react to it.
    Failure,
    /// Neither: the call is not counted at all (a cancelled call, a client
    /// error the service is not to blame for, ...).
    Ignored,
}

impl Outcome {
    /// `true` for [`Outcome::Failure`].
    #[inline]
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure)
    }

    /// The value of the `outcome` metric label: `success`, `failure` or `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Ignored => "ignored",
        }
    }
}

/// Turns the result of a call into an [`Outcome`].
///
/// Implement it for a type of your own, or pass a closure
/// `Fn(&Result<Res, Err>) -> Outcome`. See the [module docs](self).
pub trait Classify<Res, Err> {
    /// Classifies one result. Called once per completed call, on the hot path:
    /// keep it cheap and do not allocate.
    fn classify(&self, result: &Result<Res, Err>) -> Outcome;
}

impl<F, Res, Err> Classify<Res, Err> for F
where
    F: Fn(&Result<Res, Err>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: &Result<Res, Err>) -> Outcome {
        self(result)
    }
}

/// `Err` is a failure, `Ok` a success: the default of every layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultClassifier;

impl<Res, Err> Classify<Res, Err> for DefaultClassifier {
    #[inline]
    fn classify(&self, result: &Result<Res, Err>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

#[cfg(feature = "http")]
pub use self::http_classifier::HttpClassifier;

#[cfg(feature = "http")]
mod http_classifier {
    use super::{Classify, Outcome};
    use http::StatusCode;

    /// Classifies `http::Response`s by status code; any `Err` is a failure.
    ///
    /// By default every 5xx status is a failure and everything else a
    /// success. The set of failing statuses is a fixed-size bit set, so
    /// classifying is one shift and one mask.
    ///
    /// # Example
    ///
    /// ```
    /// use http::{Response, StatusCode};
    /// use tower_bulwark::classify::{Classify, HttpClassifier, Outcome};
    ///
    /// // 5xx (except 501) and 429 are failures.
    /// let classifier = HttpClassifier::new()
    ///     .failure_status(StatusCode::TOO_MANY_REQUESTS)
    ///     .success_status(StatusCode::NOT_IMPLEMENTED);
    ///
    /// let too_many: Result<_, std::io::Error> =
    ///     Ok(Response::builder().status(429).body(()).unwrap());
    /// assert_eq!(classifier.classify(&too_many), Outcome::Failure);
    /// let not_impl: Result<_, std::io::Error> =
    ///     Ok(Response::builder().status(501).body(()).unwrap());
    /// assert_eq!(classifier.classify(&not_impl), Outcome::Success);
    /// ```
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub struct HttpClassifier {
        // Bit `n` is set when status code `n` (100..=999) is a failure.
        failing: [u64; 16],
    }

    impl HttpClassifier {
        /// Every 5xx status is a failure.
        pub fn new() -> Self {
            HttpClassifier { failing: [0; 16] }.failure_range(500..=599)
        }

        /// No status is a failure; only `Err` results are. Add the statuses
        /// you want with [`failure_status`](Self::failure_status).
        pub fn none() -> Self {
            HttpClassifier { failing: [0; 16] }
        }

        /// Counts `status` as a failure.
        pub fn failure_status(mut self, status: StatusCode) -> Self {
            self.set(status.as_u16(), true);
            self
        }

        /// Counts `status` as a success, even if it is a 5xx.
        pub fn success_status(mut self, status: StatusCode) -> Self {
            self.set(status.as_u16(), false);
            self
        }

        /// Counts every status in `range` as a failure. Numbers outside the
        /// valid status range 100..=999 are left out.
        pub fn failure_range(mut self, range: std::ops::RangeInclusive<u16>) -> Self {
            for code in range {
                self.set(code, true);
            }
            self
        }

        /// Whether `status` counts as a failure.
        #[inline]
        pub fn is_failure(&self, status: StatusCode) -> bool {
            let code = status.as_u16() as usize;
            self.failing[code / 64] & (1 << (code % 64)) != 0
        }

        fn set(&mut self, code: u16, failing: bool) {
            if !(100..=999).contains(&code) {
                return;
            }
            let (word, bit) = (code as usize / 64, code as usize % 64);
            if failing {
                self.failing[word] |= 1 << bit;
            } else {
                self.failing[word] &= !(1 << bit);
            }
        }
    }

    impl Default for HttpClassifier {
        fn default() -> Self {
            Self::new()
        }
    }

    impl std::fmt::Debug for HttpClassifier {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let failing: Vec<u16> = (100..=999u16)
                .filter(|&c| self.failing[c as usize / 64] & (1 << (c % 64)) != 0)
                .collect();
            f.debug_struct("HttpClassifier")
                .field("failing", &failing)
                .finish()
        }
    }

    impl<B, E> Classify<http::Response<B>, E> for HttpClassifier {
        #[inline]
        fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
            match result {
                Ok(response) if self.is_failure(response.status()) => Outcome::Failure,
                Ok(_) => Outcome::Success,
                Err(_) => Outcome::Failure,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn status(code: u16) -> Result<http::Response<()>, ()> {
            Ok(http::Response::builder().status(code).body(()).unwrap())
        }

        #[test]
        fn every_5xx_and_only_5xx_fails_by_default() {
            let c = HttpClassifier::default();
            for code in 100..=999u16 {
                let expected = if (500..=599).contains(&code) {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                assert_eq!(c.classify(&status(code)), expected, "status {code}");
            }
            assert_eq!(
                c.classify(&Err::<http::Response<()>, ()>(())),
                Outcome::Failure
            );
        }

        #[test]
        fn statuses_can_be_added_and_removed() {
            let c = HttpClassifier::none()
                .failure_status(StatusCode::TOO_MANY_REQUESTS)
                .failure_range(502..=504)
                .success_status(StatusCode::GATEWAY_TIMEOUT);
            let failing: Vec<u16> = (100..=999)
                .filter(|&code| c.classify(&status(code)).is_failure())
                .collect();
            assert_eq!(failing, vec![429, 502, 503]);
        }

        #[test]
        fn codes_outside_the_status_range_are_left_out() {
            let c = HttpClassifier::none().failure_range(0..=2000);
            assert!(c.is_failure(StatusCode::CONTINUE));
            assert!(c.is_failure(StatusCode::from_u16(999).unwrap()));
            assert_eq!(
                format!(
                    "{:?}",
                    HttpClassifier::none().failure_status(StatusCode::BAD_GATEWAY)
                ),
                "HttpClassifier { failing: [502] }"
            );
        }
    }
}
