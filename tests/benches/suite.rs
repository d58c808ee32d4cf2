//! Issue 7's benchmark suite: every figure next to a baseline measured in the
//! same run, as a table on standard output and as one flat JSON object.
//!
//! Sections (`--sections ingest,load,knn,analyses`, all by default):
//! - ingest: the SDK's `BatchWriter` through the real release server vs the
//!   ClickHouse driver's INSERTs, 384-d, batches of 100 and 5,000, 1 and 4
//!   concurrent writers;
//! - load: cold `Records::load` vs the raw RowBinary fetch of the same bytes,
//!   n x 384 and 10n x 128;
//! - knn: warm exact kNN, a batch of 1,000 queries and single queries, vs the
//!   same-run faer GEMM ceiling and memory-read floor;
//! - analyses: each analysis on a target vs a reference of the same shape,
//!   through the server: seconds and the server's peak extra memory.
//!
//! Sizes: full (n = 100,000), or `--quick` (n = 50,000; analyses 20,000).
//! Seeded data; see `BENCHMARKS.md` for every key. Command (release):
//!
//! ```text
//! cargo build --release -p mutant-server
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo bench -p mutant-tests --bench suite -- --quick --json out.json
//! ```
//!
//! Without `MUTANT_CLICKHOUSE_URL`, `scripts/clickhouse.sh start` runs first.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use mutant_client::Client;
use mutant_core::kernels::{DatasetView, ExactIndex, Execution, Metric};
use mutant_tests::bench::ingest::{IngestShape, measure};
use mutant_tests::bench::{Figure, Ratio, Report, analyses, argument, flag, knn, load, size_tag};
use mutant_tests::{ServerProcess, start_clickhouse};

const DIMENSION: usize = 384;
const N_QUERIES: usize = 1_000;
const K: usize = 10;

/// Sizes of one run.
struct Sizes {
    /// Rows per ingest run with batches of 5,000.
    ingest_large_rows: usize,
    /// Rows per driver run with batches of 100 (100-row INSERTs are slow).
    ingest_small_driver_rows: usize,
    /// Rows per SDK run with batches of 100.
    ingest_small_sdk_rows: usize,
    /// Rounds of each ingest measurement; the median counts.
    ingest_rounds: usize,
    /// The 384-d load, kNN dataset.
    n_rows: usize,
    /// The 128-d load.
    n_rows_128: usize,
    load_runs: usize,
    /// Rows of the analysis target and of its reference.
    analysis_rows: usize,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            ingest_large_rows: 100_000,
            ingest_small_driver_rows: 10_000,
            ingest_small_sdk_rows: 40_000,
            ingest_rounds: 3,
            n_rows: 100_000,
            n_rows_128: 1_000_000,
            load_runs: 5,
            analysis_rows: 100_000,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            ingest_large_rows: 20_000,
            ingest_small_driver_rows: 2_000,
            ingest_small_sdk_rows: 8_000,
            ingest_rounds: 1,
            n_rows: 50_000,
            n_rows_128: 500_000,
            load_runs: 3,
            analysis_rows: 20_000,
        }
    }
}

async fn ingest_section(report: &mut Report, sizes: &Sizes) {
    report.comment(&format!(
        "ingest: rows/s, SDK via the release server vs driver INSERTs of the same batches, \
         median of {} rounds, each on an empty database",
        sizes.ingest_rounds
    ));
    for batch in [100, 5_000] {
        for n_writers in [1, 4] {
            let (driver_rows, sdk_rows) = if batch == 100 {
                (sizes.ingest_small_driver_rows, sizes.ingest_small_sdk_rows)
            } else {
                (sizes.ingest_large_rows, sizes.ingest_large_rows)
            };
            let shape = |n_rows| IngestShape {
                dimension: DIMENSION,
                batch,
                n_writers,
                n_rows,
            };
            let rates = measure(shape(driver_rows), shape(sdk_rows), sizes.ingest_rounds).await;
            let tag = format!("b{batch}_w{n_writers}");
            let driver_key = format!("ingest_driver_{tag}_rows_per_s");
            report.baseline(&driver_key, rates.driver, "rows/s");
            report.versus(
                Figure {
                    key: &format!("ingest_sdk_{tag}_rows_per_s"),
                    value: rates.sdk,
                    unit: "rows/s",
                },
                &driver_key,
                Ratio {
                    key: &format!("ingest_{tag}_ratio"),
                    value: rates.sdk / rates.driver,
                    meaning: "SDK / driver rows/s",
                },
            );
        }
    }
}

