//! The dataset cache's refresh: on a cached 100,000 x 384 dataset, the first
//! kNN query after a 100-record upsert, against a warm query and against a
//! full reload (the first query on a server that has not cached the dataset),
//! all in the same run, through the real server and the SDK.
//!
//! Target: the first query after the upsert costs at most 2x a warm one, and
//! well under a full reload. Also a warm query with a label filter that
//! returns labels, and queries while a writer streams 100-record batches.
//! Each figure is the median of 7 (21 while streaming).
//!
//! ```text
//! scripts/clickhouse.sh start
//! cargo build --release -p mutant-server
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo bench -p mutant-tests --bench refresh
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mutant_client::wire::{Include, KnnRequest};
use mutant_client::{BatchWriterConfig, Client, NewDataset, Record};
use mutant_tests::ServerProcess;
use mutant_tests::bench::{median, seeded_vector};

const N_RECORDS: usize = 100_000;
const DIMENSION: usize = 384;
const ROUNDS: usize = 7;
/// Longer than the cache's refresh overlap, so that earlier writes are not re-read.
const SETTLE: Duration = Duration::from_millis(2_500);

fn vector(seed: usize) -> Vec<f32> {
    seeded_vector(seed as u64, DIMENSION)
}

async fn timed_query(client: &Client, seed: usize) -> Duration {
    timed_request(
        client,
        KnnRequest {
            queries: vec![vector(seed)],
            k: 10,
            filter: None,
            include: None,
        },
    )
    .await
}

async fn timed_request(client: &Client, request: KnnRequest) -> Duration {
    let started = Instant::now();
    let neighbours = client.knn("cached", &request).await.unwrap();
    assert_eq!(neighbours[0].len(), 10);
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let server = ServerProcess::start("refresh_bench").await;
    let client = Client::new(&server.url).unwrap();
    client
        .create_dataset(&NewDataset::new("cached", DIMENSION))
        .await
        .unwrap();
    let mut writer = client
        .batch_writer(
            "cached",
            BatchWriterConfig::default().with_max_batch_records(5_000),
        )
        .unwrap();
    for index in 0..N_RECORDS {
        writer
            .write(
                Record::new(format!("r{index:07}"), vector(index))
                    .with_label(format!("c{}", index % 10)),
            )
            .await
            .unwrap();
    }
    writer.finish().await.unwrap();
    // Let ClickHouse finish merging the parts of the ingest before timing.
    tokio::time::sleep(Duration::from_secs(15)).await;

    let mut cold = Vec::new();
    for round in 0..3 {
        let fresh = ServerProcess::start_beside(&server).await;
        let fresh_client = Client::new(&fresh.url).unwrap();
        cold.push(timed_query(&fresh_client, 1_000_000 + round).await);
    }
    tokio::time::sleep(SETTLE).await;
    timed_query(&client, 0).await;
    let mut warm = Vec::new();
    for round in 0..ROUNDS {
        warm.push(timed_query(&client, 2_000_000 + round).await);
    }
    let mut filtered = Vec::new();
    for round in 0..ROUNDS {
        filtered.push(
            timed_request(
                &client,
                KnnRequest {
                    queries: vec![vector(5_000_000 + round)],
                    k: 10,
                    filter: Some(serde_json::json!({"label": {"$in": ["c1", "c2", "c3"]}})),
                    include: Some(vec![Include::Label]),
                },
            )
            .await,
        );
    }
    let mut after_upsert = Vec::new();
    for round in 0..ROUNDS {
        tokio::time::sleep(SETTLE).await;
        let batch: Vec<Record> = (0..100)
            .map(|row| {
                Record::new(
                    format!("new-{round}-{row}"),
                    vector(3_000_000 + round * 100 + row),
                )
            })
            .collect();
        client.upsert("cached", &batch).await.unwrap();
        after_upsert.push(timed_query(&client, 4_000_000 + round).await);
    }
    // Queries while a writer streams 100-record batches into the dataset.
    let streaming = {
        let writer_client = client.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer_stop = std::sync::Arc::clone(&stop);
        let writer = tokio::spawn(async move {
            let mut batch_idx = 0;
            while !writer_stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<Record> = (0..100)
                    .map(|row| {
                        Record::new(
                            format!("stream-{batch_idx}-{row}"),
                            vector(6_000_000 + batch_idx * 100 + row),
                        )
                    })
                    .collect();
                writer_client.upsert("cached", &batch).await.unwrap();
                batch_idx += 1;
            }
            batch_idx * 100
        });
        tokio::time::sleep(SETTLE).await;
        let mut times = Vec::new();
        for round in 0..3 * ROUNDS {
            times.push(timed_query(&client, 7_000_000 + round).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let streamed = writer.await.unwrap();
        (median(times), streamed)
    };
    // The first upsert after the load is the one most likely to pay for
    // something once (an index, a buffer's growth): show it beside the median.
    let slowest_after_upsert = after_upsert.iter().copied().max().unwrap_or_default();
    let (warm, filtered, after_upsert, cold) = (
        median(warm),
        median(filtered),
        median(after_upsert),
        median(cold),
    );
    println!(
        "kNN, k = 10, one query, {N_RECORDS} x {DIMENSION} through the server and SDK (medians)"
    );
    println!(
        "warm (cached, nothing new)      : {:>9.2} ms",
        warm.as_secs_f64() * 1e3
    );
    println!(
        "warm, label filter and labels   : {:>9.2} ms  ({:.2}x warm)",
        filtered.as_secs_f64() * 1e3,
        filtered.as_secs_f64() / warm.as_secs_f64()
    );
    println!(
        "while a writer streams          : {:>9.2} ms  ({:.2}x warm; {} rows streamed meanwhile)",
        streaming.0.as_secs_f64() * 1e3,
        streaming.0.as_secs_f64() / warm.as_secs_f64(),
        streaming.1
    );
    println!(
        "first after a 100-record upsert : {:>9.2} ms  ({:.2}x warm, target <= 2x; slowest of {ROUNDS} {:.2} ms, {:.2}x)",
        after_upsert.as_secs_f64() * 1e3,
        after_upsert.as_secs_f64() / warm.as_secs_f64(),
        slowest_after_upsert.as_secs_f64() * 1e3,
        slowest_after_upsert.as_secs_f64() / warm.as_secs_f64()
    );
    println!(
        "full reload (uncached server)   : {:>9.2} ms  ({:.1}x the refreshed query)",
        cold.as_secs_f64() * 1e3,
        cold.as_secs_f64() / after_upsert.as_secs_f64()
    );
}
