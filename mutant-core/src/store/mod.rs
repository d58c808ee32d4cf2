//! Persistence: the [`Store`] trait, its ClickHouse implementation (the only
//! real persistence) and an in-memory one for embedding and kernel tests.
//!
//! Every write is a versioned row: an upsert writes the record with a new
//! version, a delete writes a tombstone with a new version, and reads resolve
//! each id to its highest version. Retried writes are therefore harmless.

#[cfg(feature = "clickhouse")]
pub mod clickhouse;
pub mod memory;
mod version;

use async_trait::async_trait;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::Result;
use crate::model::{
    AnalysisJob, Dataset, DatasetChanges, DatasetRef, Filter, LoadedDataset, MetadataUpdate,
    NewDataset, Record, WrittenRow,
};

#[cfg(feature = "clickhouse")]
pub use self::clickhouse::{ClickHouseConfig, ClickHouseStore, GroupCommitConfig};
pub use self::memory::MemoryStore;
pub use self::version::VersionClock;

/// What [`Store::fetch`] returns and how.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchQuery {
    /// Which records; [`Filter::all`] for every record.
    pub filter: Filter,
    /// At most this many records.
    pub limit: usize,
    /// Skip this many records of the ordered result first.
    pub offset: usize,
    /// Whether to return vectors (they dominate the size of an answer).
    pub with_vectors: bool,
}

impl FetchQuery {
    /// Every record matching `filter`, vectors included, first page of `limit`.
    pub fn new(filter: Filter, limit: usize) -> Self {
        FetchQuery {
            filter,
            limit,
            offset: 0,
            with_vectors: true,
        }
    }
}

/// A dataset catalogue plus record storage.
///
/// Implementations validate what they are given ([`crate::ingest`]) and leave
/// stored data untouched when they refuse it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a dataset; fails with `DatasetExists` if the name is taken.
    async fn create_dataset(&self, new_dataset: NewDataset) -> Result<Dataset>;

    /// The live dataset with this name or id.
    async fn get_dataset(&self, dataset: &DatasetRef) -> Result<Dataset>;

    /// Live datasets, ordered by name; with a pattern, only those whose
    /// metadata contains it (see [`Dataset::metadata_contains`]).
    async fn list_datasets(
        &self,
        metadata_pattern: Option<&Map<String, Value>>,
    ) -> Result<Vec<Dataset>>;

    /// Gives a dataset a new, unused name.
    async fn rename_dataset(&self, dataset: &DatasetRef, new_name: &str) -> Result<Dataset>;

    /// Replaces or patches a dataset's metadata.
    async fn update_dataset_metadata(
        &self,
        dataset: &DatasetRef,
        update: MetadataUpdate,
    ) -> Result<Dataset>;

    /// Deletes a dataset and all its records: they stop being visible at once
    /// and their rows are reclaimed by [`Store::compact`].
    async fn delete_dataset(&self, dataset: &DatasetRef) -> Result<()>;

    /// Inserts or replaces a batch of records; returns how many were written.
    /// Returns only once the batch is stored.
    async fn upsert(&self, dataset: &DatasetRef, records: Vec<Record>) -> Result<usize>;

    /// Deletes the live records matching `filter`; returns how many.
    async fn delete_records(&self, dataset: &DatasetRef, filter: &Filter) -> Result<usize>;

    /// Live records matching the query, ordered by id.
    async fn fetch(&self, dataset: &DatasetRef, query: &FetchQuery) -> Result<Vec<Record>>;

    /// How many live records match `filter`.
    async fn count(&self, dataset: &DatasetRef, filter: &Filter) -> Result<usize>;

    /// The whole dataset in its in-memory form.
    async fn load(&self, dataset: &DatasetRef) -> Result<LoadedDataset>;

    /// [`load`](Store::load), refused with `DatasetTooLarge` when the
    /// dataset takes more than `max_bytes` in memory
    /// ([`LoadedDataset::size_bytes`]). A store that streams its load stops
    /// as soon as what it has read is over the bound, so a dataset larger
    /// than memory is refused instead of exhausting it.
    async fn load_within(&self, dataset: &DatasetRef, max_bytes: usize) -> Result<LoadedDataset> {
        let loaded = self.load(dataset).await?;
        let size_bytes = loaded.size_bytes();
        if size_bytes > max_bytes {
            return Err(crate::Error::DatasetTooLarge {
                size_bytes,
                max_bytes,
            });
        }
        Ok(loaded)
    }

    /// What changed in the dataset since `watermark` (a `LoadedDataset`'s or a
    /// previous `DatasetChanges`' watermark). `UnknownDataset` once the
    /// dataset is deleted, so a re-created dataset of the same name is never
    /// mistaken for the old one.
    async fn load_changes(&self, dataset_id: Uuid, watermark: u64) -> Result<DatasetChanges>;

    /// [`load_changes`](Store::load_changes) restricted to `ids`: a cache
    /// fetches only the rows it has not applied yet.
    async fn load_changes_of(
        &self,
        dataset_id: Uuid,
        watermark: u64,
        ids: &[String],
    ) -> Result<DatasetChanges>;

    /// Every row written to `dataset` after version `since` (upserts and
    /// deletes; at least each id's latest), read whole only when written
    /// after `whole_after`, as ids and versions otherwise: a cache refresh
    /// reads what is new to it and the overlap it has mostly read already
    /// in one statement. `dataset` is used as resolved: a deleted dataset
    /// is not detected here (resolve it first).
    async fn changes_since(
        &self,
        dataset: &Dataset,
        since: u64,
        whole_after: u64,
    ) -> Result<Vec<WrittenRow>>;

    /// Physically reclaims deleted datasets, deleted records and replaced
    /// versions. Safe to run at any time, from any server.
    async fn compact(&self) -> Result<()>;

    /// The dataset's data version: the highest version of any of its record
    /// rows (upserts and deletes alike), 0 when it has none. It only grows
    /// with writes, so a recorded watermark below it means newer data.
    /// `UnknownDataset` once the dataset is deleted.
    async fn dataset_watermark(&self, dataset_id: Uuid) -> Result<u64>;

    /// Writes a new version of an analysis job (the last written wins on
    /// read). A `cancel_requested` written once stays true in every later
    /// read, whatever later versions say, so a cancel racing a heartbeat is
    /// never lost.
    async fn put_analysis(&self, job: &AnalysisJob) -> Result<()>;

    /// The latest version of a job; `UnknownAnalysis` if it was never written.
    async fn get_analysis(&self, id: Uuid) -> Result<AnalysisJob>;

    /// The latest version of the jobs on `target` (every job when `None`),
    /// newest first by creation, at most `limit`.
    async fn list_analyses(&self, target: Option<Uuid>, limit: usize) -> Result<Vec<AnalysisJob>>;

    /// Stores a job's ranked result rows (JSON objects), row `i` at rank `i`.
    /// Writing the same rows again is harmless: reads return one row per rank.
    async fn put_analysis_results(&self, id: Uuid, rows: &[Value]) -> Result<()>;

    /// The stored rows that `selection` keeps, in rank order, skipping its
    /// `offset` first matching rows and returning at most `limit`.
    async fn analysis_results(&self, id: Uuid, selection: &ResultSelection) -> Result<Vec<Value>>;

    /// How many stored rows `selection`'s filters keep (offset and limit
    /// aside).
    async fn count_analysis_results(&self, id: Uuid, selection: &ResultSelection) -> Result<u64>;
}

