//! The client over real HTTP against a scripted fake server: headers, frames,
//! retries, timeouts, error mapping, analysis polling and the batch writer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mutant_core::api::frame::{
    FRAME_CONTENT_TYPE, decode_knn_query, decode_record_batch, encode_knn_result,
};
use mutant_core::api::vocabulary::JobStatus;
use mutant_core::api::wire::{
    KnnRequest, KnnResponse, Neighbour, StartAnalysisRequest, WireRecordFields,
};
use mutant_core::model::Record;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::BatchWriterConfig;
use crate::fake_server::{FakeAnswer, FakeServer};

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(max_attempts)
        .with_backoff(Duration::from_millis(1), Duration::from_millis(5))
}

fn client(server: &FakeServer) -> Client {
    Client::new(&server.url)
        .unwrap()
        .with_token("t0ken")
        .with_retry(fast_retries(4))
}

fn dataset_json(name: &str, dimension: usize) -> serde_json::Value {
    json!({
        "id": Uuid::from_u128(9), "name": name, "dimension": dimension, "metric": "l2",
        "metadata": {}, "created_at_ms": 1, "updated_at_ms": 2, "record_count": 0
    })
}

fn analysis_json(status: &str, progress: f32, error: Option<&str>) -> serde_json::Value {
    let mut value = json!({
        "id": Uuid::from_u128(5), "kind": "mislabel", "status": status, "progress": progress,
        "target": Uuid::from_u128(9), "params": {"k": 10}, "created_at_ms": 1
    });
    if let Some(error) = error {
        value["error"] = json!(error);
    }
    value
}

#[tokio::test]
async fn upserts_are_frames_and_are_retried_on_503() {
    let server = FakeServer::start(|_, index| match index {
        0 | 1 => FakeAnswer::error(503, "store_unavailable", "ClickHouse is down"),
        _ => FakeAnswer::json(200, json!({"written": 2})),
    })
    .await;
    let records = [
        Record::new("a", vec![1.0, 2.0]).with_label("cat"),
        Record::new("b", vec![3.0, 4.0]).with_metadata("camera", "front"),
    ];
    assert_eq!(client(&server).upsert("my ds", &records).await.unwrap(), 2);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/v1/datasets/my%20ds/records")
        );
        assert_eq!(request.header("content-type"), Some(FRAME_CONTENT_TYPE));
        assert_eq!(request.header("authorization"), Some("Bearer t0ken"));
        assert_eq!(decode_record_batch(&request.body).unwrap(), records);
    }
}

#[tokio::test]
async fn an_unavailable_server_is_reported_after_the_last_attempt() {
    let server =
        FakeServer::start(|_, _| FakeAnswer::error(503, "store_unavailable", "down")).await;
    let error = client(&server).heartbeat().await.unwrap_err();
    assert!(
        matches!(error, Error::Unavailable { attempts: 4, .. }),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn user_errors_are_typed_and_not_retried() {
    let server = FakeServer::start(|request, _| match request.path.as_str() {
        "/v1/datasets/nope" => FakeAnswer::error(404, "unknown_dataset", "no dataset \"nope\""),
        _ => FakeAnswer::error(409, "dataset_exists", "a dataset named \"train\" exists"),
    })
    .await;
    let client = client(&server);
    assert!(matches!(
        client.get_dataset("nope").await,
        Err(Error::UnknownDataset { .. })
    ));
    assert!(matches!(
        client.create_dataset(&NewDataset::new("train", 3)).await,
        Err(Error::DatasetExists { .. })
    ));
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn get_or_create_checks_the_existing_dataset() {
    let server = FakeServer::start(|request, _| match request.method.as_str() {
        "POST" => FakeAnswer::error(409, "dataset_exists", "exists"),
        _ => FakeAnswer::json(200, dataset_json("train", 4)),
    })
    .await;
    let client = client(&server);
    let existing = client
        .get_or_create_dataset(&NewDataset::new("train", 4))
        .await
        .unwrap();
    assert_eq!(existing.dimension, 4);
    assert!(matches!(
        client
            .get_or_create_dataset(&NewDataset::new("train", 8))
            .await,
        Err(Error::DatasetIncompatible {
            existing_dimension: 4,
            wanted_dimension: 8,
            ..
        })
    ));
}

#[tokio::test]
async fn catalogue_calls_send_the_protocol_shapes() {
    let server = FakeServer::start(|request, _| match request.method.as_str() {
        "GET" => FakeAnswer::json(200, json!({"datasets": [dataset_json("train", 4)]})),
        "DELETE" => FakeAnswer::Respond {
            status: 204,
            content_type: "application/json",
            body: Vec::new(),
        },
        _ => FakeAnswer::json(201, dataset_json("train", 4)),
    })
    .await;
    let client = client(&server);
    let found = client
        .find_datasets(&json!({"team": "vision"}))
        .await
        .unwrap();
    assert_eq!(found[0].name, "train");
    client.list_datasets().await.unwrap();
    client.rename_dataset("train", "train-v2").await.unwrap();
    client
        .patch_dataset_metadata("train", json!({"a": null}).as_object().cloned().unwrap())
        .await
        .unwrap();
    client.delete_dataset("train").await.unwrap();
    let requests = server.requests();
    assert_eq!(
        requests[0].path,
        "/v1/datasets?metadata=%7B%22team%22%3A%22vision%22%7D"
    );
    assert_eq!(requests[1].path, "/v1/datasets");
    assert_eq!(requests[2].method, "PATCH");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&requests[2].body).unwrap(),
        json!({"name": "train-v2"})
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&requests[3].body).unwrap(),
        json!({"metadata_patch": {"a": null}})
    );
    assert_eq!(
        (requests[4].method.as_str(), requests[4].path.as_str()),
        ("DELETE", "/v1/datasets/train")
    );
}

