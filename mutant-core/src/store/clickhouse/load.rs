//! Loading a whole dataset into its in-memory form, and what changed since a
//! watermark.
//!
//! A full load streams `FORMAT RowBinary` and decodes it straight into one
//! contiguous matrix, resolving versions as it goes: a plain SELECT (no
//! `FINAL`, no `GROUP BY`) runs at raw fetch speed, and the few superseded
//! rows and tombstones are settled in memory.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use serde::Deserialize;

use super::records::id_chunks;
use super::rowbinary::{RowReader, decode_f32s};
use super::sql::Sql;
use super::{ClickHouseStore, StoreFailure, catalogue, in_flight};
use crate::model::{
    Dataset, DatasetChanges, IdHasher, LoadedDataset, Record, RecordMetadata, RowIndex,
    WrittenContent, WrittenRow,
};
use crate::store::{CacheLoad, CatalogueStamp, FeedRead, now_ms};
use crate::{Error, Result};

/// Rows decoded so far, with what version resolution needs.
struct Loader {
    loaded: LoadedDataset,
    /// Id to row, holding no id of its own: a row's id is allocated once, in
    /// `loaded.ids`.
    row_of: RowIndex,
    versions: Vec<u64>,
    deleted: Vec<bool>,
    /// Bytes of the ids decoded so far.
    id_bytes: usize,
    /// Class name hash to code, checked against the name: labels repeat,
    /// and this skips the vocabulary's owned-key lookup and UTF-8 check.
    class_codes: HashMap<u64, u32, HashedKey>,
    class_hasher: IdHasher,
}

impl Loader {
    fn new(dataset: Dataset) -> Self {
        Loader {
            loaded: LoadedDataset::empty(dataset),
            row_of: RowIndex::default(),
            versions: Vec::new(),
            deleted: Vec::new(),
            id_bytes: 0,
            class_codes: HashMap::with_hasher(HashedKey),
            class_hasher: IdHasher::new(),
        }
    }

    /// [`LoadedDataset::size_bytes`] of the rows decoded so far, kept up as
    /// rows arrive instead of walking every id.
    fn size_bytes(&self) -> usize {
        let n_rows = self.loaded.ids.len();
        self.id_bytes
            + n_rows * size_of::<String>()
            + self.loaded.vectors.len() * size_of::<f32>()
            + 2 * n_rows * size_of::<Option<u32>>()
    }

    fn reserve(&mut self, n_rows: usize) {
        let dimension = self.loaded.dataset.dimension;
        self.loaded.ids.reserve(n_rows);
        self.loaded
            .vectors
            .reserve(n_rows.saturating_mul(dimension));
        self.loaded.labels.reserve(n_rows);
        self.loaded.predictions.reserve(n_rows);
        self.row_of = RowIndex::with_capacity(n_rows);
        self.versions.reserve(n_rows);
        self.deleted.reserve(n_rows);
    }

    /// Decodes every complete row of `buffer`; returns the bytes consumed.
    fn decode(&mut self, buffer: &[u8]) -> Result<usize> {
        let mut reader = RowReader::new(buffer);
        let mut consumed = 0;
        while !reader.is_at_end() {
            match self.decode_row(&mut reader)? {
                Some(()) => consumed = reader.position(),
                None => break,
            }
        }
        Ok(consumed)
    }

