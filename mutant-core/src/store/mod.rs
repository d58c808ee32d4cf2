//! Persistence: the [`Store`] traits along the store's seams ([`Catalogue`],
//! [`Records`], [`ChangeFeed`], [`AnalysisStore`]), their ClickHouse
//! implementation (the only real persistence) and an in-memory one for
//! embedding and kernel tests. A reference to a dataset is resolved once, by
//! the catalogue; every other call takes the resolved [`Dataset`], and
//! records arrive validated ([`ValidBatch`]).
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
use crate::ingest::ValidBatch;
use crate::model::{
    AnalysisJob, Dataset, DatasetChanges, DatasetRef, DatasetUpdate, Filter, LoadedDataset,
    NewDataset, Record, RowIndex, WrittenRow,
};

#[cfg(feature = "clickhouse")]
pub use self::clickhouse::{ClickHouseConfig, ClickHouseStore, GroupCommitConfig};
pub use self::memory::MemoryStore;
pub use self::version::VersionClock;

/// What [`Records::fetch`] returns and how.
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

/// The dataset catalogue: low-volume CRUD on datasets. Everything else takes
/// datasets as [`Catalogue::resolve`] found them, so a request resolves its
/// reference once.
#[async_trait]
pub trait Catalogue: Send + Sync {
    /// Creates a dataset; fails with `DatasetExists` if the name is taken.
    async fn create_dataset(&self, new_dataset: NewDataset) -> Result<Dataset>;

    /// The live dataset with this name or id, with the catalogue's stamp for
    /// its name; `UnknownDataset` if there is none.
    async fn resolve(&self, dataset: &DatasetRef) -> Result<Resolved>;

    /// [`resolve`](Catalogue::resolve) without the stamp.
    async fn get_dataset(&self, dataset: &DatasetRef) -> Result<Dataset> {
        Ok(self.resolve(dataset).await?.dataset)
    }

    /// Live datasets, ordered by name; with a pattern, only those whose
    /// metadata contains it (see [`Dataset::metadata_contains`]).
    async fn list_datasets(
        &self,
        metadata_pattern: Option<&Map<String, Value>>,
    ) -> Result<Vec<Dataset>>;

    /// Renames a dataset (to an unused name), changes its metadata, or both,
    /// in one change.
    async fn update_dataset(&self, dataset: &Resolved, update: DatasetUpdate) -> Result<Dataset>;

    /// Deletes a dataset and all its records: they stop being visible at once
    /// and their rows are reclaimed by [`Store::compact`].
    async fn delete_dataset(&self, dataset: &Resolved) -> Result<()>;
}

/// A dataset's records: writes, reads, and the whole dataset loaded.
#[async_trait]
pub trait Records: Send + Sync {
    /// Inserts or replaces a batch of records validated for its dataset;
    /// returns how many were written. Returns only once the batch is stored.
    async fn upsert(&self, batch: ValidBatch) -> Result<usize>;

    /// Deletes the live records matching `filter`; returns how many.
    async fn delete_records(&self, dataset: &Dataset, filter: &Filter) -> Result<usize>;

    /// Live records matching the query, ordered by id.
    async fn fetch(&self, dataset: &Dataset, query: &FetchQuery) -> Result<Vec<Record>>;

    /// How many live records match `filter`.
    async fn count(&self, dataset: &Dataset, filter: &Filter) -> Result<usize>;

    /// The whole dataset in its in-memory form.
    async fn load(&self, dataset: &Dataset) -> Result<LoadedDataset> {
        self.load_within(dataset, usize::MAX).await
    }

    /// [`load`](Records::load), refused with `DatasetTooLarge` when the
    /// dataset takes more than `max_bytes` in memory
    /// ([`LoadedDataset::size_bytes`]). A store that streams its load stops
    /// as soon as what it has read is over the bound, so a dataset larger
    /// than memory is refused instead of exhausting it.
    async fn load_within(&self, dataset: &Dataset, max_bytes: usize) -> Result<LoadedDataset>;

    /// [`load_within`](Records::load_within) for the cache: with the
    /// loaded dataset's [`RowIndex`] when the store built one as it loaded
    /// (the ClickHouse store resolves versions by id), so that the cache
    /// need not build another, and the rows written after `read_after` that
    /// the load read (`_read_after`), so that the cache's first refresh does
    /// not fetch them again. A store that keeps neither returns only the
    /// dataset.
    async fn load_for_cache(
        &self,
        dataset: &Dataset,
        max_bytes: usize,
        _read_after: u64,
    ) -> Result<CacheLoad> {
        Ok(CacheLoad {
            loaded: self.load_within(dataset, max_bytes).await?,
            index: None,
            read_after: Vec::new(),
        })
    }
}

/// What [`Records::load_for_cache`] read.
#[derive(Debug)]
pub struct CacheLoad {
    /// The dataset.
    pub loaded: LoadedDataset,
    /// Its id index, when the store built one as it loaded.
    pub index: Option<RowIndex>,
    /// The id and latest version of every row written after the version
    /// asked for that the load read, tombstones included.
    pub read_after: Vec<(String, u64)>,
}

