//! The Rust side of the Python SDK's benchmark (`scripts/py_bench.sh`, which
//! runs this program and the Python side alternately against one release
//! server and reports their ratios): one measurement per run, on the data
//! the Python driver wrote to raw little-endian f32 files, so both sides send
//! the same bytes.
//!
//! - `--measure upsert`: builds `Record`s from the matrix (ids `r000000`,
//!   ...) and streams them through a `BatchWriter` (5,000 records and 32 MiB
//!   per batch, 16 in flight: what the Python SDK's `upsert` uses) into a new
//!   dataset, `finish` included; prints `{"rows_per_second": x}`.
//! - `--measure knn`: `--repeats` times, one kNN request of every query row
//!   (`k` neighbours, ids and distances), from the matrix to the decoded
//!   answer; prints `{"seconds": [..]}`.
//!
//! ```text
//! cargo bench -p mutant-tests --bench python_baseline -- --url http://127.0.0.1:7311 \
//!     --measure upsert --data vectors.f32 --rows 100000 --dimension 384 --dataset name
//! cargo bench -p mutant-tests --bench python_baseline -- --url http://127.0.0.1:7311 \
//!     --measure knn --data queries.f32 --rows 1000 --dimension 384 --dataset name --k 10 --repeats 3
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use mutant_client::wire::KnnRequest;
use mutant_client::{BatchWriterConfig, Client, Metric, NewDataset, Record};
use mutant_tests::bench::argument;

fn required(name: &str) -> String {
    argument(name).unwrap_or_else(|| panic!("{name} is required; see the program's docs"))
}

fn read_matrix(path: &str, n_rows: usize, dimension: usize) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("cannot read {path}: {error}"));
    assert_eq!(
        bytes.len(),
        n_rows * dimension * 4,
        "{path} does not hold {n_rows} x {dimension} f32 values"
    );
    bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().unwrap()))
        .collect()
}

async fn upsert_rows_per_second(
    client: &Client,
    dataset: &str,
    values: &[f32],
    dimension: usize,
) -> f64 {
    let n_rows = values.len() / dimension;
    let ids: Vec<String> = (0..n_rows).map(|index| format!("r{index:06}")).collect();
    client
        .create_dataset(&NewDataset::new(dataset, dimension).with_metric(Metric::L2))
        .await
        .expect("the dataset is created");
    let config = BatchWriterConfig::default()
        .with_max_batch_records(5_000)
        .with_max_batch_bytes(32 << 20)
        .with_max_in_flight(16);
    let started = Instant::now();
    let records: Vec<Record> = ids
        .iter()
        .zip(values.chunks_exact(dimension))
        .map(|(id, row)| Record::new(id.clone(), row.to_vec()))
        .collect();
    let mut writer = client
        .batch_writer(dataset, config)
        .expect("a writer opens");
    for record in records {
        writer.write(record).await.expect("the record is queued");
    }
    let summary = writer.finish().await.expect("every batch is stored");
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(summary.n_records_written, n_rows as u64);
    n_rows as f64 / elapsed
}

async fn knn_seconds(
    client: &Client,
    dataset: &str,
    queries: &[f32],
    dimension: usize,
    k: usize,
    repeats: usize,
) -> Vec<f64> {
    let mut seconds = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let request = KnnRequest {
            queries: queries
                .chunks_exact(dimension)
                .map(<[f32]>::to_vec)
                .collect(),
            k,
            filter: None,
            include: None,
        };
        let results = client
            .knn(dataset, &request)
            .await
            .expect("the kNN is answered");
        seconds.push(started.elapsed().as_secs_f64());
        assert_eq!(results.len(), queries.len() / dimension);
    }
    seconds
}

fn main() {
    let url = required("--url");
    let measure = required("--measure");
    let dataset = required("--dataset");
    let n_rows: usize = required("--rows").parse().unwrap();
    let dimension: usize = required("--dimension").parse().unwrap();
    let values = read_matrix(&required("--data"), n_rows, dimension);
    // Two worker threads, as the Python client's runtime has.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = Client::new(&url).unwrap();
    runtime.block_on(async {
        match measure.as_str() {
            "upsert" => {
                let rate = upsert_rows_per_second(&client, &dataset, &values, dimension).await;
                println!("{{\"rows_per_second\": {rate}}}");
            }
            "knn" => {
                let k: usize = required("--k").parse().unwrap();
                let repeats: usize = argument("--repeats").map_or(3, |text| text.parse().unwrap());
                let seconds = knn_seconds(&client, &dataset, &values, dimension, k, repeats).await;
                println!("{{\"seconds\": {seconds:?}}}");
            }
            other => panic!("--measure {other}: use upsert or knn"),
        }
    });
}
