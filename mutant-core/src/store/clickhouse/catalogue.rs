//! The dataset catalogue in the `datasets` table: low-volume CRUD, one
//! versioned row per change, resolved in memory on read. Metadata changes
//! are rows of their own in `dataset_metadata`, joined on read and composed
//! in version order, so two concurrent patches both land.
//!
//! Names are unique among live datasets without any lock: a create or a
//! rename writes its row, then reads the name back, and wins only if no
//! other live dataset bears it (see `claim_name`); a loser withdraws its
//! row and reports `DatasetExists`. While a loser withdraws, readers see
//! two live datasets under one name and all pick the same one: the first
//! to claim the name (each row carries `name_claimed`, the version of the
//! create or rename that claimed its current name, kept by later writes).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ClickHouseStore;
use crate::model::{Dataset, DatasetRef, DatasetUpdate, MetadataUpdate, Metric, NewDataset};
use crate::store::{CatalogueStamp, Resolved, now_ms};
use crate::{Error, Result};

/// A catalogue row as written. `metadata` is the dataset's metadata as
/// created, which every later row of the dataset repeats; changes to it are
/// rows of `dataset_metadata` (see [`MetadataChange`]).
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
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

/// A catalogue row as read: the row, and every change to its dataset's
/// metadata as `(version, replace, JSON object)`.
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct ReadRow {
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
    metadata_changes: Vec<(u64, u8, String)>,
}

/// What reads select: the catalogue with each dataset's metadata changes
/// joined, to be followed by a `WHERE` clause.
const READ_ROWS: &str = "SELECT ?fields FROM datasets ANY LEFT JOIN (\
     SELECT id, groupArray(tuple(version, replace, change)) AS metadata_changes \
     FROM dataset_metadata GROUP BY id) USING id";

/// One change to a dataset's metadata, a row of its own so that concurrent
/// changes compose on read instead of one overwriting the other: merge
/// patches apply in version order, and a replacement starts over.
#[derive(Debug, Clone, clickhouse::Row, Serialize)]
struct MetadataChange {
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    version: u64,
    replace: u8,
    change: String,
}

/// A live dataset, the version at which it claimed its name, and its
/// metadata as created (what its catalogue rows carry).
#[derive(Debug, Clone)]
struct Entry {
    dataset: Dataset,
    name_claimed: u64,
    created_metadata: serde_json::Map<String, serde_json::Value>,
}

impl DatasetRow {
    /// A row of `dataset` carrying `created_metadata`, its metadata as
    /// created.
    fn new(
        dataset: &Dataset,
        created_metadata: &serde_json::Map<String, serde_json::Value>,
        version: u64,
        deleted: bool,
        name_claimed: u64,
    ) -> Result<Self> {
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
            metadata: serde_json::Value::Object(created_metadata.clone()).to_string(),
            created_at_ms: dataset.created_at_ms,
            updated_at_ms: dataset.updated_at_ms,
            name_claimed,
        })
    }
}

/// A JSON object's text as a map; empty when it is not one.
fn object_of(text: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(object)) => object,
        Ok(_) | Err(_) => serde_json::Map::new(),
    }
}

impl ReadRow {
    /// The dataset with its metadata as created and then changed, in
    /// version order.
    fn into_entry(mut self) -> Result<Entry> {
        let created_metadata = object_of(&self.metadata);
        let mut metadata = created_metadata.clone();
        let mut updated_at_ms = self.updated_at_ms;
        self.metadata_changes
            .sort_by_key(|(version, _, _)| *version);
        for (version, replace, change) in self.metadata_changes {
            let change = object_of(&change);
            if replace == 1 {
                MetadataUpdate::Replace(change)
            } else {
                MetadataUpdate::Patch(change)
            }
            .apply(&mut metadata);
            updated_at_ms = updated_at_ms.max(version / 1_000_000);
        }
        Ok(Entry {
            dataset: Dataset {
                id: self.id,
                name: self.name,
                dimension: self.dimension as usize,
                metric: self.metric.parse::<Metric>()?,
                metadata,
                created_at_ms: self.created_at_ms,
                updated_at_ms,
            },
            name_claimed: self.name_claimed,
            created_metadata,
        })
    }
}

