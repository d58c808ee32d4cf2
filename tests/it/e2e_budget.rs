//! The memory budget of analyses (issue 13, item 1), through the real
//! server: an analysis estimated over `MUTANT_ANALYSIS_BYTES` is refused by
//! `POST /v1/analyses` with 413 `analysis_too_large` (the SDK's
//! `Error::AnalysisTooLarge`) and nothing is queued; under it, the same
//! request is accepted; and the drift that asked for 51 GB runs in bounded
//! memory.

use std::time::{Duration, Instant};

use mutant_client::vocabulary::JobStatus;
use mutant_client::wire::StartAnalysisRequest;
use mutant_client::{Client, Error, NewDataset, Record};
use mutant_tests::ServerProcess;
use mutant_tests::bench::status_kib;
use serde_json::{Map, Value, json};

fn request(kind: &str, reference: Option<&str>, params: Value) -> StartAnalysisRequest {
    let params: Map<String, Value> = params.as_object().cloned().expect("params are an object");
    StartAnalysisRequest {
        kind: kind.into(),
        target: "target".into(),
        reference: reference.map(str::to_owned),
        params: Some(params),
    }
}

/// Writes `name`: `n_records` vectors of `dimension` (a fixed sequence,
/// shifted by `offset`), labelled and predicted in 4 classes.
async fn fill(client: &Client, name: &str, n_records: usize, dimension: usize, offset: f32) {
    client
        .create_dataset(&NewDataset::new(name, dimension))
        .await
        .unwrap();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d ^ offset.to_bits() as u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let records: Vec<Record> = (0..n_records)
        .map(|index| {
            let vector = (0..dimension).map(|_| next() + offset).collect();
            let class = format!("c{}", index % 4);
            Record::new(format!("r{index:06}"), vector)
                .with_label(class.clone())
                .with_prediction(class)
        })
        .collect();
    for batch in records.chunks(20_000) {
        client.upsert(name, batch).await.unwrap();
    }
}

