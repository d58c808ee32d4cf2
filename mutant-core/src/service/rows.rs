//! Result rows: the JSON objects an analysis stores, one per ranked record
//! (or pair, or class), and how they are read back.
//!
//! Each row about a record keeps a snapshot of that record's fields as they
//! were when the analysis ran (under [`RECORD`], and [`OTHER_RECORD`] for
//! the other record of a pair); a read joins the fields it asks for onto the
//! row and drops the snapshot.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::Result;
use crate::api::results::JoinedFields;
use crate::kernels::parallel_map;
use crate::kernels::{DuplicatePair, NeighbourEvidence};
use crate::model::{ClassVocabulary, LoadedDataset, Record, RecordMetadata};
use crate::store::StoredRow;

/// The stored key of a row's record snapshot.
const RECORD: &str = "_record";
/// The stored key of the snapshot of a pair's other record.
const OTHER_RECORD: &str = "_other_record";

/// Bytes of one row as a JSON object in memory, before its evidence: the
/// object (a B-tree node of up to 11 fields, about 640 bytes, whatever it
/// holds), its keys and strings, and the record snapshot attached to it
/// (another object).
const ROW_BYTES: u64 = 1_800;

/// Bytes of one evidence neighbour as a JSON object (id, label, distance).
const NEIGHBOUR_BYTES: u64 = 830;

/// Bytes of the evidence object around its neighbours.
const EVIDENCE_BYTES: u64 = 700;

/// Bytes per record of its fields read beside the computation (a record
/// without its vector, and the snapshot index's entry).
pub(super) const RECORD_FIELDS_BYTES: u64 = 420;

/// The memory one result row takes as a JSON object, with `neighbours`
/// evidence neighbours (none: no evidence): what the budget counts for rows
/// shaped all at once (a few, as `select`'s picks), and for the one row
/// being shaped of rows stored a chunk at a time.
pub(super) fn row_bytes(neighbours: u64) -> u64 {
    let evidence = if neighbours > 0 {
        EVIDENCE_BYTES + neighbours * NEIGHBOUR_BYTES
    } else {
        0
    };
    ROW_BYTES + evidence
}

/// A JSON object from pairs.
pub(super) fn object(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect::<Map<String, Value>>(),
    )
}

/// `null` for a NaN or infinite float (JSON has neither), the number otherwise.
pub(super) fn number(value: f32) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

/// `count / total` as a share in [0, 1] (0 of nothing), computed in f64 so
/// that 82 of 4,000 reads 0.0205.
pub(super) fn share(count: usize, total: usize) -> Value {
    json!(count as f64 / total.max(1) as f64)
}

/// A class code's name, `null` for none.
pub(super) fn class_name(vocabulary: &ClassVocabulary, code: Option<u32>) -> Value {
    code.and_then(|code| vocabulary.name(code))
        .map_or(Value::Null, |name| json!(name))
}

/// The neighbours behind a record's score: id, label and distance each.
pub(super) fn evidence(
    evidence: &NeighbourEvidence,
    row: usize,
    neighbour_ids: &[String],
    vocabulary: &ClassVocabulary,
) -> Value {
    let record = evidence.record(row);
    let neighbours: Vec<Value> = record
        .rows
        .iter()
        .zip(record.labels)
        .zip(record.distances)
        .map(|((&neighbour, &label), &distance)| {
            object([
                ("id", json!(neighbour_ids[neighbour as usize])),
                ("label", class_name(vocabulary, label)),
                ("distance", number(distance)),
            ])
        })
        .collect();
    object([("neighbours", Value::Array(neighbours))])
}

/// Rows are shaped and stored in chunks of about this many bytes of JSON
/// text: the chunk being written and the one being shaped meanwhile are
/// all the rows held at once.
const CHUNK_BYTES: usize = 8 << 20;
/// Bounds of the rows in a chunk: ClickHouse asks for at least 1,000 rows
/// an INSERT; a chunk of small rows stays small too.
pub(super) const MIN_CHUNK_ROWS: usize = 1_000;
const MAX_CHUNK_ROWS: usize = 10_000;
/// Rows a thread shapes at a time.
const SHAPED_RUN_ROWS: usize = 250;