    /// Completes the row that `pending` holds the start of with the first
    /// bytes of `chunk`, copying only the bytes that row lacks (ClickHouse
    /// 18.16 sends 4 KiB HTTP chunks, so most chunks split a row); returns
    /// the rest of `chunk`, to decode in place.
    fn complete_pending<'a>(&mut self, pending: &mut Vec<u8>, chunk: &'a [u8]) -> Result<&'a [u8]> {
        let mut rest = chunk;
        while !pending.is_empty() {
            let mut reader = RowReader::new(pending);
            if self.decode_row(&mut reader)?.is_some() {
                let consumed = reader.position();
                pending.drain(..consumed);
                continue;
            }
            if rest.is_empty() {
                break;
            }
            let step = reader.missing().clamp(1, rest.len());
            pending.extend_from_slice(&rest[..step]);
            rest = &rest[step..];
        }
        Ok(rest)
    }

    /// One row `id, version, deleted, vector, label, prediction`; `None`
    /// when the buffer ends inside it.
    fn decode_row(&mut self, reader: &mut RowReader<'_>) -> Result<Option<()>> {
        let Some(id) = reader.bytes() else {
            return Ok(None);
        };
        let Some(version) = reader.u64() else {
            return Ok(None);
        };
        let Some(deleted) = reader.u8() else {
            return Ok(None);
        };
        let Some(vector) = reader.f32_array_bytes() else {
            return Ok(None);
        };
        let Some(label) = reader.nullable_bytes() else {
            return Ok(None);
        };
        let Some(prediction) = reader.nullable_bytes() else {
            return Ok(None);
        };
        self.loaded.watermark = self.loaded.watermark.max(version);
        let id = std::str::from_utf8(id).map_err(|_| corrupt("a record id is not UTF-8"))?;
        let dimension = self.loaded.dataset.dimension;
        let deleted = deleted != 0;
        if !deleted && vector.len() != dimension * 4 {
            return Err(corrupt(&format!(
                "record {id:?} has {} values, not {dimension}",
                vector.len() / 4
            )));
        }
        let new_row_idx = self.loaded.ids.len();
        let row_idx = match self.row_of.get_or_insert(&self.loaded.ids, id, new_row_idx) {
            Some(row_idx) if self.versions[row_idx] >= version => return Ok(Some(())),
            Some(row_idx) => {
                if !deleted {
                    decode_f32s(
                        vector,
                        &mut self.loaded.vectors[row_idx * dimension..(row_idx + 1) * dimension],
                    );
                }
                row_idx
            }
            None => {
                let row_idx = new_row_idx;
                self.loaded.ids.push(id.to_owned());
                self.id_bytes += id.len();
                // The common case, a first sighting: decode straight onto the
                // end of the matrix, writing each value once.
                if deleted {
                    self.loaded
                        .vectors
                        .resize(self.loaded.vectors.len() + dimension, 0.0);
                } else {
                    // Fixed-size chunks: the compiler turns this into a vector copy.
                    let (values, _) = vector.as_chunks::<4>();
                    self.loaded
                        .vectors
                        .extend(values.iter().map(|bytes| f32::from_le_bytes(*bytes)));
                }
                self.loaded.labels.push(None);
                self.loaded.predictions.push(None);
                self.versions.push(0);
                self.deleted.push(false);
                row_idx
            }
        };
        self.versions[row_idx] = version;
        self.deleted[row_idx] = deleted;
        if !deleted {
            self.loaded.labels[row_idx] = self.intern(label)?;
            self.loaded.predictions[row_idx] = self.intern(prediction)?;
        }
        Ok(Some(()))
    }

    fn intern(&mut self, class: Option<&[u8]>) -> Result<Option<u32>> {
        let Some(bytes) = class else {
            return Ok(None);
        };
        let hash = self.class_hasher.hash(bytes);
        if let Some(&code) = self.class_codes.get(&hash)
            && self.loaded.classes.name(code).map(str::as_bytes) == Some(bytes)
        {
            return Ok(Some(code));
        }
        let name = std::str::from_utf8(bytes).map_err(|_| corrupt("a class name is not UTF-8"))?;
        let code = self.loaded.classes.intern(name);
        // A name whose hash another name holds keeps the slow path.
        self.class_codes.entry(hash).or_insert(code);
        Ok(Some(code))
    }

    /// Drops rows whose latest version is a tombstone, keeping order; returns
    /// the dataset with its id index (rebuilt when rows were dropped) and
    /// the rows written after `read_after`.
    fn finish(self, read_after: u64) -> CacheLoad {
        let Loader {
            mut loaded,
            row_of,
            versions,
            deleted,
            ..
        } = self;
        let read_after = versions
            .iter()
            .zip(&loaded.ids)
            .filter(|&(&version, _)| version > read_after)
            .map(|(&version, id)| (id.clone(), version))
            .collect();
        if !deleted.iter().any(|&is_deleted| is_deleted) {
            return CacheLoad {
                loaded,
                index: Some(row_of),
                read_after,
            };
        }
        drop(row_of);
        let dimension = loaded.dataset.dimension;
        let mut kept = 0;
        for (row_idx, &is_deleted) in deleted.iter().enumerate() {
            if is_deleted {
                continue;
            }
            if kept != row_idx {
                loaded.ids.swap(kept, row_idx);
                loaded.labels[kept] = loaded.labels[row_idx];
                loaded.predictions[kept] = loaded.predictions[row_idx];
                loaded.vectors.copy_within(
                    row_idx * dimension..(row_idx + 1) * dimension,
                    kept * dimension,
                );
            }
            kept += 1;
        }
        loaded.ids.truncate(kept);
        loaded.labels.truncate(kept);
        loaded.predictions.truncate(kept);
        loaded.vectors.truncate(kept * dimension);
        let index = Some(RowIndex::build(&loaded.ids));
        CacheLoad {
            loaded,
            index,
            read_after,
        }
    }
}

