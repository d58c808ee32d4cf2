//! The one error type of the SDK: the server's stable codes mapped to typed
//! variants, plus what can go wrong on the client's side of the wire
//! (transport, timeouts, undecodable answers, bad configuration).

use uuid::Uuid;

use mutant_core::api::vocabulary::ErrorCode;
use mutant_core::api::wire::ErrorResponse;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a call of the SDK can fail with.
///
/// Errors the server reports carry its message, which names the values
/// involved and says what to change; [`Error::code`] gives the server's stable
/// code for programs. Errors that may go away by themselves ([`Error::is_retryable`])
/// have already been retried according to the client's
/// [`RetryPolicy`](crate::RetryPolicy) when you see them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The base URL given to [`Client::new`](crate::Client::new) cannot be used.
    #[error("base URL {url:?} cannot be used: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it and how to write it.
        reason: String,
    },
    /// The API token cannot travel in an HTTP header.
    #[error(
        "the API token cannot be sent in an HTTP header; use the token exactly as the server's MUTANT_API_TOKEN has it (visible ASCII, no line breaks)"
    )]
    InvalidToken,
    /// No dataset with that name or UUID (code `unknown_dataset`).
    #[error("{message}")]
    UnknownDataset {
        /// The server's message, naming the dataset.
        message: String,
    },
    /// A dataset of that name exists already (code `dataset_exists`).
    #[error("{message}")]
    DatasetExists {
        /// The server's message, naming the dataset.
        message: String,
    },
    /// [`Client::get_or_create_dataset`](crate::Client::get_or_create_dataset)
    /// found a dataset of that name with another dimension or metric.
    #[error(
        "dataset {name:?} exists with dimension {existing_dimension} and metric {existing_metric}, not dimension {wanted_dimension} and metric {wanted_metric}; use another name or delete the existing dataset"
    )]
    DatasetIncompatible {
        /// The dataset name.
        name: String,
        /// The stored dataset's dimension.
        existing_dimension: usize,
        /// The stored dataset's metric.
        existing_metric: String,
        /// The dimension asked for.
        wanted_dimension: usize,
        /// The metric asked for.
        wanted_metric: String,
    },
    /// The request's content was refused: wrong dimension, non-finite values,
    /// bad ids, invalid filter, metadata or parameter, empty dataset, ...
    /// Nothing stored was changed. Refused by the client before sending when
    /// the check is cheap (empty ids, non-finite values, ragged kNN queries).
    #[error("{message} (code {code})")]
    InvalidInput {
        /// The stable code, e.g. `dimension_mismatch`, `invalid_filter`.
        code: String,
        /// What is wrong and what to change.
        message: String,
    },
    /// The server wants a valid token (code `unauthorized`).
    #[error(
        "the server refused the request as unauthorized ({message}); pass the server's MUTANT_API_TOKEN with Client::with_token"
    )]
    Unauthorized {
        /// The server's message.
        message: String,
    },
    /// The request body is over the server's limit (code `payload_too_large`).
    #[error(
        "the request is too large for the server ({message}); send fewer records per request, e.g. with a smaller BatchWriterConfig::with_max_batch_bytes"
    )]
    PayloadTooLarge {
        /// The server's message.
        message: String,
    },
    /// The server or its ClickHouse is unavailable (HTTP 503), still so after
    /// the retries of the policy.
    #[error(
        "the server is unavailable after {attempts} attempt(s) ({message}); check that the server and its ClickHouse run, then retry: writes are idempotent"
    )]
    Unavailable {
        /// The server's code, usually `store_unavailable`.
        code: String,
        /// The server's message.
        message: String,
        /// Attempts made, retries included.
        attempts: u32,
    },
    /// The dataset needs more memory than the server's whole dataset cache
    /// (code `dataset_too_large`, HTTP 507).
    #[error(
        "{message}; the dataset does not fit the server's cache: raise MUTANT_CACHE_BYTES on the server (or split the dataset)"
    )]
    DatasetTooLarge {
        /// The server's message.
        message: String,
    },
    /// The analysis would need more working memory than the server's
    /// analysis budget (code `analysis_too_large`, HTTP 413); the message
    /// says what to lower.
    #[error("{message}")]
    AnalysisTooLarge {
        /// The server's message: the estimate, the budget, what to lower.
        message: String,
    },
    /// No analysis with that id (code `unknown_analysis`).
    #[error("{message}")]
    UnknownAnalysis {
        /// The server's message.
        message: String,
    },
    /// Results were asked for before the analysis finished (code
    /// `analysis_not_finished`).
    #[error("{message}; wait for it with Client::wait_for_analysis")]
    AnalysisNotFinished {
        /// The server's message.
        message: String,
    },
    /// The analysis ended with status `failed`.
    #[error("analysis {id} ({kind}) failed: {message}")]
    AnalysisFailed {
        /// The analysis id.
        id: Uuid,
        /// Its algorithm.
        kind: String,
        /// Why, as the server reports it.
        message: String,
    },
    /// The analysis ended with status `cancelled`.
    #[error("analysis {id} ({kind}) was cancelled; start it again to get results")]
    AnalysisCancelled {
        /// The analysis id.
        id: Uuid,
        /// Its algorithm.
        kind: String,
    },
    /// The server did not understand the request itself (codes
    /// `malformed_frame`, `invalid_json`, `unsupported_media_type`,
    /// `not_found`, `method_not_allowed`): client and server disagree on the
    /// protocol.
    #[error(
        "the server did not understand the request (HTTP {status}, {code}: {message}); check that client and server speak the same protocol version (Client::version)"
    )]
    Protocol {
        /// The HTTP status.
        status: u16,
        /// The server's code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server failed (codes `internal`, `store_error`, or a code this
    /// client does not know).
    #[error(
        "the server failed (HTTP {status}, {code}): {message}; the server's log has the details"
    )]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's code; empty when the answer had no error body.
        code: String,
        /// The server's message, or the start of its answer.
        message: String,
    },
    /// The server could not be reached, or the connection broke, still so
    /// after the retries of the policy.
    #[error(
        "cannot talk to the server at {url} after {attempts} attempt(s): {reason}; check the address and that the server runs"
    )]
    Transport {
        /// The URL of the request.
        url: String,
        /// What the connection did.
        reason: String,
        /// Attempts made, retries included.
        attempts: u32,
    },
    /// No complete answer within the client's timeout, still so after the
    /// retries of the policy (when the request was safe to repeat).
    #[error(
        "no answer from {url} within {timeout_ms} ms after {attempts} attempt(s); raise Client::with_timeout or check the server's load"
    )]
    Timeout {
        /// The URL of the request.
        url: String,
        /// The timeout per attempt.
        timeout_ms: u64,
        /// Attempts made, retries included.
        attempts: u32,
    },
    /// The server's answer could not be decoded.
    #[error(
        "cannot decode the answer to {request}: {reason}; check that client and server versions match (Client::version)"
    )]
    Decode {
        /// The request answered, as `METHOD /path`.
        request: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// The SDK needs a Tokio runtime for this.
    #[error(
        "{what} needs a Tokio runtime; call it from async code running on Tokio (e.g. under #[tokio::main])"
    )]
    NoRuntime {
        /// What was called.
        what: &'static str,
    },
    /// The background task of a [`BatchWriter`](crate::BatchWriter) ended
    /// abnormally; what it accepted may not all be stored.
    #[error(
        "the batch writer stopped unexpectedly ({reason}); records written since the last finished writer may not be stored, write them again (upserts are idempotent)"
    )]
    WriterStopped {
        /// What happened to the task.
        reason: String,
    },
}

