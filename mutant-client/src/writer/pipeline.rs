//! The writer's background task: it fills the pending batch from the
//! channel, sends batches by count, bytes and age, keeps at most
//! `max_in_flight` of them in flight, and records the first error.
//!
//! While it waits for a free in-flight slot it stops reading the channel; the
//! channel fills and `write` waits: that is the backpressure.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use mutant_core::api::frame::{encode_record_batch, record_frame_bytes};
use mutant_core::model::Record;

use super::batch::{PendingBatch, Placed};
use super::config::{BatchWriterConfig, WriteSummary};
use crate::{Client, Error, Result};

/// Where batches go: the client, or a fake in tests.
pub(super) trait BatchSink: Send + Sync + 'static {
    /// Stores `records` and returns how many were written.
    fn send(&self, records: Vec<Record>) -> impl Future<Output = Result<usize>> + Send + 'static;
}

/// Sends batches as record-batch frames through a [`Client`], which retries
/// them per its policy.
pub(super) struct ClientSink {
    pub(super) client: Client,
    /// The dataset as the caller named it.
    pub(super) dataset: String,
    /// The records path by the dataset's UUID, resolved by the first batch:
    /// a writer keeps writing into the dataset it started with, even if the
    /// name is later given to another one, and the server resolves a UUID
    /// more cheaply than a name.
    pub(super) path: Arc<tokio::sync::OnceCell<String>>,
}

impl BatchSink for ClientSink {
    fn send(&self, records: Vec<Record>) -> impl Future<Output = Result<usize>> + Send + 'static {
        let client = self.client.clone();
        let dataset = self.dataset.clone();
        let path = Arc::clone(&self.path);
        async move {
            let path = path
                .get_or_try_init(|| async {
                    let info = client.get_dataset(&dataset).await?;
                    crate::endpoint::dataset_path(&info.id.to_string(), "/records")
                })
                .await?
                .clone();
            let frame = Bytes::from(encode_record_batch(&records));
            drop(records);
            client.upsert_frame(&path, frame).await
        }
    }
}

/// State shared by the writer's handle and its task.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Set with `error`, so that `write` checks it without locking.
    failed: AtomicBool,
    /// The first error of a batch; the writer stops on it.
    error: Mutex<Option<Error>>,
    /// Writes folded into acknowledged batches.
    pub(super) n_acknowledged: AtomicU64,
}

impl Shared {
    /// The error that stopped the writer, if any.
    pub(super) fn error(&self) -> Option<Error> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps `error` unless an earlier one is kept.
    fn fail(&self, error: Error) {
        let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(error);
            self.failed.store(true, Ordering::Release);
        }
    }
}

/// The error for a task that ended without an answer.
pub(super) fn stopped_task(error: &JoinError) -> Error {
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
pub(super) struct Pipeline<S> {
    sink: Arc<S>,
    config: BatchWriterConfig,
    hasher: RandomState,
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
    /// A task sending into `sink`, reporting to `shared`.
    pub(super) fn new(sink: S, config: BatchWriterConfig, shared: Arc<Shared>) -> Self {
        Pipeline {
            sink: Arc::new(sink),
            config,
            hasher: RandomState::new(),
            pending: PendingBatch::default(),
            in_flight: JoinSet::new(),
            in_flight_ids: HashMap::new(),
            next_batch_idx: 0,
            shared,
            summary: WriteSummary::default(),
            first_error: None,
        }
    }

    /// Runs until the handle closes the channel (then sends what is left
    /// and waits for every batch) or a batch fails.
    pub(super) async fn run(mut self, mut records: mpsc::Receiver<Record>) -> Result<WriteSummary> {
        loop {
            if self.first_error.is_some() {
                // Writers see the error at once instead of filling the channel.
                records.close();
                break;
            }
            let deadline = self.pending.deadline(self.config.max_batch_age());
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

    /// Places a record in the pending batch, sending batches as the limits
    /// require.
    async fn add(&mut self, record: Record) {
        let id_hash = self.hasher.hash_one(&record.id);
        let record_bytes = record_frame_bytes(&record);
        if !self.pending.is_empty()
            && self.pending.n_bytes() + record_bytes > self.config.max_batch_bytes()
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
        if self.pending.len() >= self.config.max_batch_records()
            || self.pending.n_bytes() >= self.config.max_batch_bytes()
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
            && (drain_all || self.in_flight.len() >= self.config.max_in_flight())
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

    /// Accounts for a batch that ended.
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

    /// Stops the writer on its first error.
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
