//! [`MemoryStore`]: the [`Store`] contract held in process memory, for
//! embedding Mutant in a program and for kernel tests. Nothing survives the
//! process; ClickHouse is the real persistence.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    AnalysisStore, Catalogue, CatalogueStamp, ChangeFeed, FeedRead, FetchQuery, Records, Resolved,
    ResultSelection, Store, StoredRow, VersionClock, now_ms, select_datasets,
};
use crate::ingest::ValidBatch;
use crate::model::{
    AnalysisJob, Dataset, DatasetChanges, DatasetRef, DatasetUpdate, Filter, LoadedDataset,
    NewDataset, Record, WrittenContent, WrittenRow,
};
use crate::{Error, Result};

/// A record's latest version, or its tombstone.
#[derive(Debug, Clone)]
struct Versioned {
    version: u64,
    record: Option<Record>,
}

#[derive(Debug)]
struct DatasetEntry {
    dataset: Dataset,
    records: BTreeMap<String, Versioned>,
}

#[derive(Debug, Default)]
struct State {
    datasets: HashMap<Uuid, DatasetEntry>,
    /// Deleted since the last compaction; their analyses go at the next.
    deleted_datasets: HashSet<Uuid>,
    analyses: HashMap<Uuid, AnalysisJob>,
    analysis_results: HashMap<Uuid, Vec<Value>>,
    /// Catalogue writes so far: the stamp of every name, so that any
    /// catalogue change invalidates every resolution (simple, and this store
    /// resolves in memory anyway).
    catalogue_writes: u64,
}

impl State {
    fn resolve(&self, dataset: &DatasetRef) -> Result<Uuid> {
        let found = match dataset {
            DatasetRef::Id(id) => self.datasets.contains_key(id).then_some(*id),
            DatasetRef::Name(name) => self
                .datasets
                .iter()
                .find(|(_, entry)| &entry.dataset.name == name)
                .map(|(id, _)| *id),
        };
        found.ok_or_else(|| Error::UnknownDataset {
            dataset: dataset.to_string(),
        })
    }

    /// The entry of a resolved dataset, unless it was deleted since.
    fn entry_mut(&mut self, dataset: &Dataset) -> Result<&mut DatasetEntry> {
        self.datasets
            .get_mut(&dataset.id)
            .ok_or_else(|| Error::UnknownDataset {
                dataset: dataset.name.clone(),
            })
    }

    /// The entry of a resolved dataset, unless it was deleted since.
    fn entry(&self, dataset: &Dataset) -> Result<&DatasetEntry> {
        self.datasets
            .get(&dataset.id)
            .ok_or_else(|| Error::UnknownDataset {
                dataset: dataset.name.clone(),
            })
    }

    fn entry_by_id(&self, dataset_id: Uuid) -> Result<&DatasetEntry> {
        self.datasets
            .get(&dataset_id)
            .ok_or_else(|| Error::UnknownDataset {
                dataset: dataset_id.to_string(),
            })
    }

    fn stamp(&self) -> CatalogueStamp {
        CatalogueStamp::of_versions([self.catalogue_writes])
    }

    fn name_taken(&self, name: &str) -> bool {
        self.datasets
            .values()
            .any(|entry| entry.dataset.name == name)
    }
}

impl DatasetEntry {
    fn live(&self) -> impl Iterator<Item = &Record> {
        self.records
            .values()
            .filter_map(|versioned| versioned.record.as_ref())
    }
}