#[tokio::test]
async fn knn_sends_and_reads_frames() {
    let server = FakeServer::start(|request, _| {
        let query = decode_knn_query(&request.body).unwrap();
        assert_eq!(request.header("accept"), Some(FRAME_CONTENT_TYPE));
        let neighbours = (0..query.n_queries())
            .map(|index| query.query(index))
            .map(|vector| {
                vec![Neighbour {
                    id: format!("near-{}", vector[0]),
                    distance: 0.25,
                    fields: WireRecordFields {
                        label: Some("cat".into()),
                        ..WireRecordFields::default()
                    },
                }]
            })
            .collect();
        FakeAnswer::Respond {
            status: 200,
            content_type: FRAME_CONTENT_TYPE,
            body: encode_knn_result(&KnnResponse {
                results: neighbours,
            }),
        }
    })
    .await;
    let results = client(&server)
        .knn(
            "train",
            &KnnRequest {
                queries: vec![vec![1.0, 0.0], vec![2.0, 0.0]],
                k: 1,
                filter: Some(json!({"label": "cat"})),
                include: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1][0].id, "near-2");
    assert_eq!(results[1][0].fields.label.as_deref(), Some("cat"));
}

#[tokio::test]
async fn knn_accepts_a_json_answer_too() {
    let server = FakeServer::start(|_, _| {
        FakeAnswer::json(200, json!({"results": [[{"id": "a", "distance": 1.5}]]}))
    })
    .await;
    let request = KnnRequest {
        queries: vec![vec![1.0]],
        k: 1,
        ..KnnRequest::default()
    };
    let results = client(&server).knn("train", &request).await.unwrap();
    assert_eq!(results[0][0].distance, 1.5);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::new(&url).unwrap().with_retry(fast_retries(2));
    let error = client.version().await.unwrap_err();
    assert!(
        matches!(error, Error::Transport { attempts: 2, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_broken_connection_does_not_start_an_analysis_twice() {
    let server = FakeServer::start(|_, _| FakeAnswer::HangUp).await;
    let request = StartAnalysisRequest {
        kind: "mislabel".into(),
        target: "train".into(),
        reference: None,
        params: None,
    };
    let error = client(&server).start_analysis(&request).await.unwrap_err();
    assert!(
        matches!(error, Error::Transport { attempts: 1, .. }),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn reads_time_out_and_are_retried() {
    let server = FakeServer::start(|_, _| FakeAnswer::Stall).await;
    let client = client(&server)
        .with_retry(fast_retries(2))
        .with_timeout(Duration::from_millis(50));
    let error = client.count("train", None).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                attempts: 2,
                timeout_ms: 50,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn waiting_for_an_analysis_reports_progress_until_done() {
    let server = FakeServer::start(|_, index| match index {
        0 | 1 => FakeAnswer::json(200, analysis_json("queued", 0.0, None)),
        2 => FakeAnswer::json(200, analysis_json("running", 0.5, None)),
        _ => FakeAnswer::json(200, analysis_json("done", 1.0, None)),
    })
    .await;
    let client = client(&server).with_poll_interval(Duration::from_millis(2));
    let mut seen = Vec::new();
    let done = client
        .wait_for_analysis(Uuid::from_u128(5), |status| {
            seen.push((status.status, status.progress))
        })
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(
        seen,
        [
            (JobStatus::Queued, 0.0),
            (JobStatus::Running, 0.5),
            (JobStatus::Done, 1.0)
        ]
    );
    assert_eq!(
        server.requests()[0].path,
        "/v1/analyses/00000000-0000-0000-0000-000000000005"
    );
}

#[tokio::test]
async fn failed_and_cancelled_analyses_are_errors() {
    let server = FakeServer::start(|request, _| match request.method.as_str() {
        "DELETE" => FakeAnswer::json(200, analysis_json("cancelled", 0.2, None)),
        _ => FakeAnswer::json(200, analysis_json("failed", 0.3, Some("dataset is empty"))),
    })
    .await;
    let client = client(&server);
    let id = Uuid::from_u128(5);
    let failed = client.wait_for_analysis(id, |_| {}).await.unwrap_err();
    assert_eq!(
        failed,
        Error::AnalysisFailed {
            id,
            kind: "mislabel".into(),
            message: "dataset is empty".into()
        }
    );
    let cancelled = client.cancel_analysis(id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
}

#[tokio::test]
async fn analysis_results_are_paged() {
    let server = FakeServer::start(|_, _| {
        FakeAnswer::json(
            200,
            json!({"results": [{"id": "a", "score": 0.9, "rank": 1}], "total": 40}),
        )
    })
    .await;
    let page = client(&server)
        .analysis_results(Uuid::from_u128(5), 1, 10)
        .await
        .unwrap();
    assert_eq!((page.results.len(), page.total), (1, 40));
    assert!(
        server.requests()[0]
            .path
            .ends_with("/results?limit=1&offset=10")
    );
}

#[tokio::test]
async fn the_batch_writer_streams_frames_through_the_client() {
    let n_received = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(Mutex::new(Vec::new()));
    let (counter, seen_ids) = (Arc::clone(&n_received), Arc::clone(&ids));
    let server = FakeServer::start(move |request, index| {
        // The writer resolves the dataset's UUID once, then writes by UUID.
        if request.method == "GET" {
            assert_eq!(request.path, "/v1/datasets/train");
            return FakeAnswer::json(200, dataset_json("train", 8));
        }
        assert_eq!(
            request.path,
            format!("/v1/datasets/{}/records", Uuid::from_u128(9))
        );
        if index == 2 {
            return FakeAnswer::error(503, "store_unavailable", "blip");
        }
        let records = decode_record_batch(&request.body).unwrap();
        counter.fetch_add(records.len(), Ordering::SeqCst);
        seen_ids
            .lock()
            .unwrap()
            .extend(records.iter().map(|record| record.id.clone()));
        FakeAnswer::json(200, json!({"written": records.len()}))
    })
    .await;
    let mut writer = client(&server)
        .batch_writer(
            "train",
            BatchWriterConfig::default()
                .with_max_batch_records(100)
                .with_max_in_flight(1),
        )
        .unwrap();
    for index in 0..250 {
        writer
            .write(Record::new(format!("r{index}"), vec![index as f32; 8]))
            .await
            .unwrap();
    }
    let summary = writer.finish().await.unwrap();
    assert_eq!((summary.n_records_written, summary.n_batches), (250, 3));
    assert_eq!(n_received.load(Ordering::SeqCst), 250);
    assert_eq!(
        server.requests().len(),
        5,
        "one lookup, three batches, one retry"
    );
    let mut ids = ids.lock().unwrap().clone();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 250);
}

#[tokio::test]
async fn a_batch_writer_into_an_unknown_dataset_fails_on_finish() {
    let server =
        FakeServer::start(|_, _| FakeAnswer::error(404, "unknown_dataset", "no dataset")).await;
    let mut writer = client(&server)
        .batch_writer("nope", BatchWriterConfig::default())
        .unwrap();
    writer.write(Record::new("a", vec![1.0])).await.unwrap();
    assert!(matches!(
        writer.finish().await,
        Err(Error::UnknownDataset { .. })
    ));
}
