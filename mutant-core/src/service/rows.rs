//! Result rows: the JSON objects an analysis stores, one per ranked record
//! (or pair, or class), and how they are read back.
//!
//! Each row about a record keeps a snapshot of that record's fields as they
//! were when the analysis ran (under [`RECORD`], and [`OTHER_RECORD`] for
//! the other record of a pair); a read joins the fields it asks for onto the
//! row and drops the snapshot.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::api::results::JoinedFields;
use crate::kernels::{DuplicatePair, NeighbourEvidence, RecordScores};
use crate::model::{ClassVocabulary, LoadedDataset, Record};

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
/// evidence neighbours (none: no evidence): what the budget counts per
/// row, since every row of an analysis is held at once until it is stored.
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

/// Rows ranked by score (ties by the refinement), each with its verdict and
/// the extra fields `extra` adds.
pub(super) fn ranked(
    ids: &[String],
    scores: &RecordScores,
    flagged: &[bool],
    mut extra: impl FnMut(usize, &mut Map<String, Value>),
) -> Vec<Value> {
    scores
        .ranking()
        .into_iter()
        .enumerate()
        .map(|(rank, row)| {
            let row = row as usize;
            let mut fields = Map::new();
            fields.insert("id".into(), json!(ids[row]));
            fields.insert("score".into(), number(scores.scores[row]));
            fields.insert("rank".into(), json!(rank + 1));
            fields.insert("flagged".into(), json!(flagged[row]));
            extra(row, &mut fields);
            Value::Object(fields)
        })
        .collect()
}

/// Rows of near-duplicate pairs, in the order given; every pair found is a
/// verdict of "duplicate", so each is flagged.
pub(super) fn pair_rows(
    pairs: &[DuplicatePair],
    ids: &[String],
    other_ids: &[String],
    other_dataset: Option<&str>,
) -> Vec<Value> {
    pairs
        .iter()
        .enumerate()
        .map(|(rank, pair)| {
            let mut fields = Map::new();
            fields.insert("id".into(), json!(ids[pair.row as usize]));
            fields.insert("other_id".into(), json!(other_ids[pair.other_row as usize]));
            if let Some(other_dataset) = other_dataset {
                fields.insert("other_dataset".into(), json!(other_dataset));
            }
            fields.insert("distance".into(), number(pair.distance));
            fields.insert("score".into(), number(pair.score));
            fields.insert("rank".into(), json!(rank + 1));
            fields.insert("exact".into(), json!(pair.exact));
            fields.insert("flagged".into(), json!(true));
            Value::Object(fields)
        })
        .collect()
}

/// The fields of a dataset's records as an analysis saw them: label and
/// prediction from the loaded copy it computed on, uri and metadata read
/// beside it.
#[derive(Debug, Default)]
pub(super) struct RecordSnapshots {
    by_id: HashMap<String, Value>,
}

impl RecordSnapshots {
    /// Snapshots of `loaded`'s records; `fetched` (records read without
    /// vectors) gives their uri and metadata.
    pub(super) fn new(loaded: &LoadedDataset, fetched: Vec<Record>) -> Self {
        let mut by_id: HashMap<String, Value> = HashMap::with_capacity(loaded.n_records());
        for (row, id) in loaded.ids.iter().enumerate() {
            let mut fields = Map::new();
            for (name, code) in [
                ("label", loaded.labels[row]),
                ("prediction", loaded.predictions[row]),
            ] {
                if let Some(name_of_class) = code.and_then(|code| loaded.classes.name(code)) {
                    fields.insert(name.into(), json!(name_of_class));
                }
            }
            by_id.insert(id.clone(), Value::Object(fields));
        }
        for record in fetched {
            if let Some(Value::Object(fields)) = by_id.get_mut(&record.id) {
                if let Some(uri) = record.uri {
                    fields.insert("uri".into(), json!(uri));
                }
                if !record.metadata.is_empty() {
                    fields.insert("metadata".into(), Value::Object(record.metadata.to_json()));
                }
            }
        }
        RecordSnapshots { by_id }
    }

    /// Adds to each row about a record the snapshot of its record (`id`),
    /// and of a pair's other record (`other_id`, in `others`, or in these
    /// snapshots when `None`). A row about one record takes its snapshot
    /// out of the index (each record has one such row) instead of copying
    /// it, so the snapshots are held once.
    pub(super) fn attach(&mut self, rows: &mut [Value], others: Option<&RecordSnapshots>) {
        for row in rows {
            let Value::Object(fields) = row else { continue };
            let id = fields.get("id").and_then(Value::as_str);
            let other_id = fields.get("other_id").and_then(Value::as_str);
            let own = match other_id {
                None => id.and_then(|id| self.by_id.remove(id)),
                Some(_) => id.and_then(|id| self.by_id.get(id).cloned()),
            };
            let other = other_id
                .and_then(|other_id| others.unwrap_or(&*self).by_id.get(other_id))
                .cloned();
            if let Some(own) = own {
                fields.insert(RECORD.into(), own);
            }
            if let Some(other) = other {
                fields.insert(OTHER_RECORD.into(), other);
            }
        }
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
        let mut snapshots = RecordSnapshots::new(&loaded(), fetched);
        let mut rows = vec![
            json!({"id": "a", "other_id": "b", "rank": 2}),
            json!({"id": "a", "score": 1.0, "rank": 1}),
            json!({"class": "cat", "rank": 3}),
        ];
        snapshots.attach(&mut rows, None);
        rows.swap(0, 1);

        let bare = for_reading(rows[0].clone(), JoinedFields::default());
        assert_eq!(bare, json!({"id": "a", "score": 1.0, "rank": 1}));
        let joined = for_reading(rows[0].clone(), JoinedFields::all());
        assert_eq!(
            joined,
            json!({"id": "a", "score": 1.0, "rank": 1, "label": "cat", "prediction": null,
                   "uri": "s3://a", "metadata": {"team": "vision"}})
        );
        let pair = for_reading(
            rows[1].clone(),
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
            for_reading(rows[2].clone(), JoinedFields::all()),
            json!({"class": "cat", "rank": 3})
        );
    }
}
