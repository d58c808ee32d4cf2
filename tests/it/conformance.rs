//! One conformance suite for every `Store`: each case runs against
//! `MemoryStore` and against ClickHouse (the run that matters).

use mutant_core::Error;
use mutant_core::model::{
    AnalysisJob, DatasetRef, DatasetUpdate, Filter, JobState, MetadataUpdate, Metric, NewDataset,
    Record, WrittenContent, WrittenRow,
};
use mutant_core::store::{FetchQuery, ResultSelection, Store, StoredRow};
use serde_json::{Map, Value, json};

use crate::by_ref;

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("a JSON object")
}

fn filter(value: Value) -> Filter {
    Filter::from_json(&value).expect("a valid filter")
}

fn sample_records() -> Vec<Record> {
    vec![
        Record::new("a", vec![1.0, 0.0])
            .with_label("cat")
            .with_prediction("cat")
            .with_metadata("n", 1)
            .with_metadata("camera", "front"),
        Record::new("b", vec![0.0, 1.0])
            .with_label("dog")
            .with_prediction("cat")
            .with_metadata("n", 5)
            .with_uri("s3://x/b.png"),
        Record::new("c", vec![0.5, 0.5])
            .with_label("cat")
            .with_metadata("ok", true),
        Record::new("d", vec![-1.0, 2.5]),
    ]
}

async fn ids_matching(store: &dyn Store, dataset: &DatasetRef, filter: Filter) -> Vec<String> {
    let records = by_ref::fetch(
        store,
        dataset,
        &FetchQuery {
            with_vectors: false,
            ..FetchQuery::new(filter, 1000)
        },
    )
    .await
    .unwrap();
    records.into_iter().map(|record| record.id).collect()
}

pub(crate) async fn dataset_catalogue(store: &dyn Store) {
    let created = store
        .create_dataset(
            NewDataset::new("train", 4)
                .with_metric(Metric::Cosine)
                .with_metadata(object(
                    json!({"team": "vision", "split": {"kind": "train"}}),
                )),
        )
        .await
        .unwrap();
    assert_eq!((created.dimension, created.metric), (4, Metric::Cosine));
    assert_eq!(
        store
            .get_dataset(&DatasetRef::Id(created.id))
            .await
            .unwrap(),
        created
    );
    assert_eq!(
        store
            .get_dataset(&DatasetRef::parse("train"))
            .await
            .unwrap()
            .id,
        created.id
    );
    assert!(matches!(
        store.create_dataset(NewDataset::new("train", 8)).await,
        Err(Error::DatasetExists { .. })
    ));
    assert!(matches!(
        store.create_dataset(NewDataset::new("bad name", 8)).await,
        Err(Error::InvalidDatasetName { .. })
    ));
    assert!(matches!(
        store.create_dataset(NewDataset::new("zero", 0)).await,
        Err(Error::InvalidDimension { .. })
    ));
    store
        .create_dataset(NewDataset::new("prod", 4).with_metadata(object(json!({"team": "audio"}))))
        .await
        .unwrap();

    let names = |datasets: Vec<mutant_core::model::Dataset>| {
        datasets.into_iter().map(|d| d.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list_datasets(None).await.unwrap()),
        ["prod", "train"]
    );
    let pattern = object(json!({"split": {"kind": "train"}}));
    assert_eq!(
        names(store.list_datasets(Some(&pattern)).await.unwrap()),
        ["train"]
    );

    assert!(matches!(
        by_ref::rename_dataset(store, &DatasetRef::parse("train"), "prod").await,
        Err(Error::DatasetExists { .. })
    ));
    let renamed = by_ref::rename_dataset(store, &DatasetRef::parse("train"), "train-v2")
        .await
        .unwrap();
    assert_eq!(renamed.id, created.id);
    assert!(matches!(
        store.get_dataset(&DatasetRef::parse("train")).await,
        Err(Error::UnknownDataset { .. })
    ));

    let patched = by_ref::update_dataset_metadata(
        store,
        &DatasetRef::Id(created.id),
        MetadataUpdate::Patch(object(json!({"team": null, "owner": "ana"}))),
    )
    .await
    .unwrap();
    assert_eq!(
        Value::Object(patched.metadata.clone()),
        json!({"split": {"kind": "train"}, "owner": "ana"})
    );
    let replaced = by_ref::update_dataset_metadata(
        store,
        &DatasetRef::Id(created.id),
        MetadataUpdate::Replace(object(json!({"v": 2}))),
    )
    .await
    .unwrap();
    assert_eq!(
        store
            .get_dataset(&DatasetRef::Id(created.id))
            .await
            .unwrap()
            .metadata,
        replaced.metadata
    );

    by_ref::upsert(
        store,
        &DatasetRef::parse("train-v2"),
        vec![Record::new("x", vec![0.0; 4])],
    )
    .await
    .unwrap();
    by_ref::delete_dataset(store, &DatasetRef::parse("train-v2"))
        .await
        .unwrap();
    assert!(matches!(
        store.get_dataset(&DatasetRef::Id(created.id)).await,
        Err(Error::UnknownDataset { .. })
    ));
    assert!(matches!(
        by_ref::delete_dataset(store, &DatasetRef::parse("train-v2")).await,
        Err(Error::UnknownDataset { .. })
    ));
    let recreated = store
        .create_dataset(NewDataset::new("train-v2", 4))
        .await
        .unwrap();
    assert_ne!(recreated.id, created.id);
    assert_eq!(
        by_ref::count(store, &DatasetRef::parse("train-v2"), &Filter::all())
            .await
            .unwrap(),
        0,
        "a re-created dataset starts empty"
    );
}