/// Rows in the chunk after `shaped`, sized by what its rows weighed.
pub(super) fn next_chunk_rows(shaped: &[StoredRow]) -> usize {
    let bytes: usize = shaped.iter().map(|row| row.json.len()).sum();
    let row_bytes = (bytes / shaped.len().max(1)).max(1);
    (CHUNK_BYTES / row_bytes).clamp(MIN_CHUNK_ROWS, MAX_CHUNK_ROWS)
}

/// Bytes of one stored row's JSON text before its evidence (ids, score,
/// verdict, the record snapshots), and of one evidence neighbour in it,
/// counting ids of up to about 60 bytes.
const STORED_ROW_BYTES: u64 = 600;
const STORED_NEIGHBOUR_BYTES: u64 = 160;

/// The memory the rows of an analysis with `n_rows` rows of `neighbours`
/// evidence neighbours take while they are stored: two chunks of stored
/// text (the one being written and the one being shaped), whatever the
/// number of rows, and the row each of `threads` threads is shaping.
pub(super) fn rows_in_flight_bytes(n_rows: u64, neighbours: u64, threads: u64) -> u64 {
    let text = STORED_ROW_BYTES + neighbours * STORED_NEIGHBOUR_BYTES;
    let chunk = (MIN_CHUNK_ROWS as u64 * text).max(CHUNK_BYTES as u64 + text);
    2 * (n_rows * text).min(chunk) + threads.max(1) * row_bytes(neighbours)
}

/// One result row as shaped, with the records it is about, whose snapshots
/// are attached when it is stored.
#[derive(Debug, Clone, Default)]
pub(super) struct ShapedRow {
    pub(super) fields: Map<String, Value>,
    /// The target row the row is about, if any.
    pub(super) record: Option<usize>,
    /// A pair's other record: a row of the dataset the pairs were found
    /// in (the reference, across datasets; else the target).
    pub(super) other: Option<usize>,
}

impl ShapedRow {
    /// A row about the target's record `record`.
    pub(super) fn about(record: usize, fields: Map<String, Value>) -> Self {
        ShapedRow {
            fields,
            record: Some(record),
            other: None,
        }
    }
}

/// An analysis's result rows in rank order, shaped a chunk at a time as
/// they are stored, so that the rows of a large dataset are never held all
/// at once.
pub(crate) struct ResultRows {
    len: usize,
    shape: Box<dyn Fn(usize) -> ShapedRow + Send + Sync>,
}

impl std::fmt::Debug for ResultRows {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ResultRows")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ResultRows {
    /// `len` rows, `shape(rank)` giving the row at `rank` (from 0) when it
    /// is stored.
    pub(super) fn lazy(
        len: usize,
        shape: impl Fn(usize) -> ShapedRow + Send + Sync + 'static,
    ) -> Self {
        ResultRows {
            len,
            shape: Box::new(shape),
        }
    }

    /// Rows shaped already: for kinds whose rows are few (classes, picks).
    pub(super) fn shaped(rows: Vec<ShapedRow>) -> Self {
        ResultRows::lazy(rows.len(), move |rank| rows[rank].clone())
    }

    /// How many rows there are.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The rows at `ranks`, shaped with their snapshots and written out as
    /// JSON text: most of storing an analysis's rows (every row's objects
    /// are built, then printed), so spread over `threads` threads, in runs
    /// of consecutive ranks.
    pub(super) fn stored(
        &self,
        ranks: Range<usize>,
        snapshots: &Snapshots,
        threads: usize,
    ) -> Result<Vec<StoredRow>> {
        let n_runs = ranks.len().div_ceil(SHAPED_RUN_ROWS);
        let runs = parallel_map(
            threads,
            n_runs,
            || (),
            |(), run_idx| {
                let start = ranks.start + run_idx * SHAPED_RUN_ROWS;
                let end = (start + SHAPED_RUN_ROWS).min(ranks.end);
                Ok((start..end)
                    .map(|rank| StoredRow::new(&snapshots.attached((self.shape)(rank))))
                    .collect::<Vec<_>>())
            },
        )?;
        Ok(runs.into_iter().flatten().collect())
    }

    /// Every row, shaped, without snapshots (tests read rows this way).
    #[cfg(test)]
    pub(super) fn all(self) -> Vec<Value> {
        (0..self.len)
            .map(|rank| Value::Object((self.shape)(rank).fields))
            .collect()
    }
}

