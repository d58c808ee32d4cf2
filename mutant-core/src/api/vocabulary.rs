//! The protocol's vocabulary, defined once for the server, the SDKs and the
//! web page: error codes and analysis statuses here, analysis kinds in
//! [`kinds`](super::kinds), metrics as [`Metric`]. Each serialises as its
//! stable snake_case wire name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use super::kinds::AnalysisKind;
pub use crate::model::Metric;

/// Generates a vocabulary enum with its wire names, `ALL`, `as_str`,
/// `Display` and `FromStr`, from one list.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $($(#[$variant_meta:meta])* $variant:ident => $wire:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$variant_meta])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every value, in the order PROTOCOL.md lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(text: &str) -> Result<Self, UnknownName> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        name: text.to_owned(),
                    })
            }
        }
    };
}

/// A name that is not in a vocabulary (from a newer peer, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// Which vocabulary.
    pub what: &'static str,
    /// The name given.
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "unknown {} {:?}", self.what, self.name)
    }
}

impl std::error::Error for UnknownName {}

vocabulary! {
    /// The stable code of every error answer (`{"error": {"code", ...}}`);
    /// PROTOCOL.md's Errors table gives each one's status and meaning.
    ErrorCode, "error code" {
        /// The body is not the JSON the route takes.
        InvalidJson => "invalid_json",
        /// A request value out of range, or a query string that cannot be read.
        InvalidParameter => "invalid_parameter",
        /// A dataset name that does not follow the rules.
        InvalidDatasetName => "invalid_dataset_name",
        /// A dimension of 0 or over the limit.
        InvalidDimension => "invalid_dimension",
        /// A metric other than `l2`, `cosine`, `dot`.
        UnknownMetric => "unknown_metric",
        /// A filter that cannot be understood.
        InvalidFilter => "invalid_filter",
        /// A binary frame that cannot be decoded.
        MalformedFrame => "malformed_frame",
        /// A filter that would make a ClickHouse query over its size limit.
        QueryTooLarge => "query_too_large",
        /// The bearer token is missing or wrong.
        Unauthorized => "unauthorized",
        /// No such route.
        NotFound => "not_found",
        /// No live dataset with that name or UUID.
        UnknownDataset => "unknown_dataset",
        /// No analysis with that id.
        UnknownAnalysis => "unknown_analysis",
        /// The route exists, the method does not.
        MethodNotAllowed => "method_not_allowed",
        /// A live dataset already has that name.
        DatasetExists => "dataset_exists",
        /// Results asked for an analysis that is not done.
        AnalysisNotFinished => "analysis_not_finished",
        /// A computation was cancelled.
        Cancelled => "cancelled",
        /// The body is over the server's limit.
        PayloadTooLarge => "payload_too_large",
        /// An upsert with too many records.
        BatchTooLarge => "batch_too_large",
        /// A kNN request whose queries x k is over the per-request limit.
        KnnTooLarge => "knn_too_large",
        /// A `Content-Type` the route does not take.
        UnsupportedMediaType => "unsupported_media_type",
        /// A vector of the wrong length.
        DimensionMismatch => "dimension_mismatch",
        /// A NaN or infinite value in a vector.
        NonFiniteValue => "non_finite_value",
        /// A record with an empty id.
        EmptyRecordId => "empty_record_id",
        /// A field over its length limit.
        FieldTooLong => "field_too_long",
        /// A field present but empty.
        EmptyField => "empty_field",
        /// One id twice in a batch.
        DuplicateRecordId => "duplicate_record_id",
        /// An upsert without records.
        EmptyBatch => "empty_batch",
        /// Record metadata that is not a flat object of scalars.
        InvalidMetadata => "invalid_metadata",
        /// A kernel given no rows.
        EmptyDataset => "empty_dataset",
        /// A dataset larger than the server's whole cache.
        DatasetTooLarge => "dataset_too_large",
        /// An analysis whose working memory would pass the server's
        /// analysis budget.
        AnalysisTooLarge => "analysis_too_large",
        /// ClickHouse cannot be reached; retrying is safe.
        StoreUnavailable => "store_unavailable",
        /// ClickHouse answered with an error.
        StoreError => "store_error",
        /// A bug in Mutant.
        Internal => "internal",
    }
}

vocabulary! {
    /// Where an analysis stands.
    JobStatus, "analysis status" {
        /// Recorded, not started.
        Queued => "queued",
        /// Computing.
        Running => "running",
        /// Finished; its results can be read.
        Done => "done",
        /// Done, but its datasets have changed since: results still readable.
        Stale => "stale",
        /// Stopped by an error (or its server stopped).
        Failed => "failed",
        /// Stopped by a cancel request.
        Cancelled => "cancelled",
    }
}

impl JobStatus {
    /// Whether it will not change any more (`stale` only follows `done`).
    pub fn is_final(self) -> bool {
        match self {
            JobStatus::Queued | JobStatus::Running => false,
            JobStatus::Done | JobStatus::Stale | JobStatus::Failed | JobStatus::Cancelled => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_serialises_as_itself() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(*code));
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
        }
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(*status));
            let read: JobStatus =
                serde_json::from_value(serde_json::json!(status.as_str())).unwrap();
            assert_eq!(read, *status);
        }
        assert_eq!(ErrorCode::ALL.len(), 34);
        let unknown = "teapot".parse::<ErrorCode>().unwrap_err();
        assert_eq!(unknown.to_string(), "unknown error code \"teapot\"");
        assert!(JobStatus::Stale.is_final() && !JobStatus::Running.is_final());
    }
}
