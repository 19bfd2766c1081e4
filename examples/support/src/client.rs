//! An HTTP client bound to one instance, as a `tower::Service`: what a
//! balancer takes as an endpoint.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tower::{BoxError, Service};

/// Requests and responses with buffered bodies: a request can be copied
/// for a retry, a response stored in a cache.
pub type Request = http::Request<Bytes>;
pub type Response = http::Response<Bytes>;

/// Sends requests to one instance (`http://host:port`) with a shared
/// `reqwest::Client`, and buffers the response body.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    base: Arc<str>,
}

impl HttpClient {
    pub fn new(client: reqwest::Client, base: impl Into<Arc<str>>) -> Self {
        HttpClient {
            client,
            base: base.into(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }
}

/// The `reqwest::Client` the examples share: connection pool, a connect
/// timeout, and a request timeout that bounds every call.
pub fn reqwest_client() -> Result<reqwest::Client, BoxError> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()?)
}

impl Service<Request> for HttpClient {
    type Response = Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // reqwest's pool queues requests itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (parts, body) = request.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let url = format!("{}{path}", self.base);
        let builder = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body);
        Box::pin(async move {
            let response = builder.send().await?;
            // Copies of their own, headers and body: what hyper gives are
            // slices of its read buffer, which a cached response would keep
            // alive whole (kilobytes for an answer of a hundred bytes).
            let mut headers = http::HeaderMap::with_capacity(response.headers().len());
            for (name, value) in response.headers() {
                if let Ok(value) = http::HeaderValue::from_bytes(value.as_bytes()) {
                    headers.append(name.clone(), value);
                }
            }
            let status = response.status();
            let body = Bytes::copy_from_slice(&response.bytes().await?);
            let mut answer = http::Response::new(body);
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok(answer)
        })
    }
}
