//! Issue 13's timing targets, each next to its baseline measured in the
//! same run, through the real server (except the last, in process):
//!
//! 1. `/healthz` and a one-record write while 12 heavy analyses are queued
//!    or running, against the same requests on the idle server. Target:
//!    p99 under 100 ms. Every request opens its own connection, as a new
//!    client would, so the accept path is measured too.
//! 2. The same requests while 300 half-open connections (a partial request
//!    head, never finished) are held, against none. Target: p95 under 1 s,
//!    and the server closes the 300 within its header timeout.
//! 3. How long a running `select` takes to stop once cancelled, against the
//!    heartbeat it is noticed at.
//! 4. `select`'s picks with k-center spreading for `n` and `10 n`: the time
//!    ratio stays near 10 (n log n), where the former exact spreading grew
//!    with the square of `n` and more.
//!
//! Data: seeded (`bench::seeded_vector`); 60,000 x 64 for the analyses (so
//! that the 12 still run when the 20 s of sampling end),
//! a 4-d dataset for the writes. `-- --in-flight N` sets the server's
//! `MUTANT_ANALYSES_IN_FLIGHT` (else its default).
//!
//! ```text
//! scripts/clickhouse.sh start
//! cargo build --release -p mutant-server
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo bench -p mutant-tests --bench hardening
//! # or, without a release build (the server beside the bench binary is then the debug one):
//! cargo build -p mutant-server && cargo bench -p mutant-tests --bench hardening --profile dev
//! ```
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use mutant_client::vocabulary::JobStatus;
use mutant_client::wire::StartAnalysisRequest;
use mutant_client::{Client, NewDataset, Record};
use mutant_core::kernels::{
    DatasetView, Execution, KCenter, KnnOptions, Metric, ScoreQuota, SelectOptions, knn_graph,
    select,
};
use mutant_tests::ServerProcess;
use mutant_tests::bench::{Figure, Ratio, Report, argument, seeded_vector};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const HEAVY_ROWS: usize = 60_000;
const HEAVY_DIMENSION: usize = 64;
const N_ANALYSES: usize = 12;
const N_HALF_OPEN: usize = 300;
const IDLE_SAMPLES: usize = 100;

/// One request on a fresh connection; its status and how long it took.
async fn timed(address: &str, request: &[u8]) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let status = std::str::from_utf8(&answer[9.min(answer.len())..12.min(answer.len())])
        .ok()
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, started.elapsed())
}

fn healthz(address: &str) -> Vec<u8> {
    format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").into_bytes()
}

