//! Wire types of the answers the web page reads beside the core protocol:
//! a dataset's summary (records, classes, last write) and the list of a
//! dataset's analyses. Both are additions to protocol version 1.

use serde::{Deserialize, Serialize};

use super::wire::{AnalysisStatus, DatasetInfo};

/// `GET /v1/datasets/{ds}/summary`: the dataset with what its records hold,
/// counted on the server's cached copy.
///
/// ```
/// use mutant_core::api::views::DatasetSummary;
/// let text = r#"{"id": "6b2f0c3e-8a41-4c59-9d7e-0f3a1c2b4d5e", "name": "train", "dimension": 3,
///   "metric": "l2", "metadata": {}, "created_at_ms": 1, "updated_at_ms": 1, "record_count": 2,
///   "n_labelled": 1, "n_predicted": 0, "classes": [{"name": "cat", "labels": 1, "predictions": 0}],
///   "last_write_ms": 5}"#;
/// let summary: DatasetSummary = serde_json::from_str(text)?;
/// assert_eq!(summary.classes[0].name, "cat");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// The dataset, with `record_count`.
    #[serde(flatten)]
    pub dataset: DatasetInfo,
    /// Records with a label.
    pub n_labelled: u64,
    /// Records with a prediction.
    pub n_predicted: u64,
    /// Every class a label or prediction names, by name.
    pub classes: Vec<ClassCount>,
    /// Milliseconds since the Unix epoch of the last record write the
    /// server has seen (upsert or delete); `null` for a dataset never written.
    pub last_write_ms: Option<u64>,
}

/// How many records carry a class as label and as prediction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCount {
    /// The class.
    pub name: String,
    /// Records labelled with it.
    pub labels: u64,
    /// Records predicted as it.
    pub predictions: u64,
}

/// `GET /v1/analyses?target={ds}`: analyses, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisList {
    /// Their statuses, as `GET /v1/analyses/{id}` gives them.
    pub analyses: Vec<AnalysisStatus>,
}
