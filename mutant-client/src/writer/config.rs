//! How a [`BatchWriter`](super::BatchWriter) cuts batches and how many it
//! keeps in flight, and the summary it returns.

use std::time::Duration;

use mutant_core::ingest::MAX_BATCH_RECORDS;

use crate::{Error, Result};

/// When a [`BatchWriter`](super::BatchWriter) sends a batch, and how many may be in flight.
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
    /// after their first record; 16 batches in flight, because the server
    /// coalesces concurrent batches into one INSERT and small batches are
    /// bound by round trips, not bandwidth.
    fn default() -> Self {
        BatchWriterConfig {
            max_batch_records: 1_000,
            max_batch_bytes: 4 << 20,
            max_batch_age: Duration::from_millis(100),
            max_in_flight: 16,
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
    /// taken, [`BatchWriter::write`](super::BatchWriter::write) waits (at least 1).
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

    pub(super) fn validate(&self) -> Result<()> {
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

/// What a finished [`BatchWriter`](super::BatchWriter) stored.
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
