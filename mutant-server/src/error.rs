//! The server's error type and the one place core errors become HTTP
//! statuses. User errors answer 4xx with their message; internal errors are
//! logged once and answer a generic 500.

use hyper::StatusCode;
use mutant_core::Error as CoreError;
use mutant_core::api::vocabulary::ErrorCode;

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
    pub(crate) fn parts(&self) -> (StatusCode, ErrorCode, String) {
        let (code, message) = match self {
            // Internal failures may quote SQL or ClickHouse internals: the
            // details go to the log, the client gets a generic message.
            ServerError::Core(error @ (CoreError::Store { .. } | CoreError::Internal { .. })) => (
                error.code(),
                "the server failed to answer; its log has the details, and retrying may help"
                    .into(),
            ),
            ServerError::Core(error) => (error.code(), error.to_string()),
            ServerError::InvalidJson { reason } => (
                ErrorCode::InvalidJson,
                format!("the body is not valid JSON for this route: {reason}"),
            ),
            ServerError::InvalidQuery { reason } => (ErrorCode::InvalidParameter, reason.clone()),
            ServerError::UnsupportedMediaType { got, expected } => (
                ErrorCode::UnsupportedMediaType,
                format!("Content-Type {got:?} is not accepted here; send {expected}"),
            ),
            ServerError::Unauthorized => (
                ErrorCode::Unauthorized,
                "missing or wrong token; send Authorization: Bearer <MUTANT_API_TOKEN>".into(),
            ),
            ServerError::NotFound { path } => (
                ErrorCode::NotFound,
                format!("no route {path}; see PROTOCOL.md for the routes"),
            ),
            ServerError::MethodNotAllowed { method, path } => (
                ErrorCode::MethodNotAllowed,
                format!("{method} is not allowed on {path}; see PROTOCOL.md for the routes"),
            ),
            ServerError::PayloadTooLarge { limit } => (
                ErrorCode::PayloadTooLarge,
                format!(
                    "the body is over {limit} bytes; send smaller batches or raise MUTANT_MAX_BODY_BYTES"
                ),
            ),
        };
        (status_of(code), code, message)
    }

    /// Whether an operator must hear of it (a 5xx that is not an outage).
    pub(crate) fn is_internal(&self) -> bool {
        matches!(
            self,
            ServerError::Core(CoreError::Store { .. } | CoreError::Internal { .. })
        )
    }
}

/// Every error code's status: one exhaustive match, no wildcard, so a new
/// code (and so a new core error, whose code is an exhaustive match in
/// `mutant-core`) cannot be added without deciding its status. PROTOCOL.md's
/// Errors table lists the same; a test walks it.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidJson
        | ErrorCode::InvalidParameter
        | ErrorCode::InvalidDatasetName
        | ErrorCode::InvalidDimension
        | ErrorCode::UnknownMetric
        | ErrorCode::InvalidFilter
        | ErrorCode::MalformedFrame
        | ErrorCode::QueryTooLarge => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::NotFound | ErrorCode::UnknownDataset | ErrorCode::UnknownAnalysis => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::DatasetExists | ErrorCode::AnalysisNotFinished | ErrorCode::Cancelled => {
            StatusCode::CONFLICT
        }
        ErrorCode::PayloadTooLarge
        | ErrorCode::BatchTooLarge
        | ErrorCode::AnalysisTooLarge
        | ErrorCode::KnnTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::DimensionMismatch
        | ErrorCode::NonFiniteValue
        | ErrorCode::EmptyRecordId
        | ErrorCode::FieldTooLong
        | ErrorCode::EmptyField
        | ErrorCode::DuplicateRecordId
        | ErrorCode::EmptyBatch
        | ErrorCode::InvalidMetadata
        | ErrorCode::EmptyDataset => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::DatasetTooLarge => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::StoreError | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Every row of PROTOCOL.md's Errors table, as `(code, status)`.
#[cfg(test)]
pub(crate) fn documented_error_codes() -> Vec<(String, u16)> {
    let protocol = include_str!("../../PROTOCOL.md");
    let table = &protocol[protocol.find("## Errors").unwrap_or(0)..];
    table
        .lines()
        .take_while(|line| !line.starts_with("## Datasets"))
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let status = cells.next()?.parse().ok()?;
            Some((code.to_owned(), status))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_is_in_the_vocabulary_with_its_documented_status() {
        let documented = documented_error_codes();
        assert_eq!(documented.len(), ErrorCode::ALL.len(), "{documented:?}");
        for (code, status) in &documented {
            let parsed: ErrorCode = code
                .parse()
                .unwrap_or_else(|error| panic!("PROTOCOL.md lists {code}: {error}"));
            assert_eq!(status_of(parsed).as_u16(), *status, "{code}");
        }
        for code in ErrorCode::ALL {
            assert!(
                documented.iter().any(|(name, _)| name == code.as_str()),
                "PROTOCOL.md's Errors table lacks {code}"
            );
        }
    }
}