/// Hashes a `u64` key that is already an [`IdHasher`] hash: passes it on.
#[derive(Debug, Clone, Copy, Default)]
struct HashedKey;

impl BuildHasher for HashedKey {
    type Hasher = HashedKeyHasher;

    fn build_hasher(&self) -> HashedKeyHasher {
        HashedKeyHasher(0)
    }
}

/// The hasher of [`HashedKey`].
#[derive(Debug, Clone, Copy)]
struct HashedKeyHasher(u64);

impl Hasher for HashedKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

fn corrupt(what: &str) -> Error {
    Error::Store {
        message: format!("unexpected data in the records table: {what}"),
    }
}

/// The statement a full load sends; benchmarks fetch the same bytes raw.
pub(super) fn load_statement(dataset: &Dataset) -> String {
    format!(
        "SELECT id, version, deleted, vector, label, prediction FROM records WHERE dataset = toUUID('{}')",
        dataset.id
    )
}

/// Loads `dataset` with its id index (the one version resolution built) and
/// the rows written after `read_after`, stopping with `DatasetTooLarge` as soon as the rows read take more than
/// `max_bytes` (rows a later tombstone removes count until then: the load
/// holds them).
pub(super) async fn load(
    store: &ClickHouseStore,
    dataset: Dataset,
    max_bytes: usize,
    read_after: u64,
) -> Result<CacheLoad> {
    // Sizing the buffers up front saves the copies and page faults of growing them.
    let n_rows: u64 = store
        .bounded(async {
            store
                .client
                .query("SELECT count() FROM records WHERE dataset = toUUID(?)")
                .bind(dataset.id.to_string())
                .fetch_one()
                .await
                .map_err(|error| store.error(error))
        })
        .await?;
    let statement = load_statement(&dataset);
    let cursor = store
        .client
        .query(&statement)
        .fetch_bytes("RowBinary")
        .map_err(|error| store.error(error))?;
    // Never reserve beyond the bound: the load stops there.
    let bounded_rows = max_bytes / (dataset.dimension * size_of::<f32>()).max(1);
    let mut loader = Loader::new(dataset);
    loader.reserve(usize::try_from(n_rows).unwrap_or(0).min(bounded_rows));
    // Decoding runs on a blocking thread while this task keeps reading, so
    // the network and the decoder overlap on two cores. Chunks travel in
    // batches of about a megabyte: one hand-over per chunk would cost more
    // in thread wake-ups than the decoding saves.
    let (batches, received) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(8);
    let decoder = tokio::task::spawn_blocking(move || {
        decode_batches(loader, received, max_bytes, read_after)
    });
    // The reading runs as a task of its own, beside the driver's connection
    // task, whichever thread awaits the load: hyper hands the body over one
    // 4 KiB chunk at a time, and a reader on another thread (a `block_on`
    // caller, say) costs a thread wake-up per chunk.
    let mut reading = AbortOnDrop(tokio::spawn(read_batches(cursor, batches, store.timeout)));
    let read = (&mut reading.0).await.map_err(|error| Error::Internal {
        message: format!("the load reader failed: {error}"),
    })?;
    read.map_err(|failure| store.error(failure))?;
    decoder.await.map_err(|error| Error::Internal {
        message: format!("the load decoder failed: {error}"),
    })?
}

