//! `NativeWriter`: a `mutant_client::BatchWriter` fed from NumPy. `write`
//! returns once its records are queued (it waits only when every in-flight
//! slot is taken: backpressure); `finish` returns once every record written
//! is acknowledged, which means stored in ClickHouse. The writer's
//! background task runs on the client's runtime between calls, so batches
//! keep moving while Python prepares the next rows.

use std::sync::Arc;

use mutant_client::model::Dataset;
use mutant_client::{BatchWriter, Error, Record, WriteSummary};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

use crate::blocking::wait_for;
use crate::records::{Columns, Matrix, RepeatedIds, build_records};

/// The compiled streaming writer; `mutant.Writer` wraps it.
#[pyclass(module = "mutant._native", frozen)]
pub(crate) struct NativeWriter {
    runtime: Arc<Runtime>,
    dataset: Dataset,
    /// `None` once finished or abandoned. Locked only with the GIL released
    /// (a thread holding the GIL while waiting for the lock would deadlock
    /// with a write that waits for the GIL back); an async lock, since a
    /// write holds it while it waits for an in-flight slot.
    writer: Mutex<Option<BatchWriter>>,
}

impl NativeWriter {
    pub(crate) fn new(runtime: Arc<Runtime>, dataset: Dataset, writer: BatchWriter) -> Self {
        NativeWriter {
            runtime,
            dataset,
            writer: Mutex::new(Some(writer)),
        }
    }
}

#[pymethods]
impl NativeWriter {
    /// Queues the records of `vectors` and the columns; returns how many
    /// were queued. Checked first, as the server would; a later write of an
    /// id replaces an earlier one.
    #[pyo3(signature = (ids, vectors, labels=None, predictions=None, uris=None, metadata=None))]
    #[allow(clippy::too_many_arguments)]
    fn write<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
        vectors: &Bound<'py, PyAny>,
        labels: Option<&Bound<'py, PyAny>>,
        predictions: Option<&Bound<'py, PyAny>>,
        uris: Option<&Bound<'py, PyAny>>,
        metadata: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<usize> {
        let matrix = Matrix::borrow(vectors, "vectors")?;
        let columns = Columns {
            ids,
            labels,
            predictions,
            uris,
            metadata,
        };
        let records = build_records(&self.dataset, &matrix, &columns, RepeatedIds::LastWins)?;
        drop(matrix);
        let n_records = records.len();
        wait_for(py, &self.runtime, async {
            let mut guard = self.writer.lock().await;
            let writer = guard.as_mut().ok_or_else(finished)?;
            for record in records {
                writer.write(record).await?;
            }
            Ok(())
        })?;
        Ok(n_records)
    }

    /// Sends what is left and waits until every record written is stored;
    /// returns `{"n_records_written", "n_batches", "n_records_superseded"}`.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let summary = wait_for(py, &self.runtime, async {
            let writer = self.writer.lock().await.take().ok_or_else(finished)?;
            writer.finish().await
        })?;
        summary_to_python(py, &summary)
    }

    /// Stops the writer without waiting: what is not yet acknowledged may
    /// not be stored. Returns how many records that concerns.
    fn abandon(&self, py: Python<'_>) -> u64 {
        py.detach(|| {
            self.writer
                .blocking_lock()
                .take()
                .map_or(0, |writer| writer.n_unacknowledged())
        })
    }

    /// Records written and not yet acknowledged.
    #[getter]
    fn n_unacknowledged(&self, py: Python<'_>) -> u64 {
        py.detach(|| {
            self.writer
                .blocking_lock()
                .as_ref()
                .map_or(0, BatchWriter::n_unacknowledged)
        })
    }

    /// True once finished or abandoned.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.writer.blocking_lock().is_none())
    }
}

/// Writes every record, then finishes: the whole of an upsert.
pub(crate) async fn write_all(
    mut writer: BatchWriter,
    records: Vec<Record>,
) -> mutant_client::Result<WriteSummary> {
    for record in records {
        writer.write(record).await?;
    }
    writer.finish().await
}

fn finished() -> Error {
    Error::WriterStopped {
        reason: "it was already finished or abandoned; open a new writer with Dataset.writer()"
            .to_owned(),
    }
}

fn summary_to_python<'py>(py: Python<'py>, summary: &WriteSummary) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("n_records_written", summary.n_records_written)?;
    dict.set_item("n_batches", summary.n_batches)?;
    dict.set_item("n_records_superseded", summary.n_records_superseded)?;
    Ok(dict)
}