async fn load_section(report: &mut Report, sizes: &Sizes) {
    let store = load::bench_store().await;
    report.comment(&format!(
        "load: best of {} cold Records::load vs raw RowBinary fetch of the same statement",
        sizes.load_runs
    ));
    for (n_rows, dimension) in [(sizes.n_rows, DIMENSION), (sizes.n_rows_128, 128)] {
        let name = load::ensure_dataset(&store, n_rows, dimension).await;
        let times = load::measure(&store, &name, sizes.load_runs).await;
        let tag = format!("{}_{dimension}", size_tag(n_rows));
        let raw_key = format!("load_raw_{tag}_s");
        report.baseline(&raw_key, times.raw.as_secs_f64(), "s");
        report.baseline(
            &format!("load_raw_{tag}_mib"),
            times.n_bytes as f64 / f64::from(1 << 20),
            "MiB",
        );
        report.versus(
            Figure {
                key: &format!("load_{tag}_s"),
                value: times.load.as_secs_f64(),
                unit: "s",
            },
            &raw_key,
            Ratio {
                key: &format!("load_{tag}_ratio"),
                value: times.raw.as_secs_f64() / times.load.as_secs_f64(),
                meaning: "load speed / raw fetch speed, target >= 0.8",
            },
        );
    }
}

/// The GFLOP/s of a plain faer matmul of 1,000 queries against `n_rows` x 384.
fn measure_ceiling(report: &mut Report, n_rows: usize, threads: usize) -> f64 {
    let dataset_values = knn::generate(0, n_rows * DIMENSION);
    let query_values = knn::generate(1, N_QUERIES * DIMENSION);
    let dataset = DatasetView::new(&dataset_values, DIMENSION).expect("the data has the dimension");
    let queries =
        DatasetView::new(&query_values, DIMENSION).expect("the queries have the dimension");
    let mut product = vec![0.0f32; N_QUERIES * n_rows];
    let gemm = knn::gemm_time(&queries, &dataset, &mut product, threads, 3);
    let flops = 2.0 * (n_rows * DIMENSION * N_QUERIES) as f64;
    let gflops = flops / gemm.as_secs_f64() / 1e9;
    let tag = format!("{}_{DIMENSION}", size_tag(n_rows));
    report.baseline(&format!("gemm_q1000_{tag}_s"), gemm.as_secs_f64(), "s");
    report.baseline("gemm_ceiling_gflops", gflops, "GFLOP/s");
    gflops
}

fn knn_section(
    report: &mut Report,
    sizes: &Sizes,
    threads: usize,
) -> Result<f64, mutant_core::Error> {
    report.comment(&format!(
        "knn: exact l2, k = {K}, {threads} threads, seeded data (seed {})",
        knn::SEED
    ));
    let ceiling = measure_ceiling(report, sizes.n_rows, threads);
    let dataset_values = knn::generate(0, sizes.n_rows * DIMENSION);
    let query_values = knn::generate(1, N_QUERIES * DIMENSION);
    let dataset = DatasetView::new(&dataset_values, DIMENSION)?;
    let queries = DatasetView::new(&query_values, DIMENSION)?;
    let execution = Execution::new().with_threads(threads);
    let index = ExactIndex::new(dataset, Metric::L2, &execution)?;
    let tag = format!("{}_{DIMENSION}", size_tag(sizes.n_rows));
    let flops = 2.0 * (sizes.n_rows * DIMENSION * N_QUERIES) as f64;

    let batch = knn::batch_time(&index, &queries, K, &execution, 3)?;
    let knn_gflops = flops / batch.as_secs_f64() / 1e9;
    report.versus(
        Figure {
            key: &format!("knn_q1000_{tag}_s"),
            value: batch.as_secs_f64(),
            unit: "s",
        },
        "gemm_ceiling_gflops",
        Ratio {
            key: &format!("knn_q1000_{tag}_ratio"),
            value: knn_gflops / ceiling,
            meaning: "kNN GFLOP/s / plain GEMM GFLOP/s",
        },
    );
    report.note(&format!("knn_q1000_{tag}_gflops"), knn_gflops);

    let (single, read) = knn::single_and_read_times(
        &index,
        &dataset,
        &queries,
        K,
        &execution,
        knn::SINGLE_QUERY_RUNS,
    )?;
    let read_key = format!("memory_read_{tag}_s");
    report.baseline(&read_key, read.as_secs_f64(), "s");
    report.note(
        "memory_read_gb_per_s",
        (sizes.n_rows * DIMENSION * 4) as f64 / read.as_secs_f64() / 1e9,
    );
    report.versus(
        Figure {
            key: &format!("knn_q1_{tag}_s"),
            value: single.as_secs_f64(),
            unit: "s",
        },
        &read_key,
        Ratio {
            key: &format!("knn_q1_{tag}_ratio"),
            value: single.as_secs_f64() / read.as_secs_f64(),
            meaning: "single query / one read of the matrix",
        },
    );
    Ok(ceiling)
}

