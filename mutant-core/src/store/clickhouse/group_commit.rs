//! Group commit: concurrent upserts (and tombstones) are coalesced into one
//! INSERT, because ClickHouse punishes tiny INSERTs with "Too many parts".
//!
//! Callers encode their rows themselves (in parallel) and hand the bytes to
//! one committer task. The committer gathers writes until the group reaches
//! its row or byte bound or the window closes, then sends one INSERT; up to
//! `max_inserts_in_flight` INSERTs run at once, and while they run the next
//! group keeps filling. Every caller is answered only once the INSERT holding
//! its rows has succeeded, or gets that INSERT's error.
//!
//! A write whose caller gave up waiting before its INSERT started is
//! withdrawn, never sent; once its INSERT has started it may still land.
//!
//! Rows get their write version when their INSERT starts, one per write, in
//! the order the writes arrived: time spent waiting in a group does not
//! count against the cache's refresh overlap, which must cover the time
//! from a version to its row becoming visible (see ARCHITECTURE.md).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::in_flight::InFlight;
use super::{StoreFailure, insert_rows};
use crate::store::VersionClock;

/// Bounds of one coalesced INSERT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitConfig {
    /// A group closes once it holds this many rows. Default 100,000.
    pub max_rows: usize,
    /// A group closes once it holds this many bytes. Default 32 MiB.
    pub max_bytes: usize,
    /// A group closes this long after its first write arrived. Default 5 ms.
    pub max_delay: Duration,
    /// How many INSERTs may run at once. Default 2.
    pub max_inserts_in_flight: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig {
            max_rows: 100_000,
            max_bytes: 32 << 20,
            max_delay: Duration::from_millis(5),
            max_inserts_in_flight: 2,
        }
    }
}

/// Rows already encoded in RowBinary, waiting for their INSERT.
pub(super) struct PendingWrite {
    encoded_rows: Vec<u8>,
    /// Where each row's version sits in `encoded_rows`.
    version_offsets: Vec<usize>,
    reply: oneshot::Sender<Result<u64, StoreFailure>>,
    /// The version [`PendingWrite::stamp`] gave the rows.
    version: u64,
}

impl PendingWrite {
    fn n_rows(&self) -> usize {
        self.version_offsets.len()
    }

    /// Writes `version` into every row.
    fn stamp(&mut self, version: u64) {
        self.version = version;
        for &offset in &self.version_offsets {
            self.encoded_rows[offset..offset + 8].copy_from_slice(&version.to_le_bytes());
        }
    }
}

/// The handle writers use; the committer task ends when it is dropped.
#[derive(Debug, Clone)]
pub(super) struct GroupCommitter {
    sender: mpsc::Sender<PendingWrite>,
}

impl GroupCommitter {
    pub(super) fn start(
        client: clickhouse::Client,
        insert_settings: Vec<(String, String)>,
        config: GroupCommitConfig,
        timeout: Duration,
        clock: Arc<VersionClock>,
        in_flight: Arc<InFlight>,
    ) -> Self {
        let (sender, receiver) = mpsc::channel(4096);
        tokio::spawn(run_committer(
            client,
            Arc::new(insert_settings),
            config,
            timeout,
            (clock, in_flight),
            receiver,
        ));
        GroupCommitter { sender }
    }

    /// Queues encoded rows, with where each row's version goes; the
    /// receiver answers, with the version the rows got, once they are
    /// inserted.
    pub(super) async fn submit(
        &self,
        encoded_rows: Vec<u8>,
        version_offsets: Vec<usize>,
    ) -> Result<oneshot::Receiver<Result<u64, StoreFailure>>, StoreFailure> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(PendingWrite {
                encoded_rows,
                version_offsets,
                reply,
                version: 0,
            })
            .await
            .map_err(|_| StoreFailure::Failed("the group commit task has stopped".into()))?;
        Ok(answer)
    }
}

/// The writes one INSERT will carry.
struct Group {
    writes: Vec<PendingWrite>,
    n_rows: usize,
    n_bytes: usize,
}

impl Group {
    fn new(first: PendingWrite) -> Group {
        Group {
            n_rows: first.n_rows(),
            n_bytes: first.encoded_rows.len(),
            writes: vec![first],
        }
    }

    fn push(&mut self, write: PendingWrite) {
        self.n_rows += write.n_rows();
        self.n_bytes += write.encoded_rows.len();
        self.writes.push(write);
    }

    fn is_full(&self, config: &GroupCommitConfig) -> bool {
        self.n_rows >= config.max_rows || self.n_bytes >= config.max_bytes
    }
}

async fn run_committer(
    client: clickhouse::Client,
    insert_settings: Arc<Vec<(String, String)>>,
    config: GroupCommitConfig,
    timeout: Duration,
    (clock, running): (Arc<VersionClock>, Arc<InFlight>),
    mut receiver: mpsc::Receiver<PendingWrite>,
) {
    let in_flight = Arc::new(Semaphore::new(config.max_inserts_in_flight.max(1)));
    while let Some(first) = receiver.recv().await {
        let deadline = Instant::now() + config.max_delay;
        let mut group = Group::new(first);
        while !group.is_full(&config) {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(write)) => group.push(write),
                Ok(None) | Err(_) => break,
            }
        }
        // While every INSERT slot is taken, the group keeps growing: under
        // load, INSERTs get as large as the bounds allow, not as large as
        // one window happens to be.
        let mut receiver_open = true;
        let permit = loop {
            if group.is_full(&config) || !receiver_open {
                break Arc::clone(&in_flight).acquire_owned().await;
            }
            tokio::select! {
                biased;
                permit = Arc::clone(&in_flight).acquire_owned() => break permit,
                write = receiver.recv() => match write {
                    Some(write) => group.push(write),
                    None => receiver_open = false,
                },
            }
        };
        let Ok(permit) = permit else {
            return;
        };
        // A writer that stopped waiting (its request timed out and was
        // answered 503) is withdrawn while its INSERT has not begun, so that
        // it cannot land later, over newer data written elsewhere.
        let mut group = group.writes;
        group.retain(|write| !write.reply.is_closed());
        if group.is_empty() {
            continue;
        }
        let n_rows: usize = group.iter().map(PendingWrite::n_rows).sum();
        let n_bytes: usize = group.iter().map(|write| write.encoded_rows.len()).sum();
        for write in &mut group {
            write.stamp(clock.next());
        }
        // The first write's version is the group's oldest.
        let oldest_version = group[0].version;
        running.started(oldest_version);
        let running = Arc::clone(&running);
        let client = client.clone();
        let insert_settings = Arc::clone(&insert_settings);
        tokio::spawn(async move {
            // Each writer's rows go out as their own chunk of the one INSERT
            // body: no copy into a combined buffer.
            let (chunks, replies): (Vec<Bytes>, Vec<_>) = group
                .into_iter()
                .map(|write| {
                    (
                        Bytes::from(write.encoded_rows),
                        (write.reply, write.version),
                    )
                })
                .unzip();
            let started = Instant::now();
            let outcome = insert_rows(&client, &insert_settings, timeout, chunks).await;
            running.ended(oldest_version);
            drop(permit);
            tracing::debug!(
                writes = replies.len(),
                rows = n_rows,
                bytes = n_bytes,
                millis = started.elapsed().as_millis() as u64,
                ok = outcome.is_ok(),
                "group commit INSERT"
            );
            for (reply, version) in replies {
                // A caller that gave up waiting no longer needs its answer.
                let _ = reply.send(outcome.clone().map(|()| version));
            }
        });
    }
}