/// What changed in a dataset since a version: how a cached copy stays fresh
/// without reloading.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Every row written to `dataset` after version `since` (upserts and
    /// deletes; at least each id's latest), read whole only when written
    /// after `whole_after`, as ids and versions otherwise; and, from the same
    /// read, the catalogue's stamp for the dataset's name. A cache refresh
    /// reads what is new to it and the overlap it has mostly read already in
    /// one statement, and learns from the stamp whether the dataset it holds
    /// is still the one its name resolves to. A store may also answer
    /// `UnknownDataset` for a dataset deleted since it was resolved.
    async fn changes_since(
        &self,
        dataset: &Dataset,
        since: u64,
        whole_after: u64,
    ) -> Result<FeedRead>;

    /// The latest state of each of `ids` among the rows written to `dataset`
    /// after `since`: a cache fetches only the rows it has not applied yet.
    async fn changes_of(
        &self,
        dataset: &Dataset,
        since: u64,
        ids: &[String],
    ) -> Result<DatasetChanges>;

    /// The dataset's data version: the highest version of any of its record
    /// rows (upserts and deletes alike), 0 when it has none. It only grows
    /// with writes, so a recorded watermark below it means newer data.
    /// `UnknownDataset` once the dataset is deleted.
    async fn dataset_watermark(&self, dataset_id: Uuid) -> Result<u64>;
}

/// Analysis jobs and their ranked results.
#[async_trait]
pub trait AnalysisStore: Send + Sync {
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

    /// Stores a chunk of a job's ranked result rows, row `i` at rank
    /// `first_rank + i`. Chunks come in rank order, so a job's rows are
    /// shaped and stored a chunk at a time, never held all at once. Writing
    /// a chunk again is harmless: reads return one row per rank.
    async fn put_analysis_results(
        &self,
        id: Uuid,
        first_rank: u64,
        rows: &[StoredRow],
    ) -> Result<()>;

    /// The stored rows that `selection` keeps, in rank order, skipping its
    /// `offset` first matching rows and returning at most `limit`.
    async fn analysis_results(&self, id: Uuid, selection: &ResultSelection) -> Result<Vec<Value>>;

    /// How many stored rows `selection`'s filters keep (offset and limit
    /// aside).
    async fn count_analysis_results(&self, id: Uuid, selection: &ResultSelection) -> Result<u64>;
}

/// The whole of a store: its catalogue, records, change feed and analyses,
/// and the upkeep that spans them.
#[async_trait]
pub trait Store: Catalogue + Records + ChangeFeed + AnalysisStore + 'static {
    /// Physically reclaims deleted datasets, deleted records and replaced
    /// versions. Safe to run at any time, from any server.
    async fn compact(&self) -> Result<()>;
}

/// A dataset as [`Catalogue::resolve`] found it, with the catalogue's stamp
/// for its name at that moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The live dataset.
    pub dataset: Dataset,
    /// What the catalogue said of the dataset's name.
    pub stamp: CatalogueStamp,
    /// The catalogue version at which the dataset claimed its name, which
    /// later changes to it keep (0 where a store needs no claims).
    pub claim: u64,
}

/// A summary of the catalogue rows that decide what a dataset's name
/// resolves to: those of every dataset that ever bore the name. Equal stamps
/// mean no catalogue write touched any of them in between (no delete,
/// rename or re-creation), so a dataset resolved earlier is still what its
/// name and id resolve to. A store may also move it on other changes (a
/// metadata change, in the in-memory store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CatalogueStamp {
    /// How many rows.
    pub(crate) rows: u64,
    /// Their versions summed, wrapping.
    pub(crate) version_sum: u64,
}

impl CatalogueStamp {
    /// The stamp of rows with these versions.
    pub(crate) fn of_versions(versions: impl IntoIterator<Item = u64>) -> Self {
        versions
            .into_iter()
            .fold(CatalogueStamp::default(), |stamp, version| CatalogueStamp {
                rows: stamp.rows + 1,
                version_sum: stamp.version_sum.wrapping_add(version),
            })
    }
}

/// What [`ChangeFeed::changes_since`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedRead {
    /// The rows written since the version asked for.
    pub rows: Vec<WrittenRow>,
    /// The catalogue's stamp for the dataset's name, read with them.
    pub stamp: CatalogueStamp,
    /// The version of the oldest write whose INSERT has run for a while
    /// and not landed yet, through any server, if any: its rows will become
    /// visible with a version older than those read now, so a reader keeps
    /// reading from before it until it lands. Always `None` where writes
    /// land at once (the in-memory store).
    pub unlanded_since: Option<u64>,
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

/// One ranked result row as stores keep it: its JSON text, with the verdict
/// and score that reads filter on.
///
/// ```
/// use mutant_core::store::StoredRow;
/// let row = StoredRow::new(&serde_json::json!({"id": "a", "score": 0.5, "flagged": true}));
/// assert_eq!((row.flagged, row.score), (true, 0.5));
/// assert_eq!(row.json, r#"{"flagged":true,"id":"a","score":0.5}"#);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRow {
    /// The row, a JSON object.
    pub json: String,
    /// The row's verdict (`flagged`, false when it has none).
    pub flagged: bool,
    /// The row's score (0 when it has none).
    pub score: f64,
}

impl StoredRow {
    /// The stored form of a row.
    pub fn new(row: &Value) -> Self {
        let (flagged, score) = verdict_and_score(row);
        StoredRow {
            json: row.to_string(),
            flagged,
            score,
        }
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
