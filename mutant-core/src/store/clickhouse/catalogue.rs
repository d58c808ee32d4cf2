//! The dataset catalogue in the `datasets` table: low-volume CRUD, one
//! versioned row per change, resolved in memory on read.
//!
//! Names are unique among live datasets without any lock: a create or a
//! rename writes its row, then reads the name back, and wins only if no
//! other live dataset bears it (see `claim_name`); a loser withdraws its
//! row and reports `DatasetExists`. While a loser withdraws, readers see
//! two live datasets under one name and all pick the same one: the first
//! to claim the name (each row carries `name_claimed`, the version of the
//! create or rename that claimed its current name, kept by later writes).

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
    name_claimed: u64,
}

/// A live dataset and the version at which it claimed its name.
#[derive(Debug, Clone)]
struct Entry {
    dataset: Dataset,
    name_claimed: u64,
}

impl DatasetRow {
    fn new(dataset: &Dataset, version: u64, deleted: bool, name_claimed: u64) -> Result<Self> {
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
            name_claimed,
        })
    }

    fn into_entry(self) -> Result<Entry> {
        let name_claimed = self.name_claimed;
        Ok(Entry {
            dataset: self.into_dataset()?,
            name_claimed,
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

/// Every live dataset, with name clashes resolved (first claim wins).
pub(super) async fn live_datasets(store: &ClickHouseStore) -> Result<Vec<Dataset>> {
    let rows = fetch_rows(store, store.client.query("SELECT ?fields FROM datasets")).await?;
    Ok(live_among(rows)?
        .into_iter()
        .map(|entry| entry.dataset)
        .collect())
}

/// The live datasets among `rows`, with name clashes resolved: each id's
/// latest row, tombstones dropped, and per name the first to claim it (ties
/// by id). A clash lasts only while a losing claim withdraws, unless its
/// server dies in between; readers then still agree on one dataset.
fn live_among(rows: Vec<DatasetRow>) -> Result<Vec<Entry>> {
    let mut live = latest_live(rows)?;
    live.sort_by_key(|entry| (entry.name_claimed, entry.dataset.id));
    let mut seen_names = std::collections::HashSet::new();
    live.retain(|entry| seen_names.insert(entry.dataset.name.clone()));
    Ok(live)
}

/// Each id's latest row among `rows`, unless it is a tombstone.
fn latest_live(rows: Vec<DatasetRow>) -> Result<Vec<Entry>> {
    let mut latest: HashMap<Uuid, DatasetRow> = HashMap::new();
    for row in rows {
        match latest.get(&row.id) {
            Some(current) if current.version >= row.version => {}
            Some(_) | None => {
                latest.insert(row.id, row);
            }
        }
    }
    latest
        .into_values()
        .filter(|row| row.deleted == 0)
        .map(DatasetRow::into_entry)
        .collect()
}

/// Every row of every dataset that ever bore `name`.
async fn rows_of_datasets_that_bore(
    store: &ClickHouseStore,
    name: &str,
) -> Result<Vec<DatasetRow>> {
    let query = store
        .client
        .query("SELECT ?fields FROM datasets WHERE id IN (SELECT id FROM datasets WHERE name = ?)")
        .bind(name);
    fetch_rows(store, query).await
}

async fn fetch_rows(
    store: &ClickHouseStore,
    query: clickhouse::query::Query,
) -> Result<Vec<DatasetRow>> {
    query.fetch_all().await.map_err(|error| store.error(error))
}

/// The live dataset a reference names.
pub(super) async fn resolve(store: &ClickHouseStore, dataset: &DatasetRef) -> Result<Dataset> {
    Ok(resolve_entry(store, dataset).await?.dataset)
}

/// [`resolve`], with the dataset's name claim. Reads only the rows that can
/// decide it, not the whole catalogue: every row of each dataset that ever
/// bore the name (by name), or ever bore a name the dataset ever had (by
/// id). Any live dataset that competes for the reference's current name has
/// a row with that name, so it is among them, with all its rows, and the
/// clash rule gives the same answer it gives over the whole catalogue.
async fn resolve_entry(store: &ClickHouseStore, dataset: &DatasetRef) -> Result<Entry> {
    let rows = match dataset {
        DatasetRef::Name(name) => rows_of_datasets_that_bore(store, name).await?,
        DatasetRef::Id(id) => {
            let query = store
                .client
                .query(
                    "SELECT ?fields FROM datasets WHERE id IN (SELECT id FROM datasets WHERE name IN \
                     (SELECT name FROM datasets WHERE id = toUUID(?)))",
                )
                .bind(id.to_string());
            fetch_rows(store, query).await?
        }
    };
    live_among(rows)?
        .into_iter()
        .find(|entry| match dataset {
            DatasetRef::Id(id) => entry.dataset.id == *id,
            DatasetRef::Name(name) => &entry.dataset.name == name,
        })
        .ok_or_else(|| Error::UnknownDataset {
            dataset: dataset.to_string(),
        })
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

/// Writes one catalogue row (again while a quorum INSERT holds the table).
async fn write_row(store: &ClickHouseStore, row: &DatasetRow) -> Result<()> {
    super::retry_while_quorum_busy(store.timeout, || write_row_once(store, row)).await
}

async fn write_row_once(store: &ClickHouseStore, row: &DatasetRow) -> Result<()> {
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

/// Attempts at a name that another claim collided with before one side
/// gives up with `DatasetExists`.
const CLAIM_ATTEMPTS: u32 = 6;

/// Writes `dataset` under its (new) name, then reads the name back: the
/// claim wins only if no other live dataset bears the name. Of two racing
/// claims, the one that reads back later sees the other's row (each row is
/// written before its reader reads), so at most one wins. A claim that sees
/// a competitor restores `previous` (or withdraws a new dataset); if the
/// competitor withdrew as well, the name is free again and the claim is
/// retried after a random pause, else it fails with `DatasetExists`.
async fn claim_name(
    store: &ClickHouseStore,
    dataset: &Dataset,
    previous: Option<&Entry>,
) -> Result<Dataset> {
    for attempt in 0..CLAIM_ATTEMPTS {
        let version = store.clock.next();
        write_row(store, &DatasetRow::new(dataset, version, false, version)?).await?;
        let holders = name_holders(store, &dataset.name).await?;
        if holders.iter().all(|holder| holder.id == dataset.id) {
            return Ok(dataset.clone());
        }
        let undo_version = store.clock.next();
        let undo = match previous {
            Some(previous) => DatasetRow::new(
                &previous.dataset,
                undo_version,
                false,
                previous.name_claimed,
            )?,
            None => DatasetRow::new(dataset, undo_version, true, version)?,
        };
        write_row(store, &undo).await?;
        if name_is_taken(store, &dataset.name).await? {
            break;
        }
        let pause_ms = 1 + Uuid::new_v4().as_u128() % (5u128 << attempt);
        tokio::time::sleep(std::time::Duration::from_millis(pause_ms as u64)).await;
    }
    Err(Error::DatasetExists {
        name: dataset.name.clone(),
    })
}

/// Every live dataset whose current row bears `name`, before name clashes
/// are resolved.
async fn name_holders(store: &ClickHouseStore, name: &str) -> Result<Vec<Dataset>> {
    let rows = rows_of_datasets_that_bore(store, name).await?;
    Ok(latest_live(rows)?
        .into_iter()
        .map(|entry| entry.dataset)
        .filter(|dataset| dataset.name == name)
        .collect())
}

/// Whether a live dataset bears `name`.
async fn name_is_taken(store: &ClickHouseStore, name: &str) -> Result<bool> {
    match resolve(store, &DatasetRef::Name(name.to_owned())).await {
        Ok(_) => Ok(true),
        Err(Error::UnknownDataset { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

pub(super) async fn create(store: &ClickHouseStore, new_dataset: NewDataset) -> Result<Dataset> {
    new_dataset.validate()?;
    if name_is_taken(store, &new_dataset.name).await? {
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
    let current = resolve_entry(store, dataset).await?;
    if current.dataset.name == new_name {
        return Ok(current.dataset);
    }
    if name_is_taken(store, new_name).await? {
        return Err(Error::DatasetExists {
            name: new_name.to_owned(),
        });
    }
    let renamed = Dataset {
        name: new_name.to_owned(),
        updated_at_ms: now_ms(),
        ..current.dataset.clone()
    };
    claim_name(store, &renamed, Some(&current)).await
}

pub(super) async fn update_metadata(
    store: &ClickHouseStore,
    dataset: &DatasetRef,
    update: MetadataUpdate,
) -> Result<Dataset> {
    let Entry {
        dataset: mut updated,
        name_claimed,
    } = resolve_entry(store, dataset).await?;
    update.apply(&mut updated.metadata);
    updated.updated_at_ms = now_ms();
    write_row(
        store,
        &DatasetRow::new(&updated, store.clock.next(), false, name_claimed)?,
    )
    .await?;
    Ok(updated)
}

pub(super) async fn delete(store: &ClickHouseStore, dataset: &DatasetRef) -> Result<()> {
    let doomed = resolve_entry(store, dataset).await?;
    write_row(
        store,
        &DatasetRow::new(
            &doomed.dataset,
            store.clock.next(),
            true,
            doomed.name_claimed,
        )?,
    )
    .await
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
