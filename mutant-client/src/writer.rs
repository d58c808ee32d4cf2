//! The streaming [`BatchWriter`]: takes records one at a time, sends them in
//! batches by count, bytes and age from a background task, keeps a bounded
//! number of batches in flight, and reports from [`BatchWriter::finish`] once
//! everything it accepted is stored.
//!
//! The writer's handle passes records over a bounded channel to the task;
//! when the task waits for a free in-flight slot it stops reading, the
//! channel fills, and `write` waits: that is the backpressure.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;

use mutant_core::api::frame::encode_record_batch;
use mutant_core::ingest::MAX_BATCH_RECORDS;
use mutant_core::model::Record;

use crate::batch::{PendingBatch, Placed, frame_bytes};
use crate::records::check_record;
use crate::{Client, Error, Result};

/// When a [`BatchWriter`] sends a batch, and how many may be in flight.
///
/// ```
/// use std::time::Duration;
/// use mutant_client::BatchWriterConfig;
///
/// let bulk = BatchWriterConfig::default()
///     .with_max_batch_records(5_000)
///     .with_max_batch_bytes(16 << 20)
///     .with_max_batch_age(Duration::from_millis(500))
///     .with_max_in_flight(8);
/// assert_eq!(bulk.max_batch_records(), 5_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchWriterConfig {
    max_batch_records: usize,
    max_batch_bytes: usize,
    max_batch_age: Duration,
    max_in_flight: usize,
}

impl Default for BatchWriterConfig {
    /// Batches of at most 1,000 records, 4 MiB, sent at the latest 100 ms
    /// after their first record; 4 batches in flight.
    fn default() -> Self {
        BatchWriterConfig {
            max_batch_records: 1_000,
            max_batch_bytes: 4 << 20,
            max_batch_age: Duration::from_millis(100),
            max_in_flight: 4,
        }
    }
}

impl BatchWriterConfig {
    /// Sends a batch when it holds this many records (1 to 100,000).
    pub fn with_max_batch_records(mut self, n_records: usize) -> Self {
        self.max_batch_records = n_records;
        self
    }

    /// Sends a batch before it would exceed this many bytes in its frame; a
    /// single larger record goes alone. Keep it under the server's body limit.
    pub fn with_max_batch_bytes(mut self, n_bytes: usize) -> Self {
        self.max_batch_bytes = n_bytes;
        self
    }

    /// Sends a batch at the latest this long after its first record, however
    /// few records it has: the latency a trickle of records sees.
    pub fn with_max_batch_age(mut self, age: Duration) -> Self {
        self.max_batch_age = age;
        self
    }

    /// Batches sent but not yet acknowledged, at most; when all slots are
    /// taken, [`BatchWriter::write`] waits (at least 1).
    pub fn with_max_in_flight(mut self, n_batches: usize) -> Self {
        self.max_in_flight = n_batches;
        self
    }

    /// Records per batch, at most.
    pub fn max_batch_records(&self) -> usize {
        self.max_batch_records
    }

    /// Frame bytes per batch, at most (but for a single larger record).
    pub fn max_batch_bytes(&self) -> usize {
        self.max_batch_bytes
    }

    /// The age at which a batch is sent.
    pub fn max_batch_age(&self) -> Duration {
        self.max_batch_age
    }

    /// Batches in flight, at most.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    fn validate(&self) -> Result<()> {
        let invalid = |message: String| Error::InvalidInput {
            code: "invalid_parameter".to_owned(),
            message,
        };
        if !(1..=MAX_BATCH_RECORDS).contains(&self.max_batch_records) {
            return Err(invalid(format!(
                "max_batch_records is {}; use 1 to {MAX_BATCH_RECORDS}, the server's limit per batch",
                self.max_batch_records
            )));
        }
        if self.max_batch_bytes == 0 {
            return Err(invalid(
                "max_batch_bytes is 0; use a positive size".to_owned(),
            ));
        }
        if self.max_in_flight == 0 {
            return Err(invalid(
                "max_in_flight is 0; allow at least 1 batch in flight".to_owned(),
            ));
        }
        Ok(())
    }
}

/// What a finished [`BatchWriter`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WriteSummary {
    /// Records the server reported written, over all batches.
    pub n_records_written: u64,
    /// Batches sent and acknowledged.
    pub n_batches: u64,
    /// Writes not sent because a later write of the same id replaced them
    /// in the same batch (the last write of an id wins, as on the server).
    pub n_records_superseded: u64,
}

/// Where batches go: the client, or a fake in tests.
pub(crate) trait BatchSink: Send + Sync + 'static {
    /// Stores `records` and returns how many were written.
    fn send(&self, records: Vec<Record>) -> impl Future<Output = Result<usize>> + Send + 'static;
}

/// Sends batches as record-batch frames through a [`Client`], which retries
/// them per its policy.
struct ClientSink {
    client: Client,
    path: String,
}

impl BatchSink for ClientSink {
    fn send(&self, records: Vec<Record>) -> impl Future<Output = Result<usize>> + Send + 'static {
        let client = self.client.clone();
        let path = self.path.clone();
        async move {
            let frame = Bytes::from(encode_record_batch(&records));
            drop(records);
            client.upsert_frame(&path, frame).await
        }
    }
}

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
        let sink = ClientSink {
            client: self.clone(),
            path: crate::endpoint::dataset_path(dataset, "/records")?,
        };
        let runtime = Handle::try_current().map_err(|_| Error::NoRuntime {
            what: "Client::batch_writer",
        })?;
        BatchWriter::spawn(&runtime, dataset, sink, config)
    }
}

