//! The one error type of `mutant-core`: every variant says what happened, with
//! the values involved, and what the caller should change.

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

use crate::api::vocabulary::ErrorCode;

/// Everything that can go wrong in `mutant-core`.
///
/// User errors (bad input, unknown names) carry the offending values; the
/// server maps each variant to an HTTP status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- data model and ingest validation ----
    /// A dataset name that is not a simple identifier.
    #[error(
        "dataset name {name:?} is not a simple identifier: use 1 to {max_len} ASCII letters, digits, '_' or '-', starting with a letter, and not shaped like a UUID"
    )]
    InvalidDatasetName { name: String, max_len: usize },
    /// A dataset dimension outside the supported range.
    #[error(
        "dimension {dimension} is out of range: a dataset's dimension must be between 1 and {max}"
    )]
    InvalidDimension { dimension: usize, max: usize },
    /// A metric name other than `l2`, `cosine` or `dot`.
    #[error("unknown metric {metric:?}: use \"l2\", \"cosine\" or \"dot\"")]
    UnknownMetric { metric: String },
    /// A vector whose length differs from its dataset's dimension.
    #[error(
        "dataset {dataset:?} has dimension {expected}, got a vector of {got} for record {id:?}; re-create the dataset or fix the producer"
    )]
    DimensionMismatch {
        dataset: String,
        id: String,
        expected: usize,
        got: usize,
    },
    /// kNN queries of different lengths in one request.
    #[error(
        "kNN query {query} has {got} values but query 0 has {expected}; every query needs the dataset's dimension"
    )]
    RaggedQueries {
        query: usize,
        expected: usize,
        got: usize,
    },
    /// A NaN or infinite component in a vector.
    #[error(
        "record {id:?} has a non-finite value (NaN or infinity) at position {position}; clean the vector before sending it"
    )]
    NonFiniteValue { id: String, position: usize },
    /// A record id that is empty.
    #[error(
        "the record at position {index} of the batch has an empty id; give every record a non-empty id"
    )]
    EmptyRecordId { index: usize },
    /// A string field longer than allowed.
    #[error("{field} of record {id:?} is {len} bytes long; the limit is {max} bytes")]
    FieldTooLong {
        id: String,
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// An optional string field that is present but empty.
    #[error("{field} of record {id:?} is an empty string; omit the field instead")]
    EmptyField { id: String, field: &'static str },
    /// The same id twice in one batch.
    #[error(
        "record id {id:?} appears more than once in the batch; send each id at most once per batch"
    )]
    DuplicateRecordId { id: String },
    /// A batch with no records.
    #[error("the batch is empty; send at least one record")]
    EmptyBatch,
    /// A batch with more records than one request may carry.
    #[error("the batch has {n_records} records; the limit is {max} per batch, split it")]
    BatchTooLarge { n_records: usize, max: usize },
    /// Record or dataset metadata that breaks the metadata rules.
    #[error("invalid metadata: {reason}")]
    InvalidMetadata { reason: String },
    /// A filter that cannot be understood; never ignored.
    #[error("invalid filter: {reason}")]
    InvalidFilter { reason: String },
    /// A binary frame that cannot be decoded.
    #[error("malformed frame: {reason}; see PROTOCOL.md for the frame layout")]
    MalformedFrame { reason: String },
    /// A request parameter out of its range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },

    // ---- catalogue ----
    /// No live dataset with that name or UUID.
    #[error("no dataset named or identified {dataset:?}; list the datasets to see which exist")]
    UnknownDataset { dataset: String },
    /// A dataset name already used by a live dataset.
    #[error(
        "a dataset named {name:?} already exists; pick another name or delete that dataset first"
    )]
    DatasetExists { name: String },

    /// A dataset bigger than the whole cache.
    #[error(
        "the dataset needs at least {size_bytes} bytes in memory but the cache holds at most {max_bytes}; raise MUTANT_CACHE_BYTES above {size_bytes} or split the dataset"
    )]
    DatasetTooLarge { size_bytes: usize, max_bytes: usize },

    /// An analysis whose estimated working memory is over the server's
    /// analysis budget; refused before it allocates.
    #[error(
        "{kind} would need about {needed_mib} MiB of working memory, over this server's analysis budget of {budget_mib} MiB (MUTANT_ANALYSIS_BYTES); {advice}"
    )]
    AnalysisTooLarge {
        kind: &'static str,
        needed_mib: u64,
        budget_mib: u64,
        advice: &'static str,
    },

    // ---- kernels ----
    /// A kernel was given no rows to work on.
    #[error("{what} is empty; add records before running this")]
    EmptyDataset { what: &'static str },
    /// A long computation was cancelled by its caller.
    #[error("the computation was cancelled")]
    Cancelled,
    /// Vectors handed to a kernel with a different dimension than the dataset
    /// they are compared with.
    #[error(
        "{what} has dimension {got}, but the dataset it is compared with has dimension {expected}; pass vectors of dimension {expected}"
    )]
    KernelDimensionMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },

    // ---- storage ----
    /// ClickHouse could not be reached; retrying later is safe.
    #[error("ClickHouse at {url} is unreachable ({reason}); check that it runs, then retry")]
    StoreUnavailable { url: String, reason: String },
    /// ClickHouse answered with an error.
    #[error("ClickHouse failed: {message}")]
    Store { message: String },
    /// No analysis with that id in the store.
    #[error("no analysis with id {id}; start one with POST /v1/analyses")]
    UnknownAnalysis { id: uuid::Uuid },
    /// Results asked for before the analysis is done.
    #[error(
        "analysis {id} is {status}, not done; only a done analysis has results (poll GET /v1/analyses/{id})"
    )]
    AnalysisNotFinished { id: uuid::Uuid, status: String },
    /// A failure inside Mutant itself; report it.
    #[error("internal error: {message}; this is a bug, please report it")]
    Internal { message: String },
    /// A query that would exceed ClickHouse's query size limit.
    #[error(
        "the query is {len} bytes, over ClickHouse's limit of {max}; use fewer or shorter values in the filter"
    )]
    QueryTooLarge { len: usize, max: usize },
    /// A kNN request asking for more neighbours in all than one answer may hold.
    #[error(
        "{n_queries} queries x k {k} asks for {asked} neighbours; the limit is {max} per request; send fewer queries per request or a smaller k"
    )]
    KnnTooLarge {
        n_queries: usize,
        k: usize,
        asked: usize,
        max: usize,
    },
    /// A dataset's metadata over its size limit.
    #[error(
        "the metadata of dataset {dataset:?} would be {len} bytes as JSON; the limit is {max} bytes; keep large documents elsewhere and store a reference"
    )]
    DatasetMetadataTooLong {
        dataset: String,
        len: usize,
        max: usize,
    },
}