impl Error {
    /// The stable code of an error reported by the server (or refused by the
    /// client with the server's code), such as `unknown_dataset` or
    /// `dimension_mismatch`; `None` for errors of the client's side.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::UnknownDataset { .. } => Some("unknown_dataset"),
            Error::DatasetExists { .. } => Some("dataset_exists"),
            Error::Unauthorized { .. } => Some("unauthorized"),
            Error::PayloadTooLarge { .. } => Some("payload_too_large"),
            Error::UnknownAnalysis { .. } => Some("unknown_analysis"),
            Error::DatasetTooLarge { .. } => Some("dataset_too_large"),
            Error::AnalysisTooLarge { .. } => Some("analysis_too_large"),
            Error::AnalysisNotFinished { .. } => Some("analysis_not_finished"),
            Error::InvalidInput { code, .. }
            | Error::Unavailable { code, .. }
            | Error::Protocol { code, .. }
            | Error::Server { code, .. } => Some(code),
            Error::InvalidBaseUrl { .. }
            | Error::InvalidToken
            | Error::DatasetIncompatible { .. }
            | Error::AnalysisFailed { .. }
            | Error::AnalysisCancelled { .. }
            | Error::Transport { .. }
            | Error::Timeout { .. }
            | Error::Decode { .. }
            | Error::NoRuntime { .. }
            | Error::WriterStopped { .. } => None,
        }
    }

    /// True for errors that may go away by themselves (unavailable server,
    /// broken connection, timeout). The client has already retried them per
    /// its [`RetryPolicy`](crate::RetryPolicy); retrying later is safe for
    /// every call but [`Client::start_analysis`](crate::Client::start_analysis),
    /// which may then start a second analysis.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::Transport { .. } | Error::Timeout { .. }
        )
    }

    /// The error for an answer with a non-success `status` and `body`,
    /// before retries (`attempts` is 1 where the variant counts them).
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Error {
        let (code, message) = match serde_json::from_slice::<ErrorResponse>(body) {
            Ok(response) => (response.error.code, response.error.message),
            Err(_) => (String::new(), body_excerpt(body)),
        };
        match code.parse::<ErrorCode>() {
            Ok(known) => Error::from_code(known, status, code, message),
            // A code this client does not know (or no error body): go by
            // the status, so that a newer server still maps sensibly.
            Err(_) => match status {
                400 | 422 => Error::InvalidInput { code, message },
                401 => Error::Unauthorized { message },
                413 => Error::PayloadTooLarge { message },
                415 => Error::Protocol {
                    status,
                    code,
                    message,
                },
                503 => Error::Unavailable {
                    code,
                    message,
                    attempts: 1,
                },
                507 => Error::DatasetTooLarge { message },
                _ => Error::Server {
                    status,
                    code,
                    message,
                },
            },
        }
    }

    /// The typed error for a code of the protocol's vocabulary: one
    /// exhaustive match, so a new code cannot reach users as "the server
    /// failed".
    fn from_code(known: ErrorCode, status: u16, code: String, message: String) -> Error {
        match known {
            ErrorCode::UnknownDataset => Error::UnknownDataset { message },
            ErrorCode::DatasetExists => Error::DatasetExists { message },
            ErrorCode::UnknownAnalysis => Error::UnknownAnalysis { message },
            ErrorCode::AnalysisNotFinished => Error::AnalysisNotFinished { message },
            ErrorCode::Unauthorized => Error::Unauthorized { message },
            ErrorCode::PayloadTooLarge => Error::PayloadTooLarge { message },
            ErrorCode::DatasetTooLarge => Error::DatasetTooLarge { message },
            ErrorCode::AnalysisTooLarge => Error::AnalysisTooLarge { message },
            ErrorCode::StoreUnavailable => Error::Unavailable {
                code,
                message,
                attempts: 1,
            },
            ErrorCode::MalformedFrame
            | ErrorCode::InvalidJson
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::NotFound
            | ErrorCode::MethodNotAllowed => Error::Protocol {
                status,
                code,
                message,
            },
            ErrorCode::InvalidDatasetName
            | ErrorCode::InvalidDimension
            | ErrorCode::UnknownMetric
            | ErrorCode::DimensionMismatch
            | ErrorCode::NonFiniteValue
            | ErrorCode::EmptyRecordId
            | ErrorCode::FieldTooLong
            | ErrorCode::EmptyField
            | ErrorCode::DuplicateRecordId
            | ErrorCode::EmptyBatch
            | ErrorCode::BatchTooLarge
            | ErrorCode::KnnTooLarge
            | ErrorCode::InvalidMetadata
            | ErrorCode::InvalidFilter
            | ErrorCode::InvalidParameter
            | ErrorCode::EmptyDataset
            | ErrorCode::QueryTooLarge => Error::InvalidInput { code, message },
            ErrorCode::Cancelled | ErrorCode::StoreError | ErrorCode::Internal => Error::Server {
                status,
                code,
                message,
            },
        }
    }

    /// A validation error of `mutant-core` raised on the client's side, with
    /// the server's code and message.
    pub(crate) fn refused(error: &mutant_core::Error) -> Error {
        Error::InvalidInput {
            code: error.code().as_str().to_owned(),
            message: error.to_string(),
        }
    }

    /// Sets the number of attempts made on the variants that count them.
    pub(crate) fn with_attempts(mut self, n_attempts: u32) -> Error {
        if let Error::Unavailable { attempts, .. }
        | Error::Transport { attempts, .. }
        | Error::Timeout { attempts, .. } = &mut self
        {
            *attempts = n_attempts;
        }
        self
    }
}

