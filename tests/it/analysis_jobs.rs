//! Analysis jobs that every server sees (issue 6): started on one server,
//! followed, paged and cancelled through another; a job whose server is
//! killed is failed by the lease, never left running; a done analysis reads
//! `stale` once its target changes.

use std::time::{Duration, Instant};

use mutant_client::vocabulary::JobStatus;
use mutant_client::wire::{AnalysisStatus, StartAnalysisRequest};
use mutant_client::{Client, Error, NewDataset, Record};
use mutant_tests::ServerProcess;

use crate::e2e_support::{metric_value, metrics};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// A short lease, so that the kill test runs in seconds; the same on both servers.
const LEASE_MS: u64 = 3_000;
const SHORT_LEASE: [(&str, &str); 2] = [
    ("MUTANT_ANALYSIS_LEASE_MS", "3000"),
    ("MUTANT_ANALYSIS_HEARTBEAT_MS", "500"),
];

pub(crate) fn request(kind: &str, target: &str, params: Value) -> StartAnalysisRequest {
    let params: Map<String, Value> = params.as_object().cloned().expect("params are an object");
    StartAnalysisRequest {
        kind: kind.into(),
        target: target.into(),
        reference: None,
        params: Some(params),
    }
}

/// `n_records` pseudo-random vectors of `dimension` (a fixed linear
/// congruential sequence, so every run is the same).
pub(crate) async fn fill(client: &Client, dataset: &str, n_records: usize, dimension: usize) {
    client
        .create_dataset(&NewDataset::new(dataset, dimension))
        .await
        .unwrap();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let records: Vec<Record> = (0..n_records)
        .map(|index| {
            let vector = (0..dimension).map(|_| next()).collect();
            Record::new(format!("r{index:06}"), vector)
        })
        .collect();
    for batch in records.chunks(5_000) {
        client.upsert(dataset, batch).await.unwrap();
    }
}

/// Starts `uniqueness` over 40,000 x 64 records: about 20 s of work on two
/// cores in a debug build, many times the lease.
async fn start_long_analysis(client: &Client) -> AnalysisStatus {
    fill(client, "large", 40_000, 64).await;
    client
        .start_analysis(&request("uniqueness", "large", json!({"k": 10})))
        .await
        .unwrap()
}