/// Which stored result rows a read returns: a page of those whose verdict
/// and score pass the filters. A row's verdict is its `flagged` field (false
/// when absent), its score its `score` field (0 when absent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResultSelection {
    /// Skip this many matching rows first.
    pub offset: usize,
    /// At most this many rows.
    pub limit: usize,
    /// Only rows with this verdict.
    pub flagged: Option<bool>,
    /// Only rows scoring at least this.
    pub min_score: Option<f64>,
}

impl ResultSelection {
    /// Ranks `offset .. offset + limit`, unfiltered.
    pub fn page(offset: usize, limit: usize) -> Self {
        ResultSelection {
            offset,
            limit,
            flagged: None,
            min_score: None,
        }
    }

    /// Whether a stored row passes the filters.
    pub fn keeps(&self, row: &Value) -> bool {
        let (flagged, score) = verdict_and_score(row);
        self.flagged.is_none_or(|wanted| wanted == flagged)
            && self.min_score.is_none_or(|minimum| score >= minimum)
    }
}

/// A result row's verdict and score, as stores index them.
pub(crate) fn verdict_and_score(row: &Value) -> (bool, f64) {
    (
        row.get("flagged").and_then(Value::as_bool).unwrap_or(false),
        row.get("score").and_then(Value::as_f64).unwrap_or(0.0),
    )
}

/// Sorts datasets by name and keeps those matching the pattern.
fn select_datasets(
    mut datasets: Vec<Dataset>,
    metadata_pattern: Option<&Map<String, Value>>,
) -> Vec<Dataset> {
    if let Some(pattern) = metadata_pattern {
        datasets.retain(|dataset| dataset.metadata_contains(pattern));
    }
    datasets.sort_by(|a, b| a.name.cmp(&b.name));
    datasets
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
