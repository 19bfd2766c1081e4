//! Answers repeated requests from memory, and keeps answering when the
//! service fails.
//!
//! [`Cache`] keys each request with a function of yours (`None` means "do
//! not cache this one"), and stores the responses the classifier (see
//! [`crate::classify`]) calls a success. Storage is [`moka`]: bounded by
//! [`max_entries`](CacheConfig::max_entries), or by total weight with
//! [`CacheLayer::weigh_with`], with the time to live you set.
//!
//! - **Fresh**: an entry younger than [`ttl`](CacheConfig::ttl) answers
//!   without calling the service.
//! - **Stale-if-error**: for a further
//!   [`stale_if_error`](CacheConfig::stale_if_error), an expired entry is
//!   served when the service fails (an error, or a response classified as a
//!   failure). This is how the cache lowers dependence on a failing service.
//! - **Single-flight**: concurrent misses for one key make one inner call;
//!   the others wait for it and share its answer. If it failed with an
//!   error, they get a [`error::SharedError`] wrapping it (the
//!   caller that made the call gets the error itself when nobody waited).
//!   If that call is cancelled, each waiter makes its own call: no request
//!   is lost.
//!
//! The caller tells a cached answer from a fresh one by its
//! [`CacheStatus`]: by default responses come wrapped in [`Cached`]; with
//! the `http` feature, [`CacheLayer::http_extension`] leaves
//! `http::Response`s as they are and puts the status in their extensions.
//!
//! # HTTP bodies
//!
//! A stored response is cloned for every hit, so its type must be `Clone`.
//! A streaming body (`axum::body::Body`, `hyper::body::Incoming`) is not:
//! collect it to `Bytes` first (for example with
//! `http_body_util::BodyExt::collect` in a `map_response` layer or in your
//! client service), and cache `http::Response<Bytes>`.
//!
//! What hyper (and so reqwest) hands out are slices of its read buffer:
//! its header values, and a body that arrived in one chunk. A cached
//! response built from them keeps the whole buffer alive, kilobytes for an
//! answer of a hundred bytes. Copy them (`Bytes::copy_from_slice`,
//! `HeaderValue::from_bytes`) into the response you cache, and bound the
//! cache by bytes with a weigher that counts the headers as well as the
//! body. The example gateway does both (`examples/support/src/client.rs`
//! copies, `examples/support/src/gateway.rs` weighs): 30 000 distinct reads
//! left its resident memory 8 MB larger with a cap of 4 MiB (4 MB larger
//! with no cache at all); before it copied, 160 MB larger.
//!
//! The layer keeps the inner service's error type (it needs
//! `E: From<SharedError<E>>`, which `BoxError` and `Infallible` are).
//! Each service the layer wraps gets its own store; clones share it.
//!
//! # Metrics
//!
//! `bulwark_cache_requests_total` (by `result`), `bulwark_cache_entries`
//! and `bulwark_cache_evictions_total`; [the crate's metrics
//! table](crate#metrics) says what each counts.
//!
//! # Example
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::{service_fn, BoxError, Layer, Service, ServiceExt};
//! use tower_bulwark::cache::{CacheConfig, CacheLayer, CacheStatus};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), BoxError> {
//! let calls = Arc::new(AtomicU32::new(0));
//! let counted = calls.clone();
//! let users = service_fn(move |id: u32| {
//!     counted.fetch_add(1, Ordering::SeqCst);
//!     async move { Ok::<_, BoxError>(format!("user {id}")) }
//! });
//! let layer = CacheLayer::new(
//!     CacheConfig::default().ttl(Duration::from_secs(30)),
//!     |id: &u32| Some(*id),
//! )?;
//! let mut svc = layer.layer(users);
//!
//! let first = svc.ready().await?.call(7).await?;
//! assert_eq!((first.status(), first.get_ref().as_str()), (CacheStatus::Miss, "user 7"));
//! let second = svc.ready().await?.call(7).await?;
//! assert_eq!(second.status(), CacheStatus::Hit);
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! # Ok(())
//! # }
//! ```

mod config;
pub mod error;
pub mod future;
mod layer;
mod service;
mod store;

pub use self::config::CacheConfig;
pub use self::layer::{CacheLayer, Unweighted, Weigher};
pub use self::service::Cache;
pub(crate) use self::store::Store;

/// The cache key of a request: a closure `Fn(&Req) -> Option<K>` (`None`:
/// the request is not cached), or a type of your own.
pub trait CacheKey<Req, K> {
    /// The key of `req`, or `None` if it is not to be cached.
    fn key(&self, req: &Req) -> Option<K>;
}

impl<F, Req, K> CacheKey<Req, K> for F
where
    F: Fn(&Req) -> Option<K>,
{
    #[inline]
    fn key(&self, req: &Req) -> Option<K> {
        self(req)
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheStatus {
    /// A fresh stored answer; the service was not called.
    Hit,
    /// The service's answer to this request.
    Miss,
    /// An expired stored answer, served because the service failed.
    Stale,
    /// The answer to an identical request in flight at the same time.
    Coalesced,
}

impl CacheStatus {
    /// The value of the `result` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Stale => "stale",
            CacheStatus::Coalesced => "coalesced",
        }
    }
}

/// A response and where it came from: what [`Cache`] answers by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached<T> {
    response: T,
    status: CacheStatus,
}

impl<T> Cached<T> {
    /// Where the response came from.
    pub fn status(&self) -> CacheStatus {
        self.status
    }

    /// Whether it is an expired answer served because the service failed.
    pub fn is_stale(&self) -> bool {
        self.status == CacheStatus::Stale
    }

    /// The response.
    pub fn get_ref(&self) -> &T {
        &self.response
    }

    /// The response, without its status.
    pub fn into_inner(self) -> T {
        self.response
    }
}

/// How a response carries its [`CacheStatus`] to the caller.
pub trait MarkStatus<T> {
    /// What the cache answers.
    type Response;

    /// `response` with `status`.
    fn mark(&self, response: T, status: CacheStatus) -> Self::Response;
}

/// Wraps every response in [`Cached`]: the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wrap;

impl<T> MarkStatus<T> for Wrap {
    type Response = Cached<T>;

    #[inline]
    fn mark(&self, response: T, status: CacheStatus) -> Cached<T> {
        Cached { response, status }
    }
}

/// Answers responses as they are, without their [`CacheStatus`]: for a
/// stack whose response type must not change (see
/// [`ResilienceLayer`](crate::stack::ResilienceLayer)). The status still
/// shows in the `bulwark_cache_requests_total` metric.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unmarked;

impl<T> MarkStatus<T> for Unmarked {
    type Response = T;

    #[inline]
    fn mark(&self, response: T, _status: CacheStatus) -> T {
        response
    }
}

/// Leaves `http::Response`s as they are, with their [`CacheStatus`] in
/// their extensions: `response.extensions().get::<CacheStatus>()`.
#[cfg(feature = "http")]
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpExtension;

#[cfg(feature = "http")]
impl<B> MarkStatus<http::Response<B>> for HttpExtension {
    type Response = http::Response<B>;

    fn mark(&self, mut response: http::Response<B>, status: CacheStatus) -> http::Response<B> {
        response.extensions_mut().insert(status);
        response
    }
}
