//! Cold load of a dataset from ClickHouse into its in-memory form
//! (`Records::load`), against the same bytes fetched raw (`SELECT ... FORMAT
//! RowBinary`, the load's own statement, bytes counted and discarded).
//!
//! The datasets live in database `mutant_bench`, named after their size
//! (`load_100k_384`); they are written on the first run and reused after.

use std::time::{Duration, Instant};

use mutant_core::ingest::ValidBatch;
use mutant_core::model::{DatasetRef, Filter, NewDataset, Record};
use mutant_core::store::{Catalogue, ClickHouseConfig, ClickHouseStore, Records};

use super::{seeded_vector, size_tag};
use crate::{clickhouse_url, wait_for_quiet_clickhouse};

/// The database the load benchmark's datasets live in.
pub const DATABASE: &str = "mutant_bench";

/// Best-of timings of one dataset's cold load and raw fetch.
#[derive(Debug, Clone, Copy)]
pub struct LoadTimes {
    /// The raw RowBinary fetch of the load's statement.
    pub raw: Duration,
    /// `Records::load`.
    pub load: Duration,
    /// Bytes of RowBinary the statement returns.
    pub n_bytes: u64,
}

/// The store on [`DATABASE`]; panics with how to start ClickHouse.
pub async fn bench_store() -> ClickHouseStore {
    let url = clickhouse_url();
    ClickHouseStore::connect(ClickHouseConfig::new(&url).with_database(DATABASE))
        .await
        .unwrap_or_else(|error| {
            panic!("cannot use ClickHouse at {url} ({error}); start one with scripts/clickhouse.sh start")
        })
}

/// The name of the `n_records` x `dimension` benchmark dataset.
pub fn dataset_name(n_records: usize, dimension: usize) -> String {
    format!("load_{}_{dimension}", size_tag(n_records))
}

/// Creates the dataset `n_records` x `dimension` (labels and predictions
/// included) unless it is already stored whole; returns its name.
pub async fn ensure_dataset(store: &ClickHouseStore, n_records: usize, dimension: usize) -> String {
    let name = dataset_name(n_records, dimension);
    if let Ok(existing) = store.resolve(&DatasetRef::parse(&name)).await {
        if store.count(&existing.dataset, &Filter::all()).await.ok() == Some(n_records) {
            return name;
        }
        store
            .delete_dataset(&existing)
            .await
            .expect("the incomplete dataset is deleted");
    }
    let dataset = store
        .create_dataset(NewDataset::new(&name, dimension))
        .await
        .expect("the benchmark dataset is created");
    const BATCH: usize = 10_000;
    for start in (0..n_records).step_by(BATCH) {
        let batch: Vec<Record> = (start..(start + BATCH).min(n_records))
            .map(|index| {
                Record::new(
                    format!("record-{index:07}"),
                    seeded_vector(index as u64, dimension),
                )
                .with_label(format!("class-{}", index % 10))
                .with_prediction(format!("class-{}", (index / 3) % 10))
            })
            .collect();
        store
            .upsert(ValidBatch::new(&dataset, batch).expect("the batch is valid"))
            .await
            .expect("ClickHouse stores the batch");
    }
    name
}

async fn raw_fetch(store: &ClickHouseStore, statement: &str) -> (Duration, u64) {
    let started = Instant::now();
    let mut cursor = store
        .client()
        .query(statement)
        .fetch_bytes("RowBinary")
        .expect("the load statement runs");
    // Read in a task of its own, as `Records::load` reads: awaited on the
    // benchmark's main thread, every 4 KiB chunk hyper hands over would
    // cost a thread wake-up the load does not pay, and flatter the load.
    let n_bytes = tokio::spawn(async move {
        let mut n_bytes = 0u64;
        while let Some(chunk) = cursor.next().await.expect("the fetch streams") {
            n_bytes += chunk.len() as u64;
        }
        n_bytes
    })
    .await
    .expect("the fetch task finishes");
    (started.elapsed(), n_bytes)
}

/// Times the raw fetch and the load of dataset `name`, `runs` times each,
/// interleaved; the best of each counts. Each pair starts on a ClickHouse
/// that runs no merge: merges left by earlier writes (the suite's ingest
/// section, the dataset's own creation) share the same two cores.
pub async fn measure(store: &ClickHouseStore, name: &str, runs: usize) -> LoadTimes {
    let dataset = store
        .get_dataset(&DatasetRef::parse(name))
        .await
        .expect("the benchmark dataset exists");
    let statement = ClickHouseStore::load_statement(&dataset);
    let mut times = LoadTimes {
        raw: Duration::MAX,
        load: Duration::MAX,
        n_bytes: 0,
    };
    for _ in 0..runs {
        wait_for_quiet_clickhouse().await;
        let (elapsed, n_bytes) = raw_fetch(store, &statement).await;
        times.raw = times.raw.min(elapsed);
        times.n_bytes = n_bytes;
        let started = Instant::now();
        let loaded = store.load(&dataset).await.expect("the dataset loads");
        times.load = times.load.min(started.elapsed());
        drop(loaded);
    }
    times
}
