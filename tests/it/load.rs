//! A bounded load test: 8 concurrent SDK clients mixing writes, kNN queries
//! and analyses against one real server for a fixed time (60 s, or
//! `MUTANT_LOAD_SECONDS`), on loopback. Every request must succeed; the
//! throughput and p50/p99 latency per kind of request are printed.

use std::time::{Duration, Instant};

use mutant_client::vocabulary::JobStatus;
use mutant_client::wire::{KnnRequest, StartAnalysisRequest};
use mutant_client::{Client, NewDataset, Record};
use mutant_tests::ServerProcess;

use crate::e2e_support::{metric_value, metrics};

const N_CLIENTS: usize = 8;
const DIMENSION: usize = 32;

fn vector(seed: usize) -> Vec<f32> {
    (0..DIMENSION)
        .map(|axis| ((seed * 7919 + axis * 104_729) % 1000) as f32 / 1000.0)
        .collect()
}

/// The 10 nearest records to `vector(seed)`.
fn knn_request(seed: usize) -> KnnRequest {
    KnnRequest {
        queries: vec![vector(seed)],
        k: 10,
        filter: None,
        include: None,
    }
}

#[derive(Debug, Default)]
struct Latencies {
    writes: Vec<Duration>,
    queries: Vec<Duration>,
    analyses: Vec<Duration>,
}

fn summary(name: &str, mut times: Vec<Duration>, seconds: f64) -> String {
    times.sort();
    let percentile = |fraction: f64| {
        times
            .get(((times.len() as f64 - 1.0) * fraction).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    format!(
        "{name:<9} {:>6} requests  {:>8.1}/s  p50 {:>7.1} ms  p99 {:>7.1} ms",
        times.len(),
        times.len() as f64 / seconds,
        percentile(0.5).as_secs_f64() * 1e3,
        percentile(0.99).as_secs_f64() * 1e3
    )
}

async fn one_client(client: Client, client_idx: usize, deadline: Instant) -> Latencies {
    let mut latencies = Latencies::default();
    let mut op = 0usize;
    while Instant::now() < deadline {
        op += 1;
        let started = Instant::now();
        if op.is_multiple_of(25) {
            let request = StartAnalysisRequest {
                kind: "mislabel".into(),
                target: "fixed".into(),
                reference: None,
                params: None,
            };
            let status = client
                .run_analysis(&request, |_| {})
                .await
                .unwrap_or_else(|error| panic!("analysis failed under load: {error}"));
            assert_eq!(status.status, JobStatus::Done);
            latencies.analyses.push(started.elapsed());
        } else if op.is_multiple_of(2) {
            let batch: Vec<Record> = (0..50)
                .map(|row| {
                    Record::new(format!("c{client_idx}-{op}-{row}"), vector(op * 50 + row))
                        .with_label(format!("k{}", row % 4))
                })
                .collect();
            client
                .upsert("growing", &batch)
                .await
                .unwrap_or_else(|error| panic!("write failed under load: {error}"));
            latencies.writes.push(started.elapsed());
        } else {
            client
                .knn("growing", &knn_request(op))
                .await
                .unwrap_or_else(|error| panic!("kNN failed under load: {error}"));
            latencies.queries.push(started.elapsed());
        }
    }
    latencies
}

#[test]
fn eight_clients_mixing_writes_knn_and_analyses_see_no_errors() {
    crate::e2e_support::run(|| async {
        let seconds: u64 = std::env::var("MUTANT_LOAD_SECONDS")
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or(60);
        let server = ServerProcess::start("load").await;
        let client = Client::new(&server.url).unwrap();
        for name in ["growing", "fixed"] {
            client
                .create_dataset(&NewDataset::new(name, DIMENSION))
                .await
                .unwrap();
        }
        let fixed: Vec<Record> = (0..2_000)
            .map(|index| {
                Record::new(format!("f{index}"), vector(index))
                    .with_label(format!("k{}", index % 4))
            })
            .collect();
        client.upsert("fixed", &fixed).await.unwrap();
        client.upsert("growing", &fixed[..100]).await.unwrap();

        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..N_CLIENTS)
            .map(|client_idx| tokio::spawn(one_client(client.clone(), client_idx, deadline)))
            .collect();
        let mut all = Latencies::default();
        for task in tasks {
            let latencies = task.await.unwrap();
            all.writes.extend(latencies.writes);
            all.queries.extend(latencies.queries);
            all.analyses.extend(latencies.analyses);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let n_written = all.writes.len() * 50;
        eprintln!("load test: {N_CLIENTS} clients for {elapsed:.1} s, 0 errors");
        eprintln!("{}", summary("writes", all.writes, elapsed));
        eprintln!("{}", summary("kNN", all.queries, elapsed));
        eprintln!("{}", summary("analyses", all.analyses, elapsed));
        assert_eq!(
            client.count("growing", None).await.unwrap(),
            n_written + 100,
            "every acknowledged write is stored once"
        );
        // A client's last write may come after every query: one more query
        // makes the cache read it, so the rows fetched cover every write.
        client.knn("growing", &knn_request(0)).await.unwrap();
        // The SDK retries what fails; the server's own counts show whether
        // anything needed it.
        let page = metrics(&server).await;
        let server_errors: Vec<&str> = page
            .lines()
            .filter(|line| line.starts_with("mutant_requests_total") && line.contains("status=\"5"))
            .collect();
        assert!(
            server_errors.is_empty(),
            "server errors under load: {server_errors:?}"
        );
        let counter = |name: &str| {
            metric_value(&page, name).unwrap_or_else(|| panic!("{name} missing from /metrics"))
        };
        assert!(counter("mutant_cache_hits_total") > 0.0, "{page}");
        assert!(counter("mutant_cache_refreshes_total") > 0.0, "{page}");
        assert!(
            counter("mutant_cache_rows_fetched_total") >= n_written as f64,
            "{page}"
        );
        let held = counter("mutant_cache_bytes");
        assert!(
            held > 0.0 && held <= counter("mutant_cache_max_bytes"),
            "{page}"
        );
    });
}
