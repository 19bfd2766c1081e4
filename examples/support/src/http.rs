//! Answers the example services share: statuses a client can act on, and
//! bodies that name no internal address.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A 400 with its message.
#[derive(Debug, Clone, Copy)]
pub struct BadRequest(pub &'static str);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.0).into_response()
    }
}

/// A 400 with `message`.
pub fn bad_request(message: &'static str) -> Response {
    BadRequest(message).into_response()
}

/// An id or a page position: a number from 0 to `i64::MAX` (the
/// database's ids), or a 400 that says so.
pub fn id_of(text: &str) -> Result<i64, BadRequest> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or(BadRequest("id: a number from 0 to 9223372036854775807"))
}

/// A 503 for a dependency (`what`: the database, the user service) that
/// failed: `Retry-After: 1`. The error is not sent; it is counted in the
/// log (a line a second while it lasts), and logged in full at `debug`.
pub fn unavailable(what: &'static str, error: &dyn std::fmt::Display) -> Response {
    super::log::repeated("requests failed: dependency unavailable", what);
    tracing::debug!(what, %error, "dependency unavailable");
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{what} unavailable"),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
