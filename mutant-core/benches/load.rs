//! Cold load of a dataset from ClickHouse into its in-memory form, against
//! the same bytes fetched raw (`SELECT ... FORMAT RowBinary`, discarded) in
//! the same run.
//!
//! Data: 100,000 x 384 f32 (seeded, deterministic), with labels and
//! predictions, in database `mutant_bench` (created on first run, reused
//! after). Each side runs 5 times, interleaved; the best time counts.
//!
//! ```text
//! scripts/clickhouse.sh start
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo bench -p mutant-core --bench load
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mutant_core::model::{DatasetRef, Filter, NewDataset, Record};
use mutant_core::store::{ClickHouseConfig, ClickHouseStore, Store};

const N_RECORDS: usize = 100_000;
const DIMENSION: usize = 384;
const RUNS: usize = 5;

fn seeded_vector(seed: u64, dimension: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dimension)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

async fn ensure_dataset(store: &ClickHouseStore) {
    let name = DatasetRef::parse("load_bench");
    if store.count(&name, &Filter::all()).await.ok() == Some(N_RECORDS) {
        return;
    }
    if store.get_dataset(&name).await.is_ok() {
        store.delete_dataset(&name).await.unwrap();
    }
    store
        .create_dataset(NewDataset::new("load_bench", DIMENSION))
        .await
        .unwrap();
    for start in (0..N_RECORDS).step_by(10_000) {
        let batch: Vec<Record> = (start..start + 10_000)
            .map(|index| {
                Record::new(
                    format!("record-{index:07}"),
                    seeded_vector(index as u64, DIMENSION),
                )
                .with_label(format!("class-{}", index % 10))
                .with_prediction(format!("class-{}", (index / 3) % 10))
            })
            .collect();
        store.upsert(&name, batch).await.unwrap();
    }
}

async fn raw_fetch(store: &ClickHouseStore, statement: &str) -> (Duration, u64) {
    let started = Instant::now();
    let mut cursor = store
        .client()
        .query(statement)
        .fetch_bytes("RowBinary")
        .unwrap();
    let mut n_bytes = 0u64;
    while let Some(chunk) = cursor.next().await.unwrap() {
        n_bytes += chunk.len() as u64;
    }
    (started.elapsed(), n_bytes)
}

#[tokio::main]
async fn main() {
    let url =
        std::env::var("MUTANT_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let store = ClickHouseStore::connect(ClickHouseConfig::new(&url).with_database("mutant_bench"))
        .await
        .unwrap_or_else(|error| panic!("{error}; start one with scripts/clickhouse.sh start"));
    ensure_dataset(&store).await;
    let dataset = store
        .get_dataset(&DatasetRef::parse("load_bench"))
        .await
        .unwrap();
    let statement = ClickHouseStore::load_statement(&dataset);

    let mut best_raw = Duration::MAX;
    let mut best_load = Duration::MAX;
    let mut raw_bytes = 0;
    for _ in 0..RUNS {
        let (elapsed, n_bytes) = raw_fetch(&store, &statement).await;
        best_raw = best_raw.min(elapsed);
        raw_bytes = n_bytes;
        let started = Instant::now();
        let loaded = store.load(&DatasetRef::Id(dataset.id)).await.unwrap();
        best_load = best_load.min(started.elapsed());
        assert_eq!(loaded.n_records(), N_RECORDS);
    }
    let mib = raw_bytes as f64 / (1 << 20) as f64;
    println!(
        "ClickHouse {:?} at {url}; {N_RECORDS} x {DIMENSION} f32, {mib:.1} MiB of RowBinary, best of {RUNS}",
        store.server_version()
    );
    println!(
        "raw RowBinary fetch : {:>8.3} s  {:>7.1} MiB/s",
        best_raw.as_secs_f64(),
        mib / best_raw.as_secs_f64()
    );
    println!(
        "Store::load         : {:>8.3} s  {:>7.1} MiB/s",
        best_load.as_secs_f64(),
        mib / best_load.as_secs_f64()
    );
    println!(
        "load speed / raw fetch speed: {:.2}x (target >= 0.80x)",
        best_raw.as_secs_f64() / best_load.as_secs_f64()
    );
}
