//! Copies of requests for second attempts (retries and hedges).
//!
//! A request is moved into its first attempt, so a layer that may send it
//! again keeps a copy, made only when a second attempt is possible. Only
//! requests that are safe to repeat should be sent twice: a request that
//! failed or was slow may still have taken effect (the answer was lost, or
//! the deadline passed after the work was done).
//!
//! - [`Idempotent`] (features `http`, `reqwest`) copies an HTTP request
//!   only when it is safe to repeat: an idempotent method (RFC 9110,
//!   section 9.2.2: `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`), or
//!   any method with an `Idempotency-Key` header (the server deduplicates).
//!   A `POST` or `PATCH` without one is sent once. This is what
//!   [`ResilienceBuilder::http`](crate::stack::ResilienceBuilder::http)
//!   uses.
//! - [`ByClone`] copies every request with `Clone`.
//! - Any closure `Fn(&Req) -> Option<Req>` (capturing or not) decides for
//!   itself; [`clone_http_request`] copies any HTTP request whose body is
//!   `Clone`, whatever its method: opt in to it only when every request
//!   you send is safe to repeat.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "http")] {
//! use tower_bulwark::request::{CloneRequest, Idempotent};
//!
//! let get = http::Request::get("/users/7").body(String::new()).unwrap();
//! let post = http::Request::post("/orders").body("{}".to_string()).unwrap();
//! let keyed = http::Request::post("/orders")
//!     .header("idempotency-key", "order-5f2c")
//!     .body("{}".to_string())
//!     .unwrap();
//! assert!(Idempotent.clone_request(&get).is_some());
//! assert!(Idempotent.clone_request(&post).is_none(), "sent once");
//! assert!(Idempotent.clone_request(&keyed).is_some());
//! # }
//! ```

use std::fmt;

/// How a request is copied for a possible second attempt (a retry, a
/// hedge).
pub trait CloneRequest<Req> {
    /// A copy of `req`, or `None` if it must not be sent again.
    fn clone_request(&self, req: &Req) -> Option<Req>;
}

/// Copies requests with `Clone`: the default of the retry and hedge
/// layers, for request types that are safe to repeat.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByClone;

impl<Req: Clone> CloneRequest<Req> for ByClone {
    #[inline]
    fn clone_request(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

impl<F, Req> CloneRequest<Req> for F
where
    F: Fn(&Req) -> Option<Req>,
{
    #[inline]
    fn clone_request(&self, req: &Req) -> Option<Req> {
        self(req)
    }
}

/// Copies HTTP requests that are safe to repeat, and no others. See the
/// [module docs](self).
///
/// For `http::Request<B>` the body must be `Clone` (a buffered body such
/// as `Bytes`, `String` or `Full<Bytes>`); a `reqwest::Request` (feature
/// `reqwest`) is copied with `try_clone`, which gives `None` for a
/// streaming body. Extensions are not copied.
#[derive(Debug, Clone, Copy, Default)]
pub struct Idempotent;

/// The header a client sends so that a server can tell a repeated request
/// from a new one (IETF draft `draft-ietf-httpapi-idempotency-key-header`).
#[cfg(feature = "http")]
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Whether a request with `method` and `headers` is safe to send again: an
/// idempotent method (RFC 9110: `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`,
/// `DELETE`), or an `Idempotency-Key` header.
#[cfg(feature = "http")]
#[inline]
pub fn is_safe_to_repeat(method: &http::Method, headers: &http::HeaderMap) -> bool {
    method.is_idempotent() || headers.contains_key(IDEMPOTENCY_KEY)
}

#[cfg(feature = "http")]
impl<B: Clone> CloneRequest<http::Request<B>> for Idempotent {
    #[inline]
    fn clone_request(&self, req: &http::Request<B>) -> Option<http::Request<B>> {
        if is_safe_to_repeat(req.method(), req.headers()) {
            clone_http_request(req)
        } else {
            None
        }
    }
}

#[cfg(feature = "reqwest")]
impl CloneRequest<reqwest::Request> for Idempotent {
    #[inline]
    fn clone_request(&self, req: &reqwest::Request) -> Option<reqwest::Request> {
        if is_safe_to_repeat(req.method(), req.headers()) {
            req.try_clone()
        } else {
            None
        }
    }
}

/// Copies an `http::Request` whose body is `Clone`, whatever its method:
/// method, URI, version, headers and body. Extensions are not copied (they
/// cannot be). Prefer [`Idempotent`], which leaves requests that are not
/// safe to repeat alone.
#[cfg(feature = "http")]
pub fn clone_http_request<B: Clone>(req: &http::Request<B>) -> Option<http::Request<B>> {
    let mut copy = http::Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// The service a layer's second attempts go through: a copy of the one it
/// wrapped, cloned only when a retry or a hedge is sent.
///
/// Cloning the service into every call's future, as `tower::retry` does,
/// costs a clone of the whole stack beneath (and its bytes in the future)
/// on every call, for the few calls that are sent again. Behind a mutex so
/// that a service that is `Send` but not `Sync` (a `BoxCloneService`) still
/// makes a `Send` future; it is locked only to clone it.
pub(crate) struct Template<S>(std::sync::Mutex<S>);

impl<S: Clone> Template<S> {
    pub(crate) fn new(service: &S) -> Self {
        Template(std::sync::Mutex::new(service.clone()))
    }

    /// A clone for one more attempt.
    pub(crate) fn service(&self) -> S {
        // A clone that panicked leaves the service as it was: use it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl<S> fmt::Debug for Template<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template").finish_non_exhaustive()
    }
}

#[cfg(test)]
#[cfg(feature = "http")]
mod tests {
    use super::*;

    fn request(method: &str, key: bool) -> http::Request<String> {
        let mut builder = http::Request::builder().method(method).uri("/x");
        if key {
            builder = builder.header("Idempotency-Key", "k1");
        }
        builder.body("body".to_string()).unwrap()
    }

    #[test]
    fn only_requests_safe_to_repeat_are_copied() {
        for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            let copy = Idempotent.clone_request(&request(method, false)).unwrap();
            assert_eq!(copy.method().as_str(), method);
            assert_eq!(copy.body(), "body");
        }
        for method in ["POST", "PATCH", "CONNECT"] {
            assert!(
                Idempotent.clone_request(&request(method, false)).is_none(),
                "{method}"
            );
            let keyed = Idempotent.clone_request(&request(method, true)).unwrap();
            assert_eq!(keyed.headers()["idempotency-key"], "k1");
        }
    }

    #[cfg(feature = "reqwest")]
    #[test]
    fn reqwest_requests_follow_the_same_rule() {
        let client = reqwest::Client::new();
        let get = client.get("http://127.0.0.1:1/x").build().unwrap();
        let post = client
            .post("http://127.0.0.1:1/x")
            .body("b")
            .build()
            .unwrap();
        let keyed = client
            .post("http://127.0.0.1:1/x")
            .header(IDEMPOTENCY_KEY, "k2")
            .body("b")
            .build()
            .unwrap();
        assert!(Idempotent.clone_request(&get).is_some());
        assert!(Idempotent.clone_request(&post).is_none());
        assert!(Idempotent.clone_request(&keyed).is_some());
    }
}
