//! Record reads and writes on the `records` table: upserts and tombstones go
//! through group commit; fetch and count resolve each id to its latest version
//! with `argMax(..., version)` before filtering, so a filter never matches a
//! superseded version; compaction reclaims what deletes left behind.

use std::collections::HashMap;

use serde::Deserialize;
use uuid::Uuid;

use super::rowbinary::encode_record_row;
use super::sql::{Sql, render_filter};
use super::{ClickHouseStore, StoreFailure, catalogue, load, schema};
use crate::ingest::ValidBatch;
use crate::model::{Dataset, Filter, Record, RecordMetadata, WrittenContent, WrittenRow};
use crate::store::FetchQuery;
use crate::{Error, Result};

/// The most id bytes one query's id list carries (well under 18.16's
/// 262,144-byte query limit once escaped).
const ID_CHUNK_BYTES: usize = 96 * 1024;

/// Encodes rows in INSERT-sized pieces, queues them all for group commit
/// (which stamps their version when their INSERT starts), then waits for
/// every piece; returns the version each row got, in order.
async fn write_rows<'a>(
    store: &ClickHouseStore,
    dataset_id: Uuid,
    rows: impl Iterator<Item = (&'a str, Option<&'a Record>)>,
) -> Result<Vec<u64>> {
    let piece_bytes = (store.max_insert_bytes / 2).max(1);
    let mut answers = Vec::new();
    let mut buffer = Vec::new();
    let mut version_offsets = Vec::new();
    for (id, record) in rows {
        version_offsets.push(encode_record_row(&mut buffer, dataset_id, id, record));
        if buffer.len() >= piece_bytes {
            let n_rows = version_offsets.len();
            let answer = store
                .committer
                .submit(
                    std::mem::take(&mut buffer),
                    std::mem::take(&mut version_offsets),
                )
                .await;
            answers.push((answer, n_rows));
        }
    }
    if !version_offsets.is_empty() {
        let n_rows = version_offsets.len();
        answers.push((
            store.committer.submit(buffer, version_offsets).await,
            n_rows,
        ));
    }
    let mut versions = Vec::new();
    for (answer, n_rows) in answers {
        let outcome = match answer {
            Ok(receiver) => receiver.await.unwrap_or_else(|_| {
                Err(StoreFailure::Failed(
                    "the group commit task dropped a write".into(),
                ))
            }),
            Err(failure) => Err(failure),
        };
        let version = outcome.map_err(|failure| store.error(failure))?;
        versions.extend(std::iter::repeat_n(version, n_rows));
    }
    Ok(versions)
}

pub(super) async fn upsert(store: &ClickHouseStore, batch: ValidBatch) -> Result<usize> {
    let (dataset, records) = batch.into_parts();
    write_rows(
        store,
        dataset.id,
        records
            .iter()
            .map(|record| (record.id.as_str(), Some(record))),
    )
    .await?;
    Ok(records.len())
}

/// The latest version of every record of a dataset, one row per id, as a
/// subquery with columns `id, r_deleted, r_vector, r_label, r_prediction,
/// r_uri, r_metadata` and the typed metadata arrays `r_meta_*`. `id_subset` restricts it through the primary key.
fn resolved_records(dataset_id: Uuid, with_vectors: bool, id_subset: Option<&[&str]>) -> Sql {
    // One argMax over a tuple: argMax over a Nullable column alone would skip
    // NULLs and resurrect an older label when the latest version has none.
    // The tuple holds no Nullable: ClickHouse 18.16.1 crashes (SIGSEGV) when
    // a shard sends back the state of an argMax over a tuple with a Nullable
    // inside, as every query through a Distributed table does. The empty
    // string stands for NULL, which is exact: ingest refuses empty labels,
    // predictions and uris.
    let mut sql = Sql::new(
        "SELECT id, tupleElement(latest, 1) AS r_deleted, \
         nullIf(tupleElement(latest, 2), '') AS r_label, \
         nullIf(tupleElement(latest, 3), '') AS r_prediction, \
         nullIf(tupleElement(latest, 4), '') AS r_uri, \
         tupleElement(latest, 5) AS r_metadata, tupleElement(latest, 6) AS r_meta_keys, \
         tupleElement(latest, 7) AS r_meta_kinds, tupleElement(latest, 8) AS r_meta_strings, \
         tupleElement(latest, 9) AS r_meta_numbers, tupleElement(latest, 10) AS r_vector, \
         r_version FROM (\
         SELECT id, argMax(tuple(deleted, ifNull(label, ''), ifNull(prediction, ''), \
         ifNull(uri, ''), metadata, meta_keys, meta_kinds, meta_strings, meta_numbers, ",
    );
    sql.push(if with_vectors {
        "vector"
    } else {
        "emptyArrayFloat32()"
    });
    sql.push(
        "), version) AS latest, max(version) AS r_version FROM records WHERE dataset = toUUID(",
    )
    .text_arg(&dataset_id.to_string())
    .push(")");
    if let Some(ids) = id_subset {
        sql.push(" AND id IN (").text_list(ids, None).push(")");
    }
    sql.push(" GROUP BY id)");
    sql
}

