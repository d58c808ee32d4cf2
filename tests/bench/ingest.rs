//! Streaming ingest: the SDK's `BatchWriter` through a real `mutant-server`
//! into ClickHouse, against the same rows written straight into the server's
//! `records` table with the ClickHouse driver, one INSERT per batch.
//!
//! Every phase starts on an empty database of a ClickHouse that runs no
//! merge, and drops its database when it ends: otherwise each phase would
//! pay for merging the parts the one before it left behind, and whichever
//! ran second would lose. The two sides alternate which goes first.

use std::time::Instant;

use mutant_client::{BatchWriterConfig, Client, NewDataset, Record};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    ServerProcess, clickhouse_store, clickhouse_url, drop_database, wait_for_quiet_clickhouse,
};

/// The median rows per second of each side over the rounds of [`measure`].
#[derive(Debug, Clone, Copy)]
pub struct IngestRates {
    /// Driver INSERTs straight into ClickHouse.
    pub driver: f64,
    /// The SDK's `BatchWriter` through the server.
    pub sdk: f64,
}

/// Measures the driver writing `driver_shape` and the SDK writing
/// `sdk_shape`, `rounds` times each (alternating which goes first), and
/// returns each side's median.
pub async fn measure(
    driver_shape: IngestShape,
    sdk_shape: IngestShape,
    rounds: usize,
) -> IngestRates {
    let mut driver = Vec::new();
    let mut sdk = Vec::new();
    for round in 0..rounds.max(1) {
        if round % 2 == 0 {
            driver.push(driver_phase(driver_shape).await);
            sdk.push(sdk_phase(sdk_shape).await);
        } else {
            sdk.push(sdk_phase(sdk_shape).await);
            driver.push(driver_phase(driver_shape).await);
        }
    }
    IngestRates {
        driver: median_rate(driver),
        sdk: median_rate(sdk),
    }
}

fn median_rate(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied().unwrap_or_default()
}

async fn driver_phase(shape: IngestShape) -> f64 {
    wait_for_quiet_clickhouse().await;
    // The store creates the schema the server would; the driver then writes
    // into its `records` table.
    let store = clickhouse_store("bench_ingest_driver").await;
    let database = "mutant_test_bench_ingest_driver";
    let rate = driver_rows_per_second(database, shape).await;
    drop(store);
    drop_database(&clickhouse_url(), database).await;
    rate
}

async fn sdk_phase(shape: IngestShape) -> f64 {
    wait_for_quiet_clickhouse().await;
    let server = ServerProcess::start("bench_ingest_sdk").await;
    let client = Client::new(&server.url).expect("the server URL parses");
    client
        .create_dataset(&NewDataset::new("ingest", shape.dimension))
        .await
        .expect("the ingest dataset is created");
    let rate = sdk_rows_per_second(&client, "ingest", shape).await;
    let database = server.database.clone();
    drop(server);
    drop_database(&clickhouse_url(), &database).await;
    rate
}

/// What one ingest measurement writes.
#[derive(Debug, Clone, Copy)]
pub struct IngestShape {
    /// Vector dimension.
    pub dimension: usize,
    /// Rows per batch (per INSERT for the driver, per request for the SDK).
    pub batch: usize,
    /// Concurrent writers, each writing `n_rows / n_writers` rows.
    pub n_writers: usize,
    /// Rows written in all.
    pub n_rows: usize,
}

/// Record `index` of writer `prefix`: a seeded vector, a label and a prediction.
pub fn record(prefix: &str, index: usize, dimension: usize) -> Record {
    Record::new(format!("{prefix}-{index:07}"), vector(index, dimension))
        .with_label(format!("class-{}", index % 10))
        .with_prediction(format!("class-{}", index % 7))
}

fn vector(index: usize, dimension: usize) -> Vec<f32> {
    (0..dimension)
        .map(|axis| ((index * 31 + axis * 7) % 101) as f32 / 101.0)
        .collect()
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

/// Rows per second of `shape.n_writers` concurrent writers of sequential
/// driver INSERTs of `shape.batch` rows into `database.records`.
pub async fn driver_rows_per_second(database: &str, shape: IngestShape) -> f64 {
    let client = clickhouse::Client::default()
        .with_url(clickhouse_url())
        .with_database(database)
        .with_validation(false);
    let per_writer = shape.n_rows / shape.n_writers;
    let started = Instant::now();
    let writers: Vec<_> = (0..shape.n_writers)
        .map(|writer_idx| {
            let client = client.clone();
            tokio::spawn(async move {
                let dataset = Uuid::new_v4();
                let prefix = format!("driver{writer_idx}");
                for start in (0..per_writer).step_by(shape.batch) {
                    let mut insert = client
                        .insert::<DriverRow>("records")
                        .await
                        .expect("an INSERT into records starts");
                    for index in start..(start + shape.batch).min(per_writer) {
                        let source = record(&prefix, index, shape.dimension);
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
                        insert.write(&row).await.expect("a row is written");
                    }
                    insert.end().await.expect("ClickHouse accepts the INSERT");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a driver writer finishes");
    }
    (per_writer * shape.n_writers) as f64 / started.elapsed().as_secs_f64()
}

/// Rows per second of `shape.n_writers` concurrent `BatchWriter`s sending
/// batches of `shape.batch` records to `dataset` through the server.
pub async fn sdk_rows_per_second(client: &Client, dataset: &str, shape: IngestShape) -> f64 {
    let per_writer = shape.n_rows / shape.n_writers;
    let started = Instant::now();
    let writers: Vec<_> = (0..shape.n_writers)
        .map(|writer_idx| {
            let client = client.clone();
            let dataset = dataset.to_owned();
            tokio::spawn(async move {
                let config = BatchWriterConfig::default()
                    .with_max_batch_records(shape.batch)
                    .with_max_batch_bytes(64 << 20);
                let mut writer = client
                    .batch_writer(&dataset, config)
                    .expect("a batch writer opens");
                let prefix = format!("sdk{writer_idx}");
                for index in 0..per_writer {
                    writer
                        .write(record(&prefix, index, shape.dimension))
                        .await
                        .expect("the server accepts the batch");
                }
                writer.finish().await.expect("every batch is stored")
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("an SDK writer finishes");
    }
    (per_writer * shape.n_writers) as f64 / started.elapsed().as_secs_f64()
}
