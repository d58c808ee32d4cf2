//! `NativeClient`: one `mutant_client::Client` and the Tokio runtime its
//! calls run on. Every method converts its Python arguments while holding
//! the GIL, then waits for the SDK with the GIL released
//! ([`wait_for`](crate::blocking::wait_for)), then converts the answer.

use std::sync::Arc;
use std::time::Duration;

use mutant_client::results::{JoinedFields, ResultsFormat, ResultsQuery};
use mutant_client::wire::{
    DeleteRecordsRequest, GetRecordsRequest, KnnRequest, PatchDatasetRequest, StartAnalysisRequest,
};
use mutant_client::{BatchWriterConfig, Client, NewDataset, RetryPolicy};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::answers::{include_list, knn_to_python, records_to_python};
use crate::blocking::wait_for;
use crate::errors::to_py_err;
use crate::json::{from_python, optional_object, serialized_to_python};
use crate::records::{Columns, Matrix, RepeatedIds, build_records, dataset_model, strings};
use crate::writer::{NativeWriter, write_all};

/// Threads of the client's runtime: enough to keep a writer's batches and
/// its acknowledgements moving while Python prepares the next rows; the
/// work is network-bound.
const RUNTIME_THREADS: usize = 2;

/// The compiled client; `mutant.Client` wraps it.
#[pyclass(module = "mutant._native", frozen)]
pub(crate) struct NativeClient {
    client: Client,
    runtime: Arc<Runtime>,
}

impl NativeClient {
    fn wait<T: Send>(
        &self,
        py: Python<'_>,
        future: impl Future<Output = mutant_client::Result<T>> + Send,
    ) -> PyResult<T> {
        wait_for(py, &self.runtime, future)
    }
}

#[pymethods]
impl NativeClient {
    /// A client of the server at `url`; `max_attempts` counts the first
    /// attempt of a request and its retries.
    #[new]
    #[pyo3(signature = (url, token=None, timeout_s=60.0, max_attempts=10, max_backoff_s=5.0))]
    fn new(
        url: &str,
        token: Option<&str>,
        timeout_s: f64,
        max_attempts: u32,
        max_backoff_s: f64,
    ) -> PyResult<NativeClient> {
        let timeout = seconds(timeout_s, "timeout")?;
        let max_backoff = seconds(max_backoff_s, "max_backoff")?;
        let mut client = Client::new(url)
            .map_err(to_py_err)?
            .with_timeout(timeout)
            .with_retry(
                RetryPolicy::default()
                    .with_max_attempts(max_attempts)
                    .with_backoff(Duration::from_millis(100).min(max_backoff), max_backoff),
            );
        if let Some(token) = token {
            client = client.with_token(token);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("mutant-client")
            .enable_all()
            .build()
            .map_err(|error| {
                PyRuntimeError::new_err(format!("cannot start the client's runtime: {error}"))
            })?;
        Ok(NativeClient {
            client,
            runtime: Arc::new(runtime),
        })
    }

    /// The base URL, without a trailing slash.
    #[getter]
    fn url(&self) -> &str {
        self.client.base_url()
    }

    /// `{"mutant", "protocol", "clickhouse"}` of the server.
    fn version<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let version = self.wait(py, self.client.version())?;
        serialized_to_python(py, &version)
    }