/// Rows of near-duplicate pairs, in the order given; every pair found is a
/// verdict of "duplicate", so each is flagged. `others` holds the other
/// records of the pairs (the target itself within one dataset), named
/// `other_dataset` when it is another dataset.
pub(super) fn pair_rows(
    pairs: Vec<DuplicatePair>,
    target: Arc<LoadedDataset>,
    others: Arc<LoadedDataset>,
    other_dataset: Option<String>,
) -> ResultRows {
    ResultRows::lazy(pairs.len(), move |rank| {
        let pair = &pairs[rank];
        let mut fields = Map::new();
        fields.insert("id".into(), json!(target.ids[pair.row as usize]));
        fields.insert(
            "other_id".into(),
            json!(others.ids[pair.other_row as usize]),
        );
        if let Some(other_dataset) = &other_dataset {
            fields.insert("other_dataset".into(), json!(other_dataset));
        }
        fields.insert("distance".into(), number(pair.distance));
        fields.insert("score".into(), number(pair.score));
        fields.insert("rank".into(), json!(rank + 1));
        fields.insert("exact".into(), json!(pair.exact));
        fields.insert("flagged".into(), json!(true));
        ShapedRow {
            fields,
            record: Some(pair.row as usize),
            other: Some(pair.other_row as usize),
        }
    })
}

/// The fields of a dataset's records as an analysis saw them: label and
/// prediction from the loaded copy it computed on, uri and metadata read
/// beside it. Each snapshot is built when its row is stored.
#[derive(Debug)]
pub(super) struct RecordSnapshots {
    loaded: Arc<LoadedDataset>,
    /// The uri and metadata of the rows that have either.
    read: HashMap<usize, (Option<String>, RecordMetadata)>,
}

impl RecordSnapshots {
    /// Snapshots of `loaded`'s records; `fetched` (records read without
    /// vectors) gives their uri and metadata.
    pub(super) fn new(loaded: Arc<LoadedDataset>, fetched: Vec<Record>) -> Self {
        let mut fetched = fetched
            .into_iter()
            .filter(|record| record.uri.is_some() || !record.metadata.is_empty())
            .peekable();
        let mut read = HashMap::new();
        if fetched.peek().is_some() {
            let row_of: HashMap<&str, usize> = loaded
                .ids
                .iter()
                .enumerate()
                .map(|(row, id)| (id.as_str(), row))
                .collect();
            for record in fetched {
                if let Some(&row) = row_of.get(record.id.as_str()) {
                    read.insert(row, (record.uri, record.metadata));
                }
            }
        }
        RecordSnapshots { loaded, read }
    }

    /// The snapshot of the record at `row`.
    fn of(&self, row: usize) -> Value {
        let mut fields = Map::new();
        let loaded = &self.loaded;
        for (name, code) in [
            ("label", loaded.labels.get(row).copied().flatten()),
            ("prediction", loaded.predictions.get(row).copied().flatten()),
        ] {
            if let Some(name_of_class) = code.and_then(|code| loaded.classes.name(code)) {
                fields.insert(name.into(), json!(name_of_class));
            }
        }
        if let Some((uri, metadata)) = self.read.get(&row) {
            if let Some(uri) = uri {
                fields.insert("uri".into(), json!(uri));
            }
            if !metadata.is_empty() {
                fields.insert("metadata".into(), Value::Object(metadata.to_json()));
            }
        }
        Value::Object(fields)
    }
}

/// The snapshots rows are stored with: of the target's records, and of the
/// other records of pairs found across datasets.
#[derive(Debug)]
pub(super) struct Snapshots {
    pub(super) target: RecordSnapshots,
    /// The reference's, for pairs across datasets (`None`: pairs within the
    /// target).
    pub(super) others: Option<RecordSnapshots>,
}

impl Snapshots {
    /// `row`'s fields with the snapshots of the records it is about.
    fn attached(&self, row: ShapedRow) -> Value {
        let ShapedRow {
            mut fields,
            record,
            other,
        } = row;
        if let Some(record) = record {
            fields.insert(RECORD.into(), self.target.of(record));
        }
        if let Some(other) = other {
            let others = self.others.as_ref().unwrap_or(&self.target);
            fields.insert(OTHER_RECORD.into(), others.of(other));
        }
        Value::Object(fields)
    }
}

