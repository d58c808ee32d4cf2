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
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo bench -p mutant-tests --bench ingest
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use mutant_client::{Client, NewDataset};
use mutant_tests::bench::ingest::{IngestShape, driver_rows_per_second, sdk_rows_per_second};
use mutant_tests::{ServerProcess, clickhouse_url};

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
    let server = ServerProcess::start("ingest_bench").await;
    let client = Client::new(&server.url).unwrap();
    for name in ["large", "small"] {
        client
            .create_dataset(&NewDataset::new(name, DIMENSION))
            .await
            .unwrap();
    }
    let driver_large = driver_rows_per_second(&server.database, shape(5_000, 1, 100_000)).await;
    let sdk_large = sdk_rows_per_second(&client, "large", shape(5_000, 1, 100_000)).await;
    let driver_small = driver_rows_per_second(&server.database, shape(100, 1, 10_000)).await;
    let sdk_small = sdk_rows_per_second(&client, "small", shape(100, 4, 40_000)).await;
    println!(
        "ingest, {DIMENSION}-d f32, ClickHouse at {}",
        clickhouse_url()
    );
    println!(
        "batches of 5000: driver {driver_large:>9.0} rows/s, SDK (1 writer)  {sdk_large:>9.0} rows/s, ratio {:.2}x (target >= 0.80x)",
        sdk_large / driver_large
    );
    println!(
        "batches of 100:   driver {driver_small:>9.0} rows/s, SDK (4 writers) {sdk_small:>9.0} rows/s, ratio {:.2}x (target >= 5x)",
        sdk_small / driver_small
    );
}