/// `SELECT <columns> FROM (resolved) WHERE live AND filter`.
fn select_live(
    columns: &str,
    dataset_id: Uuid,
    with_vectors: bool,
    id_subset: Option<&[&str]>,
    filter: &Filter,
) -> Result<Sql> {
    let mut sql = Sql::new("SELECT ");
    sql.push(columns).push(" FROM (");
    sql.append(resolved_records(dataset_id, with_vectors, id_subset));
    sql.push(") WHERE r_deleted = 0 AND ");
    sql.append(render_filter(filter));
    if sql.too_large() {
        return Err(Error::QueryTooLarge {
            len: sql.approximate_len(),
            max: super::sql::MAX_QUERY_SIZE,
        });
    }
    Ok(sql)
}

/// Splits a long id list into pieces that keep each query under the limit;
/// an empty list gives no pieces, so an empty id set queries nothing.
pub(super) fn id_chunks<'a>(ids: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut chunks: Vec<Vec<&'a str>> = Vec::new();
    let mut chunk_bytes = 0;
    for id in ids {
        let cost = id.len() + 8;
        match chunks.last_mut() {
            Some(chunk) if chunk_bytes + cost <= ID_CHUNK_BYTES => chunk.push(*id),
            _ => {
                chunks.push(vec![*id]);
                chunk_bytes = 0;
            }
        }
        chunk_bytes += cost;
    }
    chunks
}

/// Runs `plan` once per id chunk when the filter is a plain id set (any
/// length), or once with the filter otherwise.
fn plan_queries(
    columns: &str,
    dataset_id: Uuid,
    with_vectors: bool,
    filter: &Filter,
) -> Result<Vec<Sql>> {
    match filter.as_id_set() {
        Some(ids) => id_chunks(&ids)
            .iter()
            .map(|chunk| {
                select_live(
                    columns,
                    dataset_id,
                    with_vectors,
                    Some(chunk),
                    &Filter::all(),
                )
            })
            .collect(),
        None => Ok(vec![select_live(
            columns,
            dataset_id,
            with_vectors,
            None,
            filter,
        )?]),
    }
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct FetchedRow {
    id: String,
    r_vector: Vec<f32>,
    r_label: Option<String>,
    r_prediction: Option<String>,
    r_uri: Option<String>,
    r_metadata: String,
}

const FETCH_COLUMNS: &str = "id, r_vector, r_label, r_prediction, r_uri, r_metadata";

pub(super) async fn fetch(
    store: &ClickHouseStore,
    dataset: &Dataset,
    query: &FetchQuery,
) -> Result<Vec<Record>> {
    let plans = plan_queries(FETCH_COLUMNS, dataset.id, query.with_vectors, &query.filter)?;
    let single_query = plans.len() == 1;
    let mut rows: Vec<FetchedRow> = Vec::new();
    for mut sql in plans {
        if single_query {
            sql.push(" ORDER BY id LIMIT ")
                .unsigned_arg(query.limit as u64)
                .push(" OFFSET ")
                .unsigned_arg(query.offset as u64);
        }
        let driver_query = sql.bind_into(&store.client);
        rows.extend(
            driver_query
                .fetch_all::<FetchedRow>()
                .await
                .map_err(|error| store.error(error))?,
        );
    }
    if !single_query {
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows = rows
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .collect();
    }
    rows.into_iter()
        .map(|row| {
            Ok(Record {
                id: row.id,
                vector: row.r_vector,
                label: row.r_label,
                prediction: row.r_prediction,
                uri: row.r_uri,
                metadata: RecordMetadata::from_json_str(&row.r_metadata)?,
            })
        })
        .collect()
}

pub(super) async fn count(
    store: &ClickHouseStore,
    dataset: &Dataset,
    filter: &Filter,
) -> Result<usize> {
    let mut total = 0u64;
    for sql in plan_queries("count()", dataset.id, false, filter)? {
        let count: u64 = sql
            .bind_into(&store.client)
            .fetch_one()
            .await
            .map_err(|error| store.error(error))?;
        total += count;
    }
    Ok(usize::try_from(total).unwrap_or(usize::MAX))
}

/// A record a delete read: its id and the version it read.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct ReadRecord {
    id: String,
    r_version: u64,
}

