//! The in-memory form of a dataset that kernels work on: ids, one contiguous
//! row-major f32 matrix, and labels and predictions as codes into one shared
//! class vocabulary. Also the change set that refreshes it incrementally.

use std::collections::HashMap;

use super::dataset::Dataset;
use super::filter::Field;
use super::record::Record;
use super::row_index::RowIndex;

/// Class names interned to dense codes, shared by labels and predictions so
/// that a label code and a prediction code compare directly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClassVocabulary {
    names: Vec<String>,
    codes: HashMap<String, u32>,
}

impl ClassVocabulary {
    /// The code of `name`, adding it when new.
    ///
    /// ```
    /// # use mutant_core::model::ClassVocabulary;
    /// let mut classes = ClassVocabulary::default();
    /// let cat = classes.intern("cat");
    /// assert_eq!(classes.intern("dog"), cat + 1);
    /// assert_eq!(classes.intern("cat"), cat);
    /// assert_eq!(classes.name(cat), Some("cat"));
    /// ```
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&code) = self.codes.get(name) {
            return code;
        }
        let code = u32::try_from(self.names.len()).expect("fewer than 2^32 classes");
        self.names.push(name.to_owned());
        self.codes.insert(name.to_owned(), code);
        code
    }

    /// The name behind a code.
    pub fn name(&self, code: u32) -> Option<&str> {
        self.names.get(code as usize).map(String::as_str)
    }

    /// The code of a known name.
    pub fn code(&self, name: &str) -> Option<u32> {
        self.codes.get(name).copied()
    }

    /// How many classes are known.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when no class is known.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A whole dataset in memory. Row `i` is `ids[i]`, `row(i)`, `labels[i]`,
/// `predictions[i]`. Row order is unspecified.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedDataset {
    /// The catalogue entry.
    pub dataset: Dataset,
    /// Record ids, one per row.
    pub ids: Vec<String>,
    /// Row-major, `ids.len() * dataset.dimension` values.
    pub vectors: Vec<f32>,
    /// Label codes into `classes`.
    pub labels: Vec<Option<u32>>,
    /// Prediction codes into `classes`.
    pub predictions: Vec<Option<u32>>,
    /// The shared class vocabulary.
    pub classes: ClassVocabulary,
    /// The highest write version reflected here; pass it to
    /// `ChangeFeed::changes_since` to read what changed since.
    pub watermark: u64,
}

/// One row written to a dataset (an upsert or a delete), as
/// `Store::changes_since` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenRow {
    /// The record id the row is for.
    pub id: String,
    /// Its write version.
    pub version: u64,
    /// What the row says, when it was read whole.
    pub content: WrittenContent,
}

/// The content of a [`WrittenRow`].
#[derive(Debug, Clone, PartialEq)]
pub enum WrittenContent {
    /// Only the id and version were read.
    NotRead,
    /// The record as written, vector included.
    Upsert(Record),
    /// The record was deleted.
    Delete,
}

/// What changed in a dataset since a watermark: the latest state of every
/// record written after it, and the ids deleted after it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetChanges {
    /// Records written (inserted or replaced), vectors included.
    pub upserts: Vec<Record>,
    /// Records deleted.
    pub deleted_ids: Vec<String>,
    /// The highest write version among these changes (or the one asked for
    /// when there are none).
    pub watermark: u64,
}

impl DatasetChanges {
    /// The latest state of each id among the rows read whole in `rows`
    /// (rows of [`WrittenContent::NotRead`] are skipped), with the watermark
    /// raised from `watermark` to the highest version among them.
    ///
    /// ```
    /// use mutant_core::model::{DatasetChanges, Record, WrittenContent, WrittenRow};
    ///
    /// let row = |id: &str, version, content| WrittenRow { id: id.into(), version, content };
    /// let changes = DatasetChanges::from_rows(
    ///     10,
    ///     vec![
    ///         row("a", 11, WrittenContent::Upsert(Record::new("a", vec![1.0]))),
    ///         row("a", 12, WrittenContent::Delete),
    ///         row("b", 13, WrittenContent::NotRead),
    ///     ],
    /// );
    /// assert_eq!(changes.deleted_ids, vec!["a".to_string()]);
    /// assert!(changes.upserts.is_empty());
    /// assert_eq!(changes.watermark, 12);
    /// ```
    pub fn from_rows(watermark: u64, rows: impl IntoIterator<Item = WrittenRow>) -> Self {
        let mut latest: HashMap<String, (u64, WrittenContent)> = HashMap::new();
        for row in rows {
            if row.content == WrittenContent::NotRead {
                continue;
            }
            match latest.get(&row.id) {
                Some((version, _)) if *version >= row.version => {}
                Some(_) | None => {
                    latest.insert(row.id, (row.version, row.content));
                }
            }
        }
        let mut changes = DatasetChanges {
            watermark,
            ..DatasetChanges::default()
        };
        for (id, (version, content)) in latest {
            changes.watermark = changes.watermark.max(version);
            match content {
                WrittenContent::Upsert(record) => changes.upserts.push(record),
                WrittenContent::Delete => changes.deleted_ids.push(id),
                WrittenContent::NotRead => {}
            }
        }
        changes
    }
}

