//! Streaming ingest: the SDK's `BatchWriter` through a real `mutant-server`
//! into ClickHouse, against the same rows written straight into ClickHouse
//! with the driver, measured in the same run.
//!
//! - batches of 5,000, one writer: SDK vs driver INSERTs of 5,000 rows
//!   (target: SDK >= 0.8x the driver's rows/s);
//! - batches of 100, four concurrent SDK writers (the server coalesces them)
//!   vs the driver sending the same 100-row batches as sequential INSERTs
//!   (target: >= 5x).
//!
//! 384-d f32 vectors with a label and a prediction, seeded. Needs the release
//! server binary:
//!
//! ```text
//! scripts/clickhouse.sh start
//! cargo build --release -p mutant-server
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo bench -p mutant-tests --bench ingest
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::Instant;

use mutant_client::{BatchWriterConfig, Client, NewDataset, Record};
use mutant_tests::{ServerProcess, clickhouse_url};
use serde::Serialize;
use uuid::Uuid;

const DIMENSION: usize = 384;
const LARGE_BATCH: usize = 5_000;
const LARGE_ROWS: usize = 100_000;
const SMALL_BATCH: usize = 100;
const SMALL_ROWS_DRIVER: usize = 10_000;
const SMALL_ROWS_SDK: usize = 40_000;
const SMALL_WRITERS: usize = 4;

fn vector(index: usize) -> Vec<f32> {
    (0..DIMENSION)
        .map(|axis| ((index * 31 + axis * 7) % 101) as f32 / 101.0)
        .collect()
}

fn record(prefix: &str, index: usize) -> Record {
    Record::new(format!("{prefix}-{index:07}"), vector(index))
        .with_label(format!("class-{}", index % 10))
        .with_prediction(format!("class-{}", index % 7))
}

/// The `records` row as the driver writes it.
#[derive(clickhouse::Row, Serialize)]
struct DriverRow {
    #[serde(with = "clickhouse::serde::uuid")]
    dataset: Uuid,
    id: String,
    version: u64,
    deleted: u8,
    vector: Vec<f32>,
    label: Option<String>,
    prediction: Option<String>,
    uri: Option<String>,
    metadata: String,
    meta_keys: Vec<String>,
    meta_kinds: Vec<u8>,
    meta_strings: Vec<String>,
    meta_numbers: Vec<f64>,
}

/// Rows per second of sequential driver INSERTs of `batch` rows.
async fn driver_rows_per_second(database: &str, n_rows: usize, batch: usize) -> f64 {
    let client = clickhouse::Client::default()
        .with_url(clickhouse_url())
        .with_database(database)
        .with_validation(false);
    let dataset = Uuid::new_v4();
    let started = Instant::now();
    for start in (0..n_rows).step_by(batch) {
        let mut insert = client.insert::<DriverRow>("records").await.unwrap();
        for index in start..(start + batch).min(n_rows) {
            let source = record("driver", index);
            let row = DriverRow {
                dataset,
                id: source.id,
                version: index as u64 + 1,
                deleted: 0,
                vector: source.vector,
                label: source.label,
                prediction: source.prediction,
                uri: None,
                metadata: String::new(),
                meta_keys: Vec::new(),
                meta_kinds: Vec::new(),
                meta_strings: Vec::new(),
                meta_numbers: Vec::new(),
            };
            insert.write(&row).await.unwrap();
        }
        insert.end().await.unwrap();
    }
    n_rows as f64 / started.elapsed().as_secs_f64()
}

/// Rows per second of `n_writers` concurrent `BatchWriter`s.
async fn sdk_rows_per_second(
    client: &Client,
    dataset: &str,
    n_rows: usize,
    batch: usize,
    n_writers: usize,
) -> f64 {
    let started = Instant::now();
    let per_writer = n_rows / n_writers;
    let writers: Vec<_> = (0..n_writers)
        .map(|writer_idx| {
            let client = client.clone();
            let dataset = dataset.to_owned();
            tokio::spawn(async move {
                let config = BatchWriterConfig::default()
                    .with_max_batch_records(batch)
                    .with_max_batch_bytes(64 << 20);
                let mut writer = client.batch_writer(&dataset, config).unwrap();
                for index in 0..per_writer {
                    writer
                        .write(record(&format!("sdk{writer_idx}"), index))
                        .await
                        .unwrap();
                }
                writer.finish().await.unwrap()
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    (per_writer * n_writers) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let server = ServerProcess::start("ingest_bench").await;
    let client = Client::new(&server.url).unwrap();
    for name in ["large", "small"] {
        client
            .create_dataset(&NewDataset::new(name, DIMENSION))
            .await
            .unwrap();
    }
    let driver_large = driver_rows_per_second(&server.database, LARGE_ROWS, LARGE_BATCH).await;
    let sdk_large = sdk_rows_per_second(&client, "large", LARGE_ROWS, LARGE_BATCH, 1).await;
    let driver_small =
        driver_rows_per_second(&server.database, SMALL_ROWS_DRIVER, SMALL_BATCH).await;
    let sdk_small =
        sdk_rows_per_second(&client, "small", SMALL_ROWS_SDK, SMALL_BATCH, SMALL_WRITERS).await;
    println!(
        "ingest, {DIMENSION}-d f32, ClickHouse at {}",
        clickhouse_url()
    );
    println!(
        "batches of {LARGE_BATCH}: driver {driver_large:>9.0} rows/s, SDK (1 writer)  {sdk_large:>9.0} rows/s, ratio {:.2}x (target >= 0.80x)",
        sdk_large / driver_large
    );
    println!(
        "batches of {SMALL_BATCH}:   driver {driver_small:>9.0} rows/s, SDK ({SMALL_WRITERS} writers) {sdk_small:>9.0} rows/s, ratio {:.2}x (target >= 5x)",
        sdk_small / driver_small
    );
}