/// Deletes the live records matching `filter`: reads their ids and
/// versions, writes tombstones, then gives back what the tombstones must
/// not have taken (see [`restore_overtaken`]).
pub(super) async fn delete(
    store: &ClickHouseStore,
    dataset: &Dataset,
    filter: &Filter,
) -> Result<usize> {
    let mut doomed: Vec<ReadRecord> = Vec::new();
    for sql in plan_queries("id, r_version", dataset.id, false, filter)? {
        let read: Vec<ReadRecord> = sql
            .bind_into(&store.client)
            .fetch_all()
            .await
            .map_err(|error| store.error(error))?;
        doomed.extend(read);
    }
    if doomed.is_empty() {
        return Ok(0);
    }
    let tombstones = write_rows(
        store,
        dataset.id,
        doomed.iter().map(|record| (record.id.as_str(), None)),
    )
    .await?;
    restore_overtaken(store, dataset, &doomed, &tombstones).await?;
    Ok(doomed.len())
}

/// A delete removes only the versions it read. An upsert of a doomed id
/// acknowledged between the delete's read and its tombstone (versioned
/// after the one read, before the tombstone) is not the record the delete
/// chose; while the tombstone is still that id's latest row, the upsert's
/// record is written again, with a new version, so that it stands as its
/// writer was told.
async fn restore_overtaken(
    store: &ClickHouseStore,
    dataset: &Dataset,
    doomed: &[ReadRecord],
    tombstones: &[u64],
) -> Result<()> {
    // Ids and versions first: the ids with a row between the version read
    // and the tombstone, the tombstone still latest, are rare.
    let since = doomed
        .iter()
        .map(|record| record.r_version)
        .min()
        .unwrap_or(0);
    let all_ids: Vec<String> = doomed.iter().map(|record| record.id.clone()).collect();
    let versions = rows_by_id(load::rows_of(store, dataset, since, u64::MAX, &all_ids).await?);
    let suspects: Vec<(&ReadRecord, u64)> = doomed
        .iter()
        .zip(tombstones.iter().copied())
        .filter(|(read, tombstone)| {
            versions.get(&read.id).is_some_and(|rows| {
                rows.iter().all(|row| row.version <= *tombstone)
                    && rows
                        .iter()
                        .any(|row| row.version > read.r_version && row.version < *tombstone)
            })
        })
        .collect();
    if suspects.is_empty() {
        return Ok(());
    }
    let suspect_ids: Vec<String> = suspects.iter().map(|(read, _)| read.id.clone()).collect();
    let whole = rows_by_id(load::rows_of(store, dataset, since, 0, &suspect_ids).await?);
    let overtaken: Vec<Record> = suspects
        .iter()
        .filter_map(|(read, tombstone)| {
            let newest_before = whole
                .get(&read.id)?
                .iter()
                .filter(|row| row.version > read.r_version && row.version < *tombstone)
                .max_by_key(|row| row.version)?;
            match &newest_before.content {
                WrittenContent::Upsert(record) => Some(record.clone()),
                WrittenContent::Delete | WrittenContent::NotRead => None,
            }
        })
        .collect();
    if !overtaken.is_empty() {
        write_rows(
            store,
            dataset.id,
            overtaken
                .iter()
                .map(|record| (record.id.as_str(), Some(record))),
        )
        .await?;
    }
    Ok(())
}

fn rows_by_id(rows: Vec<WrittenRow>) -> HashMap<String, Vec<WrittenRow>> {
    let mut by_id: HashMap<String, Vec<WrittenRow>> = HashMap::new();
    for row in rows {
        by_id.entry(row.id.clone()).or_default().push(row);
    }
    by_id
}

