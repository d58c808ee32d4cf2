//! Every analysis on a target dataset against a reference of the same shape,
//! through the real server: wall seconds from the start request until the
//! SDK sees `done`, and the server's peak extra memory while it ran.
//!
//! Each analysis runs on a fresh server process on the same database, so
//! that no earlier analysis's freed memory hides its own. Both datasets are
//! loaded into that server's cache first (a kNN query on each), so the
//! figures are the analysis's, not the load's. Peak memory is read from the
//! server's `/proc/<pid>/status`: just before the analysis its peak
//! (`VmHWM`) is reset to its current resident size (writing `5` to
//! `/proc/<pid>/clear_refs`); after it, the peak minus the resident size
//! before is the analysis's extra memory. Memory the allocator kept from the
//! loads and reuses is not counted. Each analysis starts once ClickHouse runs
//! no merge, so it does not share the cores with merging the parts the data
//! or the previous analysis's rows left behind.

use std::time::{Duration, Instant};

use mutant_client::wire::{KnnRequest, StartAnalysisRequest};
use mutant_client::{BatchWriterConfig, Client, NewDataset, Record};
use mutant_core::service::{AnalysisKind, ReferenceUse};

use super::{reset_peak, seeded_vector, status_kib};
use crate::{ServerProcess, wait_for_quiet_clickhouse};

/// Every analysis kind, by wire name, in the order they run.
pub const KINDS: [&str; 10] = [
    "boundary_uncertainty",
    "activation_uncertainty",
    "class_outlier",
    "mislabel",
    "novelty",
    "uniqueness",
    "near_duplicates",
    "drift",
    "select",
    "projection",
];

/// Parameters beyond the defaults: `select` must be told how many records
/// to pick (100).
pub fn params(kind: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    (kind == "select").then(|| serde_json::Map::from_iter([("n".to_owned(), 100.into())]))
}

/// The figures of one analysis.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisRun {
    /// Wire name of the kind.
    pub kind: &'static str,
    /// From the start request until the SDK saw `done`.
    pub wall: Duration,
    /// The server's resident peak above its resident size before, in bytes;
    /// `None` when the kernel refused to reset the peak.
    pub peak_extra_bytes: Option<u64>,
}

/// Writes `target` and `reference`, `n_records` x `dimension` each, with
/// labels and predictions, through the SDK.
pub async fn prepare(client: &Client, n_records: usize, dimension: usize) {
    for (name, seed_base) in [("target", 0u64), ("reference", 1 << 40)] {
        client
            .create_dataset(&NewDataset::new(name, dimension))
            .await
            .expect("the analysis dataset is created");
        let config = BatchWriterConfig::default().with_max_batch_records(5_000);
        let mut writer = client
            .batch_writer(name, config)
            .expect("a batch writer opens");
        for index in 0..n_records {
            let record = Record::new(
                format!("r{index:07}"),
                seeded_vector(seed_base + index as u64, dimension),
            )
            .with_label(format!("class-{}", index % 10))
            .with_prediction(format!("class-{}", (index / 3) % 10));
            writer
                .write(record)
                .await
                .expect("the server accepts the batch");
        }
        writer.finish().await.expect("every batch is stored");
    }
}

/// Loads `target` and `reference` into the cache of the server `client` talks to.
async fn warm(client: &Client, dimension: usize) {
    for name in ["target", "reference"] {
        let request = KnnRequest {
            queries: vec![seeded_vector(7, dimension)],
            k: 1,
            filter: None,
            include: None,
        };
        client.knn(name, &request).await.expect("the dataset loads");
    }
}

/// Runs every kind of [`KINDS`] on `target` (against `reference` where the
/// kind takes one), each on a fresh server beside `server`, and measures it.
pub async fn run_all(server: &ServerProcess, dimension: usize) -> Vec<AnalysisRun> {
    let mut runs = Vec::with_capacity(KINDS.len());
    for kind in KINDS {
        let server = ServerProcess::start_beside(server).await;
        let client = Client::new(&server.url)
            .expect("the server URL parses")
            .with_poll_interval(Duration::from_millis(20));
        warm(&client, dimension).await;
        let reference_use = kind
            .parse::<AnalysisKind>()
            .expect("KINDS holds wire names")
            .reference_use();
        let request = StartAnalysisRequest {
            kind: kind.to_owned(),
            target: "target".to_owned(),
            reference: (reference_use != ReferenceUse::None).then(|| "reference".to_owned()),
            params: params(kind),
        };
        // Not the merges of the parts the data or the previous analysis's
        // rows left behind.
        wait_for_quiet_clickhouse().await;
        let resident_before = status_kib(server.pid(), "VmRSS");
        let reset = reset_peak(server.pid());
        let started = Instant::now();
        client
            .run_analysis(&request, |_| {})
            .await
            .unwrap_or_else(|error| panic!("{kind} fails: {error}"));
        let wall = started.elapsed();
        let peak = status_kib(server.pid(), "VmHWM");
        let peak_extra_bytes = match (reset, resident_before, peak) {
            (true, Some(before), Some(peak)) => Some(peak.saturating_sub(before) * 1024),
            _ => None,
        };
        runs.push(AnalysisRun {
            kind,
            wall,
            peak_extra_bytes,
        });
    }
    runs
}
