//! Ingest validation: everything a client sends is checked here before it
//! reaches a store, so that bad input gets a typed error and nothing stored
//! is touched.

use std::collections::HashSet;

use crate::model::{Dataset, Record};
use crate::{Error, Result};

/// The most records one upsert may carry.
pub const MAX_BATCH_RECORDS: usize = 100_000;
/// The longest record id, in bytes.
pub const MAX_ID_LEN: usize = 512;
/// The longest label or prediction, in bytes.
pub const MAX_CLASS_LEN: usize = 256;
/// The longest uri, in bytes.
pub const MAX_URI_LEN: usize = 4096;
/// The longest metadata object, as canonical JSON, in bytes.
pub const MAX_METADATA_LEN: usize = 65_536;

/// Checks one batch of records for `dataset`: not empty, not too large, ids
/// present and unique, vectors of the right dimension and finite, optional
/// fields non-empty and bounded, metadata keys valid.
///
/// ```
/// # use mutant_core::model::{Dataset, Metric, Record};
/// # use mutant_core::{ingest::validate_batch, Error};
/// # let dataset = Dataset { id: uuid::Uuid::nil(), name: "d".into(), dimension: 2,
/// #     metric: Metric::L2, metadata: Default::default(), created_at_ms: 0, updated_at_ms: 0 };
/// assert!(validate_batch(&dataset, &[Record::new("a", vec![0.0, 1.0])]).is_ok());
/// let wrong = validate_batch(&dataset, &[Record::new("a", vec![0.0, 1.0, 2.0])]);
/// assert!(matches!(wrong, Err(Error::DimensionMismatch { expected: 2, got: 3, .. })));
/// ```
pub fn validate_batch(dataset: &Dataset, records: &[Record]) -> Result<()> {
    if records.is_empty() {
        return Err(Error::EmptyBatch);
    }
    if records.len() > MAX_BATCH_RECORDS {
        return Err(Error::BatchTooLarge {
            n_records: records.len(),
            max: MAX_BATCH_RECORDS,
        });
    }
    let mut seen = HashSet::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        validate_record(dataset, index, record)?;
        if !seen.insert(record.id.as_str()) {
            return Err(Error::DuplicateRecordId {
                id: record.id.clone(),
            });
        }
    }
    Ok(())
}

/// A batch of records checked by [`validate_batch`] for one dataset: the
/// only form in which records reach a store, so no store call can be handed
/// records that were not validated at the edge.
///
/// ```
/// # use mutant_core::model::{Dataset, Metric, Record};
/// # use mutant_core::ingest::ValidBatch;
/// # let dataset = Dataset { id: uuid::Uuid::nil(), name: "d".into(), dimension: 2,
/// #     metric: Metric::L2, metadata: Default::default(), created_at_ms: 0, updated_at_ms: 0 };
/// let batch = ValidBatch::new(&dataset, vec![Record::new("a", vec![0.0, 1.0])])?;
/// assert_eq!(batch.records().len(), 1);
/// assert!(ValidBatch::new(&dataset, vec![Record::new("a", vec![f32::NAN, 1.0])]).is_err());
/// # Ok::<(), mutant_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ValidBatch {
    dataset: Dataset,
    records: Vec<Record>,
}

impl ValidBatch {
    /// Validates `records` for `dataset`.
    pub fn new(dataset: &Dataset, records: Vec<Record>) -> Result<Self> {
        validate_batch(dataset, &records)?;
        Ok(ValidBatch {
            dataset: dataset.clone(),
            records,
        })
    }

    /// The dataset the records were validated for.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The records, in the order given.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The dataset and the records.
    pub fn into_parts(self) -> (Dataset, Vec<Record>) {
        (self.dataset, self.records)
    }
}

fn validate_record(dataset: &Dataset, index: usize, record: &Record) -> Result<()> {
    if record.id.is_empty() {
        return Err(Error::EmptyRecordId { index });
    }
    check_len(&record.id, "id", &record.id, MAX_ID_LEN)?;
    if record.vector.len() != dataset.dimension {
        return Err(Error::DimensionMismatch {
            dataset: dataset.name.clone(),
            id: record.id.clone(),
            expected: dataset.dimension,
            got: record.vector.len(),
        });
    }
    if let Some(position) = record.vector.iter().position(|value| !value.is_finite()) {
        return Err(Error::NonFiniteValue {
            id: record.id.clone(),
            position,
        });
    }
    for (field, value, max) in [
        ("label", &record.label, MAX_CLASS_LEN),
        ("prediction", &record.prediction, MAX_CLASS_LEN),
        ("uri", &record.uri, MAX_URI_LEN),
    ] {
        if let Some(text) = value {
            if text.is_empty() {
                return Err(Error::EmptyField {
                    id: record.id.clone(),
                    field,
                });
            }
            check_len(&record.id, field, text, max)?;
        }
    }
    record.metadata.validate()?;
    if !record.metadata.is_empty() {
        check_len(
            &record.id,
            "metadata",
            &record.metadata.to_json_string(),
            MAX_METADATA_LEN,
        )?;
    }
    Ok(())
}

fn check_len(id: &str, field: &'static str, text: &str, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(Error::FieldTooLong {
            id: id.to_owned(),
            field,
            len: text.len(),
            max,
        });
    }
    Ok(())
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
    fn every_kind_of_bad_record_gets_its_error() {
        let dataset = dataset();
        let check = |records: Vec<Record>| validate_batch(&dataset, &records).unwrap_err();
        assert!(matches!(check(vec![]), Error::EmptyBatch));
        assert!(matches!(
            check(vec![Record::new("", vec![0.0, 0.0])]),
            Error::EmptyRecordId { index: 0 }
        ));
        assert!(matches!(
            check(vec![Record::new("a", vec![0.0])]),
            Error::DimensionMismatch { .. }
        ));
        assert!(matches!(
            check(vec![Record::new("a", vec![0.0, f32::NAN])]),
            Error::NonFiniteValue { position: 1, .. }
        ));
        assert!(matches!(
            check(vec![Record::new("a", vec![f32::INFINITY, 0.0])]),
            Error::NonFiniteValue { position: 0, .. }
        ));
        assert!(matches!(
            check(vec![
                Record::new("a", vec![0.0, 0.0]),
                Record::new("a", vec![1.0, 1.0])
            ]),
            Error::DuplicateRecordId { .. }
        ));
        assert!(matches!(
            check(vec![Record::new("a", vec![0.0, 0.0]).with_label("")]),
            Error::EmptyField { field: "label", .. }
        ));
        assert!(matches!(
            check(vec![Record::new(
                "x".repeat(MAX_ID_LEN + 1),
                vec![0.0, 0.0]
            )]),
            Error::FieldTooLong { field: "id", .. }
        ));
        assert!(matches!(
            check(vec![
                Record::new("a", vec![0.0, 0.0]).with_metadata("bad key", 1)
            ]),
            Error::InvalidMetadata { .. }
        ));
    }

    #[test]
    fn oversized_batches_are_refused() {
        let records: Vec<Record> = (0..=MAX_BATCH_RECORDS)
            .map(|i| Record::new(i.to_string(), vec![0.0, 0.0]))
            .collect();
        assert!(matches!(
            validate_batch(&dataset(), &records),
            Err(Error::BatchTooLarge { .. })
        ));
    }
}
