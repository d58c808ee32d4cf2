//! End-to-end tests through the SDK (`mutant-client`) against the real
//! `mutant-server` binary and a real ClickHouse: the dataset catalogue,
//! records with the streaming `BatchWriter`, kNN with hand-computed distances
//! for each metric, and analyses from start to ranked results.

use std::collections::BTreeSet;
use std::time::Duration;

use mutant_client::vocabulary::JobStatus;
use mutant_client::wire::{
    AnalysisStatus, DeleteRecordsRequest, GetRecordsRequest, Include, KnnRequest, Neighbour,
    StartAnalysisRequest, WireRecord,
};
use mutant_client::{BatchWriterConfig, Client, Error, Metric, NewDataset, Record};
use mutant_tests::ServerProcess;
use serde_json::{Map, Value, json};

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("a JSON object")
}

fn client(server: &ServerProcess) -> Client {
    Client::new(&server.url)
        .unwrap()
        .with_poll_interval(Duration::from_millis(100))
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(outcome: mutant_client::Result<T>, code: &str) -> Error {
    let error = outcome.expect_err("the call should have been refused");
    assert_eq!(error.code(), Some(code), "{error:?}");
    error
}

fn names(datasets: &[mutant_client::wire::DatasetInfo]) -> Vec<&str> {
    datasets
        .iter()
        .map(|dataset| dataset.name.as_str())
        .collect()
}

fn ids(records: &[WireRecord]) -> Vec<&str> {
    records.iter().map(|record| record.id.as_str()).collect()
}

#[test]
fn server_calls_and_dataset_lifecycle() {
    crate::e2e_support::run(server_calls_and_dataset_lifecycle_body);
}

async fn server_calls_and_dataset_lifecycle_body() {
    let server = ServerProcess::start("sdk_datasets").await;
    let client = client(&server);

    // health, heartbeat, version
    client.health().await.unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let nanos = client.heartbeat().await.unwrap();
    assert!(
        nanos.abs_diff(before) < 60_000_000_000,
        "server clock {nanos} vs {before}"
    );
    let version = client.version().await.unwrap();
    assert_eq!(version.protocol, mutant_client::PROTOCOL_VERSION);
    assert!(!version.mutant.is_empty());
    assert!(
        version.clickhouse.chars().next().unwrap().is_ascii_digit(),
        "{version:?}"
    );

    // create
    let alpha = client
        .create_dataset(
            &NewDataset::new("alpha", 4)
                .with_metric(Metric::Cosine)
                .with_metadata(object(
                    json!({"team": "vision", "split": {"kind": "train"}}),
                )),
        )
        .await
        .unwrap();
    assert_eq!(
        (alpha.name.as_str(), alpha.dimension, alpha.metric.as_str()),
        ("alpha", 4, "cosine")
    );
    assert_eq!(alpha.record_count, Some(0));
    assert_eq!(alpha.created_at_ms, alpha.updated_at_ms);
    let beta = client
        .create_dataset(&NewDataset::new("beta", 2).with_metadata(object(json!({"team": "audio"}))))
        .await
        .unwrap();
    assert_eq!(beta.metric, Metric::L2);
    assert_ne!(alpha.id, beta.id);
    assert_code(
        client.create_dataset(&NewDataset::new("alpha", 4)).await,
        "dataset_exists",
    );
    assert!(matches!(
        client.create_dataset(&NewDataset::new("alpha", 8)).await,
        Err(Error::DatasetExists { .. })
    ));
    for bad in ["9lives", "with space", "x".repeat(129).as_str()] {
        assert_code(
            client.create_dataset(&NewDataset::new(bad, 4)).await,
            "invalid_dataset_name",
        );
    }
    assert_code(
        client.create_dataset(&NewDataset::new("flat", 0)).await,
        "invalid_dimension",
    );

    // get with record_count, by name and by UUID
    let records: Vec<Record> = (0..3)
        .map(|index| Record::new(format!("r{index}"), vec![1.0, index as f32, 0.0, 1.0]))
        .collect();
    assert_eq!(client.upsert("alpha", &records).await.unwrap(), 3);
    let got = client.get_dataset("alpha").await.unwrap();
    assert_eq!(got.record_count, Some(3));
    assert_eq!(got.id, alpha.id);
    let by_id = client.get_dataset(&alpha.id.to_string()).await.unwrap();
    assert_eq!(
        (by_id.name.as_str(), by_id.record_count),
        ("alpha", Some(3))
    );
    assert!(matches!(
        client.get_dataset("nobody").await,
        Err(Error::UnknownDataset { .. })
    ));

    // get_or_create
    let same = client
        .get_or_create_dataset(&NewDataset::new("alpha", 4).with_metric(Metric::Cosine))
        .await
        .unwrap();
    assert_eq!(same.id, alpha.id);
    assert!(matches!(
        client
            .get_or_create_dataset(&NewDataset::new("alpha", 5).with_metric(Metric::Cosine))
            .await,
        Err(Error::DatasetIncompatible { .. })
    ));

    // list and find by metadata pattern
    assert_eq!(
        names(&client.list_datasets().await.unwrap()),
        ["alpha", "beta"]
    );
    let vision = client
        .find_datasets(&json!({"team": "vision"}))
        .await
        .unwrap();
    assert_eq!(names(&vision), ["alpha"]);
    let nested = client
        .find_datasets(&json!({"split": {"kind": "train"}}))
        .await
        .unwrap();
    assert_eq!(names(&nested), ["alpha"]);
    assert_eq!(
        names(&client.find_datasets(&json!({})).await.unwrap()),
        ["alpha", "beta"]
    );
    assert!(
        client
            .find_datasets(&json!({"team": "nobody"}))
            .await
            .unwrap()
            .is_empty()
    );
    assert_code(client.find_datasets(&json!([1])).await, "invalid_parameter");

    // rename: the UUID and the records stay
    let gamma = client.rename_dataset("alpha", "gamma").await.unwrap();
    assert_eq!((gamma.id, gamma.name.as_str()), (alpha.id, "gamma"));
    assert!(gamma.updated_at_ms >= alpha.updated_at_ms);
    assert!(matches!(
        client.get_dataset("alpha").await,
        Err(Error::UnknownDataset { .. })
    ));
    assert_eq!(client.count("gamma", None).await.unwrap(), 3);
    assert!(matches!(
        client.rename_dataset("gamma", "beta").await,
        Err(Error::DatasetExists { .. })
    ));
    assert_code(
        client.rename_dataset("gamma", "no way").await,
        "invalid_dataset_name",
    );
    assert!(matches!(
        client.rename_dataset("alpha", "delta").await,
        Err(Error::UnknownDataset { .. })
    ));

    // replace and patch metadata
    let replaced = client
        .replace_dataset_metadata("gamma", object(json!({"owner": "ana", "tags": ["a"]})))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(replaced.metadata),
        json!({"owner": "ana", "tags": ["a"]})
    );
    let patched = client
        .patch_dataset_metadata("gamma", object(json!({"owner": null, "stage": "prod"})))
        .await
        .unwrap();
    assert_eq!(
        Value::Object(patched.metadata.clone()),
        json!({"tags": ["a"], "stage": "prod"})
    );
    assert_eq!(
        client.get_dataset("gamma").await.unwrap().metadata,
        patched.metadata
    );
    assert_eq!(
        names(
            &client
                .find_datasets(&json!({"stage": "prod"}))
                .await
                .unwrap()
        ),
        ["gamma"]
    );

    // delete; the same name re-created starts empty, with a new UUID
    client.delete_dataset("gamma").await.unwrap();
    assert!(matches!(
        client.get_dataset("gamma").await,
        Err(Error::UnknownDataset { .. })
    ));
    assert!(matches!(
        client.get_dataset(&alpha.id.to_string()).await,
        Err(Error::UnknownDataset { .. })
    ));
    assert!(matches!(
        client.delete_dataset("gamma").await,
        Err(Error::UnknownDataset { .. })
    ));
    assert!(matches!(
        client.count("gamma", None).await,
        Err(Error::UnknownDataset { .. })
    ));
    assert_eq!(names(&client.list_datasets().await.unwrap()), ["beta"]);
    let again = client
        .create_dataset(&NewDataset::new("gamma", 4))
        .await
        .unwrap();
    assert_ne!(again.id, alpha.id);
    assert_eq!(again.metric, Metric::L2);
    assert!(again.metadata.is_empty());
    assert_eq!(
        client.get_dataset("gamma").await.unwrap().record_count,
        Some(0)
    );
    assert_eq!(client.count("gamma", None).await.unwrap(), 0);
    let leftovers = client
        .get_records("gamma", &GetRecordsRequest::default())
        .await
        .unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let neighbours = client
        .knn(
            "gamma",
            &KnnRequest {
                queries: vec![vec![1.0, 0.0, 0.0, 1.0]],
                k: 3,
                ..KnnRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(neighbours, vec![Vec::<Neighbour>::new()]);
}

fn streamed_record(index: usize) -> Record {
    let vector = (0..8)
        .map(|axis| ((index * 7 + axis * 13) % 101) as f32 / 101.0)
        .collect();
    Record::new(format!("r{index:05}"), vector)
        .with_label(format!("c{}", index % 3))
        .with_prediction(format!("c{}", index % 2))
        .with_uri(format!("s3://bucket/{index}.png"))
        .with_metadata("shard", (index % 5) as i64)
        .with_metadata("even", index.is_multiple_of(2))
}

#[test]
fn records_stream_upsert_get_delete_and_count() {
    crate::e2e_support::run(records_stream_upsert_get_delete_and_count_body);
}

async fn records_stream_upsert_get_delete_and_count_body() {
    let server = ServerProcess::start("sdk_records").await;
    let client = client(&server);
    client
        .create_dataset(&NewDataset::new("stream", 8))
        .await
        .unwrap();

    // Stream 5,000 records through the BatchWriter.
    let mut writer = client
        .batch_writer(
            "stream",
            BatchWriterConfig::default()
                .with_max_batch_records(500)
                .with_max_in_flight(3),
        )
        .unwrap();
    for index in 0..5_000 {
        writer.write(streamed_record(index)).await.unwrap();
    }
    let summary = writer.finish().await.unwrap();
    assert_eq!(summary.n_records_written, 5_000);
    assert!(summary.n_batches >= 10, "{summary:?}");
    assert_eq!(client.count("stream", None).await.unwrap(), 5_000);
    assert_eq!(
        client.get_dataset("stream").await.unwrap().record_count,
        Some(5_000)
    );
    // Everything arrived intact, vectors bit for bit.
    let sample = client
        .get_records(
            "stream",
            &GetRecordsRequest {
                ids: Some(vec!["r04999".into(), "r00000".into(), "r02500".into()]),
                include: Some(vec![
                    Include::Vector,
                    Include::Label,
                    Include::Prediction,
                    Include::Uri,
                    Include::Metadata,
                ]),
                ..GetRecordsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&sample), ["r00000", "r02500", "r04999"]);
    for record in &sample {
        let index: usize = record.id[1..].parse().unwrap();
        let expected = streamed_record(index);
        assert_eq!(record.vector.as_ref(), Some(&expected.vector));
        assert_eq!(record.label, expected.label);
        assert_eq!(record.prediction, expected.prediction);
        assert_eq!(record.uri, expected.uri);
        assert_eq!(
            record.metadata.clone().map(Value::Object),
            Some(json!({"shard": index % 5, "even": index.is_multiple_of(2)}))
        );
    }

    // Counts with filters.
    let count = |filter: Value| {
        let client = client.clone();
        async move { client.count("stream", Some(&filter)).await.unwrap() }
    };
    assert_eq!(count(json!({"label": "c0"})).await, 1_667);
    assert_eq!(count(json!({"label": {"$ne": "c0"}})).await, 3_333);
    assert_eq!(count(json!({"label": {"$in": ["c1", "c2"]}})).await, 3_333);
    assert_eq!(count(json!({"prediction": {"$nin": ["c0"]}})).await, 2_500);
    assert_eq!(count(json!({"metadata.shard": 4})).await, 1_000);
    assert_eq!(count(json!({"metadata.shard": {"$gte": 3}})).await, 2_000);
    assert_eq!(count(json!({"metadata.even": true})).await, 2_500);
    assert_eq!(count(json!({"id": {"$lt": "r00010"}})).await, 10);
    assert_eq!(
        count(json!({"$and": [{"label": "c0"}, {"prediction": "c0"}]})).await,
        834
    );
    assert_eq!(
        count(json!({"$or": [{"metadata.shard": 0}, {"uri": "s3://bucket/1.png"}]})).await,
        1_001
    );
    assert_code(
        client
            .count("stream", Some(&json!({"colour": "red"})))
            .await,
        "invalid_filter",
    );

    // get: ids, filter, limit, offset, include; always in id order.
    let by_ids = client
        .get_records(
            "stream",
            &GetRecordsRequest {
                ids: Some(vec!["r00042".into(), "r00007".into(), "nope".into()]),
                ..GetRecordsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&by_ids), ["r00007", "r00042"]);
    // By default everything but the vector.
    assert!(by_ids.iter().all(|record| record.vector.is_none()
        && record.label.is_some()
        && record.uri.is_some()
        && record.metadata.is_some()));
    let mut paged = Vec::new();
    for page in 0..4 {
        let records = client
            .get_records(
                "stream",
                &GetRecordsRequest {
                    filter: Some(json!({"metadata.shard": 2})),
                    limit: Some(300),
                    offset: Some(page * 300),
                    include: Some(vec![Include::Label]),
                    ..GetRecordsRequest::default()
                },
            )
            .await
            .unwrap();
        assert!(records.iter().all(|record| record.vector.is_none()
            && record.uri.is_none()
            && record.metadata.is_none()
            && record.label.is_some()));
        paged.extend(records.into_iter().map(|record| record.id));
    }
    let expected: Vec<String> = (0..5_000)
        .filter(|index| index % 5 == 2)
        .map(|index| format!("r{index:05}"))
        .collect();
    assert_eq!(paged, expected, "pages are consecutive, in id order");
    let default_page = client
        .get_records("stream", &GetRecordsRequest::default())
        .await
        .unwrap();
    assert_eq!(default_page.len(), 100);
    assert_eq!(default_page[0].id, "r00000");
    assert_eq!(default_page[99].id, "r00099");
    let only_vectors = client
        .get_records(
            "stream",
            &GetRecordsRequest {
                ids: Some(vec!["r00001".into()]),
                include: Some(vec![Include::Vector]),
                ..GetRecordsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        only_vectors,
        vec![WireRecord {
            id: "r00001".into(),
            vector: Some(streamed_record(1).vector),
            ..WireRecord::default()
        }]
    );
    assert_code(
        client
            .get_records(
                "stream",
                &GetRecordsRequest {
                    limit: Some(10_001),
                    ..GetRecordsRequest::default()
                },
            )
            .await,
        "invalid_parameter",
    );

    // Upsert replaces the whole record.
    let replacements = vec![
        Record::new("r00000", vec![9.0; 8]).with_label("replaced"),
        Record::new("r00001", vec![8.0; 8]),
        Record::new("fresh", vec![7.0; 8]).with_label("replaced"),
    ];
    assert_eq!(client.upsert("stream", &replacements).await.unwrap(), 3);
    assert_eq!(client.count("stream", None).await.unwrap(), 5_001);
    let replaced = client
        .get_records(
            "stream",
            &GetRecordsRequest {
                ids: Some(vec!["r00000".into(), "r00001".into()]),
                include: Some(vec![
                    Include::Vector,
                    Include::Label,
                    Include::Prediction,
                    Include::Uri,
                    Include::Metadata,
                ]),
                ..GetRecordsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        replaced,
        vec![
            WireRecord {
                id: "r00000".into(),
                vector: Some(vec![9.0; 8]),
                label: Some("replaced".into()),
                ..WireRecord::default()
            },
            WireRecord {
                id: "r00001".into(),
                vector: Some(vec![8.0; 8]),
                ..WireRecord::default()
            },
        ]
    );
    assert_eq!(count(json!({"label": "replaced"})).await, 2);

    // Refused batches write nothing; the SDK refuses what it can check itself.
    assert_code(
        client
            .upsert(
                "stream",
                &[
                    Record::new("r00002", vec![0.0; 8]),
                    Record::new("short", vec![0.0; 7]),
                ],
            )
            .await,
        "dimension_mismatch",
    );
    assert_code(
        client
            .upsert("stream", &[Record::new("nan", vec![f32::NAN; 8])])
            .await,
        "non_finite_value",
    );
    assert_code(
        client
            .upsert(
                "stream",
                &[
                    Record::new("twice", vec![0.0; 8]),
                    Record::new("twice", vec![1.0; 8]),
                ],
            )
            .await,
        "duplicate_record_id",
    );
    assert_code(client.upsert("stream", &[]).await, "empty_batch");
    assert_code(
        client
            .upsert("stream", &[Record::new("", vec![0.0; 8])])
            .await,
        "empty_record_id",
    );
    assert!(matches!(
        client.upsert("ghost", &replacements).await,
        Err(Error::UnknownDataset { .. })
    ));
    assert_eq!(client.count("stream", None).await.unwrap(), 5_001);
    assert_eq!(
        count(json!({"id": {"$in": ["short", "nan", "twice"]}})).await,
        0
    );

    // Delete by ids (missing ids are not counted), then by filter.
    let deleted = client
        .delete_records(
            "stream",
            &DeleteRecordsRequest {
                ids: Some(vec!["fresh".into(), "r00003".into(), "never".into()]),
                ..DeleteRecordsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(client.count("stream", None).await.unwrap(), 4_999);
    let c2 = count(json!({"label": "c2"})).await;
    let deleted = client
        .delete_records(
            "stream",
            &DeleteRecordsRequest {
                filter: Some(json!({"label": "c2"})),
                ..DeleteRecordsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(deleted, c2);
    assert_eq!(count(json!({"label": "c2"})).await, 0);
    assert_eq!(client.count("stream", None).await.unwrap(), 4_999 - c2);
    // ids and filter together: both must hold.
    let deleted = client
        .delete_records(
            "stream",
            &DeleteRecordsRequest {
                ids: Some(vec!["r00006".into(), "r00007".into()]),
                filter: Some(json!({"label": "c0"})),
            },
        )
        .await
        .unwrap();
    assert_eq!(deleted, 1, "only r00006 is c0");
    let gone = client
        .get_records(
            "stream",
            &GetRecordsRequest {
                ids: Some(vec!["r00003".into(), "r00006".into(), "r00007".into()]),
                ..GetRecordsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&gone), ["r00007"]);
    // Deleted records are no kNN candidates either.
    let nearest = client
        .knn(
            "stream",
            &KnnRequest {
                queries: vec![streamed_record(3).vector],
                k: 1,
                ..KnnRequest::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(nearest[0][0].id, "r00003");
    // A deleted id can be written again.
    assert_eq!(
        client
            .upsert("stream", &[streamed_record(3)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        client
            .count("stream", Some(&json!({"id": "r00003"})))
            .await
            .unwrap(),
        1
    );
}

fn neighbour_ids(neighbours: &[Neighbour]) -> Vec<&str> {
    neighbours
        .iter()
        .map(|neighbour| neighbour.id.as_str())
        .collect()
}

#[track_caller]
fn assert_distances(neighbours: &[Neighbour], expected: &[(&str, f32)]) {
    let got: Vec<(&str, f32)> = neighbours
        .iter()
        .map(|neighbour| (neighbour.id.as_str(), neighbour.distance))
        .collect();
    assert_eq!(got.len(), expected.len(), "{got:?} vs {expected:?}");
    for ((id, distance), (expected_id, expected_distance)) in got.iter().zip(expected) {
        assert_eq!(id, expected_id, "{got:?} vs {expected:?}");
        assert!(
            (distance - expected_distance).abs() < 1e-5,
            "{got:?} vs {expected:?}"
        );
    }
}

#[test]
fn knn_distances_per_metric_filters_and_includes() {
    crate::e2e_support::run(knn_distances_per_metric_filters_and_includes_body);
}

async fn knn_distances_per_metric_filters_and_includes_body() {
    let server = ServerProcess::start("sdk_knn").await;
    let client = client(&server);
    for (name, metric) in [
        ("euclid", Metric::L2),
        ("angles", Metric::Cosine),
        ("inner", Metric::Dot),
    ] {
        client
            .create_dataset(&NewDataset::new(name, 2).with_metric(metric))
            .await
            .unwrap();
    }
    let points = |coordinates: &[(&str, [f32; 2], &str)]| -> Vec<Record> {
        coordinates
            .iter()
            .map(|(id, vector, label)| {
                Record::new(*id, vector.to_vec())
                    .with_label(*label)
                    .with_uri(format!("file:///{id}"))
                    .with_metadata("name", *id)
            })
            .collect()
    };
    client
        .upsert(
            "euclid",
            &points(&[
                ("a", [0.0, 0.0], "even"),
                ("b", [3.0, 4.0], "odd"),
                ("c", [1.0, 0.0], "odd"),
                ("d", [0.0, -2.0], "even"),
            ]),
        )
        .await
        .unwrap();
    client
        .upsert(
            "angles",
            &points(&[
                ("a", [1.0, 0.0], "x"),
                ("b", [0.0, 1.0], "y"),
                ("c", [1.0, 1.0], "x"),
                ("d", [-1.0, 0.0], "y"),
            ]),
        )
        .await
        .unwrap();
    client
        .upsert(
            "inner",
            &points(&[
                ("a", [1.0, 0.0], "x"),
                ("b", [2.0, 0.0], "x"),
                ("c", [0.0, 3.0], "y"),
                ("d", [-1.0, 0.0], "y"),
            ]),
        )
        .await
        .unwrap();
    let query = |dataset: &'static str, queries: Vec<Vec<f32>>, k: usize, filter: Option<Value>| {
        let client = client.clone();
        async move {
            client
                .knn(
                    dataset,
                    &KnnRequest {
                        queries,
                        k,
                        filter,
                        include: None,
                    },
                )
                .await
                .unwrap()
        }
    };

    // l2: the Euclidean distance, not squared.
    let results = query("euclid", vec![vec![0.0, 0.0]], 4, None).await;
    assert_distances(
        &results[0],
        &[("a", 0.0), ("c", 1.0), ("d", 2.0), ("b", 5.0)],
    );
    // cosine: 1 - cosine similarity.
    let results = query("angles", vec![vec![2.0, 0.0]], 4, None).await;
    assert_distances(
        &results[0],
        &[
            ("a", 0.0),
            ("c", 1.0 - std::f32::consts::FRAC_1_SQRT_2),
            ("b", 1.0),
            ("d", 2.0),
        ],
    );
    // dot: the negated inner product.
    let results = query("inner", vec![vec![1.0, 1.0]], 4, None).await;
    assert_distances(
        &results[0],
        &[("c", -3.0), ("b", -2.0), ("a", -1.0), ("d", 1.0)],
    );

    // Several queries: one list each, nearest first; k caps the list and a k
    // over the dataset's size returns every record.
    let results = query(
        "euclid",
        vec![vec![3.0, 4.0], vec![0.0, -3.0], vec![0.9, 0.0]],
        2,
        None,
    )
    .await;
    assert_eq!(results.len(), 3);
    assert_distances(&results[0], &[("b", 0.0), ("c", 20.0f32.sqrt())]);
    assert_distances(&results[1], &[("d", 1.0), ("a", 3.0)]);
    assert_eq!(neighbour_ids(&results[2]), ["c", "a"]);
    let everything = query("euclid", vec![vec![0.0, 0.0]], 50, None).await;
    assert_eq!(everything[0].len(), 4);

    // A filter restricts the candidates.
    let odd = query(
        "euclid",
        vec![vec![0.0, 0.0]],
        4,
        Some(json!({"label": "odd"})),
    )
    .await;
    assert_distances(&odd[0], &[("c", 1.0), ("b", 5.0)]);
    let filtered = query(
        "euclid",
        vec![vec![0.0, 0.0]],
        1,
        Some(json!({"$and": [{"label": "even"}, {"id": {"$ne": "a"}}]})),
    )
    .await;
    assert_distances(&filtered[0], &[("d", 2.0)]);
    let none = query(
        "euclid",
        vec![vec![0.0, 0.0]],
        3,
        Some(json!({"label": "nobody"})),
    )
    .await;
    assert_eq!(none, vec![Vec::<Neighbour>::new()]);
    // Filters on id, label and prediction run on the cached copy, the others
    // in ClickHouse: both give the store's answers (`$nin` and `$ne` also
    // match a missing field).
    let not_odd = query(
        "euclid",
        vec![vec![0.0, 0.0]],
        4,
        Some(json!({"label": {"$nin": ["odd"]}, "prediction": {"$ne": "odd"}})),
    )
    .await;
    assert_distances(&not_odd[0], &[("a", 0.0), ("d", 2.0)]);
    let by_metadata = query(
        "euclid",
        vec![vec![0.0, 0.0]],
        4,
        Some(json!({"metadata.name": {"$in": ["b", "d"]}})),
    )
    .await;
    assert_distances(&by_metadata[0], &[("d", 2.0), ("b", 5.0)]);
    let by_id_and_uri = query(
        "euclid",
        vec![vec![0.0, 0.0]],
        4,
        Some(json!({"$or": [{"id": "c"}, {"uri": "file:///b"}]})),
    )
    .await;
    assert_distances(&by_id_and_uri[0], &[("c", 1.0), ("b", 5.0)]);

    // include returns the fields asked for, and only those.
    let bare = query("euclid", vec![vec![0.0, 0.0]], 1, None).await;
    assert_eq!(bare[0][0].fields, Default::default());
    let full = client
        .knn(
            "euclid",
            &KnnRequest {
                queries: vec![vec![3.0, 3.0]],
                k: 2,
                filter: None,
                include: Some(vec![
                    Include::Label,
                    Include::Uri,
                    Include::Metadata,
                    Include::Vector,
                ]),
            },
        )
        .await
        .unwrap();
    let first = &full[0][0];
    assert_eq!(first.id, "b");
    assert_eq!(first.fields.label.as_deref(), Some("odd"));
    assert_eq!(first.fields.uri.as_deref(), Some("file:///b"));
    assert_eq!(
        first.fields.metadata.clone().map(Value::Object),
        Some(json!({"name": "b"}))
    );
    assert_eq!(first.fields.vector, Some(vec![3.0, 4.0]));
    assert_eq!(first.fields.prediction, None);
    assert_eq!(full[0][1].id, "c");
    assert_eq!(full[0][1].fields.vector, Some(vec![1.0, 0.0]));
    let labels_only = client
        .knn(
            "inner",
            &KnnRequest {
                queries: vec![vec![0.0, 1.0]],
                k: 1,
                filter: None,
                include: Some(vec![Include::Label]),
            },
        )
        .await
        .unwrap();
    assert_eq!(labels_only[0][0].id, "c");
    assert_eq!(labels_only[0][0].fields.label.as_deref(), Some("y"));
    assert_eq!(labels_only[0][0].fields.uri, None);
    assert_eq!(labels_only[0][0].fields.vector, None);
    let from_memory = client
        .knn(
            "euclid",
            &KnnRequest {
                queries: vec![vec![3.0, 3.0]],
                k: 1,
                filter: None,
                include: Some(vec![Include::Vector, Include::Label, Include::Prediction]),
            },
        )
        .await
        .unwrap();
    assert_eq!(from_memory[0][0].id, "b");
    assert_eq!(from_memory[0][0].fields.vector, Some(vec![3.0, 4.0]));
    assert_eq!(from_memory[0][0].fields.label.as_deref(), Some("odd"));
    assert_eq!(from_memory[0][0].fields.prediction, None);
    assert_eq!(from_memory[0][0].fields.uri, None);

    // An upsert is visible to the next kNN (the cache refreshes).
    client
        .upsert("euclid", &[Record::new("e", vec![0.1, 0.1])])
        .await
        .unwrap();
    let refreshed = query("euclid", vec![vec![0.1, 0.1]], 1, None).await;
    assert_distances(&refreshed[0], &[("e", 0.0)]);

    // Refusals.
    assert_code(
        client
            .knn(
                "euclid",
                &KnnRequest {
                    queries: vec![vec![0.0, 0.0, 0.0]],
                    k: 1,
                    ..KnnRequest::default()
                },
            )
            .await,
        "dimension_mismatch",
    );
    assert_code(
        client
            .knn(
                "euclid",
                &KnnRequest {
                    queries: vec![vec![0.0, 0.0]],
                    k: 0,
                    ..KnnRequest::default()
                },
            )
            .await,
        "invalid_parameter",
    );
    assert_code(
        client
            .knn(
                "euclid",
                &KnnRequest {
                    queries: vec![vec![0.0, 0.0]],
                    k: 1,
                    filter: Some(json!({"label": {"$like": "o%"}})),
                    include: None,
                },
            )
            .await,
        "invalid_filter",
    );
    assert_code(
        client
            .knn(
                "euclid",
                &KnnRequest {
                    queries: vec![vec![f32::NAN, 0.0]],
                    k: 1,
                    ..KnnRequest::default()
                },
            )
            .await,
        "non_finite_value",
    );
    assert!(matches!(
        client
            .knn(
                "ghost",
                &KnnRequest {
                    queries: vec![vec![0.0, 0.0]],
                    k: 1,
                    ..KnnRequest::default()
                },
            )
            .await,
        Err(Error::UnknownDataset { .. })
    ));
}

/// A deterministic jitter in [-0.5, 0.5).
fn jitter(index: usize, axis: usize) -> f32 {
    ((index * 37 + axis * 101 + 11) % 97) as f32 / 97.0 - 0.5
}

fn request(
    kind: &str,
    target: &str,
    reference: Option<&str>,
    params: Value,
) -> StartAnalysisRequest {
    StartAnalysisRequest {
        kind: kind.into(),
        target: target.into(),
        reference: reference.map(Into::into),
        params: Some(object(params)),
    }
}

#[test]
fn analyses_run_report_progress_rank_and_cancel() {
    crate::e2e_support::run(analyses_run_report_progress_rank_and_cancel_body);
}

async fn analyses_run_report_progress_rank_and_cancel_body() {
    let server = ServerProcess::start("sdk_analyses").await;
    let client = client(&server);

    // Two well separated classes of 30; three "a" records labeled "b".
    client
        .create_dataset(&NewDataset::new("labeled", 4))
        .await
        .unwrap();
    let wrong = ["a03", "a11", "a27"];
    let mut records = Vec::new();
    for (class, centre) in [("a", 0.0f32), ("b", 10.0)] {
        for index in 0..30 {
            let id = format!("{class}{index:02}");
            let vector = (0..4).map(|axis| centre + jitter(index, axis)).collect();
            let label = if wrong.contains(&id.as_str()) {
                "b"
            } else {
                class
            };
            records.push(
                Record::new(id, vector)
                    .with_label(label)
                    .with_prediction(class),
            );
        }
    }
    assert_eq!(client.upsert("labeled", &records).await.unwrap(), 60);

    // mislabel: the wrong labels rank first; progress is reported.
    let started = client
        .start_analysis(&request("mislabel", "labeled", None, json!({"k": 5})))
        .await
        .unwrap();
    assert_eq!(started.status, JobStatus::Queued);
    assert_eq!(started.kind.as_str(), "mislabel");
    assert_eq!(started.progress, 0.0);
    let mut seen: Vec<AnalysisStatus> = Vec::new();
    let done = client
        .wait_for_analysis(started.id, |status| seen.push(status.clone()))
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(done.progress, 1.0);
    assert!(done.started_at_ms.is_some() && done.finished_at_ms.is_some());
    assert!(!seen.is_empty());
    assert_eq!(seen.last().unwrap().status, JobStatus::Done);
    assert!(
        seen.windows(2)
            .all(|pair| pair[0].progress <= pair[1].progress || pair[1].status == JobStatus::Done),
        "progress never goes back: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|status| ["queued", "running", "done"].contains(&status.status.as_str()))
    );
    let top = client.analysis_results(started.id, 10, 0).await.unwrap();
    assert_eq!(top.total, 60);
    assert_eq!(top.results.len(), 10);
    let top3: BTreeSet<&str> = top.results[..3]
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    assert_eq!(top3, wrong.into_iter().collect(), "{:?}", top.results);
    for row in &top.results[..3] {
        assert_eq!(row["label"], "b", "{row}");
        assert_eq!(row["suggested_label"], "a", "{row}");
        assert!(row["evidence"]["neighbours"].as_array().is_some(), "{row}");
    }
    // Paging: ranks continue, scores never rise, no row twice.
    let next = client.analysis_results(started.id, 10, 10).await.unwrap();
    assert_eq!(next.total, 60);
    let mut all_rows = top.results.clone();
    all_rows.extend(next.results.clone());
    for (position, row) in all_rows.iter().enumerate() {
        assert_eq!(row["rank"], position + 1, "{row}");
    }
    assert!(
        all_rows
            .windows(2)
            .all(|pair| pair[0]["score"].as_f64() >= pair[1]["score"].as_f64())
    );
    let rest = client.analysis_results(started.id, 1000, 20).await.unwrap();
    assert_eq!(rest.results.len(), 40);
    let past_end = client.analysis_results(started.id, 10, 60).await.unwrap();
    assert!(past_end.results.is_empty());
    assert_eq!(past_end.total, 60);
    let mut every_id: Vec<String> = all_rows
        .iter()
        .chain(&rest.results)
        .map(|row| row["id"].as_str().unwrap().to_owned())
        .collect();
    every_id.sort();
    every_id.dedup();
    assert_eq!(every_id.len(), 60);

    // select: n records, each once.
    let select = client
        .run_analysis(&request("select", "labeled", None, json!({"n": 7})), |_| {})
        .await
        .unwrap();
    let picked = client.analysis_results(select.id, 100, 0).await.unwrap();
    assert_eq!((picked.total, picked.results.len()), (7, 7));
    let distinct: BTreeSet<&str> = picked
        .results
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 7);
    let weighted = client
        .run_analysis(
            &request(
                "select",
                "labeled",
                None,
                json!({"n": 3, "weights": {"mislabel": 1.0}, "k": 5}),
            ),
            |_| {},
        )
        .await
        .unwrap();
    let weighted = client.analysis_results(weighted.id, 10, 0).await.unwrap();
    let weighted: BTreeSet<&str> = weighted
        .results
        .iter()
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    assert_eq!(weighted, wrong.into_iter().collect());

    // near_duplicates: an exact duplicate pair is found.
    client
        .create_dataset(&NewDataset::new("dups", 4))
        .await
        .unwrap();
    let mut spread: Vec<Record> = (0..20)
        .map(|index| {
            Record::new(
                format!("p{index:02}"),
                (0..4)
                    .map(|axis| (index * 3 + axis) as f32 + jitter(index, axis))
                    .collect(),
            )
        })
        .collect();
    spread.push(Record::new("copy-of-p07", spread[7].vector.clone()));
    client.upsert("dups", &spread).await.unwrap();
    let duplicates = client
        .run_analysis(&request("near_duplicates", "dups", None, json!({})), |_| {})
        .await
        .unwrap();
    let pairs = client
        .analysis_results(duplicates.id, 100, 0)
        .await
        .unwrap();
    assert!(pairs.total >= 1, "{pairs:?}");
    let first = &pairs.results[0];
    let pair: BTreeSet<&str> = [
        first["id"].as_str().unwrap(),
        first["other_id"].as_str().unwrap(),
    ]
    .into();
    assert_eq!(pair, ["copy-of-p07", "p07"].into(), "{pairs:?}");
    assert_eq!(first["distance"].as_f64(), Some(0.0));
    assert_eq!(first["rank"], 1);
    assert_eq!(first["exact"], true);
    assert!(first.get("other_dataset").is_none());

    // drift needs a reference: a typed error at start; with one, a summary.
    let error = assert_code(
        client
            .start_analysis(&request("drift", "labeled", None, json!({})))
            .await,
        "invalid_parameter",
    );
    assert!(matches!(error, Error::InvalidInput { .. }), "{error:?}");
    assert!(error.to_string().contains("reference"), "{error}");
    assert_code(
        client
            .start_analysis(&request("drift", "labeled", Some("ghost"), json!({})))
            .await,
        "unknown_dataset",
    );
    assert_code(
        client
            .start_analysis(&request(
                "mislabel",
                "labeled",
                Some("dups"),
                json!({"k": 3}),
            ))
            .await,
        "invalid_parameter",
    );
    assert_code(
        client
            .start_analysis(&request("telepathy", "labeled", None, json!({})))
            .await,
        "invalid_parameter",
    );
    let drift = client
        .run_analysis(
            &request(
                "drift",
                "labeled",
                Some("labeled"),
                json!({"n_permutations": 20, "seed": 1}),
            ),
            |_| {},
        )
        .await
        .unwrap();
    let drift = client.analysis_results(drift.id, 10, 0).await.unwrap();
    let summary = drift.summary.expect("drift has a summary");
    let p_value = summary["p_value"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p_value), "{summary}");

    // projection: coordinates for every record.
    let projection = client
        .run_analysis(
            &request("projection", "labeled", None, json!({"dimensions": 3})),
            |_| {},
        )
        .await
        .unwrap();
    let coordinates = client
        .analysis_results(projection.id, 100, 0)
        .await
        .unwrap();
    assert_eq!((coordinates.total, coordinates.results.len()), (60, 60));
    for row in &coordinates.results {
        let point = row["coordinates"].as_array().unwrap();
        assert_eq!(point.len(), 3, "{row}");
        assert!(
            point
                .iter()
                .all(|value| value.as_f64().unwrap().is_finite())
        );
    }
    // The two classes land apart on the first component.
    let first_component = |prefix: &str| -> Vec<f64> {
        coordinates
            .results
            .iter()
            .filter(|row| row["id"].as_str().unwrap().starts_with(prefix))
            .map(|row| row["coordinates"][0].as_f64().unwrap())
            .collect()
    };
    let (a, b) = (first_component("a"), first_component("b"));
    let separated =
        a.iter().all(|x| b.iter().all(|y| x < y)) || a.iter().all(|x| b.iter().all(|y| x > y));
    assert!(separated, "{a:?} vs {b:?}");

    // Unknown analyses.
    let unknown = uuid::Uuid::new_v4();
    assert!(matches!(
        client.analysis_status(unknown).await,
        Err(Error::UnknownAnalysis { .. })
    ));
    assert!(matches!(
        client.analysis_results(unknown, 10, 0).await,
        Err(Error::UnknownAnalysis { .. })
    ));
    assert!(matches!(
        client.cancel_analysis(unknown).await,
        Err(Error::UnknownAnalysis { .. })
    ));

    // Cancel a long analysis: uniqueness over 20,000 records.
    client
        .create_dataset(&NewDataset::new("large", 16))
        .await
        .unwrap();
    let mut writer = client
        .batch_writer(
            "large",
            BatchWriterConfig::default().with_max_batch_records(5_000),
        )
        .unwrap();
    for index in 0..20_000 {
        let vector = (0..16)
            .map(|axis| ((index * 31 + axis * 17) % 997) as f32 / 997.0)
            .collect();
        writer
            .write(Record::new(format!("q{index:05}"), vector))
            .await
            .unwrap();
    }
    assert_eq!(writer.finish().await.unwrap().n_records_written, 20_000);
    let long = client
        .start_analysis(&request("uniqueness", "large", None, json!({"k": 50})))
        .await
        .unwrap();
    let cancelled = client.cancel_analysis(long.id).await.unwrap();
    assert_eq!(cancelled.id, long.id);
    assert!(
        ["queued", "running", "cancelled", "done"].contains(&cancelled.status.as_str()),
        "{cancelled:?}"
    );
    let ended = tokio::time::timeout(
        Duration::from_secs(60),
        client.wait_for_analysis(long.id, |_| {}),
    )
    .await
    .expect("a cancelled analysis ends within 60 s");
    match ended {
        Err(Error::AnalysisCancelled { id, kind }) => {
            eprintln!("the uniqueness analysis ended cancelled");
            assert_eq!((id, kind.as_str()), (long.id, "uniqueness"));
            let status = client.analysis_status(long.id).await.unwrap();
            assert_eq!(status.status, JobStatus::Cancelled);
            assert!(status.finished_at_ms.is_some());
            assert!(matches!(
                client.analysis_results(long.id, 10, 0).await,
                Err(Error::AnalysisNotFinished { .. })
            ));
        }
        Ok(status) => {
            eprintln!("the uniqueness analysis finished before the cancel took effect");
            assert_eq!(status.status, JobStatus::Done);
            let results = client.analysis_results(long.id, 1, 0).await.unwrap();
            assert_eq!(results.total, 20_000);
        }
        Err(other) => panic!("a cancelled analysis ended with {other:?}"),
    }
    // The server still works after the cancel.
    let after = client
        .run_analysis(
            &request("uniqueness", "dups", None, json!({"k": 3})),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        client.analysis_results(after.id, 1, 0).await.unwrap().total,
        21
    );
}

#[test]
fn the_server_compacts_deleted_datasets_on_its_own() {
    crate::e2e_support::run(the_server_compacts_deleted_datasets_on_its_own_body);
}

async fn the_server_compacts_deleted_datasets_on_its_own_body() {
    let server =
        ServerProcess::start_with("sdk_compaction", &[("MUTANT_COMPACT_INTERVAL_S", "1")]).await;
    let client = client(&server);
    client
        .create_dataset(&NewDataset::new("doomed", 2))
        .await
        .unwrap();
    let records: Vec<Record> = (0..50)
        .map(|index| Record::new(format!("r{index}"), vec![index as f32, 1.0]))
        .collect();
    client.upsert("doomed", &records).await.unwrap();
    client.delete_dataset("doomed").await.unwrap();
    let clickhouse = clickhouse::Client::default()
        .with_url(mutant_tests::clickhouse_url())
        .with_database(&server.database)
        .with_validation(false);
    let mut physical = u64::MAX;
    for _ in 0..300 {
        physical = clickhouse
            .query("SELECT count() FROM records")
            .fetch_one()
            .await
            .unwrap();
        if physical == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        physical, 0,
        "a deleted dataset's rows are still stored 30 s later, with compaction every second"
    );
}

/// Quotes, backslashes, SQL, placeholders and control characters in ids,
/// labels, predictions, uris and metadata values travel through the SDK and
/// the server into ClickHouse and back unchanged, and filters and kNN match
/// them literally.
#[test]
fn hostile_strings_are_stored_and_matched_literally_through_the_server() {
    crate::e2e_support::run(|| async {
        let server = ServerProcess::start("sdk_hostile_strings").await;
        let client = Client::new(&server.url).unwrap();
        client
            .create_dataset(&NewDataset::new("nasty", 2))
            .await
            .unwrap();
        let nasty = [
            "'; DROP TABLE records; --",
            "a\\'b",
            "\" OR 1=1 --",
            "?",
            "{x}",
            "\\",
            "tab\there",
            "new\nline",
            "`x`",
            "%_",
            "日本語",
        ];
        let records: Vec<Record> = nasty
            .iter()
            .enumerate()
            .map(|(index, text)| {
                Record::new(*text, vec![index as f32, 0.0])
                    .with_label(*text)
                    .with_prediction(*text)
                    .with_uri(*text)
                    .with_metadata("k", *text)
            })
            .collect();
        client.upsert("nasty", &records).await.unwrap();
        for (index, text) in nasty.iter().enumerate() {
            for field in ["id", "label", "prediction", "uri", "metadata.k"] {
                let filter = json!({ field: text });
                let found = client
                    .get_records(
                        "nasty",
                        &GetRecordsRequest {
                            filter: Some(filter.clone()),
                            include: Some(vec![Include::Label, Include::Uri, Include::Metadata]),
                            ..GetRecordsRequest::default()
                        },
                    )
                    .await
                    .unwrap();
                assert_eq!(found.len(), 1, "{field} = {text:?}");
                assert_eq!(found[0].id, *text);
                assert_eq!(found[0].label.as_deref(), Some(*text));
                assert_eq!(found[0].uri.as_deref(), Some(*text));
                assert_eq!(client.count("nasty", Some(&filter)).await.unwrap(), 1);
            }
            let neighbours = client
                .knn(
                    "nasty",
                    &KnnRequest {
                        queries: vec![vec![index as f32, 0.0]],
                        k: 3,
                        filter: Some(json!({"label": text})),
                        include: None,
                    },
                )
                .await
                .unwrap();
            assert_eq!(neighbours[0].len(), 1, "kNN filtered on label {text:?}");
            assert_eq!(neighbours[0][0].id, *text);
        }
        assert_eq!(client.count("nasty", None).await.unwrap(), nasty.len());
    });
}