pub(crate) async fn upsert_fetch_and_count(store: &dyn Store) {
    store
        .create_dataset(NewDataset::new("items", 2))
        .await
        .unwrap();
    let items = DatasetRef::parse("items");
    assert_eq!(
        by_ref::upsert(store, &items, sample_records())
            .await
            .unwrap(),
        4
    );

    let all = by_ref::fetch(store, &items, &FetchQuery::new(Filter::all(), 100))
        .await
        .unwrap();
    assert_eq!(
        all,
        sample_records(),
        "records come back whole, ordered by id"
    );
    let page = by_ref::fetch(
        store,
        &items,
        &FetchQuery {
            offset: 1,
            ..FetchQuery::new(Filter::all(), 2)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["b", "c"]
    );
    let without_vectors = by_ref::fetch(
        store,
        &items,
        &FetchQuery {
            with_vectors: false,
            ..FetchQuery::new(Filter::all(), 1)
        },
    )
    .await
    .unwrap();
    assert!(without_vectors[0].vector.is_empty());
    assert_eq!(without_vectors[0].label.as_deref(), Some("cat"));

    for (query, expected) in [
        (json!({"label": "cat"}), vec!["a", "c"]),
        (
            json!({"prediction": {"$in": ["cat", "dog"]}}),
            vec!["a", "b"],
        ),
        (json!({"prediction": null}), vec!["c", "d"]),
        (json!({"label": {"$ne": "cat"}}), vec!["b", "d"]),
        (json!({"metadata.n": {"$gte": 2}}), vec!["b"]),
        (json!({"metadata.n": {"$lt": 5}}), vec!["a"]),
        (json!({"metadata.camera": "front"}), vec!["a"]),
        (json!({"metadata.camera": {"$gt": "a"}}), vec!["a"]),
        (json!({"metadata.ok": true}), vec!["c"]),
        (json!({"metadata.n": {"$nin": [1]}}), vec!["b", "c", "d"]),
        (json!({"uri": {"$ne": null}}), vec!["b"]),
        (
            json!({"$or": [{"id": "d"}, {"$and": [{"label": "cat"}, {"metadata.ok": {"$ne": true}}]}]}),
            vec!["a", "d"],
        ),
        (json!({"id": {"$in": ["b", "zz", "d"]}}), vec!["b", "d"]),
        (json!({"id": {"$gte": "b", "$lt": "d"}}), vec!["b", "c"]),
    ] {
        assert_eq!(
            ids_matching(store, &items, filter(query.clone())).await,
            expected,
            "filter {query}"
        );
        assert_eq!(
            by_ref::count(store, &items, &filter(query.clone()))
                .await
                .unwrap(),
            expected.len(),
            "count {query}"
        );
    }

    let replacement = Record::new("b", vec![9.0, 9.0]).with_label("bird");
    by_ref::upsert(store, &items, vec![replacement.clone()])
        .await
        .unwrap();
    let fetched = by_ref::fetch(store, &items, &FetchQuery::new(Filter::ids(["b"]), 10))
        .await
        .unwrap();
    assert_eq!(
        fetched,
        vec![replacement],
        "an upsert replaces the whole record"
    );
    assert_eq!(
        by_ref::count(store, &items, &filter(json!({"label": "dog"})))
            .await
            .unwrap(),
        0,
        "a replaced version never matches"
    );
    assert_eq!(
        by_ref::count(store, &items, &Filter::all()).await.unwrap(),
        4
    );
}

pub(crate) async fn deletes_by_ids_and_filter(store: &dyn Store) {
    store
        .create_dataset(NewDataset::new("items", 2))
        .await
        .unwrap();
    let items = DatasetRef::parse("items");
    by_ref::upsert(store, &items, sample_records())
        .await
        .unwrap();
    assert_eq!(
        by_ref::delete_records(store, &items, &Filter::ids(["a", "missing"]))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        by_ref::delete_records(store, &items, &Filter::ids(["a"]))
            .await
            .unwrap(),
        0,
        "deleting twice deletes nothing more"
    );
    assert_eq!(
        by_ref::delete_records(store, &items, &filter(json!({"label": "cat"})))
            .await
            .unwrap(),
        1
    );
    assert_eq!(ids_matching(store, &items, Filter::all()).await, ["b", "d"]);
    by_ref::upsert(store, &items, vec![Record::new("a", vec![3.0, 3.0])])
        .await
        .unwrap();
    assert_eq!(
        ids_matching(store, &items, Filter::all()).await,
        ["a", "b", "d"],
        "a deleted id can be written again"
    );
}

pub(crate) async fn load_and_incremental_changes(store: &dyn Store) {
    store
        .create_dataset(NewDataset::new("items", 2))
        .await
        .unwrap();
    let items = DatasetRef::parse("items");
    by_ref::upsert(store, &items, sample_records())
        .await
        .unwrap();
    by_ref::delete_records(store, &items, &Filter::ids(["d"]))
        .await
        .unwrap();
    let mut loaded = by_ref::load(store, &items).await.unwrap();
    assert_eq!(
        rows_of(&loaded),
        vec![
            (
                "a".into(),
                vec![1.0, 0.0],
                Some("cat".into()),
                Some("cat".into())
            ),
            (
                "b".into(),
                vec![0.0, 1.0],
                Some("dog".into()),
                Some("cat".into())
            ),
            ("c".into(), vec![0.5, 0.5], Some("cat".into()), None),
        ]
    );
    let nothing = by_ref::changes_after(store, &items, loaded.watermark)
        .await
        .unwrap();
    assert!(nothing.upserts.is_empty() && nothing.deleted_ids.is_empty());

    by_ref::upsert(
        store,
        &items,
        vec![
            Record::new("b", vec![7.0, 7.0]).with_label("bird"),
            Record::new("e", vec![1.0, 1.0]),
        ],
    )
    .await
    .unwrap();
    by_ref::delete_records(store, &items, &Filter::ids(["a"]))
        .await
        .unwrap();
    let changes = by_ref::changes_after(store, &items, loaded.watermark)
        .await
        .unwrap();
    assert_eq!(changes.deleted_ids, ["a"]);
    assert_eq!(changes.upserts.len(), 2);
    assert!(changes.watermark > loaded.watermark);
    loaded.apply_changes(&changes);
    let fresh = by_ref::load(store, &items).await.unwrap();
    assert_eq!(
        rows_of(&loaded),
        rows_of(&fresh),
        "a refreshed load equals a fresh one"
    );

    by_ref::delete_dataset(store, &items).await.unwrap();
    assert!(matches!(
        by_ref::changes_after(store, &items, 0).await,
        Err(Error::UnknownDataset { .. })
    ));
}

/// One row of a loaded dataset: id, vector, label, prediction.
pub(crate) type LoadedRow = (String, Vec<f32>, Option<String>, Option<String>);

/// A loaded dataset's rows, sorted by id, with class names.
pub(crate) fn rows_of(loaded: &mutant_core::model::LoadedDataset) -> Vec<LoadedRow> {
    let name = |code: Option<u32>| {
        code.and_then(|code| loaded.classes.name(code))
            .map(str::to_owned)
    };
    let mut rows: Vec<_> = (0..loaded.n_records())
        .map(|row_idx| {
            (
                loaded.ids[row_idx].clone(),
                loaded.row(row_idx).to_vec(),
                name(loaded.labels[row_idx]),
                name(loaded.predictions[row_idx]),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

pub(crate) async fn bad_input_leaves_data_unchanged(store: &dyn Store) {
    store
        .create_dataset(NewDataset::new("items", 2))
        .await
        .unwrap();
    let items = DatasetRef::parse("items");
    by_ref::upsert(store, &items, sample_records())
        .await
        .unwrap();
    let before = by_ref::fetch(store, &items, &FetchQuery::new(Filter::all(), 100))
        .await
        .unwrap();

    let good = || Record::new("a", vec![5.0, 5.0]);
    type ErrorCheck = fn(&Error) -> bool;
    let bad_batches: Vec<(Vec<Record>, ErrorCheck)> = vec![
        (vec![good(), Record::new("z", vec![1.0, 2.0, 3.0])], |e| {
            matches!(
                e,
                Error::DimensionMismatch {
                    expected: 2,
                    got: 3,
                    ..
                }
            )
        }),
        (vec![good(), Record::new("z", vec![f32::NAN, 0.0])], |e| {
            matches!(e, Error::NonFiniteValue { .. })
        }),
        (
            vec![good(), Record::new("z", vec![0.0, f32::NEG_INFINITY])],
            |e| matches!(e, Error::NonFiniteValue { .. }),
        ),
        (vec![good(), Record::new("", vec![0.0, 0.0])], |e| {
            matches!(e, Error::EmptyRecordId { index: 1 })
        }),
        (vec![good(), good()], |e| {
            matches!(e, Error::DuplicateRecordId { .. })
        }),
        (vec![], |e| matches!(e, Error::EmptyBatch)),
        (vec![good().with_metadata("bad key!", 1)], |e| {
            matches!(e, Error::InvalidMetadata { .. })
        }),
    ];
    for (batch, expected) in bad_batches {
        let error = by_ref::upsert(store, &items, batch).await.unwrap_err();
        assert!(expected(&error), "unexpected error {error:?}");
    }
    let missing = by_ref::upsert(store, &DatasetRef::parse("nope"), vec![good()])
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::UnknownDataset { .. }));
    assert!(matches!(
        by_ref::count(store, &DatasetRef::parse("nope"), &Filter::all()).await,
        Err(Error::UnknownDataset { .. })
    ));
    assert!(matches!(
        by_ref::rename_dataset(store, &items, "no spaces allowed").await,
        Err(Error::InvalidDatasetName { .. })
    ));
    assert_eq!(
        by_ref::fetch(store, &items, &FetchQuery::new(Filter::all(), 100))
            .await
            .unwrap(),
        before,
        "refused input changed nothing"
    );
}

pub(crate) async fn hostile_strings_are_stored_and_matched_literally(store: &dyn Store) {
    store
        .create_dataset(NewDataset::new("x-1", 1))
        .await
        .unwrap();
    let dataset = DatasetRef::parse("x-1");
    let nasty = [
        "'; DROP TABLE records; --",
        "a\\'b",
        "?",
        "??",
        "\\",
        "tab\there",
        "new\nline",
        "`x`",
        "é\u{0}z",
        "%_",
    ];
    let records: Vec<Record> = nasty
        .iter()
        .enumerate()
        .map(|(index, text)| {
            Record::new(*text, vec![index as f32])
                .with_label(*text)
                .with_prediction(*text)
                .with_uri(*text)
                .with_metadata("k", *text)
        })
        .collect();
    by_ref::upsert(store, &dataset, records.clone())
        .await
        .unwrap();
    for record in &records {
        for field in ["id", "label", "prediction", "uri", "metadata.k"] {
            let matched = ids_matching(store, &dataset, filter(json!({ field: record.id }))).await;
            assert_eq!(
                matched,
                std::slice::from_ref(&record.id),
                "{field} = {:?}",
                record.id
            );
        }
    }
    let mut sorted = records.clone();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        by_ref::fetch(store, &dataset, &FetchQuery::new(Filter::all(), 100))
            .await
            .unwrap(),
        sorted
    );
    assert_eq!(
        by_ref::delete_records(store, &dataset, &Filter::ids(nasty))
            .await
            .unwrap(),
        nasty.len()
    );
}

pub(crate) async fn long_id_lists(store: &dyn Store) {
    store
        .create_dataset(NewDataset::new("many", 1))
        .await
        .unwrap();
    let dataset = DatasetRef::parse("many");
    let ids: Vec<String> = (0..20_000)
        .map(|index| format!("record-with-a-rather-long-identifier-{index:06}"))
        .collect();
    let records: Vec<Record> = ids
        .iter()
        .enumerate()
        .map(|(index, id)| Record::new(id.clone(), vec![index as f32]))
        .collect();
    by_ref::upsert(store, &dataset, records).await.unwrap();
    // 20,000 ids of 44 bytes: far over 18.16's 262,144-byte query limit in one list.
    let every_other: Vec<&String> = ids.iter().step_by(2).collect();
    assert_eq!(
        by_ref::count(
            store,
            &dataset,
            &Filter::ids(every_other.iter().map(|id| id.as_str()))
        )
        .await
        .unwrap(),
        10_000
    );
    let page = by_ref::fetch(
        store,
        &dataset,
        &FetchQuery {
            offset: 5,
            with_vectors: true,
            ..FetchQuery::new(Filter::ids(every_other.iter().map(|id| id.as_str())), 3)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [&ids[10], &ids[12], &ids[14]]
    );
    assert_eq!(
        by_ref::delete_records(
            store,
            &dataset,
            &Filter::ids(every_other.iter().map(|id| id.as_str()))
        )
        .await
        .unwrap(),
        10_000
    );
    assert_eq!(
        by_ref::count(store, &dataset, &Filter::all())
            .await
            .unwrap(),
        10_000
    );

    // Changes restricted to ids, with the id list over the query size limit.
    let resolved = store.get_dataset(&dataset).await.unwrap();
    let changes = store.changes_of(&resolved, 0, &ids).await.unwrap();
    assert_eq!(
        (changes.upserts.len(), changes.deleted_ids.len()),
        (10_000, 10_000)
    );

    // An empty id set matches nothing, and deletes nothing.
    let none = Filter::ids(Vec::<String>::new());
    assert_eq!(by_ref::count(store, &dataset, &none).await.unwrap(), 0);
    assert!(ids_matching(store, &dataset, none.clone()).await.is_empty());
    assert_eq!(
        by_ref::delete_records(store, &dataset, &none)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        by_ref::count(store, &dataset, &Filter::all())
            .await
            .unwrap(),
        10_000
    );
}

/// Analysis jobs (issue 6): the latest version wins, and a cancel request,
/// once written, survives later versions that do not carry it.
pub(crate) async fn analysis_jobs_latest_version_and_sticky_cancel(store: &dyn Store) {
    let id = uuid::Uuid::new_v4();
    assert!(matches!(
        store.get_analysis(id).await,
        Err(Error::UnknownAnalysis { .. })
    ));
    let target = uuid::Uuid::new_v4();
    let mut job = AnalysisJob::queued(id, "novelty", target, 1_000);
    job.reference = Some(uuid::Uuid::new_v4());
    job.params = object(json!({"k": 10, "note": "it's \"quoted\""}));
    job.server = "abc@host/127.0.0.1:7311".into();
    store.put_analysis(&job).await.unwrap();
    assert_eq!(store.get_analysis(id).await.unwrap(), job);

    job.state = JobState::Running;
    job.progress = 0.25;
    job.started_at_ms = Some(1_100);
    job.heartbeat_at_ms = 1_200;
    store.put_analysis(&job).await.unwrap();
    assert_eq!(store.get_analysis(id).await.unwrap(), job);

    // A cancel request, then a heartbeat written by a server that had not
    // seen it yet: the request is not lost.
    let cancel = AnalysisJob {
        cancel_requested: true,
        ..job.clone()
    };
    store.put_analysis(&cancel).await.unwrap();
    job.progress = 0.5;
    job.heartbeat_at_ms = 2_200;
    store.put_analysis(&job).await.unwrap();
    let read = store.get_analysis(id).await.unwrap();
    assert!(read.cancel_requested);
    assert_eq!((read.progress, read.heartbeat_at_ms), (0.5, 2_200));

    job.state = JobState::Done;
    job.progress = 1.0;
    job.n_results = 3;
    job.summary = Some(json!({"statistic": 0.5, "p_value": 0.01}));
    job.finished_at_ms = Some(3_000);
    job.target_watermark = 42;
    job.reference_watermark = 7;
    store.put_analysis(&job).await.unwrap();
    let read = store.get_analysis(id).await.unwrap();
    assert_eq!(
        read,
        AnalysisJob {
            cancel_requested: true,
            ..job.clone()
        }
    );
    // Another job is untouched by all this.
    assert!(matches!(
        store.get_analysis(uuid::Uuid::new_v4()).await,
        Err(Error::UnknownAnalysis { .. })
    ));
}

/// The analyses of a dataset (issue 15): newest first, each in its latest
/// (final-first) version, limited, and every dataset's without a target.
pub(crate) async fn analyses_are_listed_newest_first(store: &dyn Store) {
    let target = uuid::Uuid::new_v4();
    let other_target = uuid::Uuid::new_v4();
    let mut jobs = Vec::new();
    for (created_at_ms, on) in [
        (1_000, target),
        (3_000, target),
        (2_000, target),
        (4_000, other_target),
    ] {
        let job = AnalysisJob::queued(uuid::Uuid::new_v4(), "mislabel", on, created_at_ms);
        store.put_analysis(&job).await.unwrap();
        jobs.push(job);
    }
    // The second job runs, then ends; a late heartbeat does not revive it.
    let mut ended = jobs[1].clone();
    ended.state = JobState::Running;
    store.put_analysis(&ended).await.unwrap();
    ended.state = JobState::Done;
    ended.progress = 1.0;
    store.put_analysis(&ended).await.unwrap();
    let mut late = ended.clone();
    late.state = JobState::Running;
    store.put_analysis(&late).await.unwrap();

    let listed = store.list_analyses(Some(target), 10).await.unwrap();
    let ids: Vec<uuid::Uuid> = listed.iter().map(|job| job.id).collect();
    assert_eq!(ids, [jobs[1].id, jobs[2].id, jobs[0].id]);
    assert_eq!(listed[0].state, JobState::Done);
    assert_eq!(listed[1], jobs[2]);
    let newest = store.list_analyses(Some(target), 2).await.unwrap();
    assert_eq!(
        newest.iter().map(|job| job.id).collect::<Vec<_>>(),
        ids[..2]
    );
    let everything = store.list_analyses(None, 10).await.unwrap();
    assert_eq!(everything.len(), 4);
    assert_eq!(everything[0].id, jobs[3].id);
    assert!(
        store
            .list_analyses(Some(uuid::Uuid::new_v4()), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Rows in their stored form.
fn stored(rows: &[Value]) -> Vec<StoredRow> {
    rows.iter().map(StoredRow::new).collect()
}

/// Analysis results (issue 6): pages by rank; rows stored a chunk at a time
/// (issue 13) read as one list; writing them again (a retried INSERT)
/// changes nothing.
pub(crate) async fn analysis_results_are_paged_by_rank(store: &dyn Store) {
    let id = uuid::Uuid::new_v4();
    let rows: Vec<Value> = (0..2_500)
        .map(|rank| json!({"id": format!("r{rank}"), "score": 1.0 / (rank as f64 + 1.0), "rank": rank + 1, "evidence": {"text": "a'b\"c\\d"}}))
        .collect();
    assert!(
        store
            .analysis_results(id, &ResultSelection::page(0, 10))
            .await
            .unwrap()
            .is_empty()
    );
    for (first_rank, chunk) in [(0, &rows[..1_000]), (1_000, &rows[1_000..])] {
        store
            .put_analysis_results(id, first_rank, &stored(chunk))
            .await
            .unwrap();
    }
    store
        .put_analysis_results(id, 0, &stored(&rows))
        .await
        .unwrap();
    assert_eq!(
        store
            .analysis_results(id, &ResultSelection::page(0, 3))
            .await
            .unwrap(),
        rows[..3]
    );
    assert_eq!(
        store
            .analysis_results(id, &ResultSelection::page(1_998, 5))
            .await
            .unwrap(),
        rows[1_998..2_003]
    );
    assert_eq!(
        store
            .analysis_results(id, &ResultSelection::page(2_490, 100))
            .await
            .unwrap(),
        rows[2_490..]
    );
    assert!(
        store
            .analysis_results(id, &ResultSelection::page(2_500, 10))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .analysis_results(id, &ResultSelection::page(0, 0))
            .await
            .unwrap()
            .is_empty()
    );
    let other = uuid::Uuid::new_v4();
    store
        .put_analysis_results(other, 0, &stored(&rows[..1]))
        .await
        .unwrap();
    assert_eq!(
        store
            .analysis_results(other, &ResultSelection::page(0, 10))
            .await
            .unwrap(),
        rows[..1]
    );
}

/// Analysis results filtered by verdict and score (issue 11): a filtered
/// page skips matching rows only, in rank order, and the count of matching
/// rows ignores the page; rows without a verdict count as not flagged.
pub(crate) async fn analysis_results_filter_by_verdict_and_score(store: &dyn Store) {
    let id = uuid::Uuid::new_v4();
    let rows: Vec<Value> = (0..30)
        .map(|rank| {
            let score = 1.0 - f64::from(rank) / 30.0;
            if rank == 29 {
                json!({"id": format!("r{rank}"), "score": score, "rank": rank + 1})
            } else {
                json!({"id": format!("r{rank}"), "score": score, "rank": rank + 1, "flagged": rank % 3 == 0})
            }
        })
        .collect();
    for _ in 0..2 {
        store
            .put_analysis_results(id, 0, &stored(&rows))
            .await
            .unwrap();
    }
    let selection = |offset, limit, flagged, min_score| ResultSelection {
        offset,
        limit,
        flagged,
        min_score,
    };
    let flagged: Vec<Value> = rows.iter().step_by(3).cloned().collect();
    assert_eq!(
        store
            .analysis_results(id, &selection(0, 100, Some(true), None))
            .await
            .unwrap(),
        flagged
    );
    assert_eq!(
        store
            .analysis_results(id, &selection(2, 3, Some(true), None))
            .await
            .unwrap(),
        flagged[2..5]
    );
    assert_eq!(
        store
            .count_analysis_results(id, &selection(2, 3, Some(true), None))
            .await
            .unwrap(),
        10
    );
    let not_flagged = store
        .analysis_results(id, &selection(0, 100, Some(false), None))
        .await
        .unwrap();
    assert_eq!(not_flagged.len(), 20);
    assert_eq!(not_flagged.last(), rows.last());
    // Scores 1.0, 0.9667, ..., at least 0.5: the first 16 rows.
    let high = selection(0, 100, None, Some(0.5));
    assert_eq!(store.analysis_results(id, &high).await.unwrap(), rows[..16]);
    assert_eq!(store.count_analysis_results(id, &high).await.unwrap(), 16);
    let both = selection(0, 100, Some(true), Some(0.5));
    assert_eq!(store.count_analysis_results(id, &both).await.unwrap(), 6);
    assert_eq!(
        store
            .count_analysis_results(uuid::Uuid::new_v4(), &both)
            .await
            .unwrap(),
        0
    );
}

/// A dataset's data watermark (issue 6) grows with every upsert and delete,
/// matches what a load reports, and is refused once the dataset is deleted.
pub(crate) async fn dataset_watermark_follows_writes(store: &dyn Store) {
    let dataset = store
        .create_dataset(NewDataset::new("marked", 2))
        .await
        .unwrap();
    assert_eq!(store.dataset_watermark(dataset.id).await.unwrap(), 0);
    let dataset_ref = DatasetRef::Id(dataset.id);
    by_ref::upsert(store, &dataset_ref, sample_records())
        .await
        .unwrap();
    let after_upsert = store.dataset_watermark(dataset.id).await.unwrap();
    assert!(after_upsert > 0);
    assert_eq!(
        by_ref::load(store, &dataset_ref).await.unwrap().watermark,
        after_upsert
    );
    assert_eq!(
        store.dataset_watermark(dataset.id).await.unwrap(),
        after_upsert,
        "reads do not move it"
    );
    by_ref::delete_records(store, &dataset_ref, &Filter::ids(["a"]))
        .await
        .unwrap();
    let after_delete = store.dataset_watermark(dataset.id).await.unwrap();
    assert!(after_delete > after_upsert);
    by_ref::delete_dataset(store, &dataset_ref).await.unwrap();
    assert!(matches!(
        store.dataset_watermark(dataset.id).await,
        Err(Error::UnknownDataset { .. })
    ));
}

/// What a refreshing cache asks for: the rows written since a version,
/// whole only past a second one, and the changes of chosen ids only.
pub(crate) async fn changes_since_and_changes_of_chosen_ids(store: &dyn Store) {
    let dataset = store
        .create_dataset(NewDataset::new("versions", 2))
        .await
        .unwrap();
    let name = DatasetRef::parse("versions");
    by_ref::upsert(store, &name, sample_records())
        .await
        .unwrap();
    let after_first = store.dataset_watermark(dataset.id).await.unwrap();
    by_ref::delete_records(store, &name, &Filter::ids(["b"]))
        .await
        .unwrap();
    by_ref::upsert(store, &name, vec![Record::new("a", vec![9.0, 9.0])])
        .await
        .unwrap();
    let latest = |rows: &[WrittenRow], id: &str| {
        rows.iter()
            .filter(|row| row.id == id)
            .max_by_key(|row| row.version)
            .cloned()
    };
    let everything = store
        .changes_since(&dataset, 0, u64::MAX)
        .await
        .unwrap()
        .rows;
    for id in ["a", "b", "c", "d"] {
        let row = latest(&everything, id).unwrap_or_else(|| panic!("{id} was written"));
        assert_eq!(
            row.content,
            WrittenContent::NotRead,
            "{id} is not read whole"
        );
    }
    let since_first = store
        .changes_since(&dataset, after_first, after_first)
        .await
        .unwrap()
        .rows;
    let a = latest(&since_first, "a").expect("a was written again");
    assert!(a.version > after_first);
    assert_eq!(
        a.version,
        latest(&everything, "a").unwrap().version,
        "the newest version is reported"
    );
    match a.content {
        WrittenContent::Upsert(record) => assert_eq!(record.vector, [9.0, 9.0]),
        other => panic!("a is read whole past the second version, got {other:?}"),
    }
    assert_eq!(
        latest(&since_first, "b").map(|row| row.content),
        Some(WrittenContent::Delete),
        "a delete is a change"
    );
    assert_eq!(latest(&since_first, "c"), None);
    let split = store
        .changes_since(&dataset, 0, after_first)
        .await
        .unwrap()
        .rows;
    assert_eq!(
        latest(&split, "c").map(|row| row.content),
        Some(WrittenContent::NotRead),
        "c was written before the second version"
    );

    let chosen = store
        .changes_of(
            &dataset,
            0,
            &["a".to_owned(), "b".to_owned(), "zz".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(chosen.upserts.len(), 1);
    assert_eq!(chosen.upserts[0].id, "a");
    assert_eq!(chosen.upserts[0].vector, [9.0, 9.0]);
    assert_eq!(chosen.deleted_ids, ["b"]);
    assert!(
        store
            .changes_of(&dataset, 0, &[])
            .await
            .unwrap()
            .upserts
            .is_empty()
    );
}

/// The change feed's catalogue stamp stays as resolved while only records
/// change, and moves with every catalogue change that touches what the name
/// resolves to: a rename, a new dataset under the name, a delete. The
/// dataset cache relies on it to use a dataset resolved once.
pub(crate) async fn the_feed_stamp_follows_the_catalogue(store: &dyn Store) {
    let created = store
        .create_dataset(NewDataset::new("stamped", 2))
        .await
        .unwrap();
    let name = DatasetRef::parse("stamped");
    let resolved = store.resolve(&name).await.unwrap();
    assert_eq!(
        store.resolve(&DatasetRef::Id(created.id)).await.unwrap(),
        resolved,
        "by id and by name, the same resolution"
    );
    let feed_stamp = |dataset: mutant_core::model::Dataset| async move {
        store.changes_since(&dataset, 0, 0).await.unwrap().stamp
    };
    assert_eq!(feed_stamp(created.clone()).await, resolved.stamp);
    by_ref::upsert(store, &name, sample_records())
        .await
        .unwrap();
    by_ref::delete_records(store, &name, &Filter::ids(["a"]))
        .await
        .unwrap();
    assert_eq!(
        feed_stamp(created.clone()).await,
        resolved.stamp,
        "record writes leave the catalogue alone"
    );

    let patched = by_ref::update_dataset_metadata(
        store,
        &name,
        MetadataUpdate::Patch(object(json!({"v": 2}))),
    )
    .await
    .unwrap();
    let after_patch = store.resolve(&name).await.unwrap();
    assert_eq!(after_patch.dataset.metadata, patched.metadata);
    assert_eq!(feed_stamp(patched.clone()).await, after_patch.stamp);

    let renamed = by_ref::rename_dataset(store, &name, "stamped-v2")
        .await
        .unwrap();
    assert_ne!(
        feed_stamp(patched.clone()).await,
        after_patch.stamp,
        "a rename away from the name"
    );
    let recreated = store
        .create_dataset(NewDataset::new("stamped", 2))
        .await
        .unwrap();
    let new_resolution = store.resolve(&name).await.unwrap();
    assert_eq!(new_resolution.dataset.id, recreated.id);
    assert_eq!(feed_stamp(recreated.clone()).await, new_resolution.stamp);

    let under_new_name = store.resolve(&DatasetRef::Id(renamed.id)).await.unwrap();
    by_ref::delete_dataset(store, &DatasetRef::Id(renamed.id))
        .await
        .unwrap();
    match store.changes_since(&renamed, 0, 0).await {
        Ok(feed) => assert_ne!(feed.stamp, under_new_name.stamp, "a delete"),
        Err(error) => assert!(matches!(error, Error::UnknownDataset { .. }), "{error}"),
    }
    assert!(matches!(
        store.resolve(&DatasetRef::Id(created.id)).await,
        Err(Error::UnknownDataset { .. })
    ));
}

/// A change that resolved a dataset before its delete landed (a PATCH, a
/// rename, racing the DELETE through another server) never brings it back.
pub(crate) async fn a_deleted_dataset_stays_deleted_whatever_races_it(store: &dyn Store) {
    let created = store
        .create_dataset(NewDataset::new("doomed", 2))
        .await
        .unwrap();
    let before_delete = store.resolve(&DatasetRef::parse("doomed")).await.unwrap();
    store.delete_dataset(&before_delete).await.unwrap();
    let patch = DatasetUpdate::metadata(MetadataUpdate::Patch(object(json!({"late": true}))));
    let late_changes = [
        patch,
        DatasetUpdate::rename("doomed-renamed"),
        DatasetUpdate::rename("doomed"),
    ];
    for change in late_changes {
        match store.update_dataset(&before_delete, change).await {
            Ok(_) | Err(Error::UnknownDataset { .. }) => {}
            Err(error) => panic!("a late change fails only as unknown_dataset: {error}"),
        }
        for reference in [
            DatasetRef::Id(created.id),
            DatasetRef::parse("doomed"),
            DatasetRef::parse("doomed-renamed"),
        ] {
            assert!(
                matches!(
                    store.resolve(&reference).await,
                    Err(Error::UnknownDataset { .. })
                ),
                "{reference} stays deleted"
            );
        }
    }
    assert!(store.list_datasets(None).await.unwrap().is_empty());
    let again = store
        .create_dataset(NewDataset::new("doomed", 2))
        .await
        .unwrap();
    assert_ne!(again.id, created.id, "the name is free for a new dataset");
}

/// Metadata changes made concurrently (both through the same resolution,
/// as two servers racing would) both land: patches compose in order, a
/// rename keeps them, and a replacement starts over.
pub(crate) async fn concurrent_metadata_changes_both_land(store: &dyn Store) {
    store
        .create_dataset(NewDataset::new("shared", 2).with_metadata(object(json!({"team": "a"}))))
        .await
        .unwrap();
    let resolved = store.resolve(&DatasetRef::parse("shared")).await.unwrap();
    let patch = |value: Value| DatasetUpdate::metadata(MetadataUpdate::Patch(object(value)));
    store
        .update_dataset(&resolved, patch(json!({"owner": "ana"})))
        .await
        .unwrap();
    store
        .update_dataset(&resolved, patch(json!({"split": "train"})))
        .await
        .unwrap();
    store
        .update_dataset(&resolved, DatasetUpdate::rename("shared-v2"))
        .await
        .unwrap();
    let metadata = |name: &'static str| async move {
        Value::Object(
            store
                .get_dataset(&DatasetRef::parse(name))
                .await
                .unwrap()
                .metadata,
        )
    };
    assert_eq!(
        metadata("shared-v2").await,
        json!({"team": "a", "owner": "ana", "split": "train"})
    );
    store
        .update_dataset(
            &resolved,
            DatasetUpdate::metadata(MetadataUpdate::Replace(object(json!({"v": 1})))),
        )
        .await
        .unwrap();
    store
        .update_dataset(&resolved, patch(json!({"w": 2})))
        .await
        .unwrap();
    assert_eq!(metadata("shared-v2").await, json!({"v": 1, "w": 2}));
    let listed = store.list_datasets(None).await.unwrap();
    assert_eq!(
        Value::Object(listed[0].metadata.clone()),
        json!({"v": 1, "w": 2})
    );
}

/// Compaction forgets the analyses (and their results) of deleted datasets,
/// as target or as reference, and keeps every other analysis.
pub(crate) async fn compaction_forgets_the_analyses_of_deleted_datasets(store: &dyn Store) {
    let kept = store
        .create_dataset(NewDataset::new("kept", 1))
        .await
        .unwrap();
    let gone = store
        .create_dataset(NewDataset::new("gone", 1))
        .await
        .unwrap();
    let analysis = |target: uuid::Uuid, reference: Option<uuid::Uuid>| {
        let mut job = AnalysisJob::queued(uuid::Uuid::new_v4(), "novelty", target, 1_000);
        job.reference = reference;
        job
    };
    let survivor = analysis(kept.id, None);
    let of_target = analysis(gone.id, None);
    let of_reference = analysis(kept.id, Some(gone.id));
    let rows = [json!({"id": "r", "score": 0.5, "rank": 1})];
    for job in [&survivor, &of_target, &of_reference] {
        store.put_analysis(job).await.unwrap();
        store
            .put_analysis_results(job.id, 0, &stored(&rows))
            .await
            .unwrap();
    }
    by_ref::delete_dataset(store, &DatasetRef::parse("gone"))
        .await
        .unwrap();
    store.compact().await.unwrap();
    // ClickHouse applies its mutations in the background.
    let mut forgotten = false;
    for _ in 0..600 {
        let target_gone = store.get_analysis(of_target.id).await.is_err();
        let reference_gone = store.get_analysis(of_reference.id).await.is_err();
        let results_gone = store
            .analysis_results(of_reference.id, &ResultSelection::page(0, 10))
            .await
            .unwrap()
            .is_empty();
        if target_gone && reference_gone && results_gone {
            forgotten = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        forgotten,
        "the analyses of a deleted dataset outlived compaction"
    );
    assert!(matches!(
        store.get_analysis(of_target.id).await,
        Err(Error::UnknownAnalysis { .. })
    ));
    assert_eq!(store.get_analysis(survivor.id).await.unwrap(), survivor);
    assert_eq!(
        store
            .analysis_results(survivor.id, &ResultSelection::page(0, 10))
            .await
            .unwrap(),
        rows
    );
}

macro_rules! conformance_suite {
    ($($case:ident),* $(,)?; not on a cluster: $($single_node_case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&mutant_core::store::MemoryStore::new()).await;
                }
            )*
            $(
                #[tokio::test]
                async fn $single_node_case() {
                    super::$single_node_case(&mutant_core::store::MemoryStore::new()).await;
                }
            )*
        }
        mod clickhouse {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = mutant_tests::clickhouse_store(concat!("conformance_", stringify!($case))).await;
                    super::$case(&store).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $single_node_case() {
                    let store = mutant_tests::clickhouse_store(concat!("conformance_", stringify!($single_node_case))).await;
                    super::$single_node_case(&store).await;
                }
            )*
        }
        /// The same suite on the test cluster (2 shards x 2 replicas,
        /// `MUTANT_CLICKHOUSE_CLUSTER_URL`), issue 16.
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let store = mutant_tests::clickhouse_cluster_store(concat!("conformance_cluster_", stringify!($case))).await;
                    super::$case(&store).await;
                }
            )*
        }
    };
}

conformance_suite!(
    dataset_catalogue,
    upsert_fetch_and_count,
    deletes_by_ids_and_filter,
    load_and_incremental_changes,
    bad_input_leaves_data_unchanged,
    hostile_strings_are_stored_and_matched_literally,
    long_id_lists,
    analysis_jobs_latest_version_and_sticky_cancel,
    analysis_results_are_paged_by_rank,
    analysis_results_filter_by_verdict_and_score,
    analyses_are_listed_newest_first,
    dataset_watermark_follows_writes,
    changes_since_and_changes_of_chosen_ids,
    the_feed_stamp_follows_the_catalogue,
    a_deleted_dataset_stays_deleted_whatever_races_it,
    concurrent_metadata_changes_both_land;
    // Compaction's mutations `ON CLUSTER` can wedge a replica's DDL queue on
    // ClickHouse 18.16.1 (see ARCHITECTURE.md, "On a cluster"), and with it
    // every later test's schema creation, so the suite's cluster run leaves
    // this case out.
    not on a cluster: compaction_forgets_the_analyses_of_deleted_datasets,
);
