//! How answers and errors leave a stack.

use super::answer::Answer;
use crate::BoxError;

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Plain {}
    #[cfg(feature = "http")]
    impl Sealed for super::Http {}
    #[cfg(feature = "grpc")]
    impl Sealed for super::Grpc {}
}

/// How a [`ResilienceLayer`](super::ResilienceLayer)'s answers and errors
/// leave it: [`Plain`], [`Http`] or [`Grpc`], chosen by the builder
/// ([`http`](super::ResilienceBuilder::http),
/// [`reqwest`](super::ResilienceBuilder::reqwest),
/// [`grpc`](super::ResilienceBuilder::grpc)).
pub trait Profile<Res>: sealed::Sealed {
    /// What the stack answers.
    type Response;

    /// The stack's answer for the response inside `answer`.
    fn response(answer: Answer<Res>) -> Self::Response;

    /// The stack's error for `error`.
    #[inline]
    fn error(error: BoxError) -> BoxError {
        error
    }
}

/// Responses and errors as they are; where the cache found a response is
/// told only by the `bulwark_cache_requests_total` metric.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl<Res> Profile<Res> for Plain {
    type Response = Res;

    #[inline]
    fn response(answer: Answer<Res>) -> Res {
        answer.response
    }
}

/// HTTP responses as they are, with their
/// [`CacheStatus`](crate::cache::CacheStatus) in their extensions when the
/// cache answered: `response.extensions().get::<CacheStatus>()`.
#[cfg(feature = "http")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Http;

#[cfg(feature = "http")]
impl<B> Profile<http::Response<B>> for Http {
    type Response = http::Response<B>;

    #[inline]
    fn response(answer: Answer<http::Response<B>>) -> http::Response<B> {
        let mut response = answer.response;
        if let Some(status) = answer.cache {
            response.extensions_mut().insert(status);
        }
        response
    }
}

#[cfg(feature = "reqwest")]
impl Profile<reqwest::Response> for Http {
    type Response = reqwest::Response;

    #[inline]
    fn response(answer: Answer<reqwest::Response>) -> reqwest::Response {
        let mut response = answer.response;
        if let Some(status) = answer.cache {
            response.extensions_mut().insert(status);
        }
        response
    }
}

/// gRPC: the body watched for the status in its trailers
/// ([`GrpcBody`](crate::grpc::GrpcBody)), and errors as the
/// `tonic::Status` they mean ([`crate::error::grpc_status`]), as
/// [`GrpcOutcome`](crate::grpc::GrpcOutcome) gives them.
#[cfg(feature = "grpc")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Grpc;

#[cfg(feature = "grpc")]
impl<B> Profile<http::Response<B>> for Grpc {
    type Response = http::Response<crate::grpc::GrpcBody<B>>;

    #[inline]
    fn response(answer: Answer<http::Response<B>>) -> Self::Response {
        crate::grpc::watch(answer.response)
    }

    fn error(error: BoxError) -> BoxError {
        Box::new(crate::error::grpc_status(error))
    }
}
