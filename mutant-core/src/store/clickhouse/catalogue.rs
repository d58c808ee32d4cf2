//! The dataset catalogue in the `datasets` table: low-volume CRUD, one
//! versioned row per change, resolved in memory on read.
//!
//! Names are unique among live datasets without any lock: a writer inserts
//! its row, then reads the catalogue back; when two live datasets share a
//! name, the earliest created (ties by id) wins everywhere, and the loser
//! withdraws its row and reports `DatasetExists`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ClickHouseStore;
use crate::model::{
    Dataset, DatasetRef, MetadataUpdate, Metric, NewDataset, validate_dataset_name,
};
use crate::store::now_ms;
use crate::{Error, Result};

#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
struct DatasetRow {
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    version: u64,
    deleted: u8,
    name: String,
    dimension: u32,
    metric: String,
    metadata: String,
    created_at_ms: u64,
    updated_at_ms: u64,
}

impl DatasetRow {
    fn from_dataset(dataset: &Dataset, version: u64, deleted: bool) -> Result<Self> {
        Ok(DatasetRow {
            id: dataset.id,
            version,
            deleted: u8::from(deleted),
            name: dataset.name.clone(),
            dimension: u32::try_from(dataset.dimension).map_err(|_| Error::InvalidDimension {
                dimension: dataset.dimension,
                max: crate::model::MAX_DIMENSION,
            })?,
            metric: dataset.metric.as_str().to_owned(),
            metadata: serde_json::Value::Object(dataset.metadata.clone()).to_string(),
            created_at_ms: dataset.created_at_ms,
            updated_at_ms: dataset.updated_at_ms,
        })
    }

