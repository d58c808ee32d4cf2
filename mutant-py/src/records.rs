//! What Python hands over for writing, turned into `Record`s: a NumPy
//! matrix of vectors (float32 rows are read in place, float64 rows converted
//! as they are read; the Python layer turns lists into arrays) and columns of
//! ids, labels, predictions, uris and metadata. The records are then checked
//! with `mutant_core::ingest`, the rules the server applies, so a bad batch
//! is refused with the server's code and message before anything is sent.

use std::collections::HashSet;

use mutant_client::Record;
use mutant_client::model::{Dataset, Metric, RecordMetadata};
use mutant_core::ingest::{MAX_BATCH_RECORDS, validate_batch};
use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde_json::Map;
use uuid::Uuid;

use crate::errors::{refused, to_py_err};
use crate::json::dict_from_python;

/// A JSON object, as record metadata arrives.
type JsonObject = Map<String, serde_json::Value>;

/// A 2-D float matrix borrowed from NumPy.
pub(crate) enum Matrix<'py> {
    /// float32: rows are copied straight out of NumPy's buffer.
    Single(PyReadonlyArray2<'py, f32>),
    /// float64: rows are converted to f32 as they are read.
    Double(PyReadonlyArray2<'py, f64>),
}

impl<'py> Matrix<'py> {
    /// Borrows `object`, a 2-D NumPy array of float32 or float64; `what`
    /// names it in the error.
    pub(crate) fn borrow(object: &Bound<'py, PyAny>, what: &str) -> PyResult<Matrix<'py>> {
        if let Ok(array) = object.extract::<PyReadonlyArray2<'py, f32>>() {
            return Ok(Matrix::Single(array));
        }
        if let Ok(array) = object.extract::<PyReadonlyArray2<'py, f64>>() {
            return Ok(Matrix::Double(array));
        }
        Err(PyValueError::new_err(format!(
            "{what} must be a 2-D numpy array of float32 or float64 (one row per vector), not {}",
            object.repr()?
        )))
    }

    /// `(rows, columns)`.
    pub(crate) fn shape(&self) -> (usize, usize) {
        let shape = match self {
            Matrix::Single(array) => array.shape(),
            Matrix::Double(array) => array.shape(),
        };
        (shape[0], shape[1])
    }

    /// Every row as an f32 vector.
    pub(crate) fn rows(&self) -> Vec<Vec<f32>> {
        match self {
            // `as_slice` also accepts Fortran order, whose memory is by column.
            Matrix::Single(array) => match array.as_slice() {
                Ok(values) if array.is_c_contiguous() => values
                    .chunks_exact(self.shape().1.max(1))
                    .map(<[f32]>::to_vec)
                    .collect(),
                _ => array
                    .as_array()
                    .rows()
                    .into_iter()
                    .map(|row| row.to_vec())
                    .collect(),
            },
            Matrix::Double(array) => array
                .as_array()
                .rows()
                .into_iter()
                .map(|row| row.iter().map(|&value| value as f32).collect())
                .collect(),
        }
    }
}

/// What a dataset handle knows of its dataset: enough to check records
/// against it as the server would.
pub(crate) fn dataset_model(name: &str, dimension: usize, metric: &str) -> PyResult<Dataset> {
    let metric: Metric = metric.parse().map_err(|error| to_py_err(refused(&error)))?;
    Ok(Dataset {
        id: Uuid::nil(),
        name: name.to_owned(),
        dimension,
        metric,
        metadata: Map::new(),
        created_at_ms: 0,
        updated_at_ms: 0,
    })
}

/// The columns of a write besides the vectors, as given from Python: lists
/// with one entry per record (`None` where a record has no value).
pub(crate) struct Columns<'a, 'py> {
    pub(crate) ids: &'a Bound<'py, PyAny>,
    pub(crate) labels: Option<&'a Bound<'py, PyAny>>,
    pub(crate) predictions: Option<&'a Bound<'py, PyAny>>,
    pub(crate) uris: Option<&'a Bound<'py, PyAny>>,
    pub(crate) metadata: Option<&'a Bound<'py, PyAny>>,
}

/// Whether one write may hold an id twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepeatedIds {
    /// No: an upsert is a set of records, as a batch is on the server.
    Refused,
    /// Yes: a stream, where the later write of an id replaces the earlier.
    LastWins,
}