fn small_write(address: &str, index: usize) -> Vec<u8> {
    let body =
        json!({"records": [{"id": format!("w{index}"), "vector": [index as f32, 1.0, 2.0, 3.0]}]})
            .to_string();
    format!(
        "POST /v1/datasets/writes/records HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Latencies of `/healthz` and of a small write, one pair every 20 ms,
/// until `samples` pairs or until `stop` says so.
async fn sample(
    address: &str,
    samples: usize,
    first_write: usize,
    mut stop: impl FnMut() -> bool,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut health, mut writes) = (Vec::new(), Vec::new());
    for index in 0..samples {
        if stop() {
            break;
        }
        let (status, took) = timed(address, &healthz(address)).await;
        assert_eq!(status, 200);
        health.push(took);
        let (status, took) = timed(address, &small_write(address, first_write + index)).await;
        assert_eq!(status, 200);
        writes.push(took);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (health, writes)
}

fn percentile(mut times: Vec<Duration>, fraction: f64) -> f64 {
    times.sort();
    let index = ((times.len() as f64 * fraction).ceil() as usize).clamp(1, times.len()) - 1;
    times[index].as_secs_f64() * 1_000.0
}

fn request(kind: &str, params: Value) -> StartAnalysisRequest {
    let params: Map<String, Value> = params.as_object().cloned().unwrap();
    StartAnalysisRequest {
        kind: kind.into(),
        target: "heavy".into(),
        reference: None,
        params: Some(params),
    }
}

async fn fill_heavy(client: &Client) {
    client
        .create_dataset(&NewDataset::new("heavy", HEAVY_DIMENSION))
        .await
        .unwrap();
    let records: Vec<Record> = (0..HEAVY_ROWS)
        .map(|row| {
            Record::new(
                format!("h{row:06}"),
                seeded_vector(row as u64, HEAVY_DIMENSION),
            )
        })
        .collect();
    for batch in records.chunks(5_000) {
        client.upsert("heavy", batch).await.unwrap();
    }
    client
        .create_dataset(&NewDataset::new("writes", 4))
        .await
        .unwrap();
}

/// Starts the 12 heavy analyses: a mix of kinds that each build the
/// self-kNN graph of the 20,000 x 64 dataset.
async fn start_heavy(client: &Client) -> Vec<Uuid> {
    let kinds = [
        ("uniqueness", json!({"k": 10})),
        ("near_duplicates", json!({})),
        (
            "select",
            json!({"n": 2_000, "weights": {"uniqueness": 1.0}, "diversity": true}),
        ),
        ("projection", json!({"method": "pca"})),
    ];
    let mut ids = Vec::new();
    for index in 0..N_ANALYSES {
        let (kind, params) = &kinds[index % kinds.len()];
        ids.push(
            client
                .start_analysis(&request(kind, params.clone()))
                .await
                .unwrap()
                .id,
        );
    }
    ids
}

async fn unfinished(client: &Client, ids: &[Uuid]) -> usize {
    let mut count = 0;
    for id in ids {
        if !client.analysis_status(*id).await.unwrap().status.is_final() {
            count += 1;
        }
    }
    count
}

fn report_pair(
    report: &mut Report,
    name: &str,
    under_load: (Vec<Duration>, Vec<Duration>),
    idle: (Vec<Duration>, Vec<Duration>),
    fraction: f64,
    target: &str,
) {
    let quantile = format!("p{}", (fraction * 100.0).round());
    for (what, loaded, baseline) in [
        ("healthz", under_load.0, idle.0),
        ("small_write", under_load.1, idle.1),
    ] {
        report.note(
            &format!("{what}_p50_ms_{name}"),
            percentile(loaded.clone(), 0.5),
        );
        report.note(
            &format!("{what}_p50_ms_idle_{name}"),
            percentile(baseline.clone(), 0.5),
        );
        let baseline_key = format!("{what}_{quantile}_ms_idle_{name}");
        let baseline_value = percentile(baseline, fraction);
        report.baseline(&baseline_key, baseline_value, "ms");
        let value = percentile(loaded.clone(), fraction);
        report.versus(
            Figure {
                key: &format!("{what}_{quantile}_ms_{name}"),
                value,
                unit: "ms",
            },
            &baseline_key,
            Ratio {
                key: &format!("{what}_{quantile}_{name}_vs_idle"),
                value: value / baseline_value.max(1e-9),
                meaning: target,
            },
        );
        report.note(&format!("{what}_samples_{name}"), loaded.len());
    }
}

async fn under_analyses(report: &mut Report) {
    let in_flight = argument("--in-flight");
    let env: Vec<(&str, &str)> = in_flight
        .as_deref()
        .map(|count| ("MUTANT_ANALYSES_IN_FLIGHT", count))
        .into_iter()
        .collect();
    let server = ServerProcess::start_with("hardening_bench_admission", &env).await;
    let in_flight = in_flight.unwrap_or_else(|| "the default".to_owned());
    let client = Client::new(&server.url).unwrap();
    let address = server.url.trim_start_matches("http://").to_owned();
    fill_heavy(&client).await;
    // Load the dataset once, so the idle figures do not pay for it.
    let warm = client
        .start_analysis(&request("uniqueness", json!({"k": 5})))
        .await
        .unwrap();
    client.wait_for_analysis(warm.id, |_| {}).await.unwrap();

    let idle = sample(&address, IDLE_SAMPLES, 0, || false).await;
    let ids = start_heavy(&client).await;
    let started = Instant::now();
    let window = Duration::from_secs(20);
    let loaded = sample(&address, 1_000, IDLE_SAMPLES, || started.elapsed() > window).await;
    let still_busy = unfinished(&client, &ids).await;
    report.note("analyses_unfinished_after_window", still_busy);
    report.comment(&format!(
        "{N_ANALYSES} heavy analyses on {HEAVY_ROWS} x {HEAVY_DIMENSION}, MUTANT_ANALYSES_IN_FLIGHT {in_flight}; {still_busy} still queued or running when sampling stopped after {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    report_pair(
        report,
        "12_analyses",
        loaded,
        idle,
        0.99,
        "target: under 100 ms",
    );
    for id in ids {
        client.cancel_analysis(id).await.unwrap();
    }

    // How long a running select takes to stop once cancelled.
    let select_job = client
        .start_analysis(&request(
            "select",
            json!({"n": 10_000, "weights": {"uniqueness": 1.0}, "diversity": true}),
        ))
        .await
        .unwrap();
    loop {
        let status = client.analysis_status(select_job.id).await.unwrap();
        if status.status == JobStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Well inside its run: the release build's whole select takes about
    // 0.3 s here since the self-graph computes half the products.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let asked = Instant::now();
    client.cancel_analysis(select_job.id).await.unwrap();
    let stopped = loop {
        let status = client.analysis_status(select_job.id).await.unwrap();
        if status.status.is_final() {
            assert_eq!(status.status, JobStatus::Cancelled, "{status:?}");
            break asked.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    report.baseline("analysis_heartbeat_s", 1.0, "s");
    report.versus(
        Figure {
            key: "select_cancel_to_cancelled_s",
            value: stopped.as_secs_f64(),
            unit: "s",
        },
        "analysis_heartbeat_s",
        Ratio {
            key: "select_cancel_vs_heartbeat",
            value: stopped.as_secs_f64(),
            meaning: "target: within a second",
        },
    );
}

/// Opens a connection, sends half a request head, and waits for the server
/// to close it; returns how long after the connection was established.
async fn half_open(address: String) -> Duration {
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let since = Instant::now();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return since.elapsed(),
            Ok(_) => {}
        }
    }
}

async fn beside_half_open(report: &mut Report) {
    let server = ServerProcess::start("hardening_bench_half_open").await;
    let client = Client::new(&server.url).unwrap();
    client
        .create_dataset(&NewDataset::new("writes", 4))
        .await
        .unwrap();
    let address = server.url.trim_start_matches("http://").to_owned();
    let idle = sample(&address, IDLE_SAMPLES, 0, || false).await;
    let holders: Vec<_> = (0..N_HALF_OPEN)
        .map(|_| tokio::spawn(half_open(address.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = sample(&address, IDLE_SAMPLES, IDLE_SAMPLES, || false).await;
    report.comment(&format!(
        "{N_HALF_OPEN} half-open connections held while sampling (default header timeout 10 s)"
    ));
    report_pair(
        report,
        "300_half_open",
        held,
        idle,
        0.95,
        "target: under 1 s",
    );
    let mut last_closed = Duration::ZERO;
    for holder in holders {
        last_closed = last_closed.max(holder.await.unwrap());
    }
    report.baseline("header_timeout_s", 10.0, "s");
    report.versus(
        Figure {
            key: "half_open_longest_open_s",
            value: last_closed.as_secs_f64(),
            unit: "s",
        },
        "header_timeout_s",
        Ratio {
            key: "half_open_closed_vs_header_timeout",
            value: last_closed.as_secs_f64() / 10.0,
            meaning: "target: about 1 (closed at the timeout)",
        },
    );
}

/// `select`'s picks with spreading, for `n` and `10 n` from 50,000 rows.
fn select_scaling(report: &mut Report) {
    let n_rows = 50_000;
    let dimension = 4;
    let values: Vec<f32> = (0..n_rows)
        .flat_map(|row| seeded_vector(row as u64, dimension))
        .collect();
    let dataset = DatasetView::new(&values, dimension).unwrap();
    let graph = knn_graph(
        &dataset,
        Metric::L2,
        &KnnOptions::new(10),
        &Execution::new(),
    )
    .unwrap();
    let first: Vec<u32> = (0..n_rows as u32).collect();
    let second: Vec<u32> = (0..n_rows as u32).rev().collect();
    let quotas = [
        ScoreQuota {
            ranking: &first,
            weight: 1.0,
        },
        ScoreQuota {
            ranking: &second,
            weight: 1.0,
        },
    ];
    let time_for = |n: usize| {
        let options = SelectOptions {
            n,
            quotas: &quotas,
            random_weight: 0.2,
            eligible: None,
            duplicates: &[],
            spread: Some(KCenter {
                graph: &graph,
                pool_factor: 4,
            }),
            seed: 7,
        };
        let started = Instant::now();
        let picked = select(n_rows, &options, &Execution::new()).unwrap();
        assert_eq!(picked.len(), n);
        started.elapsed().as_secs_f64()
    };
    let small = time_for(2_000);
    let large = time_for(20_000);
    report.baseline("select_2000_picks_s", small, "s");
    report.versus(
        Figure {
            key: "select_20000_picks_s",
            value: large,
            unit: "s",
        },
        "select_2000_picks_s",
        Ratio {
            key: "select_10x_picks_time_ratio",
            value: large / small,
            meaning: "n log n: about 10-15; quadratic: 100",
        },
    );
}

#[tokio::main]
async fn main() {
    let mut report = Report::default();
    under_analyses(&mut report).await;
    beside_half_open(&mut report).await;
    select_scaling(&mut report);
    println!("{}", report.table());
    println!("{}", report.json());
}