    fn into_dataset(self) -> Result<Dataset> {
        let metadata = match serde_json::from_str(&self.metadata) {
            Ok(serde_json::Value::Object(object)) => object,
            Ok(_) | Err(_) => serde_json::Map::new(),
        };
        Ok(Dataset {
            id: self.id,
            name: self.name,
            dimension: self.dimension as usize,
            metric: self.metric.parse::<Metric>()?,
            metadata,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

/// Every live dataset, with name clashes resolved (earliest created wins).
pub(super) async fn live_datasets(store: &ClickHouseStore) -> Result<Vec<Dataset>> {
    let rows: Vec<DatasetRow> = store
        .client
        .query("SELECT ?fields FROM datasets")
        .fetch_all()
        .await
        .map_err(|error| store.error(error))?;
    let mut latest: HashMap<Uuid, DatasetRow> = HashMap::new();
    for row in rows {
        match latest.get(&row.id) {
            Some(current) if current.version >= row.version => {}
            Some(_) | None => {
                latest.insert(row.id, row);
            }
        }
    }
    let mut live: Vec<Dataset> = latest
        .into_values()
        .filter(|row| row.deleted == 0)
        .map(DatasetRow::into_dataset)
        .collect::<Result<_>>()?;
    live.sort_by_key(|dataset| (dataset.created_at_ms, dataset.id));
    let mut seen_names = std::collections::HashSet::new();
    live.retain(|dataset| seen_names.insert(dataset.name.clone()));
    Ok(live)
}

/// The live dataset a reference names.
pub(super) async fn resolve(store: &ClickHouseStore, dataset: &DatasetRef) -> Result<Dataset> {
    find(&live_datasets(store).await?, dataset).cloned()
}

/// How long a dataset resolved by UUID is trusted for writes.
const RECENT_DATASET_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Datasets recently resolved by UUID, for the write path: a streaming writer
/// sends many batches a second to one dataset, and a catalogue read per batch
/// would cost ClickHouse more than the INSERT. Only UUIDs are cached: a UUID
/// never changes meaning (a re-created dataset gets a new one) and a dataset's
/// dimension never changes, so the only staleness is a delete made less than
/// the TTL ago, and a write racing a delete is acknowledged and then reclaimed
/// with the dataset, as if it had come just before the delete. Names are
/// always resolved afresh, since a name can move to a new dataset.
#[derive(Debug, Default)]
pub(super) struct RecentDatasets(std::sync::Mutex<HashMap<Uuid, (Dataset, std::time::Instant)>>);

/// The live dataset a write addresses, from the recent cache when addressed by UUID.
pub(super) async fn resolve_for_write(
    store: &ClickHouseStore,
    dataset: &DatasetRef,
) -> Result<Dataset> {
    if let DatasetRef::Id(id) = dataset {
        let recent = store
            .recent_datasets
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((found, _)) = recent
            .get(id)
            .filter(|(_, at)| at.elapsed() < RECENT_DATASET_TTL)
        {
            return Ok(found.clone());
        }
    }
    let found = resolve(store, dataset).await?;
    let mut recent = store
        .recent_datasets
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    recent.retain(|_, (_, at)| at.elapsed() < RECENT_DATASET_TTL);
    recent.insert(found.id, (found.clone(), std::time::Instant::now()));
    Ok(found)
}

async fn write_row(store: &ClickHouseStore, row: &DatasetRow) -> Result<()> {
    let mut insert = store
        .client
        .insert::<DatasetRow>("datasets")
        .await
        .map_err(|error| store.error(error))?;
    for (name, value) in &store.insert_settings {
        insert = insert.with_setting(name, value);
    }
    insert
        .write(row)
        .await
        .map_err(|error| store.error(error))?;
    insert.end().await.map_err(|error| store.error(error))
}

/// Writes `dataset` under its (new) name, then checks that it won the name;
/// if not, restores `previous` (or withdraws a new dataset) and fails.
async fn claim_name(
    store: &ClickHouseStore,
    dataset: &Dataset,
    previous: Option<&Dataset>,
) -> Result<Dataset> {
    let version = store.clock.next();
    write_row(store, &DatasetRow::from_dataset(dataset, version, false)?).await?;
    let winner = resolve(store, &DatasetRef::Name(dataset.name.clone())).await;
    if matches!(&winner, Ok(winner) if winner.id == dataset.id) {
        return Ok(dataset.clone());
    }
    let undo_version = store.clock.next();
    let undo = match previous {
        Some(previous) => DatasetRow::from_dataset(previous, undo_version, false)?,
        None => DatasetRow::from_dataset(dataset, undo_version, true)?,
    };
    write_row(store, &undo).await?;
    Err(Error::DatasetExists {
        name: dataset.name.clone(),
    })
}

pub(super) async fn create(store: &ClickHouseStore, new_dataset: NewDataset) -> Result<Dataset> {
    new_dataset.validate()?;
    if live_datasets(store)
        .await?
        .iter()
        .any(|dataset| dataset.name == new_dataset.name)
    {
        return Err(Error::DatasetExists {
            name: new_dataset.name,
        });
    }
    let dataset = new_dataset.into_dataset(Uuid::new_v4(), now_ms());
    claim_name(store, &dataset, None).await
}

pub(super) async fn rename(
    store: &ClickHouseStore,
    dataset: &DatasetRef,
    new_name: &str,
) -> Result<Dataset> {
    validate_dataset_name(new_name)?;
    let datasets = live_datasets(store).await?;
    let current = find(&datasets, dataset)?;
    if current.name == new_name {
        return Ok(current.clone());
    }
    if datasets.iter().any(|other| other.name == new_name) {
        return Err(Error::DatasetExists {
            name: new_name.to_owned(),
        });
    }
    let renamed = Dataset {
        name: new_name.to_owned(),
        updated_at_ms: now_ms(),
        ..current.clone()
    };
    claim_name(store, &renamed, Some(current)).await
}

pub(super) async fn update_metadata(
    store: &ClickHouseStore,
    dataset: &DatasetRef,
    update: MetadataUpdate,
) -> Result<Dataset> {
    let mut updated = resolve(store, dataset).await?;
    update.apply(&mut updated.metadata);
    updated.updated_at_ms = now_ms();
    write_row(
        store,
        &DatasetRow::from_dataset(&updated, store.clock.next(), false)?,
    )
    .await?;
    Ok(updated)
}

pub(super) async fn delete(store: &ClickHouseStore, dataset: &DatasetRef) -> Result<()> {
    let doomed = resolve(store, dataset).await?;
    write_row(
        store,
        &DatasetRow::from_dataset(&doomed, store.clock.next(), true)?,
    )
    .await
}

fn find<'a>(datasets: &'a [Dataset], dataset: &DatasetRef) -> Result<&'a Dataset> {
    datasets
        .iter()
        .find(|candidate| match dataset {
            DatasetRef::Id(id) => candidate.id == *id,
            DatasetRef::Name(name) => &candidate.name == name,
        })
        .ok_or_else(|| Error::UnknownDataset {
            dataset: dataset.to_string(),
        })
}

/// Ids of datasets whose latest row is a tombstone, for compaction.
pub(super) async fn deleted_dataset_ids(store: &ClickHouseStore) -> Result<Vec<Uuid>> {
    #[derive(Debug, clickhouse::Row, Deserialize)]
    struct DeletedRow {
        #[serde(with = "clickhouse::serde::uuid")]
        id: Uuid,
    }
    let rows: Vec<DeletedRow> = store
        .client
        .query("SELECT id FROM datasets GROUP BY id HAVING argMax(deleted, version) = 1")
        .fetch_all()
        .await
        .map_err(|error| store.error(error))?;
    Ok(rows.into_iter().map(|row| row.id).collect())
}