/// Aborts a task when its handle is dropped: a load whose caller gave up
/// stops reading.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the answer into batches of about [`DECODE_BATCH_BYTES`] for the
/// decoder, until the answer ends or the decoder stops.
async fn read_batches(
    mut cursor: clickhouse::query::BytesCursor,
    batches: tokio::sync::mpsc::Sender<Vec<bytes::Bytes>>,
    timeout: std::time::Duration,
) -> std::result::Result<(), StoreFailure> {
    // A large load may take long, a stalled one may not: the load fails when
    // no chunk arrives for the store's timeout. The timer is re-armed at most
    // four times per timeout, not once per chunk.
    let stall = tokio::time::sleep(timeout);
    tokio::pin!(stall);
    let mut armed_at = tokio::time::Instant::now();
    let mut batch: Vec<bytes::Bytes> = Vec::new();
    let mut batch_bytes = 0;
    loop {
        let next = tokio::select! {
            biased;
            next = cursor.next() => next?,
            () = &mut stall => return Err(super::timed_out(timeout)),
        };
        let Some(chunk) = next else { break };
        if armed_at.elapsed() > timeout / 4 {
            armed_at = tokio::time::Instant::now();
            stall.as_mut().reset(armed_at + timeout);
        }
        batch_bytes += chunk.len();
        batch.push(chunk);
        if batch_bytes >= DECODE_BATCH_BYTES {
            batch_bytes = 0;
            if batches.send(std::mem::take(&mut batch)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        // The decoder only stops early on an error, which its result reports.
        let _ = batches.send(batch).await;
    }
    Ok(())
}

/// Bytes of response handed to the decoder at once.
const DECODE_BATCH_BYTES: usize = 1 << 20;

/// Decodes batches of chunks until the sender is done, or until the rows
/// decoded take more than `max_bytes`.
fn decode_batches(
    mut loader: Loader,
    mut received: tokio::sync::mpsc::Receiver<Vec<bytes::Bytes>>,
    max_bytes: usize,
    read_after: u64,
) -> Result<CacheLoad> {
    let mut pending: Vec<u8> = Vec::new();
    while let Some(batch) = received.blocking_recv() {
        let size_bytes = loader.size_bytes();
        if size_bytes > max_bytes {
            return Err(Error::DatasetTooLarge {
                size_bytes,
                max_bytes,
            });
        }
        for chunk in batch {
            let rest = loader.complete_pending(&mut pending, &chunk)?;
            let consumed = loader.decode(rest)?;
            pending.extend_from_slice(&rest[consumed..]);
        }
    }
    if !pending.is_empty() {
        return Err(corrupt("the answer ended inside a row"));
    }
    Ok(loader.finish(read_after))
}

/// A written row as a change query returns it: whole when `whole` is 1,
/// else only `id`, `version` and `deleted`, with empty or null fields. One
/// row with `whole` = [`STAMP_ROW`] carries the catalogue stamp instead.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct ChangedRow {
    id: String,
    version: u64,
    deleted: u8,
    whole: u8,
    vector: Vec<f32>,
    label: Option<String>,
    prediction: Option<String>,
    uri: Option<String>,
    metadata: String,
}

/// The `whole` of the row that carries the catalogue stamp: its `id` is the
/// number of catalogue rows, its `version` their versions' sum.
const STAMP_ROW: u8 = 2;

/// The `whole` of the row that carries, as its `version`, the oldest
/// version of an INSERT some live server has had running for a while (see
/// `in_flight`), 0 when there is none.
const UNLANDED_ROW: u8 = 3;

impl ChangedRow {
    fn into_written(self) -> Result<WrittenRow> {
        let content = if self.whole == 0 {
            WrittenContent::NotRead
        } else if self.deleted != 0 {
            WrittenContent::Delete
        } else {
            WrittenContent::Upsert(Record {
                id: self.id.clone(),
                vector: self.vector,
                label: self.label,
                prediction: self.prediction,
                uri: self.uri,
                metadata: RecordMetadata::from_json_str(&self.metadata)?,
            })
        };
        Ok(WrittenRow {
            id: self.id,
            version: self.version,
            content,
        })
    }

    fn into_stamp(self) -> Result<CatalogueStamp> {
        let rows = self
            .id
            .parse()
            .map_err(|_| corrupt("the catalogue stamp's row count is not a number"))?;
        Ok(CatalogueStamp {
            rows,
            version_sum: self.version,
        })
    }
}

/// The rows of `dataset` written after `since`, whole when written after
/// `whole_after`. The fields of rows not read whole stay in ClickHouse: `if`
/// only ships them for the rows that need them.
fn changed_rows_statement(dataset: &Dataset, since: u64, whole_after: u64) -> Sql {
    let mut sql = Sql::new("SELECT id, version, deleted, version > ");
    sql.unsigned_arg(whole_after).push(
        " AS whole, if(whole, vector, emptyArrayFloat32()), if(whole, label, NULL), \
         if(whole, prediction, NULL), if(whole, uri, NULL), if(whole, metadata, '') \
         FROM records WHERE dataset = toUUID(",
    );
    sql.text_arg(&dataset.id.to_string())
        .push(") AND version > ")
        .unsigned_arg(since);
    sql
}

/// Every row written to `dataset` after `since`, whole when written after
/// `whole_after`, and the catalogue stamp of its name, in one statement.
pub(super) async fn changes_since(
    store: &ClickHouseStore,
    dataset: &Dataset,
    since: u64,
    whole_after: u64,
) -> Result<FeedRead> {
    let mut sql = changed_rows_statement(dataset, since, whole_after);
    sql.push(" UNION ALL SELECT toString(count()), sum(version), toUInt8(0), toUInt8(")
        .unsigned_arg(u64::from(STAMP_ROW))
        .push(
            "), emptyArrayFloat32(), CAST(NULL AS Nullable(String)), \
             CAST(NULL AS Nullable(String)), CAST(NULL AS Nullable(String)), '' \
             FROM datasets WHERE ",
        );
    let (before, after) = catalogue::STAMP_ROWS
        .split_once('?')
        .ok_or_else(|| corrupt("the catalogue stamp's condition has no parameter"))?;
    sql.push(before).text_arg(&dataset.name).push(after);
    let lease_start_ms = now_ms().saturating_sub(in_flight::PUBLICATION_LEASE.as_millis() as u64);
    sql.push(" UNION ALL SELECT '', min(oldest), toUInt8(0), toUInt8(")
        .unsigned_arg(u64::from(UNLANDED_ROW))
        .push(
            "), emptyArrayFloat32(), CAST(NULL AS Nullable(String)), \
             CAST(NULL AS Nullable(String)), CAST(NULL AS Nullable(String)), '' \
             FROM (SELECT argMax(oldest, version) AS oldest, max(published_at_ms) AS published \
             FROM inserts_in_flight GROUP BY server) WHERE oldest > 0 AND published > ",
        )
        .unsigned_arg(lease_start_ms);
    let mut rows = Vec::new();
    let mut stamp = None;
    let mut unlanded_since = None;
    for row in sql
        .bind_into(&store.client)
        .fetch_all::<ChangedRow>()
        .await
        .map_err(|error| store.error(error))?
    {
        match row.whole {
            STAMP_ROW => stamp = Some(row.into_stamp()?),
            UNLANDED_ROW => unlanded_since = Some(row.version).filter(|&version| version > 0),
            _ => rows.push(row.into_written()?),
        }
    }
    let stamp = stamp.ok_or_else(|| corrupt("the answer carried no catalogue stamp"))?;
    Ok(FeedRead {
        rows,
        stamp,
        unlanded_since,
    })
}

/// The latest state of each of `ids` among the rows written to `dataset`
/// after `since`.
pub(super) async fn changes_of(
    store: &ClickHouseStore,
    dataset: &Dataset,
    since: u64,
    ids: &[String],
) -> Result<DatasetChanges> {
    let rows = rows_of(store, dataset, since, since, ids).await?;
    Ok(DatasetChanges::from_rows(since, rows))
}

/// Every row of `ids` written to `dataset` after `since`, whole when
/// written after `whole_after`, in chunks that keep each statement under
/// the query size limit.
pub(super) async fn rows_of(
    store: &ClickHouseStore,
    dataset: &Dataset,
    since: u64,
    whole_after: u64,
    ids: &[String],
) -> Result<Vec<WrittenRow>> {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut rows = Vec::new();
    for chunk in id_chunks(&ids) {
        let mut sql = changed_rows_statement(dataset, since, whole_after);
        sql.push(" AND id IN (").text_list(&chunk, None).push(")");
        for row in sql
            .bind_into(&store.client)
            .fetch_all::<ChangedRow>()
            .await
            .map_err(|error| store.error(error))?
        {
            rows.push(row.into_written()?);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_row(
        buffer: &mut Vec<u8>,
        id: &str,
        version: u64,
        vector: Option<[f32; 2]>,
        label: Option<&str>,
    ) {
        buffer.push(id.len() as u8);
        buffer.extend_from_slice(id.as_bytes());
        buffer.extend_from_slice(&version.to_le_bytes());
        buffer.push(u8::from(vector.is_none()));
        let values = vector.map_or_else(Vec::new, |vector| vector.to_vec());
        buffer.push(values.len() as u8);
        for value in values {
            buffer.extend_from_slice(&value.to_le_bytes());
        }
        for class in [label, None] {
            match class {
                Some(name) => {
                    buffer.push(0);
                    buffer.push(name.len() as u8);
                    buffer.extend_from_slice(name.as_bytes());
                }
                None => buffer.push(1),
            }
        }
    }

    fn dataset() -> Dataset {
        Dataset {
            id: uuid::Uuid::nil(),
            name: "d".into(),
            dimension: 2,
            metric: crate::model::Metric::L2,
            metadata: Default::default(),
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    /// Latest version wins, superseded rows are ignored, tombstones delete,
    /// the index handed over matches the rows kept, and the rows written
    /// after the version asked for are named with their latest versions,
    /// tombstones too, however the answer is cut into chunks.
    #[test]
    fn versions_resolve_and_the_index_matches_whatever_the_chunks() {
        let mut answer = Vec::new();
        push_row(&mut answer, "a", 1, Some([1.0, 1.0]), Some("cat"));
        push_row(&mut answer, "b", 1, Some([2.0, 2.0]), Some("dog"));
        push_row(&mut answer, "a", 3, Some([3.0, 3.0]), Some("dog"));
        push_row(&mut answer, "c", 1, Some([4.0, 4.0]), None);
        push_row(&mut answer, "b", 2, None, None);
        push_row(&mut answer, "a", 2, Some([9.0, 9.0]), Some("cat"));
        for chunk_len in 1..=answer.len() {
            let (sender, receiver) = tokio::sync::mpsc::channel(answer.len());
            for chunk in answer.chunks(chunk_len) {
                sender
                    .try_send(vec![bytes::Bytes::copy_from_slice(chunk)])
                    .unwrap();
            }
            drop(sender);
            let CacheLoad {
                loaded,
                index,
                read_after,
            } = decode_batches(Loader::new(dataset()), receiver, usize::MAX, 1).unwrap();
            let index = index.unwrap();
            assert_eq!(loaded.ids, ["a", "c"], "chunks of {chunk_len}");
            assert_eq!(read_after, [("a".to_owned(), 3), ("b".to_owned(), 2)]);
            assert_eq!(loaded.vectors, [3.0, 3.0, 4.0, 4.0]);
            assert_eq!((loaded.label(0), loaded.label(1)), (Some("dog"), None));
            assert_eq!(loaded.watermark, 3);
            assert_eq!(index.get(&loaded.ids, "a"), Some(0));
            assert_eq!(index.get(&loaded.ids, "c"), Some(1));
            assert_eq!(index.get(&loaded.ids, "b"), None);
        }
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        sender
            .try_send(vec![bytes::Bytes::copy_from_slice(
                &answer[..answer.len() - 1],
            )])
            .unwrap();
        drop(sender);
        assert!(decode_batches(Loader::new(dataset()), receiver, usize::MAX, 0).is_err());
    }
}
