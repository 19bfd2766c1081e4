//! The classifier of HTTP responses.

use http::StatusCode;

use super::{Classify, Outcome};

/// Classifies HTTP responses by status code; any `Err` is a failure.
///
/// By default 429 (Too Many Requests) and every 5xx status except 501 (Not
/// Implemented: the request will never work, and the server is fine) are
/// failures, and everything else a success. The set of failing statuses is
/// a fixed-size bit set, so classifying is one shift and one mask.
///
/// It judges `http::Response` (hyper, tonic's transport, axum) and, with the
/// `reqwest` feature, `reqwest::Response`.
///
/// # Example
///
/// ```
/// use http::{Response, StatusCode};
/// use tower_bulwark::classify::{Classify, HttpClassifier, Outcome};
///
/// let status = |code: u16| -> Result<Response<()>, std::io::Error> {
///     Ok(Response::builder().status(code).body(()).unwrap())
/// };
/// let classifier = HttpClassifier::default();
/// assert_eq!(classifier.classify(status(503).as_ref()), Outcome::Failure);
/// assert_eq!(classifier.classify(status(429).as_ref()), Outcome::Failure);
/// assert_eq!(classifier.classify(status(501).as_ref()), Outcome::Success);
/// assert_eq!(classifier.classify(status(404).as_ref()), Outcome::Success);
///
/// // A 404 from this service means it lost data: count it too.
/// let strict = HttpClassifier::default().failure_status(StatusCode::NOT_FOUND);
/// assert_eq!(strict.classify(status(404).as_ref()), Outcome::Failure);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HttpClassifier {
    // Bit `n` is set when status code `n` (100..=999) is a failure.
    failing: [u64; 16],
}

impl HttpClassifier {
    /// 429 and every 5xx status except 501 are failures.
    pub fn new() -> Self {
        HttpClassifier::none()
            .failure_range(500..=599)
            .success_status(StatusCode::NOT_IMPLEMENTED)
            .failure_status(StatusCode::TOO_MANY_REQUESTS)
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

    #[inline]
    fn judge<E>(&self, status: Result<StatusCode, &E>) -> Outcome {
        match status {
            Ok(status) if self.is_failure(status) => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
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
    fn classify(&self, result: Result<&http::Response<B>, &E>) -> Outcome {
        self.judge(result.map(http::Response::status))
    }
}

#[cfg(feature = "reqwest")]
impl<E> Classify<reqwest::Response, E> for HttpClassifier {
    #[inline]
    fn classify(&self, result: Result<&reqwest::Response, &E>) -> Outcome {
        self.judge(result.map(reqwest::Response::status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Result<http::Response<()>, ()> {
        Ok(http::Response::builder().status(code).body(()).unwrap())
    }

    #[test]
    fn by_default_5xx_but_501_and_429_fail() {
        let c = HttpClassifier::default();
        for code in 100..=999u16 {
            let expected = if (500..=599).contains(&code) && code != 501 || code == 429 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert_eq!(c.classify(status(code).as_ref()), expected, "status {code}");
        }
        assert_eq!(
            c.classify(Err::<http::Response<()>, ()>(()).as_ref()),
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
            .filter(|&code| c.classify(status(code).as_ref()).is_failure())
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

    #[cfg(feature = "reqwest")]
    #[test]
    fn reqwest_responses_are_judged_by_the_same_statuses() {
        let response = |code: u16| -> Result<reqwest::Response, ()> {
            Ok(reqwest::Response::from(
                http::Response::builder().status(code).body("").unwrap(),
            ))
        };
        let c = HttpClassifier::default();
        assert_eq!(c.classify(response(503).as_ref()), Outcome::Failure);
        assert_eq!(c.classify(response(429).as_ref()), Outcome::Failure);
        assert_eq!(c.classify(response(501).as_ref()), Outcome::Success);
        assert_eq!(c.classify(response(200).as_ref()), Outcome::Success);
    }
}
