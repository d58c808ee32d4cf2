//! The data model: datasets, records, filters and the in-memory form of a
//! loaded dataset. Everything here is plain data with validation rules; it
//! knows nothing of ClickHouse, HTTP or faer.

mod analysis;
mod dataset;
mod filter;
mod filter_cost;
mod loaded;
mod record;
mod row_index;

pub use analysis::{AnalysisJob, JobState};
pub use dataset::{
    Dataset, DatasetRef, DatasetUpdate, MAX_DATASET_METADATA_LEN, MAX_DATASET_NAME_LEN,
    MAX_DIMENSION, MetadataUpdate, Metric, NewDataset, validate_dataset_metadata,
    validate_dataset_name, validate_dimension,
};
pub use filter::{Condition, Field, Filter, FilterValue};
pub use filter_cost::{MAX_FILTER_CONDITIONS, MAX_FILTER_VALUES, TextFilter};
pub use loaded::{ClassVocabulary, DatasetChanges, LoadedDataset, WrittenContent, WrittenRow};
pub use record::{MetadataValue, Record, RecordMetadata};
#[cfg(feature = "clickhouse")]
pub(crate) use row_index::IdHasher;
pub use row_index::RowIndex;