/// The start of a body that is not an error document, for the message.
fn body_excerpt(body: &[u8]) -> String {
    const MAX_LEN: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "the answer has no error body".to_owned();
    }
    match text.char_indices().nth(MAX_LEN) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"error": {"code": code, "message": message}}))
            .unwrap()
    }

    #[test]
    fn server_codes_map_to_typed_variants() {
        assert_eq!(
            Error::from_response(404, &body("unknown_dataset", "no dataset \"x\"")),
            Error::UnknownDataset {
                message: "no dataset \"x\"".into()
            }
        );
        assert!(matches!(
            Error::from_response(409, &body("dataset_exists", "m")),
            Error::DatasetExists { .. }
        ));
        assert!(matches!(
            Error::from_response(401, &body("unauthorized", "m")),
            Error::Unauthorized { .. }
        ));
        assert!(matches!(
            Error::from_response(413, &body("payload_too_large", "m")),
            Error::PayloadTooLarge { .. }
        ));
        assert!(matches!(
            Error::from_response(503, &body("store_unavailable", "m")),
            Error::Unavailable { attempts: 1, .. }
        ));
        assert!(matches!(
            Error::from_response(404, &body("unknown_analysis", "m")),
            Error::UnknownAnalysis { .. }
        ));
        assert!(matches!(
            Error::from_response(409, &body("analysis_not_finished", "m")),
            Error::AnalysisNotFinished { .. }
        ));
        assert!(matches!(
            Error::from_response(415, &body("unsupported_media_type", "m")),
            Error::Protocol { status: 415, .. }
        ));
        assert!(matches!(
            Error::from_response(500, &body("internal", "m")),
            Error::Server { status: 500, .. }
        ));
        let refused = Error::from_response(400, &body("dimension_mismatch", "got 3, want 4"));
        assert_eq!(refused.code(), Some("dimension_mismatch"));
        assert_eq!(
            refused.to_string(),
            "got 3, want 4 (code dimension_mismatch)"
        );
    }

    /// Every row of PROTOCOL.md's Errors table: its code, sent with its
    /// status, becomes a typed error carrying that code; only the codes of
    /// a failing server (`store_error`, `internal`, and `cancelled`, which
    /// version 1 never sends) read as `Server`.
    #[test]
    fn every_documented_error_code_has_its_typed_error() {
        let protocol = include_str!("../../PROTOCOL.md");
        let table = &protocol[protocol.find("## Errors").unwrap()..];
        let rows: Vec<(&str, u16)> = table
            .lines()
            .take_while(|line| !line.starts_with("## Datasets"))
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                Some((code, cells.next()?.parse().ok()?))
            })
            .collect();
        assert_eq!(rows.len(), ErrorCode::ALL.len());
        for (code, status) in rows {
            let error = Error::from_response(status, &body(code, "what happened"));
            assert_eq!(error.code(), Some(code), "{code}: {error:?}");
            let generic = matches!(error, Error::Server { .. });
            assert_eq!(
                generic,
                ["store_error", "internal", "cancelled"].contains(&code),
                "{code}: {error:?}"
            );
        }
        let too_large = Error::from_response(507, &body("dataset_too_large", "needs 9 GiB"));
        assert!(matches!(too_large, Error::DatasetTooLarge { .. }));
        assert!(
            too_large.to_string().contains("raise MUTANT_CACHE_BYTES"),
            "{too_large}"
        );
        let analysis = Error::from_response(
            413,
            &body("analysis_too_large", "lower sample_size or n_permutations"),
        );
        assert!(matches!(analysis, Error::AnalysisTooLarge { .. }));
        assert!(analysis.to_string().contains("lower sample_size"));
    }

    #[test]
    fn every_core_code_is_mapped_to_a_known_variant() {
        let codes = [
            "invalid_dataset_name",
            "invalid_dimension",
            "unknown_metric",
            "dimension_mismatch",
            "non_finite_value",
            "empty_record_id",
            "field_too_long",
            "empty_field",
            "duplicate_record_id",
            "empty_batch",
            "batch_too_large",
            "invalid_metadata",
            "invalid_filter",
            "malformed_frame",
            "invalid_parameter",
            "empty_dataset",
            "query_too_large",
        ];
        for code in codes {
            let error = Error::from_response(400, &body(code, "m"));
            assert!(
                matches!(error, Error::InvalidInput { .. } | Error::Protocol { .. }),
                "{code}: {error:?}"
            );
            assert_eq!(error.code(), Some(code));
        }
    }

    #[test]
    fn unknown_codes_and_bodies_fall_back_on_the_status() {
        assert!(matches!(
            Error::from_response(422, &body("brand_new_check", "m")),
            Error::InvalidInput { .. }
        ));
        assert!(matches!(
            Error::from_response(503, b"upstream down"),
            Error::Unavailable { .. }
        ));
        let error = Error::from_response(502, b"<html>bad gateway</html>");
        assert_eq!(
            error,
            Error::Server {
                status: 502,
                code: String::new(),
                message: "<html>bad gateway</html>".into()
            }
        );
        let long = "x".repeat(1000);
        let Error::Server { message, .. } = Error::from_response(500, long.as_bytes()) else {
            panic!("a 500 is a server error");
        };
        assert_eq!(message.len(), 203);
        let Error::Server { message, .. } = Error::from_response(500, b"") else {
            panic!("a 500 is a server error");
        };
        assert_eq!(message, "the answer has no error body");
    }

    #[test]
    fn attempts_are_recorded_and_retryability_is_known() {
        let error = Error::from_response(503, &body("store_unavailable", "down")).with_attempts(4);
        assert!(error.is_retryable());
        assert!(error.to_string().contains("after 4 attempt(s)"));
        assert!(!Error::from_response(400, &body("invalid_filter", "m")).is_retryable());
        let refused = Error::refused(&mutant_core::Error::EmptyRecordId { index: 3 });
        assert_eq!(refused.code(), Some("empty_record_id"));
    }
}