impl Error {
    /// The stable snake_case code the protocol carries for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidDatasetName { .. } => ErrorCode::InvalidDatasetName,
            Error::InvalidDimension { .. } => ErrorCode::InvalidDimension,
            Error::UnknownMetric { .. } => ErrorCode::UnknownMetric,
            Error::DimensionMismatch { .. } | Error::RaggedQueries { .. } => {
                ErrorCode::DimensionMismatch
            }
            Error::NonFiniteValue { .. } => ErrorCode::NonFiniteValue,
            Error::EmptyRecordId { .. } => ErrorCode::EmptyRecordId,
            Error::FieldTooLong { .. } => ErrorCode::FieldTooLong,
            Error::EmptyField { .. } => ErrorCode::EmptyField,
            Error::DuplicateRecordId { .. } => ErrorCode::DuplicateRecordId,
            Error::EmptyBatch => ErrorCode::EmptyBatch,
            Error::BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
            Error::InvalidMetadata { .. } => ErrorCode::InvalidMetadata,
            Error::InvalidFilter { .. } => ErrorCode::InvalidFilter,
            Error::MalformedFrame { .. } => ErrorCode::MalformedFrame,
            Error::InvalidParameter { .. } => ErrorCode::InvalidParameter,
            Error::UnknownDataset { .. } => ErrorCode::UnknownDataset,
            Error::DatasetExists { .. } => ErrorCode::DatasetExists,
            Error::DatasetTooLarge { .. } => ErrorCode::DatasetTooLarge,
            Error::AnalysisTooLarge { .. } => ErrorCode::AnalysisTooLarge,
            Error::EmptyDataset { .. } => ErrorCode::EmptyDataset,
            Error::Cancelled => ErrorCode::Cancelled,
            Error::KernelDimensionMismatch { .. } => ErrorCode::DimensionMismatch,
            Error::StoreUnavailable { .. } => ErrorCode::StoreUnavailable,
            Error::Store { .. } => ErrorCode::StoreError,
            Error::QueryTooLarge { .. } => ErrorCode::QueryTooLarge,
            Error::KnnTooLarge { .. } => ErrorCode::KnnTooLarge,
            Error::DatasetMetadataTooLong { .. } => ErrorCode::FieldTooLong,
            Error::Internal { .. } => ErrorCode::Internal,
            Error::UnknownAnalysis { .. } => ErrorCode::UnknownAnalysis,
            Error::AnalysisNotFinished { .. } => ErrorCode::AnalysisNotFinished,
        }
    }
}