/// State shared by the writer's handle and its task.
#[derive(Debug, Default)]
struct Shared {
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    n_acknowledged: AtomicU64,
}

impl Shared {
    fn error(&self) -> Option<Error> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn fail(&self, error: Error) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(error);
            self.failed.store(true, Ordering::Release);
        }
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
        let (sender, receiver) = mpsc::channel(config.max_batch_records.clamp(1, 1024));
        let shared = Arc::new(Shared::default());
        let pipeline = Pipeline {
            sink: Arc::new(sink),
            config,
            hasher: std::collections::hash_map::RandomState::new(),
            pending: PendingBatch::default(),
            in_flight: JoinSet::new(),
            in_flight_ids: HashMap::new(),
            next_batch_idx: 0,
            shared: Arc::clone(&shared),
            summary: WriteSummary::default(),
            first_error: None,
        };
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

fn stopped_task(error: &JoinError) -> Error {
    Error::WriterStopped {
        reason: if error.is_panic() {
            "its task panicked".to_owned()
        } else {
            "its task was cancelled".to_owned()
        },
    }
}

/// What an in-flight batch task returns.
struct Completion {
    batch_idx: u64,
    n_writes: u64,
    n_superseded: u64,
    outcome: Result<usize>,
}

/// The writer's background task: fills batches, sends them, tracks them.
struct Pipeline<S> {
    sink: Arc<S>,
    config: BatchWriterConfig,
    hasher: std::collections::hash_map::RandomState,
    pending: PendingBatch,
    in_flight: JoinSet<Completion>,
    /// Id hashes of each batch in flight, by batch index.
    in_flight_ids: HashMap<u64, HashMap<u64, usize>>,
    next_batch_idx: u64,
    shared: Arc<Shared>,
    summary: WriteSummary,
    first_error: Option<Error>,
}

impl<S: BatchSink> Pipeline<S> {
    async fn run(mut self, mut records: mpsc::Receiver<Record>) -> Result<WriteSummary> {
        loop {
            if self.first_error.is_some() {
                // Writers see the error at once instead of filling the channel.
                records.close();
                break;
            }
            let deadline = self.pending.deadline(self.config.max_batch_age);
            tokio::select! {
                biased;
                Some(joined) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    self.complete(joined);
                }
                received = records.recv() => match received {
                    Some(record) => self.add(record).await,
                    None => break,
                },
                () = sleep_until(deadline), if deadline.is_some() => self.dispatch().await,
            }
        }
        self.dispatch().await;
        while let Some(joined) = self.in_flight.join_next().await {
            self.complete(joined);
        }
        match self.first_error.take() {
            Some(error) => Err(error),
            None => Ok(self.summary),
        }
    }

    async fn add(&mut self, record: Record) {
        let id_hash = self.hasher.hash_one(&record.id);
        let record_bytes = frame_bytes(&record);
        if !self.pending.is_empty()
            && self.pending.n_bytes() + record_bytes > self.config.max_batch_bytes
        {
            self.dispatch().await;
        }
        if self
            .in_flight_ids
            .values()
            .any(|ids| ids.contains_key(&id_hash))
        {
            self.pending.after_in_flight = true;
        }
        if let Placed::HashTaken(record) =
            self.pending
                .place(id_hash, record, record_bytes, Instant::now())
        {
            self.dispatch().await;
            // The batch just sent holds the same hash: keep the order safe.
            self.pending.after_in_flight = true;
            self.pending
                .place(id_hash, record, record_bytes, Instant::now());
        }
        if self.pending.len() >= self.config.max_batch_records
            || self.pending.n_bytes() >= self.config.max_batch_bytes
        {
            self.dispatch().await;
        }
    }

    /// Sends the pending batch once a slot is free (or, for a batch that must
    /// follow the batches in flight, once they are all acknowledged).
    async fn dispatch(&mut self) {
        if self.pending.is_empty() || self.first_error.is_some() {
            return;
        }
        let drain_all = self.pending.after_in_flight;
        while !self.in_flight.is_empty()
            && (drain_all || self.in_flight.len() >= self.config.max_in_flight)
        {
            let Some(joined) = self.in_flight.join_next().await else {
                break;
            };
            self.complete(joined);
            if self.first_error.is_some() {
                return;
            }
        }
        let batch = self.pending.take();
        let batch_idx = self.next_batch_idx;
        self.next_batch_idx += 1;
        self.in_flight_ids.insert(batch_idx, batch.id_hashes);
        let sending = self.sink.send(batch.records);
        let (n_writes, n_superseded) = (batch.n_writes, batch.n_superseded);
        self.in_flight.spawn(async move {
            Completion {
                batch_idx,
                n_writes,
                n_superseded,
                outcome: sending.await,
            }
        });
    }

    fn complete(&mut self, joined: Result<Completion, JoinError>) {
        let completion = match joined {
            Ok(completion) => completion,
            Err(error) => return self.fail(stopped_task(&error)),
        };
        self.in_flight_ids.remove(&completion.batch_idx);
        match completion.outcome {
            Ok(n_written) => {
                self.summary.n_records_written += n_written as u64;
                self.summary.n_batches += 1;
                self.summary.n_records_superseded += completion.n_superseded;
                self.shared
                    .n_acknowledged
                    .fetch_add(completion.n_writes, Ordering::AcqRel);
            }
            Err(error) => self.fail(error),
        }
    }

    fn fail(&mut self, error: Error) {
        if self.first_error.is_none() {
            tracing::debug!(%error, "a batch failed; the writer stops");
            self.shared.fail(error.clone());
            self.first_error = Some(error);
        }
    }
}

/// Sleeps until `deadline`; only polled when there is one.
async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