/// Every live dataset, with name clashes resolved (first claim wins).
pub(super) async fn live_datasets(store: &ClickHouseStore) -> Result<Vec<Dataset>> {
    let rows = fetch_rows(store, store.client.query(READ_ROWS)).await?;
    Ok(live_among(rows)?
        .into_iter()
        .map(|entry| entry.dataset)
        .collect())
}

/// The live datasets among `rows`, with name clashes resolved: each id's
/// latest row, tombstones dropped, and per name the first to claim it (ties
/// by id). A clash lasts only while a losing claim withdraws, unless its
/// server dies in between; readers then still agree on one dataset.
fn live_among(rows: Vec<ReadRow>) -> Result<Vec<Entry>> {
    let mut live = latest_live(rows)?;
    live.sort_by_key(|entry| (entry.name_claimed, entry.dataset.id));
    let mut seen_names = std::collections::HashSet::new();
    live.retain(|entry| seen_names.insert(entry.dataset.name.clone()));
    Ok(live)
}

/// Each id's latest row among `rows`, unless it is a tombstone.
fn latest_live(rows: Vec<ReadRow>) -> Result<Vec<Entry>> {
    let mut latest: HashMap<Uuid, ReadRow> = HashMap::new();
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
        .map(ReadRow::into_entry)
        .collect()
}

/// Every row of every dataset that ever bore `name`.
async fn rows_of_datasets_that_bore(store: &ClickHouseStore, name: &str) -> Result<Vec<ReadRow>> {
    let query = store
        .client
        .query(&format!("{READ_ROWS} WHERE {STAMP_ROWS}"))
        .bind(name);
    fetch_rows(store, query).await
}

async fn fetch_rows(
    store: &ClickHouseStore,
    query: clickhouse::query::Query,
) -> Result<Vec<ReadRow>> {
    query.fetch_all().await.map_err(|error| store.error(error))
}

/// The live dataset a reference names.
pub(super) async fn resolve(store: &ClickHouseStore, dataset: &DatasetRef) -> Result<Dataset> {
    Ok(resolve_stamped(store, dataset).await?.dataset)
}

/// [`resolve`], with the stamp of the rows that decide the dataset's name
/// (those [`STAMP_ROWS`] selects) and its name claim.
pub(super) async fn resolve_stamped(
    store: &ClickHouseStore,
    dataset: &DatasetRef,
) -> Result<Resolved> {
    let (entry, rows) = resolve_entry(store, dataset).await?;
    let name = &entry.dataset.name;
    let bearers: HashSet<Uuid> = rows
        .iter()
        .filter(|row| row.name == *name)
        .map(|row| row.id)
        .collect();
    let stamp = CatalogueStamp::of_versions(
        rows.iter()
            .filter(|row| bearers.contains(&row.id))
            .map(|row| row.version),
    );
    Ok(Resolved {
        dataset: entry.dataset,
        stamp,
        claim: entry.name_claimed,
    })
}

/// The catalogue rows a [`CatalogueStamp`] summarises, as a condition on the
/// `datasets` table with one parameter, the name: every row of every dataset
/// that ever bore it. A delete, rename or metadata change of such a dataset,
/// a new dataset under the name, or another renamed to it, adds a row here.
pub(super) const STAMP_ROWS: &str = "id IN (SELECT id FROM datasets WHERE name = ?)";

