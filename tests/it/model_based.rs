//! Model-based proptest: random sequences of create, upsert, delete-by-id,
//! delete-by-filter and dataset delete, applied to a store and to a plain
//! in-memory model, checked after every step (fetch, count and load agree).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use mutant_core::Error;
use mutant_core::model::{DatasetRef, Filter, NewDataset, Record};
use mutant_core::store::{FetchQuery, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

use crate::conformance::rows_of;

use crate::by_ref;

#[derive(Debug, Clone)]
enum Operation {
    Create(usize),
    Upsert(usize, Vec<Record>),
    DeleteIds(usize, Vec<String>),
    DeleteFilter(usize, usize),
    DeleteDataset(usize),
}

const N_DATASETS: usize = 2;

fn filters() -> Vec<Filter> {
    [
        json!({"label": "cat"}),
        json!({"prediction": {"$ne": "dog"}}),
        json!({"metadata.n": {"$gte": 2}}),
        json!({"$or": [{"label": null}, {"metadata.n": 0}]}),
        json!({"id": {"$in": ["r1", "r3", "r5"]}}),
    ]
    .iter()
    .map(|value| Filter::from_json(value).expect("valid filter"))
    .collect()
}

fn record() -> impl Strategy<Value = Record> {
    let class = prop_oneof![Just(None), Just(Some("cat")), Just(Some("dog"))];
    (
        0..8usize,
        -4i32..4,
        -4i32..4,
        class.clone(),
        class,
        proptest::option::of(0i64..4),
    )
        .prop_map(|(id, x, y, label, prediction, n)| {
            let mut record = Record::new(format!("r{id}"), vec![x as f32, y as f32 * 0.5]);
            record.label = label.map(str::to_owned);
            record.prediction = prediction.map(str::to_owned);
            if let Some(n) = n {
                record = record.with_metadata("n", n);
            }
            record
        })
}

fn operation() -> impl Strategy<Value = Operation> {
    let dataset = 0..N_DATASETS;
    prop_oneof![
        1 => dataset.clone().prop_map(Operation::Create),
        4 => (dataset.clone(), proptest::collection::vec(record(), 1..6)).prop_map(|(dataset, records)| {
            // One batch holds each id once: keep the last of duplicates.
            let unique: BTreeMap<String, Record> = records.into_iter().map(|record| (record.id.clone(), record)).collect();
            Operation::Upsert(dataset, unique.into_values().collect())
        }),
        2 => (dataset.clone(), proptest::collection::vec(0..9usize, 1..4))
            .prop_map(|(dataset, ids)| Operation::DeleteIds(dataset, ids.into_iter().map(|id| format!("r{id}")).collect())),
        2 => (dataset.clone(), 0..5usize).prop_map(|(dataset, filter)| Operation::DeleteFilter(dataset, filter)),
        1 => dataset.prop_map(Operation::DeleteDataset),
    ]
}

/// The model: live datasets by name, records by id.
type Model = HashMap<String, BTreeMap<String, Record>>;

async fn apply(store: &dyn Store, model: &mut Model, names: &[String], operation: &Operation) {
    match operation {
        Operation::Create(dataset) => {
            let name = &names[*dataset];
            let outcome = store.create_dataset(NewDataset::new(name.clone(), 2)).await;
            if model.contains_key(name) {
                assert!(
                    matches!(outcome, Err(Error::DatasetExists { .. })),
                    "{outcome:?}"
                );
            } else {
                outcome.unwrap();
                model.insert(name.clone(), BTreeMap::new());
            }
        }
        Operation::Upsert(dataset, records) => {
            let outcome =
                by_ref::upsert(store, &DatasetRef::parse(&names[*dataset]), records.clone()).await;
            match model.get_mut(&names[*dataset]) {
                Some(stored) => {
                    assert_eq!(outcome.unwrap(), records.len());
                    stored.extend(
                        records
                            .iter()
                            .map(|record| (record.id.clone(), record.clone())),
                    );
                }
                None => assert!(
                    matches!(outcome, Err(Error::UnknownDataset { .. })),
                    "{outcome:?}"
                ),
            }
        }
        Operation::DeleteIds(dataset, ids) => {
            let filter = Filter::ids(ids.iter().cloned());
            delete_matching(store, model, &names[*dataset], &filter).await;
        }
        Operation::DeleteFilter(dataset, filter) => {
            delete_matching(store, model, &names[*dataset], &filters()[*filter]).await;
        }
        Operation::DeleteDataset(dataset) => {
            let outcome = by_ref::delete_dataset(store, &DatasetRef::parse(&names[*dataset])).await;
            match model.remove(&names[*dataset]) {
                Some(_) => outcome.unwrap(),
                None => assert!(
                    matches!(outcome, Err(Error::UnknownDataset { .. })),
                    "{outcome:?}"
                ),
            }
        }
    }
}

async fn delete_matching(store: &dyn Store, model: &mut Model, name: &str, filter: &Filter) {
    let outcome = by_ref::delete_records(store, &DatasetRef::parse(name), filter).await;
    match model.get_mut(name) {
        Some(stored) => {
            let before = stored.len();
            stored.retain(|_, record| !filter.matches(record));
            assert_eq!(outcome.unwrap(), before - stored.len());
        }
        None => assert!(
            matches!(outcome, Err(Error::UnknownDataset { .. })),
            "{outcome:?}"
        ),
    }
}

async fn check(store: &dyn Store, model: &Model) {
    for (name, stored) in model {
        let dataset = DatasetRef::parse(name);
        let expected: Vec<Record> = stored.values().cloned().collect();
        let fetched = by_ref::fetch(store, &dataset, &FetchQuery::new(Filter::all(), 1000))
            .await
            .unwrap();
        assert_eq!(fetched, expected, "fetch of {name}");
        assert_eq!(
            by_ref::count(store, &dataset, &Filter::all())
                .await
                .unwrap(),
            expected.len()
        );
        for filter in filters() {
            let wanted = expected
                .iter()
                .filter(|record| filter.matches(record))
                .count();
            assert_eq!(
                by_ref::count(store, &dataset, &filter).await.unwrap(),
                wanted,
                "count of {name} with {filter:?}"
            );
        }
        let loaded = by_ref::load(store, &dataset).await.unwrap();
        let expected_rows: Vec<_> = expected
            .iter()
            .map(|record| {
                (
                    record.id.clone(),
                    record.vector.clone(),
                    record.label.clone(),
                    record.prediction.clone(),
                )
            })
            .collect();
        assert_eq!(rows_of(&loaded), expected_rows, "load of {name}");
    }
}

fn run_model_test(store: &dyn Store, runtime: &tokio::runtime::Runtime, cases: u32) {
    let case_counter = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &proptest::collection::vec(operation(), 1..16),
            |operations| {
                let case = case_counter.fetch_add(1, Ordering::Relaxed);
                let names: Vec<String> = (0..N_DATASETS)
                    .map(|dataset| format!("case{case}-d{dataset}"))
                    .collect();
                runtime.block_on(async {
                    let mut model = Model::new();
                    for operation in &operations {
                        apply(store, &mut model, &names, operation).await;
                        check(store, &model).await;
                    }
                    for name in model.keys() {
                        by_ref::delete_dataset(store, &DatasetRef::parse(name))
                            .await
                            .unwrap();
                    }
                });
                Ok(())
            },
        )
        .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn memory_store_agrees_with_the_model() {
    let runtime = runtime();
    let store = mutant_core::store::MemoryStore::new();
    run_model_test(&store, &runtime, 128);
}

#[test]
fn clickhouse_store_agrees_with_the_model() {
    let runtime = runtime();
    let store = runtime.block_on(mutant_tests::clickhouse_store("model_based"));
    run_model_test(&store, &runtime, 32);
}
