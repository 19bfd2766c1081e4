//! Copies of requests for second attempts (retries and hedges).
//!
//! A request is moved into its first attempt, so a layer that may send it
//! again keeps a copy, made only when a second attempt is possible. Only
//! idempotent requests should be sent twice: a request that failed or was
//! slow may still have taken effect.

/// How a request is copied for a possible second attempt (a retry, a
/// hedge).
pub trait CloneRequest<Req> {
    /// A copy of `req`, or `None` if it must not be retried.
    fn clone_request(&self, req: &Req) -> Option<Req>;
}

/// Copies requests with `Clone`: the default.
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
    fn clone_request(&self, req: &Req) -> Option<Req> {
        self(req)
    }
}

/// Copies an `http::Request` whose body is `Clone`: method, URI, version,
/// headers and body. Extensions are not copied (they cannot be).
#[cfg(feature = "http")]
pub fn clone_http_request<B: Clone>(req: &http::Request<B>) -> Option<http::Request<B>> {
    let mut copy = http::Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}