/// The in-memory [`Store`].
///
/// ```
/// # tokio_test_block_on(async {
/// use mutant_core::ingest::ValidBatch;
/// use mutant_core::model::{Filter, NewDataset, Record};
/// use mutant_core::store::{Catalogue, MemoryStore, Records};
///
/// let store = MemoryStore::new();
/// let train = store.create_dataset(NewDataset::new("train", 2)).await?;
/// let records = vec![Record::new("a", vec![0.0, 1.0]).with_label("cat")];
/// store.upsert(ValidBatch::new(&train, records)?).await?;
/// assert_eq!(store.count(&train, &Filter::all()).await?, 1);
/// # Ok::<(), mutant_core::Error>(()) });
/// # fn tokio_test_block_on<F: std::future::Future>(future: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    clock: VersionClock,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data behind: every
        // mutation below is applied in one step after validation.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Catalogue for MemoryStore {
    async fn create_dataset(&self, new_dataset: NewDataset) -> Result<Dataset> {
        new_dataset.validate()?;
        let mut state = self.state();
        if state.name_taken(&new_dataset.name) {
            return Err(Error::DatasetExists {
                name: new_dataset.name,
            });
        }
        let dataset = new_dataset.into_dataset(Uuid::new_v4(), now_ms());
        state.catalogue_writes += 1;
        state.datasets.insert(
            dataset.id,
            DatasetEntry {
                dataset: dataset.clone(),
                records: BTreeMap::new(),
            },
        );
        Ok(dataset)
    }

    async fn resolve(&self, dataset: &DatasetRef) -> Result<Resolved> {
        let state = self.state();
        let id = state.resolve(dataset)?;
        Ok(Resolved {
            dataset: state.entry_by_id(id)?.dataset.clone(),
            stamp: state.stamp(),
            claim: 0,
        })
    }

    async fn list_datasets(
        &self,
        metadata_pattern: Option<&Map<String, Value>>,
    ) -> Result<Vec<Dataset>> {
        let datasets = self
            .state()
            .datasets
            .values()
            .map(|entry| entry.dataset.clone())
            .collect();
        Ok(select_datasets(datasets, metadata_pattern))
    }

    async fn update_dataset(&self, dataset: &Resolved, update: DatasetUpdate) -> Result<Dataset> {
        update.validate()?;
        let mut state = self.state();
        let current = state.entry(&dataset.dataset)?.dataset.clone();
        if let Some(name) = &update.name
            && *name != current.name
            && state.name_taken(name)
        {
            return Err(Error::DatasetExists { name: name.clone() });
        }
        if update
            .name
            .as_ref()
            .is_none_or(|name| *name == current.name)
            && update.metadata.is_none()
        {
            return Ok(current);
        }
        let updated = update.applied_to(&current, now_ms());
        state.catalogue_writes += 1;
        state.entry_mut(&current)?.dataset = updated.clone();
        Ok(updated)
    }

    async fn delete_dataset(&self, dataset: &Resolved) -> Result<()> {
        let dataset = &dataset.dataset;
        let mut state = self.state();
        state.entry(dataset)?;
        state.datasets.remove(&dataset.id);
        state.deleted_datasets.insert(dataset.id);
        state.catalogue_writes += 1;
        Ok(())
    }
}

#[async_trait]
impl Records for MemoryStore {
    async fn upsert(&self, batch: ValidBatch) -> Result<usize> {
        let (dataset, records) = batch.into_parts();
        let mut state = self.state();
        let entry = state.entry_mut(&dataset)?;
        let version = self.clock.next();
        let n_records = records.len();
        for record in records {
            entry.records.insert(
                record.id.clone(),
                Versioned {
                    version,
                    record: Some(record),
                },
            );
        }
        Ok(n_records)
    }

    async fn delete_records(&self, dataset: &Dataset, filter: &Filter) -> Result<usize> {
        let mut state = self.state();
        let entry = state.entry_mut(dataset)?;
        let doomed: Vec<String> = entry
            .live()
            .filter(|record| filter.matches(record))
            .map(|record| record.id.clone())
            .collect();
        let version = self.clock.next();
        for id in &doomed {
            entry.records.insert(
                id.clone(),
                Versioned {
                    version,
                    record: None,
                },
            );
        }
        Ok(doomed.len())
    }

    async fn fetch(&self, dataset: &Dataset, query: &FetchQuery) -> Result<Vec<Record>> {
        let state = self.state();
        let entry = state.entry(dataset)?;
        Ok(entry
            .live()
            .filter(|record| query.filter.matches(record))
            .skip(query.offset)
            .take(query.limit)
            .map(|record| {
                let mut record = record.clone();
                if !query.with_vectors {
                    record.vector = Vec::new();
                }
                record
            })
            .collect())
    }

    async fn count(&self, dataset: &Dataset, filter: &Filter) -> Result<usize> {
        let state = self.state();
        Ok(state
            .entry(dataset)?
            .live()
            .filter(|record| filter.matches(record))
            .count())
    }

    async fn load_within(&self, dataset: &Dataset, max_bytes: usize) -> Result<LoadedDataset> {
        let state = self.state();
        let entry = state.entry(dataset)?;
        let mut loaded = LoadedDataset::empty(entry.dataset.clone());
        for record in entry.live() {
            loaded.push(record);
        }
        loaded.watermark = entry
            .records
            .values()
            .map(|versioned| versioned.version)
            .max()
            .unwrap_or(0);
        let size_bytes = loaded.size_bytes();
        if size_bytes > max_bytes {
            return Err(Error::DatasetTooLarge {
                size_bytes,
                max_bytes,
            });
        }
        Ok(loaded)
    }
}

#[async_trait]
impl ChangeFeed for MemoryStore {
    async fn changes_since(
        &self,
        dataset: &Dataset,
        since: u64,
        whole_after: u64,
    ) -> Result<FeedRead> {
        let state = self.state();
        let entry = state.entry(dataset)?;
        let rows = entry
            .records
            .iter()
            .filter(|(_, versioned)| versioned.version > since)
            .map(|(id, versioned)| WrittenRow {
                id: id.clone(),
                version: versioned.version,
                content: if versioned.version <= whole_after {
                    WrittenContent::NotRead
                } else {
                    versioned
                        .record
                        .clone()
                        .map_or(WrittenContent::Delete, WrittenContent::Upsert)
                },
            })
            .collect();
        Ok(FeedRead {
            rows,
            stamp: state.stamp(),
            unlanded_since: None,
        })
    }

