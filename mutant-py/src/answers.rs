//! Answers into Python: kNN neighbours and fetched records as columns (ids
//! as lists of `str`, distances and vectors as NumPy float32 arrays, the
//! other fields as lists), the shape NumPy code works with.

use mutant_client::wire::{Include, IncludeSet, Neighbour, WireRecord};
use numpy::IntoPyArray;
use numpy::ndarray::{Array2, Array3};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde_json::{Map, Value};

use crate::json::object_to_python;

/// The fields `names` ask for (`vector`, `label`, `prediction`, `uri`,
/// `metadata`).
pub(crate) fn include_list(names: &[String]) -> PyResult<Vec<Include>> {
    names
        .iter()
        .map(|name| {
            serde_json::from_value(Value::String(name.clone())).map_err(|_| {
                PyValueError::new_err(format!(
                    "include has {name:?}; the fields are \"vector\", \"label\", \"prediction\", \"uri\" and \"metadata\""
                ))
            })
        })
        .collect()
}

/// `(ids, distances, fields)` of a kNN answer: `ids` one list per query,
/// nearest first; `distances` float32 of shape `(n_queries, width)`, `width`
/// being the most neighbours any query got, shorter rows padded with
/// infinity; `fields` maps `labels`, `predictions`, `uris`, `metadata` (lists
/// of lists, `None` where absent) and `vectors` (float32 `(n_queries, width,
/// dimension)`, padded with NaN) for each included field.
pub(crate) fn knn_to_python<'py>(
    py: Python<'py>,
    results: &[Vec<Neighbour>],
    include: &[Include],
    dimension: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    let include = IncludeSet::from_list(Some(include), IncludeSet::default());
    let n_queries = results.len();
    let width = results.iter().map(Vec::len).max().unwrap_or(0);
    let mut distances = vec![f32::INFINITY; n_queries * width];
    let ids = PyList::empty(py);
    for (query_idx, neighbours) in results.iter().enumerate() {
        for (rank, neighbour) in neighbours.iter().enumerate() {
            distances[query_idx * width + rank] = neighbour.distance;
        }
        ids.append(PyList::new(
            py,
            neighbours.iter().map(|neighbour| neighbour.id.as_str()),
        )?)?;
    }
    let distances = Array2::from_shape_vec((n_queries, width), distances)
        .map_err(|error| PyValueError::new_err(error.to_string()))?
        .into_pyarray(py);

    let fields = PyDict::new(py);
    let per_query = |pick: &dyn Fn(&Neighbour) -> Option<&str>| -> PyResult<Bound<'py, PyList>> {
        let lists = PyList::empty(py);
        for neighbours in results {
            lists.append(PyList::new(py, neighbours.iter().map(pick))?)?;
        }
        Ok(lists)
    };
    if include.label {
        fields.set_item("labels", per_query(&|n| n.fields.label.as_deref())?)?;
    }
    if include.prediction {
        fields.set_item(
            "predictions",
            per_query(&|n| n.fields.prediction.as_deref())?,
        )?;
    }
    if include.uri {
        fields.set_item("uris", per_query(&|n| n.fields.uri.as_deref())?)?;
    }
    if include.metadata {
        let lists = PyList::empty(py);
        for neighbours in results {
            let list = PyList::empty(py);
            for neighbour in neighbours {
                list.append(optional_object(py, neighbour.fields.metadata.as_ref())?)?;
            }
            lists.append(list)?;
        }
        fields.set_item("metadata", lists)?;
    }
    if include.vector {
        let mut vectors = vec![f32::NAN; n_queries * width * dimension];
        for (query_idx, neighbours) in results.iter().enumerate() {
            for (rank, neighbour) in neighbours.iter().enumerate() {
                if let Some(vector) = neighbour.fields.vector.as_deref() {
                    let start = (query_idx * width + rank) * dimension;
                    let end = start + dimension.min(vector.len());
                    vectors[start..end].copy_from_slice(&vector[..end - start]);
                }
            }
        }
        let vectors = Array3::from_shape_vec((n_queries, width, dimension), vectors)
            .map_err(|error| PyValueError::new_err(error.to_string()))?
            .into_pyarray(py);
        fields.set_item("vectors", vectors)?;
    }
    PyTuple::new(
        py,
        [ids.into_any(), distances.into_any(), fields.into_any()],
    )
}

/// `(ids, fields)` of fetched records: `ids` a list of `str`; `fields` maps
/// `labels`, `predictions`, `uris`, `metadata` (lists, `None` where absent)
/// and `vectors` (float32 `(n, dimension)`) for each included field.
pub(crate) fn records_to_python<'py>(
    py: Python<'py>,
    records: &[WireRecord],
    include: &[Include],
    dimension: usize,
) -> PyResult<Bound<'py, PyTuple>> {
    let include = IncludeSet::from_list(Some(include), IncludeSet::default());
    let ids = PyList::new(py, records.iter().map(|record| record.id.as_str()))?;
    let fields = PyDict::new(py);
    let column =
        |pick: &dyn Fn(&WireRecord) -> Option<&str>| PyList::new(py, records.iter().map(pick));
    if include.label {
        fields.set_item("labels", column(&|record| record.label.as_deref())?)?;
    }
    if include.prediction {
        fields.set_item(
            "predictions",
            column(&|record| record.prediction.as_deref())?,
        )?;
    }
    if include.uri {
        fields.set_item("uris", column(&|record| record.uri.as_deref())?)?;
    }
    if include.metadata {
        let list = PyList::empty(py);
        for record in records {
            list.append(optional_object(py, record.metadata.as_ref())?)?;
        }
        fields.set_item("metadata", list)?;
    }
    if include.vector {
        let mut vectors = vec![f32::NAN; records.len() * dimension];
        for (row, record) in vectors.chunks_exact_mut(dimension.max(1)).zip(records) {
            if let Some(vector) = record.vector.as_deref() {
                let n_values = row.len().min(vector.len());
                row[..n_values].copy_from_slice(&vector[..n_values]);
            }
        }
        let vectors = Array2::from_shape_vec((records.len(), dimension), vectors)
            .map_err(|error| PyValueError::new_err(error.to_string()))?
            .into_pyarray(py);
        fields.set_item("vectors", vectors)?;
    }
    PyTuple::new(py, [ids.into_any(), fields.into_any()])
}

fn optional_object<'py>(
    py: Python<'py>,
    object: Option<&Map<String, Value>>,
) -> PyResult<Bound<'py, PyAny>> {
    match object {
        Some(object) => Ok(object_to_python(py, object)?.into_any()),
        None => Ok(py.None().into_bound(py)),
    }
}
