//! The cluster against one node, measured in the same run (issue 16):
//!
//! - streaming ingest through the SDK's `BatchWriter` and a release server:
//!   batches of 5,000 (one writer, 100,000 rows) and batches of 100 (four
//!   writers, 40,000 rows; the server coalesces them), in rows/s;
//! - the cold load of 100,000 x 384 (`Store::load`), beside the raw
//!   RowBinary fetch of the same statement.
//!
//! On one ClickHouse node (`MUTANT_CLICKHOUSE_URL`) and on the test cluster
//! (`MUTANT_CLICKHOUSE_CLUSTER_URL`: 2 shards x 2 replicas, insert quorum 2),
//! the two sides alternating which goes first in each round; ingest figures
//! are medians of the rounds, load figures the best. 384-d f32 vectors with a
//! label and a prediction, seeded. Ratios are cluster / single node (> 1: the
//! cluster is faster).
//!
//! ```text
//! scripts/clickhouse.sh start && scripts/clickhouse.sh start-cluster
//! cargo build --release -p mutant-server
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 MUTANT_CLICKHOUSE_CLUSTER_URL=http://127.0.0.1:18610 \
//!     cargo bench -p mutant-tests --bench cluster [-- --rounds 3]
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use mutant_client::{Client, NewDataset};
use mutant_core::store::ClickHouseStore;
use mutant_tests::bench::argument;
use mutant_tests::bench::ingest::{IngestShape, sdk_rows_per_second};
use mutant_tests::bench::load;
use mutant_tests::{
    ServerProcess, clickhouse_cluster_store, clickhouse_cluster_url, clickhouse_store,
    clickhouse_url,
};

const DIMENSION: usize = 384;
const N_LOAD_RECORDS: usize = 100_000;

/// Where one side of the comparison runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    SingleNode,
    Cluster,
}

impl Side {
    async fn server(self, test_name: &str) -> ServerProcess {
        match self {
            Side::SingleNode => ServerProcess::start(test_name).await,
            Side::Cluster => ServerProcess::start_on_cluster(test_name, &[]).await,
        }
    }

    async fn store(self, test_name: &str) -> ClickHouseStore {
        match self {
            Side::SingleNode => clickhouse_store(test_name).await,
            Side::Cluster => clickhouse_cluster_store(test_name).await,
        }
    }
}

/// Rows/s of the SDK writing `shape` through a fresh server on `side`.
async fn ingest(side: Side, shape: IngestShape) -> f64 {
    let server = side.server("bench_cluster_ingest").await;
    let client = Client::new(&server.url).expect("the server URL parses");
    client
        .create_dataset(&NewDataset::new("ingest", DIMENSION))
        .await
        .expect("the ingest dataset is created");
    sdk_rows_per_second(&client, "ingest", shape).await
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The medians, single node then cluster, of ingesting `shape` `rounds` times.
async fn compare_ingest(shape: IngestShape, rounds: usize) -> (f64, f64) {
    let mut single = Vec::new();
    let mut cluster = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Side::SingleNode, Side::Cluster]
        } else {
            [Side::Cluster, Side::SingleNode]
        };
        for side in order {
            let rate = ingest(side, shape).await;
            match side {
                Side::SingleNode => single.push(rate),
                Side::Cluster => cluster.push(rate),
            }
        }
    }
    (median(single), median(cluster))
}

#[tokio::main]
async fn main() {
    let rounds = argument("--rounds").map_or(3, |text| text.parse().unwrap());
    println!(
        "single node at {}, cluster `mutant` (2 shards x 2 replicas) at {}; {DIMENSION}-d f32",
        clickhouse_url(),
        clickhouse_cluster_url()
    );
    for (label, shape) in [
        (
            "batches of 5000, 1 writer ",
            IngestShape {
                dimension: DIMENSION,
                batch: 5_000,
                n_writers: 1,
                n_rows: 100_000,
            },
        ),
        (
            "batches of 100, 4 writers ",
            IngestShape {
                dimension: DIMENSION,
                batch: 100,
                n_writers: 4,
                n_rows: 40_000,
            },
        ),
    ] {
        let (single, cluster) = compare_ingest(shape, rounds).await;
        println!(
            "ingest, {label}: single node {single:>8.0} rows/s, cluster {cluster:>8.0} rows/s, \
             cluster / single {:.2}x (median of {rounds})",
            cluster / single
        );
    }

    let single_store = Side::SingleNode.store("bench_cluster_load").await;
    let cluster_store = Side::Cluster.store("bench_cluster_load").await;
    let single_name = load::ensure_dataset(&single_store, N_LOAD_RECORDS, DIMENSION).await;
    let cluster_name = load::ensure_dataset(&cluster_store, N_LOAD_RECORDS, DIMENSION).await;
    let single = load::measure(&single_store, &single_name, rounds).await;
    let cluster = load::measure(&cluster_store, &cluster_name, rounds).await;
    let mib = single.n_bytes as f64 / f64::from(1 << 20);
    println!(
        "cold load of {N_LOAD_RECORDS} x {DIMENSION} ({mib:.1} MiB of RowBinary), best of {rounds}: \
         single node {:.3} s (raw fetch {:.3} s), cluster {:.3} s (raw fetch {:.3} s), \
         single / cluster time {:.2}x",
        single.load.as_secs_f64(),
        single.raw.as_secs_f64(),
        cluster.load.as_secs_f64(),
        cluster.raw.as_secs_f64(),
        single.load.as_secs_f64() / cluster.load.as_secs_f64(),
    );
}