/// The records of `vectors` and `columns`, checked against `dataset`.
pub(crate) fn build_records(
    dataset: &Dataset,
    vectors: &Matrix<'_>,
    columns: &Columns<'_, '_>,
    repeated_ids: RepeatedIds,
) -> PyResult<Vec<Record>> {
    let (n_rows, _) = vectors.shape();
    let ids = strings(columns.ids, "ids", n_rows, false)?;
    let mut labels = optional_strings(columns.labels, "labels", n_rows)?;
    let mut predictions = optional_strings(columns.predictions, "predictions", n_rows)?;
    let mut uris = optional_strings(columns.uris, "uris", n_rows)?;
    let mut metadata = metadata_column(columns.metadata, n_rows)?;
    let mut records = Vec::with_capacity(n_rows);
    for (index, (id, vector)) in ids.into_iter().zip(vectors.rows()).enumerate() {
        let mut record = Record::new(id.unwrap_or_default(), vector);
        record.label = take(&mut labels, index);
        record.prediction = take(&mut predictions, index);
        record.uri = take(&mut uris, index);
        if let Some(object) = metadata.as_mut().and_then(|column| column[index].take()) {
            record.metadata = RecordMetadata::from_json(&object).map_err(|error| {
                to_py_err(mutant_client::Error::InvalidInput {
                    code: error.code().as_str().to_owned(),
                    message: format!("metadata of record {:?}: {error}", record.id),
                })
            })?;
        }
        records.push(record);
    }
    check(dataset, &records, repeated_ids).map_err(to_py_err)?;
    Ok(records)
}

/// The server's checks of a batch, on records that may be more than one
/// batch: each batch-sized chunk is validated, and with `RepeatedIds::Refused`
/// ids must also be unique across chunks.
fn check(
    dataset: &Dataset,
    records: &[Record],
    repeated_ids: RepeatedIds,
) -> mutant_client::Result<()> {
    match repeated_ids {
        RepeatedIds::Refused => {
            for chunk in records.chunks(MAX_BATCH_RECORDS) {
                validate_batch(dataset, chunk).map_err(|error| refused(&error))?;
            }
            if records.len() > MAX_BATCH_RECORDS {
                let mut seen = HashSet::with_capacity(records.len());
                if let Some(repeated) = records.iter().find(|record| !seen.insert(&record.id)) {
                    return Err(refused(&mutant_core::Error::DuplicateRecordId {
                        id: repeated.id.clone(),
                    }));
                }
            }
        }
        RepeatedIds::LastWins => {
            for record in records {
                validate_batch(dataset, std::slice::from_ref(record))
                    .map_err(|error| refused(&error))?;
            }
        }
    }
    Ok(())
}

fn take(column: &mut Option<Vec<Option<String>>>, index: usize) -> Option<String> {
    column.as_mut().and_then(|values| values[index].take())
}

fn optional_strings(
    column: Option<&Bound<'_, PyAny>>,
    what: &str,
    n_rows: usize,
) -> PyResult<Option<Vec<Option<String>>>> {
    match column.filter(|column| !column.is_none()) {
        Some(column) => strings(column, what, n_rows, true).map(Some),
        None => Ok(None),
    }
}

/// A list of `n_rows` strings (or `None`s, when `allow_none`).
pub(crate) fn strings(
    column: &Bound<'_, PyAny>,
    what: &str,
    n_rows: usize,
    allow_none: bool,
) -> PyResult<Vec<Option<String>>> {
    let list = as_list(column, what, n_rows)?;
    let mut values = Vec::with_capacity(n_rows);
    for (index, item) in list.iter().enumerate() {
        if let Ok(text) = item.cast::<PyString>() {
            values.push(Some(text.to_str()?.to_owned()));
        } else if allow_none && item.is_none() {
            values.push(None);
        } else {
            let allowed = if allow_none { "str or None" } else { "str" };
            return Err(PyTypeError::new_err(format!(
                "{what}[{index}] is {}, not {allowed}; convert the column first (e.g. [str(value) for value in {what}])",
                item.repr()?
            )));
        }
    }
    Ok(values)
}

fn metadata_column(
    column: Option<&Bound<'_, PyAny>>,
    n_rows: usize,
) -> PyResult<Option<Vec<Option<JsonObject>>>> {
    let Some(column) = column.filter(|column| !column.is_none()) else {
        return Ok(None);
    };
    let list = as_list(column, "metadata", n_rows)?;
    let mut values = Vec::with_capacity(n_rows);
    for (index, item) in list.iter().enumerate() {
        if item.is_none() {
            values.push(None);
        } else if let Ok(dict) = item.cast::<PyDict>() {
            values.push(Some(dict_from_python(dict, &format!("metadata[{index}]"))?));
        } else {
            return Err(PyTypeError::new_err(format!(
                "metadata[{index}] is {}, not a dict or None",
                item.repr()?
            )));
        }
    }
    Ok(Some(values))
}

fn as_list<'a, 'py>(
    column: &'a Bound<'py, PyAny>,
    what: &str,
    n_rows: usize,
) -> PyResult<&'a Bound<'py, PyList>> {
    let list = column.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be a list with one value per record, not {}",
            column
                .get_type()
                .name()
                .map(|name| name.to_string())
                .unwrap_or_default()
        ))
    })?;
    if list.len() != n_rows {
        return Err(PyValueError::new_err(format!(
            "{what} has {} values but there are {n_rows} vectors; give one per record",
            list.len()
        )));
    }
    Ok(list)
}
