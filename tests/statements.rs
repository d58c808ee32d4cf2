//! How many ClickHouse statements a request costs, counted by ClickHouse
//! itself (its `Query` event). A test binary of its own: cargo runs test
//! binaries one at a time, so no other test's statements are counted; its
//! own tests take turns ([`ONE_AT_A_TIME`]).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mutant_client::vocabulary::JobStatus;
use mutant_client::wire::{KnnRequest, StartAnalysisRequest};
use mutant_client::{Client, NewDataset, Record};
use mutant_tests::{ServerProcess, clickhouse_statements_so_far};
use tokio::sync::Mutex;

/// Requests per measurement.
const REQUESTS: u64 = 20;

/// Held by each test while it counts: the tests of this binary run on
/// threads of one process, and would count each other's statements.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

fn vector(index: usize) -> Vec<f32> {
    vec![
        index as f32,
        (index % 7) as f32,
        1.0,
        -(index as f32) / 10.0,
    ]
}

async fn knn(client: &Client, dataset: &str, index: usize) -> String {
    let request = KnnRequest {
        queries: vec![vector(index)],
        k: 3,
        filter: None,
        include: None,
    };
    let neighbours = client.knn(dataset, &request).await.unwrap();
    neighbours[0][0].id.clone()
}

/// Statements per request over [`REQUESTS`] requests of `request`.
async fn statements_per_request<F: Future<Output = ()>>(request: impl Fn(usize) -> F) -> f64 {
    let before = clickhouse_statements_so_far().await;
    for index in 0..REQUESTS as usize {
        request(index).await;
    }
    let after = clickhouse_statements_so_far().await;
    // The second read counts itself.
    (after - before - 1) as f64 / REQUESTS as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_knn_costs_one_statement_by_name_or_by_id() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = ServerProcess::start("statements").await;
    let client = Client::new(&server.url).unwrap();
    let dataset = client
        .create_dataset(&NewDataset::new("warm", 4))
        .await
        .unwrap();
    let records: Vec<Record> = (0..500)
        .map(|index| Record::new(format!("r{index}"), vector(index)))
        .collect();
    client.upsert("warm", &records).await.unwrap();
    // Cold, then warm: the first uses load the dataset and read the
    // refresh overlap once.
    for index in 0..3 {
        assert_eq!(knn(&client, "warm", index).await, format!("r{index}"));
    }

    let by_name = statements_per_request(|index| {
        let client = &client;
        async move {
            assert_eq!(knn(client, "warm", index).await, format!("r{index}"));
        }
    })
    .await;
    assert_eq!(by_name, 1.0, "statements per warm kNN by name");

    let id = dataset.id.to_string();
    knn(&client, &id, 0).await;
    let by_id = statements_per_request(|index| {
        let (client, id) = (&client, &id);
        async move {
            assert_eq!(knn(client, id, index).await, format!("r{index}"));
        }
    })
    .await;
    assert_eq!(by_id, 1.0, "statements per warm kNN by id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_of_an_analysis_computed_here_costs_no_statement() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // A slow heartbeat: on a loaded machine the polls may take seconds, and
    // the heartbeat's own statements must not be what the count measures.
    let server = ServerProcess::start_with(
        "statements_status",
        &[("MUTANT_ANALYSIS_HEARTBEAT_MS", "4000")],
    )
    .await;
    let client = Client::new(&server.url).unwrap();
    let dimension = 32;
    client
        .create_dataset(&NewDataset::new("map", dimension))
        .await
        .unwrap();
    for batch in 0..4 {
        let records: Vec<Record> = (batch * 1000..(batch + 1) * 1000)
            .map(|index| {
                let vector = (0..dimension)
                    .map(|axis| ((index * 7919 + axis * 104_729) % 1000) as f32 / 1000.0)
                    .collect();
                Record::new(format!("r{index}"), vector)
            })
            .collect();
        client.upsert("map", &records).await.unwrap();
    }
    // A layout of 4,000 points: seconds of work in a debug build.
    let request = StartAnalysisRequest {
        kind: "projection".into(),
        target: "map".into(),
        reference: None,
        params: None,
    };
    let id = client.start_analysis(&request).await.unwrap().id;
    let mut status = client.analysis_status(id).await.unwrap();
    while status.status == JobStatus::Queued {
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = client.analysis_status(id).await.unwrap();
    }
    assert_eq!(status.status, JobStatus::Running, "{status:?}");

    let per_poll = statements_per_request(|_| {
        let client = &client;
        async move {
            // Counted only while the job runs: a finished job is read from
            // the store by any server.
            let status = client.analysis_status(id).await.unwrap();
            assert_eq!(status.status, JobStatus::Running, "{status:?}");
        }
    })
    .await;
    // Only the job's own heartbeat (a read and a write every 4 s) may fall
    // in the window; a poll that read the job would cost one each.
    assert!(
        per_poll < 0.5,
        "statements per status poll of a running job: {per_poll}"
    );
    // A cancel through the server still reaches the job, which ends.
    client.cancel_analysis(id).await.unwrap();
    let mut status = client.analysis_status(id).await.unwrap();
    for _ in 0..100 {
        if status.status != JobStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = client.analysis_status(id).await.unwrap();
    }
    assert_eq!(status.status, JobStatus::Cancelled, "{status:?}");
}
