//! Properties only the ClickHouse store has: group commit under concurrent
//! streaming, compaction that frees space, the server version gate, and
//! the lock-free catalogue under racing servers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mutant_core::Error;
use mutant_core::cache::DatasetCache;
use mutant_core::ingest::ValidBatch;
use mutant_core::model::{DatasetRef, Filter, NewDataset, Record};
use mutant_core::store::{
    Catalogue, ClickHouseConfig, ClickHouseStore, GroupCommitConfig, Records, Store,
};
use mutant_tests::{clickhouse_store, clickhouse_store_with, clickhouse_url, wait_for_mutations};

use crate::by_ref;

async fn physical_rows(store: &ClickHouseStore, table: &str) -> u64 {
    store
        .client()
        .query(&format!("SELECT count() FROM {table}"))
        .fetch_one()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_small_batches_are_all_stored_once() {
    let store = Arc::new(clickhouse_store("streaming").await);
    eprintln!("ClickHouse server version {:?}", store.server_version());
    store
        .create_dataset(NewDataset::new("stream", 8))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for batch in 0..125 {
                    let records = (0..10)
                        .map(|row| {
                            Record::new(
                                format!("t{task}-b{batch}-r{row}"),
                                vec![
                                    task as f32,
                                    batch as f32,
                                    row as f32,
                                    0.0,
                                    0.0,
                                    0.0,
                                    0.0,
                                    1.0,
                                ],
                            )
                        })
                        .collect();
                    by_ref::upsert(&*store, &DatasetRef::parse("stream"), records)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // 16 tasks x 125 batches x 10 records.
    assert_eq!(
        by_ref::count(&*store, &DatasetRef::parse("stream"), &Filter::all())
            .await
            .unwrap(),
        20_000
    );
    assert_eq!(
        by_ref::load(&*store, &DatasetRef::parse("stream"))
            .await
            .unwrap()
            .n_records(),
        20_000
    );
    let inserts: u64 = physical_rows(&store, "records").await;
    assert_eq!(inserts, 20_000, "each record is stored exactly once");
    let parts: u64 = store
        .client()
        .query("SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'records' AND active")
        .fetch_one()
        .await
        .unwrap();
    assert!(
        parts < 300,
        "group commit keeps parts well below 18.16's limit, got {parts}"
    );
    // Every INSERT into a MergeTree takes the next block number, so the
    // highest one counts the INSERTs; 2,000 upserts arrived.
    let inserts: u64 = store
        .client()
        .query("SELECT max(max_block_number) FROM system.parts WHERE database = currentDatabase() AND table = 'records'")
        .fetch_one()
        .await
        .unwrap();
    eprintln!("2,000 concurrent upserts went out as {inserts} INSERTs");
    assert!(
        inserts <= 1_000,
        "group commit coalesces concurrent upserts, yet {inserts} INSERTs carried 2,000 of them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_reclaims_deleted_records_and_datasets() {
    let database = "mutant_test_compaction";
    let store = clickhouse_store_with("compaction", |config| {
        config
            .with_database(database)
            .with_tombstone_grace(std::time::Duration::ZERO)
    })
    .await;
    store
        .create_dataset(NewDataset::new("keep", 1))
        .await
        .unwrap();
    store
        .create_dataset(NewDataset::new("drop", 1))
        .await
        .unwrap();
    for name in ["keep", "drop"] {
        let records = (0..100)
            .map(|index| Record::new(format!("r{index}"), vec![index as f32]))
            .collect();
        by_ref::upsert(&store, &DatasetRef::parse(name), records)
            .await
            .unwrap();
    }
    by_ref::delete_records(
        &store,
        &DatasetRef::parse("keep"),
        &Filter::ids((0..40).map(|index| format!("r{index}"))),
    )
    .await
    .unwrap();
    by_ref::delete_dataset(&store, &DatasetRef::parse("drop"))
        .await
        .unwrap();
    assert_eq!(
        physical_rows(&store, "records").await,
        240,
        "deletes are rows until compaction"
    );

    store.compact().await.unwrap();
    wait_for_mutations(&store, database).await;
    assert_eq!(
        physical_rows(&store, "records").await,
        60,
        "only the live rows remain"
    );
    assert_eq!(
        by_ref::count(&store, &DatasetRef::parse("keep"), &Filter::all())
            .await
            .unwrap(),
        60
    );
    assert_eq!(store.list_datasets(None).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_clickhouse_is_a_clear_error() {
    let config = mutant_core::store::ClickHouseConfig::new("http://127.0.0.1:9");
    let error = ClickHouseStore::connect(config).await.unwrap_err();
    assert!(
        matches!(error, mutant_core::Error::StoreUnavailable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("127.0.0.1:9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_database_names_are_refused() {
    let config = mutant_core::store::ClickHouseConfig::new(mutant_tests::clickhouse_url())
        .with_database("x`; DROP DATABASE default; --");
    assert!(matches!(
        ClickHouseStore::connect(config).await,
        Err(mutant_core::Error::InvalidParameter {
            name: "database",
            ..
        })
    ));
}

/// Servers create and rename datasets without a lock: each writes its row
/// and reads the name back, and wins only if no other live dataset bears it.
/// Eight stores (eight servers) racing for one name leave exactly one
/// dataset under it, which every store resolves by name and by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_of_one_name_leave_one_dataset_every_server_agrees_on() {
    let first = clickhouse_store("name_race").await;
    let database = "mutant_test_name_race";
    let mut stores = vec![Arc::new(first)];
    for _ in 1..8 {
        let config = ClickHouseConfig::new(clickhouse_url()).with_database(database);
        stores.push(Arc::new(ClickHouseStore::connect(config).await.unwrap()));
    }
    for round in 0..3 {
        let name = format!("raced_{round}");
        let attempts: Vec<_> = stores
            .iter()
            .map(|store| {
                let store = Arc::clone(store);
                let name = name.clone();
                tokio::spawn(async move { store.create_dataset(NewDataset::new(&name, 4)).await })
            })
            .collect();
        let mut winners = Vec::new();
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(dataset) => winners.push(dataset),
                Err(Error::DatasetExists { .. }) => {}
                Err(other) => panic!("a racing create failed with {other:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: one create wins, got {winners:?}"
        );
        for store in &stores {
            let by_name = store.get_dataset(&DatasetRef::parse(&name)).await.unwrap();
            assert_eq!(by_name.id, winners[0].id);
            let by_id = store
                .get_dataset(&DatasetRef::Id(by_name.id))
                .await
                .unwrap();
            assert_eq!(by_id.name, name);
        }
    }
    let names: Vec<String> = stores[0]
        .list_datasets(None)
        .await
        .unwrap()
        .into_iter()
        .map(|dataset| dataset.name)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

/// Resolving by name or id reads only the datasets that ever bore the
/// names involved; a chain of renames and re-creations must still resolve
/// every reference as the whole catalogue would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_and_recreations_resolve_by_name_and_by_id() {
    let store = clickhouse_store("rename_chain").await;
    let first = store.create_dataset(NewDataset::new("a", 2)).await.unwrap();
    by_ref::rename_dataset(&store, &DatasetRef::Id(first.id), "b")
        .await
        .unwrap();
    let second = store.create_dataset(NewDataset::new("a", 2)).await.unwrap();
    by_ref::rename_dataset(&store, &DatasetRef::Id(second.id), "c")
        .await
        .unwrap();
    let third = store.create_dataset(NewDataset::new("a", 2)).await.unwrap();
    assert!(matches!(
        by_ref::rename_dataset(&store, &DatasetRef::Id(first.id), "c").await,
        Err(Error::DatasetExists { .. })
    ));
    by_ref::delete_dataset(&store, &DatasetRef::parse("c"))
        .await
        .unwrap();
    by_ref::rename_dataset(&store, &DatasetRef::Id(first.id), "c")
        .await
        .unwrap();
    let name_of = |id| {
        let store = &store;
        async move {
            store
                .get_dataset(&DatasetRef::Id(id))
                .await
                .map(|dataset| dataset.name)
        }
    };
    assert_eq!(name_of(first.id).await.unwrap(), "c");
    assert!(matches!(
        name_of(second.id).await,
        Err(Error::UnknownDataset { .. })
    ));
    assert_eq!(name_of(third.id).await.unwrap(), "a");
    for (name, expected) in [("a", Some(third.id)), ("b", None), ("c", Some(first.id))] {
        let found = store
            .get_dataset(&DatasetRef::parse(name))
            .await
            .map(|dataset| dataset.id)
            .ok();
        assert_eq!(found, expected, "dataset named {name}");
    }
}

/// A catalogue written before `name_claimed` existed gains the column on
/// start-up, and its datasets resolve, rename and keep their names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalogue_from_before_name_claims_is_upgraded_on_start() {
    let url = clickhouse_url();
    let database = "mutant_test_catalogue_upgrade";
    mutant_tests::drop_database(&url, database).await;
    let client = clickhouse::Client::default().with_url(&url);
    for statement in [
        format!("CREATE DATABASE `{database}`"),
        format!(
            "CREATE TABLE `{database}`.datasets (id UUID, version UInt64, deleted UInt8, \
             name String, dimension UInt32, metric String, metadata String, \
             created_at_ms UInt64, updated_at_ms UInt64) \
             ENGINE = ReplacingMergeTree(version) ORDER BY id"
        ),
        format!(
            "INSERT INTO `{database}`.datasets VALUES \
             ('00000000-0000-4000-8000-000000000001', 7, 0, 'old', 3, 'cosine', '{{}}', 1, 1)"
        ),
    ] {
        client.query(&statement).execute().await.unwrap();
    }
    for _ in 0..2 {
        let store = ClickHouseStore::connect(ClickHouseConfig::new(&url).with_database(database))
            .await
            .unwrap();
        let old = store.get_dataset(&DatasetRef::parse("old")).await.unwrap();
        assert_eq!(old.dimension, 3);
        assert!(matches!(
            store.create_dataset(NewDataset::new("old", 3)).await,
            Err(Error::DatasetExists { .. })
        ));
    }
    let store = ClickHouseStore::connect(ClickHouseConfig::new(&url).with_database(database))
        .await
        .unwrap();
    let renamed = by_ref::rename_dataset(&store, &DatasetRef::parse("old"), "older")
        .await
        .unwrap();
    assert_eq!(
        store
            .get_dataset(&DatasetRef::Id(renamed.id))
            .await
            .unwrap()
            .name,
        "older"
    );
}

/// A load over its byte bound stops early: the error names the bound and a
/// size reached long before the whole dataset was read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_over_its_bound_stops_before_reading_everything() {
    let store = clickhouse_store("bounded_load").await;
    store
        .create_dataset(NewDataset::new("big", 64))
        .await
        .unwrap();
    let big = DatasetRef::parse("big");
    for start in (0..40_000).step_by(10_000) {
        let records = (start..start + 10_000)
            .map(|index| Record::new(format!("r{index:06}"), vec![index as f32; 64]))
            .collect();
        by_ref::upsert(&store, &big, records).await.unwrap();
    }
    let whole = by_ref::load(&store, &big).await.unwrap().size_bytes();
    let max_bytes = 1 << 20;
    match by_ref::load_within(&store, &big, max_bytes).await {
        Err(Error::DatasetTooLarge {
            size_bytes,
            max_bytes: bound,
        }) => {
            assert_eq!(bound, max_bytes);
            assert!(size_bytes > max_bytes, "{size_bytes}");
            assert!(
                size_bytes < whole / 2,
                "stopped at {size_bytes} bytes of {whole}"
            );
        }
        other => panic!("expected DatasetTooLarge, got {other:?}"),
    }
    let fits = by_ref::load_within(&store, &big, whole).await.unwrap();
    assert_eq!(fits.n_records(), 40_000);
}

/// A dataset loaded into the cache right after it was written is not
/// fetched again by its first refresh: the load names the rows of the
/// refresh's overlap that it read. A write after the load still shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_refresh_fetches_only_what_the_load_did_not_read() {
    let store: Arc<dyn Store> = Arc::new(clickhouse_store("first_refresh").await);
    let dataset = store
        .create_dataset(NewDataset::new("fresh", 2))
        .await
        .unwrap();
    let records = (0..500)
        .map(|index| Record::new(format!("r{index}"), vec![index as f32, 1.0]))
        .collect();
    store
        .upsert(ValidBatch::new(&dataset, records).unwrap())
        .await
        .unwrap();
    let cache = DatasetCache::new(Arc::clone(&store), 1 << 26);
    let fetched = || cache.counters().rows_fetched.load(Ordering::Relaxed);
    assert_eq!(cache.get(&dataset).await.unwrap().n_records(), 500);
    assert_eq!(cache.get(&dataset).await.unwrap().n_records(), 500);
    assert_eq!(fetched(), 0, "the first refresh fetched rows the load read");
    store
        .upsert(ValidBatch::new(&dataset, vec![Record::new("late", vec![0.5, 0.5])]).unwrap())
        .await
        .unwrap();
    let refreshed = cache.get(&dataset).await.unwrap();
    assert_eq!(refreshed.n_records(), 501);
    assert_eq!(fetched(), 1);
}

/// The highest MergeTree block number of `records`: every INSERT takes the
/// next one, so it counts the INSERTs so far.
async fn n_inserts(store: &ClickHouseStore) -> u64 {
    store
        .client()
        .query("SELECT max(max_block_number) FROM system.parts WHERE database = currentDatabase() AND table = 'records'")
        .fetch_one()
        .await
        .unwrap()
}

/// Group commit's bounds hold: one large batch goes out in byte-bounded
/// pieces, and concurrent small batches are cut into INSERTs of at most
/// about the row bound, every record stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_splits_large_batches_and_keeps_its_row_bound() {
    let store = Arc::new(
        clickhouse_store_with("group_bounds", |config| ClickHouseConfig {
            group_commit: GroupCommitConfig {
                max_rows: 200,
                max_bytes: 256 << 10,
                ..GroupCommitConfig::default()
            },
            ..config
        })
        .await,
    );
    store
        .create_dataset(NewDataset::new("bounded", 64))
        .await
        .unwrap();
    let bounded = DatasetRef::parse("bounded");
    // 2,000 rows of about 280 bytes: 560 KB, in pieces of half the byte bound.
    let large: Vec<Record> = (0..2_000)
        .map(|index| Record::new(format!("large-{index}"), vec![index as f32; 64]))
        .collect();
    by_ref::upsert(&*store, &bounded, large).await.unwrap();
    let after_large = n_inserts(&store).await;
    assert!(
        after_large >= 4,
        "a 560 KB batch with a 256 KB bound went out as {after_large} INSERTs"
    );

    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for batch in 0..10 {
                    let records = (0..50)
                        .map(|row| {
                            Record::new(format!("small-{task}-{batch}-{row}"), vec![1.0; 64])
                        })
                        .collect();
                    by_ref::upsert(&*store, &DatasetRef::parse("bounded"), records)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let small_inserts = n_inserts(&store).await - after_large;
    // 8,000 rows; a group closes once it holds 200 rows, so an INSERT
    // carries at most 200 + 49 of them.
    assert!(
        small_inserts >= 8_000 / 249,
        "8,000 rows under a 200-row bound went out as {small_inserts} INSERTs"
    );
    assert_eq!(
        by_ref::count(&*store, &bounded, &Filter::all())
            .await
            .unwrap(),
        10_000
    );
}

/// A failed INSERT answers every writer whose rows it carried with the
/// error: none of them is acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_insert_answers_every_writer_in_its_group() {
    let store = Arc::new(clickhouse_store("failed_group").await);
    store
        .create_dataset(NewDataset::new("doomed", 4))
        .await
        .unwrap();
    store
        .client()
        .query("DROP TABLE records")
        .execute()
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                by_ref::upsert(
                    &*store,
                    &DatasetRef::parse("doomed"),
                    vec![Record::new(format!("r{task}"), vec![1.0; 4])],
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        match task.await.unwrap() {
            Err(Error::Store { message }) => {
                assert!(message.contains("records"), "{message}");
            }
            other => panic!("a write into a dropped table answered {other:?}"),
        }
    }
}

/// A write whose caller stopped waiting before its INSERT began (the
/// request timed out and was answered 503) is withdrawn: it never lands
/// later, over newer data written elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_abandoned_before_its_insert_never_lands() {
    let store = clickhouse_store_with("withdrawn_write", |config| ClickHouseConfig {
        group_commit: GroupCommitConfig {
            // Far longer than the 20 ms the caller waits, however late
            // its timer fires on a loaded machine.
            max_delay: std::time::Duration::from_millis(3_000),
            ..GroupCommitConfig::default()
        },
        ..config
    })
    .await;
    let dataset = store
        .create_dataset(NewDataset::new("withdrawn", 2))
        .await
        .unwrap();
    let batch =
        |id: &str| ValidBatch::new(&dataset, vec![Record::new(id, vec![1.0, 2.0])]).unwrap();
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(20),
        store.upsert(batch("abandoned")),
    )
    .await;
    assert!(abandoned.is_err(), "the write waits for its group's window");
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    store.upsert(batch("awaited")).await.unwrap();
    let ids: Vec<String> = store
        .fetch(
            &dataset,
            &mutant_core::store::FetchQuery::new(Filter::all(), 10),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.id)
        .collect();
    assert_eq!(ids, ["awaited"]);
}

/// A delete by filter removes only the versions it read: an upsert of a
/// doomed record acknowledged through another server while the delete's
/// tombstones waited for their INSERT stands, as its writer was told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_by_filter_spares_an_upsert_acknowledged_meanwhile() {
    let deleting_server = Arc::new(
        clickhouse_store_with("delete_spares", |config| ClickHouseConfig {
            group_commit: GroupCommitConfig {
                max_delay: std::time::Duration::from_millis(3_000),
                ..GroupCommitConfig::default()
            },
            ..config
        })
        .await,
    );
    let writing_server = ClickHouseStore::connect(
        ClickHouseConfig::new(clickhouse_url()).with_database("mutant_test_delete_spares"),
    )
    .await
    .unwrap();
    let dataset = deleting_server
        .create_dataset(NewDataset::new("spared", 2))
        .await
        .unwrap();
    let cat = |id: &str, value: f32| Record::new(id, vec![value, value]).with_label("cat");
    writing_server
        .upsert(ValidBatch::new(&dataset, vec![cat("a", 1.0), cat("b", 2.0)]).unwrap())
        .await
        .unwrap();
    let deleting = {
        let (server, dataset) = (Arc::clone(&deleting_server), dataset.clone());
        tokio::spawn(async move {
            let cats = Filter::from_json(&serde_json::json!({"label": "cat"})).unwrap();
            server.delete_records(&dataset, &cats).await
        })
    };
    // The delete has read a and b (it had a second); its tombstones wait
    // for their group.
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    writing_server
        .upsert(ValidBatch::new(&dataset, vec![cat("a", 9.0)]).unwrap())
        .await
        .unwrap();
    assert_eq!(deleting.await.unwrap().unwrap(), 2);
    let left = writing_server
        .fetch(
            &dataset,
            &mutant_core::store::FetchQuery::new(Filter::all(), 10),
        )
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "b is deleted, a stands: {left:?}");
    assert_eq!(
        (left[0].id.as_str(), left[0].vector.as_slice()),
        ("a", [9.0, 9.0].as_slice())
    );
}