    async fn changes_of(
        &self,
        dataset: &Dataset,
        since: u64,
        ids: &[String],
    ) -> Result<DatasetChanges> {
        let state = self.state();
        let entry = state.entry(dataset)?;
        let mut changes = DatasetChanges {
            watermark: since,
            ..DatasetChanges::default()
        };
        for id in ids.iter().collect::<HashSet<_>>() {
            let Some(versioned) = entry.records.get(id).filter(|v| v.version > since) else {
                continue;
            };
            match &versioned.record {
                Some(record) => changes.upserts.push(record.clone()),
                None => changes.deleted_ids.push(id.clone()),
            }
            changes.watermark = changes.watermark.max(versioned.version);
        }
        Ok(changes)
    }

    async fn dataset_watermark(&self, dataset_id: Uuid) -> Result<u64> {
        let state = self.state();
        let entry = state.entry_by_id(dataset_id)?;
        Ok(entry
            .records
            .values()
            .map(|versioned| versioned.version)
            .max()
            .unwrap_or(0))
    }
}

#[async_trait]
impl AnalysisStore for MemoryStore {
    async fn put_analysis(&self, job: &AnalysisJob) -> Result<()> {
        let mut state = self.state();
        let previous = state.analyses.get(&job.id);
        // A final state is final: a later non-final write does not undo it.
        if previous.is_some_and(|previous| previous.state.is_final() && !job.state.is_final()) {
            if let Some(previous) = state.analyses.get_mut(&job.id) {
                previous.cancel_requested |= job.cancel_requested;
            }
            return Ok(());
        }
        let cancel_requested =
            job.cancel_requested || previous.is_some_and(|previous| previous.cancel_requested);
        state.analyses.insert(
            job.id,
            AnalysisJob {
                cancel_requested,
                ..job.clone()
            },
        );
        Ok(())
    }

    async fn list_analyses(&self, target: Option<Uuid>, limit: usize) -> Result<Vec<AnalysisJob>> {
        let mut jobs: Vec<AnalysisJob> = self
            .state()
            .analyses
            .values()
            .filter(|job| target.is_none_or(|target| job.target == target))
            .cloned()
            .collect();
        jobs.sort_by_key(|job| std::cmp::Reverse((job.created_at_ms, job.id)));
        jobs.truncate(limit);
        Ok(jobs)
    }

    async fn get_analysis(&self, id: Uuid) -> Result<AnalysisJob> {
        self.state()
            .analyses
            .get(&id)
            .cloned()
            .ok_or(Error::UnknownAnalysis { id })
    }

    async fn put_analysis_results(
        &self,
        id: Uuid,
        first_rank: u64,
        rows: &[StoredRow],
    ) -> Result<()> {
        let parsed = rows
            .iter()
            .map(|row| serde_json::from_str::<Value>(&row.json))
            .collect::<std::result::Result<Vec<Value>, _>>()
            .map_err(|error| Error::Store {
                message: format!("analysis {id} was given a result row that is not JSON: {error}"),
            })?;
        let mut state = self.state();
        let stored = state.analysis_results.entry(id).or_default();
        let first = usize::try_from(first_rank).unwrap_or(usize::MAX);
        if first > stored.len() {
            return Err(Error::Internal {
                message: format!(
                    "analysis {id}'s result rows from rank {first_rank} came before those from rank {}; store them in rank order",
                    stored.len()
                ),
            });
        }
        for (rank, row) in (first..).zip(parsed) {
            match stored.get_mut(rank) {
                Some(slot) => *slot = row,
                None => stored.push(row),
            }
        }
        Ok(())
    }

    async fn analysis_results(&self, id: Uuid, selection: &ResultSelection) -> Result<Vec<Value>> {
        Ok(self
            .state()
            .analysis_results
            .get(&id)
            .map(|rows| {
                rows.iter()
                    .filter(|row| selection.keeps(row))
                    .skip(selection.offset)
                    .take(selection.limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn count_analysis_results(&self, id: Uuid, selection: &ResultSelection) -> Result<u64> {
        Ok(self.state().analysis_results.get(&id).map_or(0, |rows| {
            rows.iter().filter(|row| selection.keeps(row)).count() as u64
        }))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn compact(&self) -> Result<()> {
        let mut state = self.state();
        for entry in state.datasets.values_mut() {
            entry
                .records
                .retain(|_, versioned| versioned.record.is_some());
        }
        let deleted = std::mem::take(&mut state.deleted_datasets);
        let State {
            analyses,
            analysis_results,
            ..
        } = &mut *state;
        analyses.retain(|id, job| {
            let orphaned = deleted.contains(&job.target)
                || job
                    .reference
                    .is_some_and(|reference| deleted.contains(&reference));
            if orphaned {
                analysis_results.remove(id);
            }
            !orphaned
        });
        Ok(())
    }
}