impl LoadedDataset {
    /// An empty dataset in memory.
    pub fn empty(dataset: Dataset) -> Self {
        LoadedDataset {
            dataset,
            ids: Vec::new(),
            vectors: Vec::new(),
            labels: Vec::new(),
            predictions: Vec::new(),
            classes: ClassVocabulary::default(),
            watermark: 0,
        }
    }

    /// The number of records.
    pub fn n_records(&self) -> usize {
        self.ids.len()
    }

    /// The vector of row `row_idx`.
    pub fn row(&self, row_idx: usize) -> &[f32] {
        let dimension = self.dataset.dimension;
        &self.vectors[row_idx * dimension..(row_idx + 1) * dimension]
    }

    /// The label of row `row_idx`, if it has one.
    pub fn label(&self, row_idx: usize) -> Option<&str> {
        self.labels[row_idx].and_then(|code| self.classes.name(code))
    }

    /// The prediction of row `row_idx`, if it has one.
    pub fn prediction(&self, row_idx: usize) -> Option<&str> {
        self.predictions[row_idx].and_then(|code| self.classes.name(code))
    }

    /// Row `row_idx`'s text of `field` as a [`TextFilter`](super::TextFilter)
    /// reads it, borrowed: `None` when the row has none, and for the fields
    /// not held in memory (uri, metadata), which a filter that
    /// [reads only id, label and prediction](super::Filter::reads_only_id_label_prediction)
    /// never asks for.
    pub fn filter_text(&self, row_idx: usize, field: &Field) -> Option<&str> {
        match field {
            Field::Id => Some(self.ids[row_idx].as_str()),
            Field::Label => self.label(row_idx),
            Field::Prediction => self.prediction(row_idx),
            Field::Uri | Field::Metadata(_) => None,
        }
    }

    /// Bytes held by the in-memory form, roughly: what a cache charges for it.
    pub fn size_bytes(&self) -> usize {
        let ids: usize = self
            .ids
            .iter()
            .map(|id| id.len() + size_of::<String>())
            .sum();
        ids + self.vectors.len() * size_of::<f32>()
            + (self.labels.len() + self.predictions.len()) * size_of::<Option<u32>>()
    }

    /// Appends one record as a new row; the caller guarantees its id is new
    /// and its vector has the dataset's dimension.
    pub fn push(&mut self, record: &Record) {
        self.ids.push(record.id.clone());
        self.vectors.extend_from_slice(&record.vector);
        let label = record
            .label
            .as_deref()
            .map(|name| self.classes.intern(name));
        let prediction = record
            .prediction
            .as_deref()
            .map(|name| self.classes.intern(name));
        self.labels.push(label);
        self.predictions.push(prediction);
    }

    /// Applies a change set: replaces or appends upserted rows, removes
    /// deleted ones, and advances the watermark. Applying the same changes
    /// twice is harmless.
    pub fn apply_changes(&mut self, changes: &DatasetChanges) {
        let mut index = RowIndex::build(&self.ids);
        self.apply_changes_indexed(changes, &mut index);
    }

    /// Drops from `changes` what would not alter this dataset: upserts of
    /// rows it already holds as they are (a refresh's overlap re-reads recent
    /// writes; metadata and uri are not held here) and deletes of ids it does
    /// not hold. `index` must be this dataset's.
    pub fn retain_effective(&self, changes: &mut DatasetChanges, index: &RowIndex) {
        let dimension = self.dataset.dimension;
        let name = |code: Option<u32>| code.and_then(|code| self.classes.name(code));
        changes
            .upserts
            .retain(|record| match index.get(&self.ids, &record.id) {
                Some(row_idx) => {
                    self.vectors[row_idx * dimension..(row_idx + 1) * dimension]
                        != record.vector[..]
                        || name(self.labels[row_idx]) != record.label.as_deref()
                        || name(self.predictions[row_idx]) != record.prediction.as_deref()
                }
                None => true,
            });
        changes
            .deleted_ids
            .retain(|id| index.get(&self.ids, id).is_some());
    }

