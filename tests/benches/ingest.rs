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
//! server binary (the `suite` bench measures every batch and writer count):
//!
//! ```text
//! scripts/clickhouse.sh start
//! cargo build --release -p mutant-server
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo bench -p mutant-tests --bench ingest [-- --rounds 3] [--batch 100|5000]
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use mutant_tests::bench::argument;
use mutant_tests::bench::ingest::{IngestShape, measure};
use mutant_tests::clickhouse_url;

const DIMENSION: usize = 384;

fn shape(batch: usize, n_writers: usize, n_rows: usize) -> IngestShape {
    IngestShape {
        dimension: DIMENSION,
        batch,
        n_writers,
        n_rows,
    }
}

#[tokio::main]
async fn main() {
    let rounds = argument("--rounds").map_or(3, |text| text.parse().unwrap());
    let only = argument("--batch");
    println!(
        "ingest, {DIMENSION}-d f32, ClickHouse at {}, median of {rounds} rounds, each on an empty database",
        clickhouse_url()
    );
    if only.as_deref().is_none_or(|batch| batch == "5000") {
        let large = measure(shape(5_000, 1, 100_000), shape(5_000, 1, 100_000), rounds).await;
        println!(
            "batches of 5000: driver {:>9.0} rows/s, SDK (1 writer)  {:>9.0} rows/s, ratio {:.2}x (target >= 0.80x)",
            large.driver,
            large.sdk,
            large.sdk / large.driver
        );
    }
    if only.as_deref().is_none_or(|batch| batch == "100") {
        let small = measure(shape(100, 1, 10_000), shape(100, 4, 40_000), rounds).await;
        println!(
            "batches of 100:   driver {:>9.0} rows/s, SDK (4 writers) {:>9.0} rows/s, ratio {:.2}x (target >= 5x)",
            small.driver,
            small.sdk,
            small.sdk / small.driver
        );
    }
}
