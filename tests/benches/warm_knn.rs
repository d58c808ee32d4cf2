//! A warm single-query kNN by dataset name over HTTP: median and 90th
//! percentile latency, and ClickHouse statements per request (ClickHouse's
//! own `Query` event), on a 100k x 384 dataset the server holds in its
//! cache (`--records` sets another size). Run it alone on its ClickHouse,
//! or the statement count is noise.
//!
//! ```text
//! cargo bench -p mutant-tests --bench warm_knn
//! cargo bench -p mutant-tests --bench warm_knn -- --server /path/to/old/mutant-server \
//!     --server target/release/mutant-server --rounds 3 [--records 1000]
//! ```
//!
//! Each `--server` (default: the release build beside this program) is
//! measured in turn, `--rounds` times, so that builds compare within one
//! run. The dataset lives in database `mutant_bench_warm` and is written on
//! the first run only.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mutant_client::wire::KnnRequest;
use mutant_client::{BatchWriterConfig, Client, NewDataset, Record};
use mutant_tests::bench::{argument, seeded_vector, size_tag};
use mutant_tests::{ServerProcess, clickhouse_statements_so_far, server_binary};

const DATABASE: &str = "mutant_bench_warm";
const DIMENSION: usize = 384;
/// Requests timed per server and round.
const REQUESTS: usize = 300;

/// Every `--server` given, or the release build beside this program.
fn servers() -> Vec<PathBuf> {
    let arguments: Vec<String> = std::env::args().collect();
    let servers: Vec<PathBuf> = arguments
        .windows(2)
        .filter(|pair| pair[0] == "--server")
        .map(|pair| PathBuf::from(&pair[1]))
        .collect();
    if servers.is_empty() {
        vec![server_binary()]
    } else {
        servers
    }
}

/// Writes the dataset of `n_records` unless it is already stored whole;
/// returns its name.
async fn ensure_dataset(client: &Client, n_records: usize) -> String {
    let name = format!("warm_{}_{DIMENSION}", size_tag(n_records));
    if client
        .get_dataset(&name)
        .await
        .is_ok_and(|info| info.record_count == Some(n_records as u64))
    {
        return name;
    }
    if client.get_dataset(&name).await.is_ok() {
        client.delete_dataset(&name).await.unwrap();
    }
    client
        .create_dataset(&NewDataset::new(&name, DIMENSION))
        .await
        .unwrap();
    let config = BatchWriterConfig::default().with_max_batch_records(5_000);
    let mut writer = client.batch_writer(&name, config).unwrap();
    for index in 0..n_records {
        let vector = seeded_vector(index as u64, DIMENSION);
        writer
            .write(Record::new(format!("r{index:06}"), vector))
            .await
            .unwrap();
    }
    writer.finish().await.unwrap();
    name
}

async fn one_query(client: &Client, dataset: &str, index: usize) -> Duration {
    let request = KnnRequest {
        queries: vec![seeded_vector(1_000_000 + index as u64, DIMENSION)],
        k: 10,
        filter: None,
        include: None,
    };
    let started = Instant::now();
    let answer = client.knn(dataset, &request).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(answer[0].len(), 10);
    elapsed
}

/// Median and 90th percentile latency, and statements per request.
async fn measure(client: &Client, dataset: &str) -> (Duration, Duration, f64) {
    for index in 0..5 {
        one_query(client, dataset, index).await;
    }
    let before = clickhouse_statements_so_far().await;
    let mut latencies = Vec::with_capacity(REQUESTS);
    for index in 0..REQUESTS {
        latencies.push(one_query(client, dataset, index).await);
    }
    let after = clickhouse_statements_so_far().await;
    latencies.sort();
    let statements = (after - before - 1) as f64 / REQUESTS as f64;
    (
        latencies[REQUESTS / 2],
        latencies[REQUESTS * 9 / 10],
        statements,
    )
}

#[tokio::main]
async fn main() {
    let rounds: usize = argument("--rounds").map_or(3, |text| text.parse().unwrap());
    let n_records: usize = argument("--records").map_or(100_000, |text| text.parse().unwrap());
    let servers = servers();
    for round in 0..rounds {
        for binary in &servers {
            let server = ServerProcess::start_program(binary, DATABASE).await;
            let client = Client::new(&server.url).unwrap();
            let dataset = ensure_dataset(&client, n_records).await;
            let (median, p90, statements) = measure(&client, &dataset).await;
            println!(
                "round {round} {} ({n_records} x {DIMENSION}): median {:.3} ms, p90 {:.3} ms, {statements:.2} ClickHouse statements per request",
                binary.display(),
                median.as_secs_f64() * 1e3,
                p90.as_secs_f64() * 1e3,
            );
        }
    }
}
