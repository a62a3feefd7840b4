use flowmesh_api::ErrorCode;
use flowmesh_model::ValidationErrors;

/// What an error was caused by: the failing component's own error, or what
/// was seen when there is none.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong when asking the engine for something. Each variant says
/// whether the caller may safely retry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing does not exist for this tenant. Retrying will not help.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request body is not JSON. Retrying the same body will not help.
    #[error("malformed JSON: {0}")]
    Malformed(#[source] Cause),
    /// The workflow document breaks the rules; every problem is listed.
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// The request conflicts with current state (for example a webhook path in use).
    #[error("{0}")]
    Conflict(String),
    /// The request is understood but not acceptable as given.
    #[error("{0}")]
    BadRequest(String),
    /// The right password for a user of several tenants, and no tenant
    /// named; these are the user's. Retrying with one of them named helps.
    #[error("this account belongs to several tenants; name one of them as \"tenant\" (its id)")]
    TenantRequired(Vec<flowmesh_store::MemberTenant>),
    /// The request was made on a version that is no longer the latest
    /// (`If-Match`). Retrying will not help: read again and redo the edit.
    #[error("{0}")]
    Stale(String),
    /// No valid credential, or a login that did not match. Retrying with the
    /// same credential will not help.
    #[error("{0}")]
    Unauthorized(String),
    /// A webhook caller did not prove it holds the trigger's secret (or the
    /// secret is not set). Nothing was started. Retrying the same request
    /// will not help. `challenge` is the `WWW-Authenticate` value, if the
    /// scheme has one.
    #[error("authentication failed")]
    Unauthenticated { challenge: Option<&'static str> },
    /// The caller's role does not allow this. Retrying will not help.
    #[error("{0}")]
    Forbidden(String),
    /// The tenant sends requests faster than its rate limit; retrying after
    /// the given time is safe.
    #[error("the tenant's request rate limit is reached; retry in {} ms", retry_after.as_millis())]
    RateLimited { retry_after: std::time::Duration },
    /// The tenant has no credits left: nothing was started. Retrying helps
    /// only after credits are added.
    #[error("{0}")]
    NoCredits(String),
    /// An idempotency key already started an execution of this trigger from
    /// a different request. Retrying with the same key will not help.
    #[error("{0}")]
    KeyReused(String),
    /// A body or input over the tenant's size limit. Retrying will not help.
    #[error("{0}")]
    TooLarge(String),
    /// A setting above what the instance's operator allows; `field` is where
    /// in the request it is. Retrying will not help.
    #[error("{field}: {message}")]
    OverLimit {
        field: &'static str,
        message: String,
    },
    /// A field of the request that cannot be taken as given, at its JSON
    /// path (`mocks.fetch`). Retrying will not help.
    #[error("{0}")]
    Field(flowmesh_model::validate::ValidationError),
    /// This instance is not set up for the request. Retrying will not help.
    #[error("{0}")]
    Unconfigured(String),
    /// No valid workflow could be generated; `errors` are the last
    /// answer's problems. Retrying with a clearer description may help.
    #[error("{message}")]
    NotGenerated {
        message: String,
        explanation: String,
        errors: Vec<flowmesh_model::validate::ValidationError>,
        rounds: u32,
    },
    /// An outside service the request needed (a model provider) failed.
    #[error("{0}")]
    Upstream(#[source] flowmesh_node_handlers::llm::Error),
    /// A dependency (store or bus) is unreachable; nothing was accepted, so retrying is safe.
    #[error("temporarily unavailable ({0}); nothing was accepted and retrying is safe")]
    Unavailable(#[source] Cause),
    /// A fault inside the engine.
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
}

impl Error {
    /// The kind of refusal, as HTTP error bodies and NATS replies name it.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Malformed(_) => ErrorCode::MalformedJson,
            Error::Invalid(_) | Error::Field(_) => ErrorCode::InvalidWorkflow,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::TenantRequired(_) => ErrorCode::TenantRequired,
            Error::Stale(_) => ErrorCode::PreconditionFailed,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::Unauthenticated { .. } => ErrorCode::Unauthenticated,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::NoCredits(_) => ErrorCode::NoCredits,
            Error::KeyReused(_) => ErrorCode::IdempotencyKeyReused,
            Error::TooLarge(_) => ErrorCode::PayloadTooLarge,
            Error::OverLimit { .. } => ErrorCode::OverLimit,
            Error::Unconfigured(_) => ErrorCode::NotConfigured,
            Error::NotGenerated { .. } => ErrorCode::NotGenerated,
            Error::Upstream(e) if e.is_retryable() => ErrorCode::ModelUnavailable,
            Error::Upstream(_) => ErrorCode::ModelError,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::RateLimited { .. })
            || matches!(self, Error::Upstream(e) if e.is_retryable())
    }
}

impl From<flowmesh_store::Error> for Error {
    fn from(e: flowmesh_store::Error) -> Self {
        match e {
            flowmesh_store::Error::NotFound => Error::NotFound("record"),
            flowmesh_store::Error::Conflict(m) => Error::Conflict(m),
            flowmesh_store::Error::Invalid(m) => Error::BadRequest(m),
            flowmesh_store::Error::KeyReused(key) => Error::KeyReused(format!(
                "the Idempotency-Key {key:?} was already used for a different request to this \
                 trigger; retrying with the same key will not help: send a new request with a new key"
            )),
            e if e.is_retryable() => Error::Unavailable(Box::new(e)),
            e => Error::Internal(Box::new(e)),
        }
    }
}

impl From<flowmesh_bus::Error> for Error {
    fn from(e: flowmesh_bus::Error) -> Self {
        if e.is_retryable() {
            Error::Unavailable(Box::new(e))
        } else {
            Error::Internal(Box::new(e))
        }
    }
}
