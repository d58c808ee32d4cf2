//! The streaming [`BatchWriter`]: takes records one at a time, sends them in
//! batches by count, bytes and age from a background task, keeps a bounded
//! number of batches in flight, and reports from [`BatchWriter::finish`] once
//! everything it accepted is stored.
//!
//! Submodules: `config` (thresholds and the summary), `batch` (the batch
//! being filled), `pipeline` (the background task).

mod batch;
mod config;
mod pipeline;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use mutant_core::model::Record;

use crate::records::check_record;
use crate::{Client, Error, Result};

pub use config::{BatchWriterConfig, WriteSummary};
use pipeline::{BatchSink, ClientSink, Pipeline, Shared, stopped_task};

impl Client {
    /// A [`BatchWriter`] into `dataset` (a name or UUID). Needs a Tokio
    /// runtime, on which it runs its background task.
    ///
    /// ```no_run
    /// use mutant_client::{BatchWriterConfig, Client, Record};
    ///
    /// # async fn run(client: Client) -> mutant_client::Result<()> {
    /// let mut writer = client.batch_writer("train", BatchWriterConfig::default())?;
    /// for index in 0..10_000 {
    ///     let vector = vec![index as f32, 1.0, 0.5];
    ///     writer.write(Record::new(format!("img-{index}"), vector).with_label("cat")).await?;
    /// }
    /// let summary = writer.finish().await?;
    /// println!("{} records stored in {} batches", summary.n_records_written, summary.n_batches);
    /// # Ok(())
    /// # }
    /// ```
    pub fn batch_writer(&self, dataset: &str, config: BatchWriterConfig) -> Result<BatchWriter> {
        // Checks the name now; the UUID is resolved by the first batch.
        crate::endpoint::dataset_path(dataset, "/records")?;
        let sink = ClientSink {
            client: self.clone(),
            dataset: dataset.to_owned(),
            path: Default::default(),
        };
        let runtime = Handle::try_current().map_err(|_| Error::NoRuntime {
            what: "Client::batch_writer",
        })?;
        BatchWriter::spawn(&runtime, dataset, sink, config)
    }
}

/// Streams records into a dataset in batches; from
/// [`Client::batch_writer`].
///
/// - [`write`](BatchWriter::write) takes one record; it returns at once
///   unless the in-flight batches are all taken (then it waits: backpressure).
/// - Batches go out by count, bytes and age ([`BatchWriterConfig`]); a failed
///   batch is retried per the client's [`RetryPolicy`](crate::RetryPolicy),
///   which is safe since upserts are idempotent.
/// - The first error of a background batch stops the writer and comes back
///   from the next `write` and from `finish`.
/// - [`finish`](BatchWriter::finish) sends what is left and returns once
///   every accepted record is stored. A writer dropped before `finish`
///   abandons what is not yet acknowledged and logs an error with the count.
///
/// Writes of an id are stored in order: a later write of an id replaces an
/// earlier one in the same batch, and a batch holding an id that is still in
/// flight waits for that batch first.
#[must_use = "a BatchWriter must be finished: call `finish().await` to know that every record is stored"]
#[derive(Debug)]
pub struct BatchWriter {
    dataset: String,
    sender: Option<mpsc::Sender<Record>>,
    task: Option<JoinHandle<Result<WriteSummary>>>,
    shared: Arc<Shared>,
    dimension: Option<usize>,
    n_accepted: u64,
}

impl BatchWriter {
    /// Starts the task that batches into `sink`.
    fn spawn<S: BatchSink>(
        runtime: &Handle,
        dataset: &str,
        sink: S,
        config: BatchWriterConfig,
    ) -> Result<BatchWriter> {
        config.validate()?;
        let (sender, receiver) = mpsc::channel(config.max_batch_records().clamp(1, 1024));
        let shared = Arc::new(Shared::default());
        let pipeline = Pipeline::new(sink, config, Arc::clone(&shared));
        Ok(BatchWriter {
            dataset: dataset.to_owned(),
            sender: Some(sender),
            task: Some(runtime.spawn(pipeline.run(receiver))),
            shared,
            dimension: None,
            n_accepted: 0,
        })
    }

    /// Accepts one record for writing. Returns at once unless the in-flight
    /// batches are all taken. Fails with the error of an earlier background
    /// batch (the writer is then stopped; `finish` returns it too), or when
    /// the record is refused by a cheap check (empty id, non-finite value, a
    /// dimension other than that of the earlier records), which leaves the
    /// writer usable.
    pub async fn write(&mut self, record: Record) -> Result<()> {
        if let Some(error) = self.shared.error() {
            return Err(error);
        }
        if record.id.is_empty() {
            return Err(Error::InvalidInput {
                code: "empty_record_id".to_owned(),
                message: format!(
                    "record {} written to dataset {:?} has an empty id; give every record a non-empty id",
                    self.n_accepted, self.dataset
                ),
            });
        }
        check_record(0, &record)?;
        let dimension = *self.dimension.get_or_insert(record.vector.len());
        if record.vector.len() != dimension {
            return Err(Error::InvalidInput {
                code: "dimension_mismatch".to_owned(),
                message: format!(
                    "record {:?} has a vector of {} values, but the earlier records written to dataset {:?} have {dimension}; every record of a dataset has its dimension",
                    record.id,
                    record.vector.len(),
                    self.dataset
                ),
            });
        }
        let stopped = || Error::WriterStopped {
            reason: "its task ended".to_owned(),
        };
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        if sender.send(record).await.is_err() {
            return Err(self.shared.error().unwrap_or_else(stopped));
        }
        self.n_accepted += 1;
        Ok(())
    }

    /// Sends what is left and waits until every accepted record is stored;
    /// returns what was stored, or the first error. Dropping the returned
    /// future before it completes abandons the writer (and logs it).
    pub async fn finish(mut self) -> Result<WriteSummary> {
        drop(self.sender.take());
        let Some(task) = self.task.as_mut() else {
            return Err(Error::WriterStopped {
                reason: "it was already finished".to_owned(),
            });
        };
        let outcome = task.await;
        self.task = None;
        match outcome {
            Ok(result) => result,
            Err(error) => Err(stopped_task(&error)),
        }
    }

    /// The dataset written to, as given.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// Records accepted by [`write`](BatchWriter::write) and not yet
    /// acknowledged by the server.
    pub fn n_unacknowledged(&self) -> u64 {
        self.n_accepted
            .saturating_sub(self.shared.n_acknowledged.load(Ordering::Acquire))
    }
}

impl Drop for BatchWriter {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        task.abort();
        let n_unacknowledged = self.n_unacknowledged();
        if n_unacknowledged > 0 {
            tracing::error!(
                dataset = %self.dataset,
                n_unacknowledged,
                "a BatchWriter was dropped without `finish().await`: {n_unacknowledged} accepted records were not acknowledged and may not be stored; call `finish().await` and check its result"
            );
        }
    }
}

#[cfg(test)]
mod tests;