/// A stored row as a reader gets it: the record fields `include` asks for
/// joined on (a pair's other record's as `other_label`, ...), snapshots
/// dropped.
pub(super) fn for_reading(row: Value, include: JoinedFields) -> Value {
    let Value::Object(mut fields) = row else {
        return row;
    };
    let own = fields.remove(RECORD);
    let other = fields.remove(OTHER_RECORD);
    let wanted = [
        (include.label, "label", "other_label"),
        (include.prediction, "prediction", "other_prediction"),
        (include.uri, "uri", "other_uri"),
        (include.metadata, "metadata", "other_metadata"),
    ];
    for (snapshot, is_other) in [(own, false), (other, true)] {
        let Some(Value::Object(snapshot)) = snapshot else {
            continue;
        };
        for (asked, name, other_name) in wanted {
            if asked {
                let value = snapshot.get(name).cloned().unwrap_or(Value::Null);
                fields.insert(if is_other { other_name } else { name }.into(), value);
            }
        }
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewDataset;

    fn loaded() -> LoadedDataset {
        let dataset = NewDataset::new("snap", 1).into_dataset(uuid::Uuid::nil(), 0);
        let mut loaded = LoadedDataset::empty(dataset);
        let mut classes = ClassVocabulary::default();
        let cat = classes.intern("cat");
        loaded.ids = vec!["a".into(), "b".into()];
        loaded.vectors = vec![0.0, 1.0];
        loaded.labels = vec![Some(cat), None];
        loaded.predictions = vec![None, Some(cat)];
        loaded.classes = classes;
        loaded
    }

    #[test]
    fn reads_join_only_the_fields_asked_for_from_the_snapshot() {
        let fetched = vec![
            Record::new("a", vec![])
                .with_uri("s3://a")
                .with_metadata("team", "vision"),
        ];
        let loaded = Arc::new(loaded());
        let snapshots = Snapshots {
            target: RecordSnapshots::new(Arc::clone(&loaded), fetched),
            others: None,
        };
        let object_of = |value: Value| match value {
            Value::Object(fields) => fields,
            _ => unreachable!("the rows below are objects"),
        };
        let rows = ResultRows::shaped(vec![
            ShapedRow::about(0, object_of(json!({"id": "a", "score": 1.0, "rank": 1}))),
            ShapedRow {
                fields: object_of(json!({"id": "a", "other_id": "b", "rank": 2})),
                record: Some(0),
                other: Some(1),
            },
            ShapedRow {
                fields: object_of(json!({"class": "cat", "rank": 3})),
                ..ShapedRow::default()
            },
        ]);
        let stored: Vec<Value> = rows
            .stored(0..3, &snapshots, 2)
            .unwrap()
            .iter()
            .map(|row| serde_json::from_str(&row.json).unwrap())
            .collect();

        let bare = for_reading(stored[0].clone(), JoinedFields::default());
        assert_eq!(bare, json!({"id": "a", "score": 1.0, "rank": 1}));
        let joined = for_reading(stored[0].clone(), JoinedFields::all());
        assert_eq!(
            joined,
            json!({"id": "a", "score": 1.0, "rank": 1, "label": "cat", "prediction": null,
                   "uri": "s3://a", "metadata": {"team": "vision"}})
        );
        let pair = for_reading(
            stored[1].clone(),
            JoinedFields {
                prediction: true,
                ..JoinedFields::default()
            },
        );
        assert_eq!(
            pair,
            json!({"id": "a", "other_id": "b", "rank": 2, "prediction": null, "other_prediction": "cat"})
        );
        assert_eq!(
            for_reading(stored[2].clone(), JoinedFields::all()),
            json!({"class": "cat", "rank": 3})
        );
    }

    #[test]
    fn rows_are_shaped_only_when_their_chunk_is_stored() {
        let shaped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&shaped);
        let rows = ResultRows::lazy(5, move |rank| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut fields = Map::new();
            fields.insert("rank".into(), json!(rank + 1));
            ShapedRow::about(rank % 2, fields)
        });
        let snapshots = Snapshots {
            target: RecordSnapshots::new(Arc::new(loaded()), Vec::new()),
            others: None,
        };
        assert_eq!(shaped.load(std::sync::atomic::Ordering::Relaxed), 0);
        let chunk = rows.stored(2..4, &snapshots, 2).unwrap();
        assert_eq!(shaped.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(
            chunk[0].json, r#"{"_record":{"label":"cat"},"rank":3}"#,
            "rank 2 is about record 0, labelled cat"
        );
        assert_eq!(
            chunk[1].json,
            r#"{"_record":{"prediction":"cat"},"rank":4}"#
        );
    }
}