    /// [`apply_changes`](Self::apply_changes) with an index the caller keeps
    /// between refreshes, so a small change costs in proportion to its size,
    /// not to the dataset's. `index` must be this dataset's, and stays so.
    /// Returns the rows whose vectors were written (replaced, appended, or
    /// moved into the place of a deleted row), in order: what anything kept
    /// beside the vectors, such as search norms, must recompute.
    pub fn apply_changes_indexed(
        &mut self,
        changes: &DatasetChanges,
        index: &mut RowIndex,
    ) -> Vec<usize> {
        let dimension = self.dataset.dimension;
        let mut rewritten = Vec::with_capacity(changes.upserts.len() + changes.deleted_ids.len());
        for record in &changes.upserts {
            match index.get_or_insert(&self.ids, &record.id, self.ids.len()) {
                Some(row_idx) => {
                    self.vectors[row_idx * dimension..(row_idx + 1) * dimension]
                        .copy_from_slice(&record.vector);
                    self.labels[row_idx] = record
                        .label
                        .as_deref()
                        .map(|name| self.classes.intern(name));
                    self.predictions[row_idx] = record
                        .prediction
                        .as_deref()
                        .map(|name| self.classes.intern(name));
                    rewritten.push(row_idx);
                }
                None => {
                    rewritten.push(self.ids.len());
                    self.push(record);
                }
            }
        }
        for id in &changes.deleted_ids {
            if let Some(row_idx) = index.remove(&self.ids, id) {
                let last = self.ids.len() - 1;
                if row_idx != last {
                    index.relocate(&self.ids, &self.ids[last], last, row_idx);
                    self.vectors.copy_within(
                        last * dimension..(last + 1) * dimension,
                        row_idx * dimension,
                    );
                    rewritten.push(row_idx);
                }
                self.ids.swap_remove(row_idx);
                self.labels.swap_remove(row_idx);
                self.predictions.swap_remove(row_idx);
                self.vectors.truncate(last * dimension);
            }
        }
        self.watermark = self.watermark.max(changes.watermark);
        let n_rows = self.ids.len();
        rewritten.retain(|&row_idx| row_idx < n_rows);
        rewritten.sort_unstable();
        rewritten.dedup();
        rewritten
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Metric;

    fn dataset() -> Dataset {
        Dataset {
            id: uuid::Uuid::nil(),
            name: "d".into(),
            dimension: 2,
            metric: Metric::L2,
            metadata: Default::default(),
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn apply_changes_replaces_appends_and_removes() {
        let mut loaded = LoadedDataset::empty(dataset());
        loaded.push(&Record::new("a", vec![1.0, 1.0]).with_label("cat"));
        loaded.push(&Record::new("b", vec![2.0, 2.0]));
        loaded.push(&Record::new("c", vec![3.0, 3.0]));
        let changes = DatasetChanges {
            upserts: vec![
                Record::new("b", vec![5.0, 5.0]).with_prediction("dog"),
                Record::new("d", vec![4.0, 4.0]),
            ],
            deleted_ids: vec!["a".into(), "zz".into()],
            watermark: 7,
        };
        loaded.apply_changes(&changes);
        let mut again = changes.clone();
        loaded.retain_effective(&mut again, &RowIndex::build(&loaded.ids));
        assert_eq!(
            (again.upserts.len(), again.deleted_ids.len()),
            (0, 0),
            "changes already applied change nothing"
        );
        let mut relabelled = DatasetChanges {
            upserts: vec![
                Record::new("b", vec![5.0, 5.0])
                    .with_label("cat")
                    .with_prediction("dog"),
            ],
            ..DatasetChanges::default()
        };
        loaded.retain_effective(&mut relabelled, &RowIndex::build(&loaded.ids));
        assert_eq!(relabelled.upserts.len(), 1, "a new label is a change");
        loaded.apply_changes(&changes);
        let mut rows: Vec<(String, Vec<f32>, Option<&str>)> = (0..loaded.n_records())
            .map(|row_idx| {
                let prediction =
                    loaded.predictions[row_idx].and_then(|code| loaded.classes.name(code));
                (
                    loaded.ids[row_idx].clone(),
                    loaded.row(row_idx).to_vec(),
                    prediction,
                )
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            rows,
            vec![
                ("b".into(), vec![5.0, 5.0], Some("dog")),
                ("c".into(), vec![3.0, 3.0], None),
                ("d".into(), vec![4.0, 4.0], None),
            ]
        );
        assert_eq!(loaded.watermark, 7);
    }
}