    /// Creates a dataset; returns its info as a dict.
    #[pyo3(signature = (name, dimension, metric, metadata=None, if_missing=false))]
    fn create_dataset<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        dimension: usize,
        metric: &str,
        metadata: Option<&Bound<'py, PyAny>>,
        if_missing: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let metric = metric
            .parse()
            .map_err(|error| to_py_err(crate::errors::refused(&error)))?;
        let mut dataset = NewDataset::new(name, dimension).with_metric(metric);
        if let Some(metadata) = optional_object(metadata, "metadata")? {
            dataset = dataset.with_metadata(metadata);
        }
        let info = if if_missing {
            self.wait(py, self.client.get_or_create_dataset(&dataset))?
        } else {
            self.wait(py, self.client.create_dataset(&dataset))?
        };
        serialized_to_python(py, &info)
    }

    /// One dataset's info, with its record count.
    fn get_dataset<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let info = self.wait(py, self.client.get_dataset(name))?;
        serialized_to_python(py, &info)
    }

    /// Every dataset, or those whose metadata contains `metadata`.
    #[pyo3(signature = (metadata=None))]
    fn list_datasets<'py>(
        &self,
        py: Python<'py>,
        metadata: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let datasets = match optional_object(metadata, "metadata")? {
            Some(pattern) => {
                let pattern = serde_json::Value::Object(pattern);
                self.wait(py, self.client.find_datasets(&pattern))?
            }
            None => self.wait(py, self.client.list_datasets())?,
        };
        serialized_to_python(py, &datasets)
    }

    /// Renames a dataset and/or replaces or patches its metadata.
    #[pyo3(signature = (name, new_name=None, metadata=None, metadata_patch=None))]
    fn update_dataset<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        new_name: Option<String>,
        metadata: Option<&Bound<'py, PyAny>>,
        metadata_patch: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let update = PatchDatasetRequest {
            name: new_name,
            metadata: optional_object(metadata, "metadata")?,
            metadata_patch: optional_object(metadata_patch, "metadata_patch")?,
        };
        let info = self.wait(py, self.client.update_dataset(name, &update))?;
        serialized_to_python(py, &info)
    }

    /// Deletes a dataset and its records.
    fn delete_dataset(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.wait(py, self.client.delete_dataset(name))
    }

    /// Writes the rows of `vectors` with their columns through a
    /// `BatchWriter` and returns `(records written, batches)` once all are
    /// stored. Checked first, as the server would; ids must be unique.
    #[pyo3(signature = (
        dataset, dimension, metric, ids, vectors, labels=None, predictions=None, uris=None,
        metadata=None, batch_size=5000, max_batch_bytes=33554432, max_in_flight=16
    ))]
    #[allow(clippy::too_many_arguments)]
    fn upsert<'py>(
        &self,
        py: Python<'py>,
        dataset: &str,
        dimension: usize,
        metric: &str,
        ids: &Bound<'py, PyAny>,
        vectors: &Bound<'py, PyAny>,
        labels: Option<&Bound<'py, PyAny>>,
        predictions: Option<&Bound<'py, PyAny>>,
        uris: Option<&Bound<'py, PyAny>>,
        metadata: Option<&Bound<'py, PyAny>>,
        batch_size: usize,
        max_batch_bytes: usize,
        max_in_flight: usize,
    ) -> PyResult<(u64, u64)> {
        let model = dataset_model(dataset, dimension, metric)?;
        let matrix = Matrix::borrow(vectors, "vectors")?;
        let columns = Columns {
            ids,
            labels,
            predictions,
            uris,
            metadata,
        };
        let records = build_records(&model, &matrix, &columns, RepeatedIds::Refused)?;
        drop(matrix);
        if records.is_empty() {
            return Ok((0, 0));
        }
        let config = BatchWriterConfig::default()
            .with_max_batch_records(batch_size)
            .with_max_batch_bytes(max_batch_bytes)
            .with_max_in_flight(max_in_flight);
        let writer = {
            let _entered = self.runtime.enter();
            self.client
                .batch_writer(dataset, config)
                .map_err(to_py_err)?
        };
        let summary = self.wait(py, write_all(writer, records))?;
        Ok((summary.n_records_written, summary.n_batches))
    }

    /// A streaming writer into `dataset`.
    #[pyo3(signature = (dataset, dimension, metric, batch_size, max_batch_bytes, max_batch_age_s, max_in_flight))]
    #[allow(clippy::too_many_arguments)]
    fn open_writer(
        &self,
        dataset: &str,
        dimension: usize,
        metric: &str,
        batch_size: usize,
        max_batch_bytes: usize,
        max_batch_age_s: f64,
        max_in_flight: usize,
    ) -> PyResult<NativeWriter> {
        let config = BatchWriterConfig::default()
            .with_max_batch_records(batch_size)
            .with_max_batch_bytes(max_batch_bytes)
            .with_max_batch_age(seconds(max_batch_age_s, "max_batch_age")?)
            .with_max_in_flight(max_in_flight);
        let writer = {
            let _entered = self.runtime.enter();
            self.client
                .batch_writer(dataset, config)
                .map_err(to_py_err)?
        };
        Ok(NativeWriter::new(
            Arc::clone(&self.runtime),
            dataset_model(dataset, dimension, metric)?,
            writer,
        ))
    }

    /// One page (at most 10,000) of records: `(ids, fields)`.
    #[pyo3(signature = (dataset, dimension, ids=None, filter=None, include=Vec::new(), limit=100, offset=0))]
    #[allow(clippy::too_many_arguments)]
    fn get_records<'py>(
        &self,
        py: Python<'py>,
        dataset: &str,
        dimension: usize,
        ids: Option<&Bound<'py, PyAny>>,
        filter: Option<&Bound<'py, PyAny>>,
        include: Vec<String>,
        limit: usize,
        offset: usize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let include = include_list(&include)?;
        let request = GetRecordsRequest {
            ids: id_list(ids)?,
            filter: optional_filter(filter)?,
            limit: Some(limit),
            offset: Some(offset),
            include: Some(include.clone()),
        };
        let records = self.wait(py, self.client.get_records(dataset, &request))?;
        records_to_python(py, &records, &include, dimension)
    }

    /// Deletes records by ids and/or filter; returns how many were live.
    #[pyo3(signature = (dataset, ids=None, filter=None))]
    fn delete_records(
        &self,
        py: Python<'_>,
        dataset: &str,
        ids: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let request = DeleteRecordsRequest {
            ids: id_list(ids)?,
            filter: optional_filter(filter)?,
        };
        self.wait(py, self.client.delete_records(dataset, &request))
    }

    /// Live records, or those matching `filter`.
    #[pyo3(signature = (dataset, filter=None))]
    fn count(
        &self,
        py: Python<'_>,
        dataset: &str,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let filter = optional_filter(filter)?;
        self.wait(py, self.client.count(dataset, filter.as_ref()))
    }

    /// The `k` nearest records to each row of `queries`:
    /// `(ids, distances, fields)`.
    #[pyo3(signature = (dataset, dimension, queries, k, filter=None, include=Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn knn<'py>(
        &self,
        py: Python<'py>,
        dataset: &str,
        dimension: usize,
        queries: &Bound<'py, PyAny>,
        k: usize,
        filter: Option<&Bound<'py, PyAny>>,
        include: Vec<String>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let include = include_list(&include)?;
        let matrix = Matrix::borrow(queries, "queries")?;
        let request = KnnRequest {
            queries: matrix.rows(),
            k,
            filter: optional_filter(filter)?,
            include: Some(include.clone()),
        };
        drop(matrix);
        let results = self.wait(py, self.client.knn(dataset, &request))?;
        knn_to_python(py, &results, &include, dimension)
    }

    /// Starts an analysis; returns its status.
    #[pyo3(signature = (kind, target, reference=None, params=None))]
    fn start_analysis<'py>(
        &self,
        py: Python<'py>,
        kind: String,
        target: String,
        reference: Option<String>,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = StartAnalysisRequest {
            kind,
            target,
            reference,
            params: optional_object(params, "params")?,
        };
        let status = self.wait(py, self.client.start_analysis(&request))?;
        serialized_to_python(py, &status)
    }

    /// An analysis's status.
    fn analysis_status<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        let id = analysis_id(id)?;
        let status = self.wait(py, self.client.analysis_status(id))?;
        serialized_to_python(py, &status)
    }

    /// A page of an analysis's ranked results: `{"results", "total", "summary"?}`.
    fn analysis_results<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        limit: usize,
        offset: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = analysis_id(id)?;
        let page = self.wait(py, self.client.analysis_results(id, limit, offset))?;
        serialized_to_python(py, &page)
    }

    /// Every ranked row passing the filters, from `offset` on (at most
    /// `limit`), with the record fields of `include` joined on by the server,
    /// in one streamed answer: a list of dicts.
    #[pyo3(signature = (id, limit=None, offset=0, include=Vec::new(), flagged=None, min_score=None))]
    #[allow(clippy::too_many_arguments)]
    fn analysis_rows<'py>(
        &self,
        py: Python<'py>,
        id: &str,
        limit: Option<usize>,
        offset: usize,
        include: Vec<String>,
        flagged: Option<bool>,
        min_score: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = analysis_id(id)?;
        let query = ResultsQuery {
            limit,
            offset,
            include: joined_fields(&include)?,
            flagged,
            min_score,
            format: ResultsFormat::Ndjson,
        };
        let rows = self.wait(py, self.client.all_analysis_results(id, &query))?;
        serialized_to_python(py, &rows)
    }

    /// Asks an analysis to stop; returns its status.
    fn cancel_analysis<'py>(&self, py: Python<'py>, id: &str) -> PyResult<Bound<'py, PyAny>> {
        let id = analysis_id(id)?;
        let status = self.wait(py, self.client.cancel_analysis(id))?;
        serialized_to_python(py, &status)
    }
}

