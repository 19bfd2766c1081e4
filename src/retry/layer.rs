use std::sync::Arc;

use tower_layer::Layer;

use super::{Core, NoRetryAfter, Retry, RetryConfig, Shared};
use crate::classify::DefaultClassifier;
use crate::config::ConfigError;
use crate::request::ByClone;
use crate::request::Template;

/// Applies [`Retry`] to services. See the [module docs](super).
///
/// The budget is created with the layer and shared by every service it
/// wraps and their clones.
#[derive(Debug, Clone)]
pub struct RetryLayer<C = DefaultClassifier, R = ByClone, H = NoRetryAfter> {
    core: Arc<Core>,
    classifier: C,
    cloner: R,
    hint: H,
}

impl RetryLayer {
    /// A layer with the retries and budget `config` describes.
    ///
    /// # Errors
    ///
    /// The first invalid field of `config`, as a [`ConfigError`].
    pub fn new(config: RetryConfig) -> Result<Self, ConfigError> {
        Ok(RetryLayer {
            core: Arc::new(Core::new(config.validate()?)),
            classifier: DefaultClassifier,
            cloner: ByClone,
            hint: NoRetryAfter,
        })
    }
}

impl<C, R, H> RetryLayer<C, R, H> {
    /// Retries what `classifier` calls a failure (see [`crate::classify`]).
    pub fn classify<C2>(self, classifier: C2) -> RetryLayer<C2, R, H> {
        RetryLayer {
            core: self.core,
            classifier,
            cloner: self.cloner,
            hint: self.hint,
        }
    }

    /// Copies requests with `cloner` (a [`CloneRequest`](crate::request::CloneRequest):
    /// a closure `Fn(&Req) -> Option<Req>`, capturing or not, or
    /// [`Idempotent`](crate::request::Idempotent) for HTTP) instead of
    /// `Clone`. A request it maps to `None` is sent once.
    pub fn clone_requests_with<R2>(self, cloner: R2) -> RetryLayer<C, R2, H> {
        RetryLayer {
            core: self.core,
            classifier: self.classifier,
            cloner,
            hint: self.hint,
        }
    }

    /// Waits as long as a 429 or 503 response's `Retry-After` header says
    /// (capped at `backoff_max`) before retrying it.
    #[cfg(feature = "http")]
    pub fn respect_retry_after(self) -> RetryLayer<C, R, super::HttpRetryAfter> {
        self.retry_after_hint(super::HttpRetryAfter)
    }

    /// Reads retry hints from responses with `hint` (a
    /// [`RetryAfter`](super::RetryAfter)).
    pub fn retry_after_hint<H2>(self, hint: H2) -> RetryLayer<C, R, H2> {
        RetryLayer {
            core: self.core,
            classifier: self.classifier,
            cloner: self.cloner,
            hint,
        }
    }
}

impl<S: Clone, C: Clone, R: Clone, H: Clone> Layer<S> for RetryLayer<C, R, H> {
    type Service = Retry<S, C, R, H>;

    fn layer(&self, inner: S) -> Self::Service {
        let shared = Arc::new(Shared {
            core: self.core.clone(),
            classifier: self.classifier.clone(),
            cloner: self.cloner.clone(),
            hint: self.hint.clone(),
            service: Template::new(&inner),
        });
        Retry::from_parts(inner, shared)
    }
}
