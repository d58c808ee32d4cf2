//! Cold load of a dataset from ClickHouse into its in-memory form, against
//! the same bytes fetched raw (`SELECT ... FORMAT RowBinary`, discarded) in
//! the same run.
//!
//! Data: 100,000 x 384 f32 (seeded, deterministic), with labels and
//! predictions, in database `mutant_bench` (created on first run, reused
//! after). Each side runs 5 times, interleaved; the best time counts. The
//! `suite` bench also loads 1,000,000 x 128.
//!
//! ```text
//! scripts/clickhouse.sh start
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo bench -p mutant-tests --bench load
//! ```
#![allow(clippy::print_stdout)]

use mutant_tests::bench::load;
use mutant_tests::clickhouse_url;

const N_RECORDS: usize = 100_000;
const DIMENSION: usize = 384;
const RUNS: usize = 5;

#[tokio::main]
async fn main() {
    let store = load::bench_store().await;
    let name = load::ensure_dataset(&store, N_RECORDS, DIMENSION).await;
    let times = load::measure(&store, &name, RUNS).await;
    let mib = times.n_bytes as f64 / f64::from(1 << 20);
    println!(
        "ClickHouse {:?} at {}; {N_RECORDS} x {DIMENSION} f32, {mib:.1} MiB of RowBinary, best of {RUNS}",
        store.server_version(),
        clickhouse_url()
    );
    println!(
        "raw RowBinary fetch : {:>8.3} s  {:>7.1} MiB/s",
        times.raw.as_secs_f64(),
        mib / times.raw.as_secs_f64()
    );
    println!(
        "Records::load       : {:>8.3} s  {:>7.1} MiB/s",
        times.load.as_secs_f64(),
        mib / times.load.as_secs_f64()
    );
    println!(
        "load speed / raw fetch speed: {:.2}x (target >= 0.80x)",
        times.raw.as_secs_f64() / times.load.as_secs_f64()
    );
}