/// Reclaims the rows of deleted datasets, collapses replaced versions, and
/// drops tombstones older than the grace period. ClickHouse applies the
/// deletions as background mutations.
pub(super) async fn compact(store: &ClickHouseStore) -> Result<()> {
    let deleted_datasets: Vec<String> = catalogue::deleted_dataset_ids(store)
        .await?
        .iter()
        .map(Uuid::to_string)
        .collect();
    let deleted_refs: Vec<&str> = deleted_datasets.iter().map(String::as_str).collect();
    for chunk in id_chunks(&deleted_refs) {
        // The analyses of a deleted dataset (as target or reference) go with
        // it, named by id: a mutation's subquery would run whenever the
        // mutation does, perhaps after the analyses rows are gone.
        let analyses = analyses_of(store, &chunk).await?;
        let analysis_refs: Vec<&str> = analyses.iter().map(String::as_str).collect();
        for analysis_chunk in id_chunks(&analysis_refs) {
            delete_where_in(
                store,
                &schema::ANALYSIS_RESULTS,
                "analysis",
                &analysis_chunk,
            )
            .await?;
            delete_where_in(store, &schema::ANALYSES, "id", &analysis_chunk).await?;
        }
        delete_where_in(store, &schema::RECORDS, "dataset", &chunk).await?;
        delete_where_in(store, &schema::DATASET_METADATA, "id", &chunk).await?;
        delete_where_in(store, &schema::DATASETS, "id", &chunk).await?;
    }
    // A record whose latest version is an old tombstone goes entirely: all its
    // versions at once, so no older version can come back to life. Replaced
    // versions are collapsed by ClickHouse's own background merges. The
    // mutation is sent only when it has rows to remove: ClickHouse rewrites
    // every part a mutation covers, matching rows or not.
    let grace_nanos = u64::try_from(store.tombstone_grace.as_nanos()).unwrap_or(u64::MAX);
    let cutoff = store.clock.next().saturating_sub(grace_nanos);
    // The mutation's subquery reads the table it mutates: on a cluster, each
    // shard's local table, which holds every version of its keys (the
    // sharding key is the table's key).
    let expired = |prefix: &str, table: &str| {
        let mut sql = Sql::new(prefix);
        sql.push("(SELECT dataset, id FROM ")
            .push(table)
            .push(
                " GROUP BY dataset, id \
                 HAVING argMax(deleted, version) = 1 AND max(version) < ",
            )
            .unsigned_arg(cutoff)
            .push(")");
        sql
    };
    let n_expired: u64 = expired("SELECT count() FROM ", schema::RECORDS.name)
        .bind_into(&store.client)
        .fetch_one()
        .await
        .map_err(|error| store.error(error))?;
    if n_expired > 0 {
        let mutation = format!(
            "ALTER TABLE {} DELETE WHERE (dataset, id) IN ",
            store.layout.alter_target(&schema::RECORDS)
        );
        expired(&mutation, &store.layout.local_table(&schema::RECORDS))
            .bind_into(&store.client)
            .execute()
            .await
            .map_err(|error| store.error(error))?;
    }
    Ok(())
}

/// The ids of the analyses that target or compare against any of `datasets`.
async fn analyses_of(store: &ClickHouseStore, datasets: &[&str]) -> Result<Vec<String>> {
    let mut sql = Sql::new("SELECT DISTINCT toString(id) FROM analyses WHERE ");
    for (index, column) in ["target", "reference"].iter().enumerate() {
        if index > 0 {
            sql.push(" OR ");
        }
        sql.push(column)
            .push(" IN (")
            .text_list(datasets, Some("toUUID"))
            .push(")");
    }
    sql.bind_into(&store.client)
        .fetch_all()
        .await
        .map_err(|error| store.error(error))
}

/// `ALTER TABLE table DELETE WHERE column IN (uuids)`, on every shard of a
/// cluster.
async fn delete_where_in(
    store: &ClickHouseStore,
    table: &schema::Table,
    column: &str,
    uuids: &[&str],
) -> Result<()> {
    let mut sql = Sql::new(&format!(
        "ALTER TABLE {} DELETE WHERE {column} IN (",
        store.layout.alter_target(table)
    ));
    sql.text_list(uuids, Some("toUUID")).push(")");
    sql.bind_into(&store.client)
        .execute()
        .await
        .map_err(|error| store.error(error))
}
