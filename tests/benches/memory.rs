//! Issue 13's memory figures: every analysis's estimated peak working
//! memory (what `POST /v1/analyses` compares with `MUTANT_ANALYSIS_BYTES`)
//! next to the peak measured on the real server (a program: `harness =
//! false`).
//!
//! What it measures: a target and a reference of `--rows` x `--dimension`
//! (default 20,000 x 128; seeded vectors in [-0.5, 0.5), 10 labels and 10
//! predictions, as the suite's analyses section writes them), every kind
//! with its default parameters (`select`: n = 100), each on a fresh server
//! with both datasets cached first. Measured: the server's resident peak
//! (`VmHWM`, reset just before the analysis) above its resident size before,
//! as `mutant_tests::bench::analyses` reads it; estimated:
//! `mutant_core::service::estimate_analysis_bytes` for the same sizes and
//! the server's thread count. The estimate should bound the measure; their
//! ratio says how tight it is.
//!
//! Command (release): `cargo build --release -p mutant-server`, then
//! `MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18500 cargo bench -p mutant-tests
//! --bench memory -- --rows 20000 --dimension 128`. Without
//! `MUTANT_CLICKHOUSE_URL`, `scripts/clickhouse.sh start` runs first. Memory
//! does not depend on the optimisation level: `--profile dev` (with
//! `cargo build -p mutant-server`) measures the same with a debug server.
//! `--estimate-only` prints the estimates alone, without a server.

#![allow(clippy::print_stdout)]

use mutant_client::Client;
use mutant_core::service::{AnalysisKind, ReferenceUse, estimate_analysis_bytes};
use mutant_tests::bench::{analyses, argument, flag};
use mutant_tests::{ServerProcess, start_clickhouse};

#[tokio::main]
async fn main() -> Result<(), mutant_core::Error> {
    let number = |name: &str, default: usize| {
        argument(name)
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let n_rows = number("--rows", 20_000);
    let dimension = number("--dimension", 128);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let estimate = |kind_name: &str| -> Result<u64, mutant_core::Error> {
        let kind: AnalysisKind = kind_name.parse()?;
        let n_reference = match kind.reference_use() {
            ReferenceUse::None => 0,
            ReferenceUse::Required | ReferenceUse::Optional => n_rows,
        };
        let params = analyses::params(kind_name).unwrap_or_default();
        estimate_analysis_bytes(kind, &params, n_rows, n_reference, dimension, threads)
    };
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    if flag("--estimate-only") {
        println!(
            "# estimated analysis memory: target and reference {n_rows} x {dimension}, {threads} kernel threads"
        );
        println!("| kind | estimated MiB |");
        println!("| --- | ---: |");
        for kind in analyses::KINDS {
            println!("| {kind} | {:.1} |", mib(estimate(kind)?));
        }
        return Ok(());
    }
    start_clickhouse();
    let server = ServerProcess::start("bench_memory").await;
    let client = Client::new(&server.url).expect("the server URL parses");
    analyses::prepare(&client, n_rows, dimension).await;
    println!(
        "# analysis memory: target and reference {n_rows} x {dimension}, {threads} kernel threads, through the server"
    );
    println!("| kind | estimated MiB | measured MiB | measured / estimated |");
    println!("| --- | ---: | ---: | ---: |");
    for run in analyses::run_all(&server, dimension).await {
        let estimated = estimate(run.kind)?;
        match run.peak_extra_bytes {
            Some(measured) => println!(
                "| {} | {:.1} | {:.1} | {:.2} |",
                run.kind,
                mib(estimated),
                mib(measured),
                measured as f64 / estimated as f64
            ),
            None => println!(
                "| {} | {:.1} | (the kernel refused to reset the peak) | |",
                run.kind,
                mib(estimated)
            ),
        }
    }
    Ok(())
}