/// Polls `client` until the analysis has left `queued`.
async fn wait_until_started(client: &Client, id: Uuid) -> AnalysisStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.analysis_status(id).await.unwrap();
        if status.status != JobStatus::Queued {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the analysis never started: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_started_on_one_server_is_read_through_another_and_survives_it() {
    let first = ServerProcess::start("analysis_jobs_shared").await;
    let second = ServerProcess::start_beside(&first).await;
    let starter = Client::new(&first.url).unwrap();
    let reader = Client::new(&second.url).unwrap();
    fill(&starter, "points", 300, 8).await;

    let started = starter
        .start_analysis(&request("uniqueness", "points", json!({"k": 5})))
        .await
        .unwrap();
    assert_eq!(started.status, JobStatus::Queued);
    let server = started.server.clone().expect("the job names its server");
    assert!(
        server.contains(first.url.trim_start_matches("http://")),
        "{server}"
    );
    // The other server knows the job at once, and follows it to the end.
    let seen = reader.analysis_status(started.id).await.unwrap();
    assert_eq!((seen.id, seen.kind.as_str()), (started.id, "uniqueness"));
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        reader.wait_for_analysis(started.id, |_| {}),
    )
    .await
    .expect("the analysis ends within 60 s")
    .unwrap();
    assert_eq!((done.status.as_str(), done.progress), ("done", 1.0));
    assert!(done.started_at_ms.is_some() && done.finished_at_ms.is_some());
    assert_eq!(done.server.as_deref(), Some(server.as_str()));

    // Results page the same through both servers.
    let through_starter = starter.analysis_results(started.id, 300, 0).await.unwrap();
    assert_eq!(through_starter.total, 300);
    assert_eq!(through_starter.results.len(), 300);
    let page = reader.analysis_results(started.id, 10, 20).await.unwrap();
    assert_eq!(page.total, 300);
    assert_eq!(page.results, through_starter.results[20..30]);
    assert_eq!(page.results[0]["rank"], json!(21));
    let past_end = reader.analysis_results(started.id, 10, 300).await.unwrap();
    assert!(past_end.results.is_empty());
    assert_eq!(past_end.total, 300);

    let first_metrics = metrics(&first).await;
    assert!(
        first_metrics.contains("mutant_analyses{status=\"done\"} 1"),
        "{first_metrics}"
    );
    assert!(!metrics(&second).await.contains("mutant_analyses{status="));

    // The job and its results outlive the server that ran them.
    drop(first);
    let after = reader.analysis_status(started.id).await.unwrap();
    assert_eq!(after.status, JobStatus::Done);
    assert_eq!(
        reader.analysis_results(started.id, 300, 0).await.unwrap(),
        through_starter
    );
    assert!(matches!(
        reader.analysis_status(Uuid::new_v4()).await,
        Err(Error::UnknownAnalysis { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_its_analysis_failed_within_the_lease_never_running() {
    let doomed = ServerProcess::start_with("analysis_jobs_kill", &SHORT_LEASE).await;
    let survivor = ServerProcess::start_beside_with(&doomed, &SHORT_LEASE).await;
    let starter = Client::new(&doomed.url).unwrap();
    // Polled often, so that the bound below measures the lease, not the
    // gaps between polls.
    let reader = Client::new(&survivor.url)
        .unwrap()
        .with_poll_interval(Duration::from_millis(100));
    let started = start_long_analysis(&starter).await;
    let running = wait_until_started(&reader, started.id).await;
    assert_eq!(running.status, JobStatus::Running, "{running:?}");
    // Let it heartbeat at least once, then kill its server outright.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        reader.analysis_status(started.id).await.unwrap().status,
        JobStatus::Running
    );
    let killed = std::process::Command::new("kill")
        .args(["-9", &doomed.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let killed_at = Instant::now();

    let mut statuses = Vec::new();
    let ended = tokio::time::timeout(
        Duration::from_millis(LEASE_MS + 5_000),
        reader.wait_for_analysis(started.id, |status| statuses.push(status.status)),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "still not failed {} ms after the kill: {statuses:?}",
            LEASE_MS + 5_000
        )
    });
    let detected_after = killed_at.elapsed();
    match ended {
        Err(Error::AnalysisFailed { id, kind, message }) => {
            assert_eq!((id, kind.as_str()), (started.id, "uniqueness"));
            assert!(
                message.contains("the server running this analysis stopped")
                    && message.contains("start it again"),
                "{message}"
            );
        }
        other => panic!("a killed server's analysis ended with {other:?}"),
    }
    assert!(
        detected_after <= Duration::from_millis(LEASE_MS + 2_500),
        "the lease of {LEASE_MS} ms took {detected_after:?} to notice the kill"
    );
    eprintln!("lease {LEASE_MS} ms: failed {detected_after:?} after SIGKILL");
    // It stays failed, and has no results.
    let status = reader.analysis_status(started.id).await.unwrap();
    assert_eq!(status.status, JobStatus::Failed);
    assert!(status.finished_at_ms.is_some());
    assert!(matches!(
        reader.analysis_results(started.id, 10, 0).await,
        Err(Error::AnalysisNotFinished { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_through_one_server_stops_the_analysis_running_on_another() {
    let runner = ServerProcess::start_with("analysis_jobs_cancel", &SHORT_LEASE).await;
    let other = ServerProcess::start_beside_with(&runner, &SHORT_LEASE).await;
    let starter = Client::new(&runner.url).unwrap();
    let canceller = Client::new(&other.url).unwrap();
    let started = start_long_analysis(&starter).await;
    let running = wait_until_started(&canceller, started.id).await;
    assert_eq!(running.status, JobStatus::Running, "{running:?}");
    // Past the lease, the runner's heartbeats keep the job running.
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 500)).await;
    let alive = canceller.analysis_status(started.id).await.unwrap();
    assert_eq!(alive.status, JobStatus::Running, "{alive:?}");

    let answer = canceller.cancel_analysis(started.id).await.unwrap();
    assert_eq!(answer.id, started.id);
    let cancelled_at = Instant::now();
    let ended = tokio::time::timeout(
        Duration::from_secs(30),
        canceller.wait_for_analysis(started.id, |_| {}),
    )
    .await
    .expect("a cancelled analysis ends within 30 s");
    assert!(
        matches!(ended, Err(Error::AnalysisCancelled { id, .. }) if id == started.id),
        "{ended:?}"
    );
    eprintln!(
        "cancel through the other server took {:?}",
        cancelled_at.elapsed()
    );
    let through_runner = starter.analysis_status(started.id).await.unwrap();
    assert_eq!(through_runner.status, JobStatus::Cancelled);
    assert!(through_runner.finished_at_ms.is_some());
    let runner_metrics = metrics(&runner).await;
    assert!(
        runner_metrics.contains("mutant_analyses{status=\"cancelled\"} 1"),
        "{runner_metrics}"
    );
    // Cancelling a finished analysis changes nothing.
    assert_eq!(
        canceller.cancel_analysis(started.id).await.unwrap().status,
        JobStatus::Cancelled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_analysis_reads_stale_after_a_write_to_its_target() {
    let first = ServerProcess::start("analysis_jobs_stale").await;
    let second = ServerProcess::start_beside(&first).await;
    let writer = Client::new(&first.url).unwrap();
    let reader = Client::new(&second.url).unwrap();
    fill(&writer, "points", 200, 4).await;
    let done = writer
        .run_analysis(&request("uniqueness", "points", json!({"k": 3})), |_| {})
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(
        reader.analysis_status(done.id).await.unwrap().status,
        JobStatus::Done,
        "reads alone do not make it stale"
    );

    reader
        .upsert("points", &[Record::new("late", vec![0.5, 0.5, 0.5, 0.5])])
        .await
        .unwrap();
    for client in [&writer, &reader] {
        let status = client.analysis_status(done.id).await.unwrap();
        assert_eq!(status.status, JobStatus::Stale);
        assert_eq!(status.progress, 1.0);
    }
    // Stale results stay readable, and the SDK treats stale as finished.
    let results = reader.analysis_results(done.id, 500, 0).await.unwrap();
    assert_eq!(results.total, 200);
    assert_eq!(
        reader
            .wait_for_analysis(done.id, |_| {})
            .await
            .unwrap()
            .status,
        JobStatus::Stale
    );
    // A fresh run on the new data is done, not stale.
    let again = reader
        .run_analysis(&request("uniqueness", "points", json!({"k": 3})), |_| {})
        .await
        .unwrap();
    assert_eq!(again.status, JobStatus::Done);
    assert_eq!(
        reader.analysis_results(again.id, 1, 0).await.unwrap().total,
        201
    );
    // A write of what no kernel reads (a uri) changes nothing the cache
    // holds, yet is newer data: the run before it reads stale, and a run
    // after it is done, not stale from the start.
    reader
        .upsert(
            "points",
            &[Record::new("late", vec![0.5, 0.5, 0.5, 0.5]).with_uri("s3://bucket/late.png")],
        )
        .await
        .unwrap();
    assert_eq!(
        reader.analysis_status(again.id).await.unwrap().status,
        JobStatus::Stale
    );
    // Through the server whose cache already holds `late` as it is.
    let after_uri = reader
        .run_analysis(&request("uniqueness", "points", json!({"k": 3})), |_| {})
        .await
        .unwrap();
    assert_eq!(after_uri.status, JobStatus::Done);
    assert_eq!(
        reader.analysis_status(after_uri.id).await.unwrap().status,
        JobStatus::Done
    );
}

/// A second analysis of unchanged data uses the self-kNN graph the first
/// one built, and answers the same; after a write the graph is built anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_analysis_of_unchanged_data_reuses_the_neighbour_graph() {
    let server = ServerProcess::start("graph_reuse").await;
    let client = Client::new(&server.url)
        .unwrap()
        .with_poll_interval(Duration::from_millis(20));
    fill(&client, "kept", 2_000, 16).await;
    let reuses = || async {
        metric_value(&metrics(&server).await, "mutant_cache_graph_reuses_total")
            .expect("the reuse counter is on /metrics")
    };
    let uniqueness = request("uniqueness", "kept", json!({}));
    let first = client.run_analysis(&uniqueness, |_| {}).await.unwrap();
    assert_eq!(reuses().await, 0.0);
    let second = client.run_analysis(&uniqueness, |_| {}).await.unwrap();
    assert_eq!(reuses().await, 1.0);
    assert_eq!(first.summary, second.summary);
    // The map's layout asks for more neighbours than uniqueness kept: it
    // builds its own graph, which a later uniqueness then uses, cut.
    client
        .run_analysis(
            &request("projection", "kept", json!({"method": "layout"})),
            |_| {},
        )
        .await
        .unwrap();
    client.run_analysis(&uniqueness, |_| {}).await.unwrap();
    assert_eq!(reuses().await, 3.0);

    client
        .upsert("kept", &[Record::new("r999999", vec![0.5; 16])])
        .await
        .unwrap();
    client.run_analysis(&uniqueness, |_| {}).await.unwrap();
    assert_eq!(reuses().await, 3.0, "a graph of data that changed was used");
}