/// The record fields `names` ask result rows to carry.
fn joined_fields(names: &[String]) -> PyResult<JoinedFields> {
    let mut fields = JoinedFields::default();
    for name in names {
        match name.as_str() {
            "label" => fields.label = true,
            "prediction" => fields.prediction = true,
            "uri" => fields.uri = true,
            "metadata" => fields.metadata = true,
            _ => {
                return Err(PyValueError::new_err(format!(
                    "include has {name:?}; result rows can carry \"label\", \"prediction\", \"uri\" and \"metadata\""
                )));
            }
        }
    }
    Ok(fields)
}

fn seconds(value: f64, what: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} is {value} s; give a non-negative, finite number of seconds"
        ))
    })
}

fn analysis_id(id: &str) -> PyResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| {
        PyValueError::new_err(format!(
            "{id:?} is not an analysis id; use the id of a started analysis (a UUID)"
        ))
    })
}

fn optional_filter(filter: Option<&Bound<'_, PyAny>>) -> PyResult<Option<serde_json::Value>> {
    match filter.filter(|filter| !filter.is_none()) {
        Some(filter) => from_python(filter, "filter").map(Some),
        None => Ok(None),
    }
}

fn id_list(ids: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<String>>> {
    let Some(ids) = ids.filter(|ids| !ids.is_none()) else {
        return Ok(None);
    };
    let n_ids = ids.cast::<PyList>().map(|list| list.len()).unwrap_or(0);
    Ok(Some(
        strings(ids, "ids", n_ids, false)?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect(),
    ))
}