/// The answer (status line, headers and body) to `GET path`.
async fn get(server: &ServerProcess, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// Every kind with the reference and parameters it takes.
fn every_kind() -> Vec<StartAnalysisRequest> {
    vec![
        request("boundary_uncertainty", Some("reference"), json!({})),
        request("activation_uncertainty", Some("reference"), json!({})),
        request("class_outlier", Some("reference"), json!({})),
        request("mislabel", None, json!({})),
        request("novelty", Some("reference"), json!({})),
        request("uniqueness", None, json!({})),
        request("near_duplicates", None, json!({})),
        request("drift", Some("reference"), json!({})),
        request("select", Some("reference"), json!({"n": 50})),
        request("projection", None, json!({})),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_refused_over_a_small_budget_and_accepted_under_it() {
    // 1 MiB: below what any kind needs for 3,000 records.
    let small =
        ServerProcess::start_with("budget_kinds", &[("MUTANT_ANALYSIS_BYTES", "1048576")]).await;
    // A budget well over every kind's estimate here (the second server
    // would otherwise take the first one's environment).
    let roomy =
        ServerProcess::start_beside_with(&small, &[("MUTANT_ANALYSIS_BYTES", "2147483648")]).await;
    let refusing = Client::new(&small.url).unwrap();
    let accepting = Client::new(&roomy.url).unwrap();
    fill(&refusing, "target", 3_000, 8, 0.0).await;
    fill(&refusing, "reference", 3_000, 8, 0.1).await;
    for request in every_kind() {
        let error = refusing.start_analysis(&request).await.unwrap_err();
        let Error::AnalysisTooLarge { message } = &error else {
            panic!("{}: expected AnalysisTooLarge, got {error:?}", request.kind);
        };
        assert_eq!(error.code(), Some("analysis_too_large"));
        assert!(
            message.contains(&request.kind)
                && message.contains("MUTANT_ANALYSIS_BYTES")
                && message.contains("MiB"),
            "{message}"
        );
    }
    // Nothing was queued by the refusals.
    let listed = get(&small, "/v1/analyses?target=target").await;
    assert!(listed.contains("{\"analyses\":[]}"), "{listed}");
    for request in every_kind() {
        let status = accepting.start_analysis(&request).await.unwrap();
        let finished = accepting.wait_for_analysis(status.id, |_| {}).await;
        let finished = finished.unwrap_or_else(|error| panic!("{}: {error:?}", request.kind));
        assert_eq!(finished.status, JobStatus::Done, "{}", request.kind);
    }
}

/// Issue 13: `drift` with `sample_size` 40,000 on two 1-d datasets asked
/// for a 51 GB pooled kernel matrix and ended "internal error". Its blocked
/// sums now need a few tens of MB: accepted under a 64 MiB budget, it runs
/// with the server's memory bounded (watched for a while, then cancelled:
/// the full permutation test takes minutes in a debug build), and with
/// 10,000 permutations (a bit per point and permutation, and tiles as wide)
/// it is refused, naming `sample_size`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_drift_of_40000_one_dimensional_records_runs_in_bounded_memory() {
    let server = ServerProcess::start_with(
        "budget_drift",
        &[
            ("MUTANT_ANALYSIS_BYTES", "67108864"),
            ("MUTANT_KERNEL_THREADS", "1"),
        ],
    )
    .await;
    let client = Client::new(&server.url).unwrap();
    fill(&client, "target", 40_000, 1, 0.0).await;
    fill(&client, "reference", 40_000, 1, 0.5).await;

    let refused = client
        .start_analysis(&request(
            "drift",
            Some("reference"),
            json!({"sample_size": 40_000, "n_permutations": 10_000}),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::AnalysisTooLarge { message } if message.contains("sample_size")),
        "{refused:?}"
    );

    let resident_before = status_kib(server.pid(), "VmRSS").unwrap();
    let started = client
        .start_analysis(&request(
            "drift",
            Some("reference"),
            json!({"sample_size": 40_000}),
        ))
        .await
        .unwrap();
    let watch_until = Instant::now() + Duration::from_secs(8);
    let mut most_resident = resident_before;
    while Instant::now() < watch_until {
        most_resident = most_resident.max(status_kib(server.pid(), "VmRSS").unwrap());
        let status = client.analysis_status(started.id).await.unwrap();
        assert!(
            matches!(
                status.status,
                JobStatus::Queued | JobStatus::Running | JobStatus::Done
            ),
            "{status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = client.analysis_status(started.id).await.unwrap();
    assert_eq!(status.status, JobStatus::Running, "{status:?}");
    // The loads of both datasets and the analysis: well under 1 GiB, where
    // the pooled matrix alone was 51 GB.
    let grown_kib = most_resident.saturating_sub(resident_before);
    assert!(grown_kib < 1 << 20, "the server grew by {grown_kib} KiB");
    client.cancel_analysis(started.id).await.unwrap();
    let error = client
        .wait_for_analysis(started.id, |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::AnalysisCancelled { .. }),
        "{error:?}"
    );
}

/// Issue 13: an analysis's rows, evidence included, are shaped a chunk at a
/// time as they are stored, never all at once. `mislabel` with k = 30 on
/// 20,000 records has 600,000 evidence neighbours: as JSON objects all at
/// once, about 600 MB, which the budget used to count and a 96 MiB budget
/// refused. Now it is accepted, every row is stored with its evidence, and
/// the server's peak while it ran stays within the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_is_shaped_as_it_is_stored_within_the_budget() {
    const BUDGET_BYTES: u64 = 96 << 20;
    let server = ServerProcess::start_with(
        "budget_rows",
        &[("MUTANT_ANALYSIS_BYTES", &BUDGET_BYTES.to_string())],
    )
    .await;
    let client = Client::new(&server.url).unwrap();
    fill(&client, "target", 20_000, 8, 0.0).await;
    // Loaded into the cache first: the peak below is the analysis's.
    let query = mutant_client::wire::KnnRequest {
        queries: vec![vec![0.0; 8]],
        k: 1,
        filter: None,
        include: None,
    };
    client.knn("target", &query).await.unwrap();

    let resident_before = status_kib(server.pid(), "VmRSS").unwrap();
    assert!(mutant_tests::bench::reset_peak(server.pid()));
    let done = client
        .run_analysis(&request("mislabel", None, json!({"k": 30})), |_| {})
        .await
        .unwrap();
    let peak = status_kib(server.pid(), "VmHWM").unwrap();
    assert_eq!(done.status, JobStatus::Done, "{done:?}");
    let grown_bytes = peak.saturating_sub(resident_before) * 1024;
    assert!(
        grown_bytes < BUDGET_BYTES,
        "the server grew by {grown_bytes} bytes while the analysis ran, over its budget"
    );

    let last = client.analysis_results(done.id, 10, 19_990).await.unwrap();
    assert_eq!(last.total, 20_000);
    assert_eq!(last.results.len(), 10);
    for (offset, row) in last.results.iter().enumerate() {
        assert_eq!(row["rank"], json!(19_991 + offset), "{row}");
        let neighbours = row["evidence"]["neighbours"].as_array().unwrap();
        assert_eq!(neighbours.len(), 30, "{row}");
    }
}