/// [`resolve`], with the dataset's name claim. Reads only the rows that can
/// decide it, not the whole catalogue: every row of each dataset that ever
/// bore the name (by name), or ever bore a name the dataset ever had (by
/// id). Any live dataset that competes for the reference's current name has
/// a row with that name, so it is among them, with all its rows, and the
/// clash rule gives the same answer it gives over the whole catalogue.
/// Also returns the rows it read.
async fn resolve_entry(
    store: &ClickHouseStore,
    dataset: &DatasetRef,
) -> Result<(Entry, Vec<ReadRow>)> {
    let rows = match dataset {
        DatasetRef::Name(name) => rows_of_datasets_that_bore(store, name).await?,
        DatasetRef::Id(id) => {
            let query = store
                .client
                .query(&format!(
                    "{READ_ROWS} WHERE id IN (SELECT id FROM datasets WHERE name IN \
                     (SELECT name FROM datasets WHERE id = toUUID(?)))"
                ))
                .bind(id.to_string());
            fetch_rows(store, query).await?
        }
    };
    let entry = live_among(rows.clone())?
        .into_iter()
        .find(|entry| match dataset {
            DatasetRef::Id(id) => entry.dataset.id == *id,
            DatasetRef::Name(name) => &entry.dataset.name == name,
        })
        .ok_or_else(|| Error::UnknownDataset {
            dataset: dataset.to_string(),
        })?;
    Ok((entry, rows))
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
    created_metadata: &serde_json::Map<String, serde_json::Value>,
    previous: Option<&Entry>,
) -> Result<Dataset> {
    for attempt in 0..CLAIM_ATTEMPTS {
        let version = store.clock.next();
        let row = DatasetRow::new(dataset, created_metadata, version, false, version)?;
        write_row(store, &row).await?;
        let holders = name_holders(store, &dataset.name).await?;
        if holders.iter().all(|holder| holder.id == dataset.id) {
            return Ok(dataset.clone());
        }
        let undo_version = store.clock.next();
        let undo = match previous {
            Some(previous) => DatasetRow::new(
                &previous.dataset,
                &previous.created_metadata,
                undo_version,
                false,
                previous.name_claimed,
            )?,
            None => DatasetRow::new(dataset, created_metadata, undo_version, true, version)?,
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
    claim_name(store, &dataset, &dataset.metadata, None).await
}

pub(super) async fn update(
    store: &ClickHouseStore,
    dataset: &Resolved,
    update: DatasetUpdate,
) -> Result<Dataset> {
    update.validate()?;
    let DatasetUpdate { name, metadata } = update;
    let new_name = name.filter(|name| *name != dataset.dataset.name);
    let mut updated = dataset.dataset.clone();
    if let Some(new_name) = new_name {
        // The renamed row repeats the metadata as created, read afresh.
        let (current, _) = resolve_entry(store, &DatasetRef::Id(dataset.dataset.id)).await?;
        if name_is_taken(store, &new_name).await? {
            return Err(Error::DatasetExists { name: new_name });
        }
        let renamed = Dataset {
            name: new_name,
            updated_at_ms: now_ms(),
            ..current.dataset.clone()
        };
        updated = claim_name(store, &renamed, &current.created_metadata, Some(&current)).await?;
    }
    if let Some(change) = metadata {
        write_metadata_change(store, updated.id, &change).await?;
        change.apply(&mut updated.metadata);
        updated.updated_at_ms = now_ms();
    }
    Ok(updated)
}

/// Writes a metadata change as a row of its own (see [`MetadataChange`]),
/// again while a quorum INSERT holds the table.
async fn write_metadata_change(
    store: &ClickHouseStore,
    dataset_id: Uuid,
    change: &MetadataUpdate,
) -> Result<()> {
    let (replace, object) = match change {
        MetadataUpdate::Replace(object) => (1, object),
        MetadataUpdate::Patch(object) => (0, object),
    };
    let row = MetadataChange {
        id: dataset_id,
        version: store.clock.next(),
        replace,
        change: serde_json::Value::Object(object.clone()).to_string(),
    };
    super::retry_while_quorum_busy(store.timeout, || write_metadata_change_once(store, &row)).await
}

async fn write_metadata_change_once(store: &ClickHouseStore, row: &MetadataChange) -> Result<()> {
    let failed = |error: clickhouse::error::Error| store.error(error);
    let mut insert = store
        .client
        .insert::<MetadataChange>("dataset_metadata")
        .await
        .map_err(failed)?;
    for (name, value) in &store.insert_settings {
        insert = insert.with_setting(name, value);
    }
    insert.write(row).await.map_err(failed)?;
    insert.end().await.map_err(failed)
}

/// The version of every dataset tombstone: the highest there is, so that a
/// tombstone outranks every other row of its dataset, on read and in
/// merges. A PATCH, rename or name claim that raced the delete (it resolved
/// the dataset before the tombstone landed) writes a row that is superseded
/// the moment it lands: a deleted dataset stays deleted. A re-created
/// dataset has a new id, so nothing live is ever outranked.
const TOMBSTONE_VERSION: u64 = u64::MAX;

pub(super) async fn delete(store: &ClickHouseStore, dataset: &Resolved) -> Result<()> {
    write_row(
        store,
        &DatasetRow::new(
            &dataset.dataset,
            &dataset.dataset.metadata,
            TOMBSTONE_VERSION,
            true,
            dataset.claim,
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
