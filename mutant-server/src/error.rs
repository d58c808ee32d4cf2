//! The server's error type and the one place core errors become HTTP
//! statuses. User errors answer 4xx with their message; internal errors are
//! logged once and answer a generic 500.

use hyper::StatusCode;
use mutant_core::Error as CoreError;

/// What a request can fail with.
#[derive(Debug)]
pub(crate) enum ServerError {
    /// From `mutant-core`.
    Core(CoreError),
    /// The body is not the JSON the route takes.
    InvalidJson { reason: String },
    /// A query-string parameter that cannot be read.
    InvalidQuery { reason: String },
    /// A `Content-Type` the route does not take.
    UnsupportedMediaType { got: String, expected: &'static str },
    /// Missing or wrong bearer token.
    Unauthorized,
    /// No such route.
    NotFound { path: String },
    /// The route exists, the method does not.
    MethodNotAllowed { method: String, path: String },
    /// A body over the configured limit.
    PayloadTooLarge { limit: usize },
}

impl From<CoreError> for ServerError {
    fn from(error: CoreError) -> Self {
        ServerError::Core(error)
    }
}

impl ServerError {
    /// Status, stable code and message.
    pub(crate) fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            // Internal failures may quote SQL or ClickHouse internals: the
            // details go to the log, the client gets a generic message.
            ServerError::Core(error @ (CoreError::Store { .. } | CoreError::Internal { .. })) => (
                core_status(error),
                error.code(),
                "the server failed to answer; its log has the details, and retrying may help"
                    .into(),
            ),
            ServerError::Core(error) => (core_status(error), error.code(), error.to_string()),
            ServerError::InvalidJson { reason } => (
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON for this route: {reason}"),
            ),
            ServerError::InvalidQuery { reason } => {
                (StatusCode::BAD_REQUEST, "invalid_parameter", reason.clone())
            }
            ServerError::UnsupportedMediaType { got, expected } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("Content-Type {got:?} is not accepted here; send {expected}"),
            ),
            ServerError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong token; send Authorization: Bearer <MUTANT_API_TOKEN>".into(),
            ),
            ServerError::NotFound { path } => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route {path}; see PROTOCOL.md for the routes"),
            ),
            ServerError::MethodNotAllowed { method, path } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on {path}; see PROTOCOL.md for the routes"),
            ),
            ServerError::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the body is over {limit} bytes; send smaller batches or raise MUTANT_MAX_BODY_BYTES"
                ),
            ),
        }
    }

    /// Whether an operator must hear of it (a 5xx that is not an outage).
    pub(crate) fn is_internal(&self) -> bool {
        matches!(
            self,
            ServerError::Core(CoreError::Store { .. } | CoreError::Internal { .. })
        )
    }
}

/// Every core error's status: one exhaustive match, no wildcard, so a new
/// variant cannot be added without deciding its status.
fn core_status(error: &CoreError) -> StatusCode {
    match error {
        CoreError::InvalidDatasetName { .. }
        | CoreError::InvalidDimension { .. }
        | CoreError::UnknownMetric { .. }
        | CoreError::InvalidFilter { .. }
        | CoreError::MalformedFrame { .. }
        | CoreError::InvalidParameter { .. }
        | CoreError::QueryTooLarge { .. } => StatusCode::BAD_REQUEST,
        CoreError::DimensionMismatch { .. }
        | CoreError::NonFiniteValue { .. }
        | CoreError::EmptyRecordId { .. }
        | CoreError::FieldTooLong { .. }
        | CoreError::EmptyField { .. }
        | CoreError::DuplicateRecordId { .. }
        | CoreError::EmptyBatch
        | CoreError::InvalidMetadata { .. }
        | CoreError::EmptyDataset { .. }
        | CoreError::KernelDimensionMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CoreError::BatchTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        CoreError::UnknownDataset { .. } | CoreError::UnknownAnalysis { .. } => {
            StatusCode::NOT_FOUND
        }
        CoreError::DatasetExists { .. }
        | CoreError::AnalysisNotFinished { .. }
        | CoreError::Cancelled => StatusCode::CONFLICT,
        CoreError::DatasetTooLarge { .. } => StatusCode::INSUFFICIENT_STORAGE,
        CoreError::StoreUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::Store { .. } | CoreError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