async fn analyses_section(report: &mut Report, sizes: &Sizes, ceiling_gflops: f64) {
    let server = ServerProcess::start("suite_analyses").await;
    let client = Client::new(&server.url).expect("the server URL parses");
    let n_rows = sizes.analysis_rows;
    analyses::prepare(&client, n_rows, DIMENSION).await;
    let tag = format!("{}_{DIMENSION}", size_tag(n_rows));
    let cross_key = format!("gemm_cross_{tag}_s");
    let cross_seconds = 2.0 * (n_rows * n_rows * DIMENSION) as f64 / (ceiling_gflops * 1e9);
    let data_bytes = (2 * n_rows * DIMENSION * 4) as f64;
    let data_key = format!("analysis_data_{tag}_mib");
    report.comment(&format!(
        "analyses: target {n_rows} x {DIMENSION} vs reference {n_rows} x {DIMENSION}, through the server; \
         seconds vs one target x reference GEMM at the same-run ceiling, peak extra server RSS vs both matrices' bytes"
    ));
    report.baseline(&cross_key, cross_seconds, "s");
    report.baseline(&data_key, data_bytes / f64::from(1 << 20), "MiB");
    for run in analyses::run_all(&server, DIMENSION).await {
        let key = format!("analysis_{}_{tag}", run.kind);
        report.versus(
            Figure {
                key: &format!("{key}_s"),
                value: run.wall.as_secs_f64(),
                unit: "s",
            },
            &cross_key,
            Ratio {
                key: &format!("{key}_ratio"),
                value: run.wall.as_secs_f64() / cross_seconds,
                meaning: "seconds / one cross GEMM at the ceiling",
            },
        );
        if let Some(bytes) = run.peak_extra_bytes {
            report.versus(
                Figure {
                    key: &format!("{key}_peak_mib"),
                    value: bytes as f64 / f64::from(1 << 20),
                    unit: "MiB",
                },
                &data_key,
                Ratio {
                    key: &format!("{key}_peak_ratio"),
                    value: bytes as f64 / data_bytes,
                    meaning: "peak extra RSS / target + reference matrices",
                },
            );
        }
    }
}

fn machine_notes(report: &mut Report, quick: bool, threads: usize) {
    report.note("mode", if quick { "quick" } else { "full" });
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    report.note("date_utc", date);
    report.note("threads", threads);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    report.note("cpu_model", model);
    if let Some(total) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|meminfo| meminfo.lines().next().map(str::to_owned))
    {
        report.note("memory_total", total.trim_start_matches("MemTotal:").trim());
    }
}

#[tokio::main]
async fn main() -> Result<(), mutant_core::Error> {
    let quick = flag("--quick");
    let sizes = if quick { Sizes::quick() } else { Sizes::full() };
    let sections = argument("--sections").unwrap_or_else(|| "ingest,load,knn,analyses".to_owned());
    let wants = |name: &str| sections.split(',').any(|section| section == name);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let started = Instant::now();

    let mut report = Report::default();
    machine_notes(&mut report, quick, threads);
    let url = start_clickhouse();
    let version: String = load::bench_store()
        .await
        .client()
        .query("SELECT version()")
        .fetch_one()
        .await
        .unwrap_or_default();
    report.note("clickhouse_version", version);
    report.note("clickhouse_url", url);

    if wants("ingest") {
        ingest_section(&mut report, &sizes).await;
    }
    if wants("load") {
        load_section(&mut report, &sizes).await;
    }
    let mut ceiling = None;
    if wants("knn") {
        ceiling = Some(knn_section(&mut report, &sizes, threads)?);
    }
    if wants("analyses") {
        let ceiling = match ceiling {
            Some(ceiling) => ceiling,
            None => measure_ceiling(&mut report, sizes.n_rows, threads),
        };
        analyses_section(&mut report, &sizes, ceiling).await;
    }
    report.note("total_s", started.elapsed().as_secs_f64());

    println!("{}", report.table());
    if let Some(path) = argument("--json") {
        std::fs::write(&path, report.json())
            .unwrap_or_else(|error| panic!("cannot write {path}: {error}"));
        println!("# figures written to {path}");
    }
    Ok(())
}
