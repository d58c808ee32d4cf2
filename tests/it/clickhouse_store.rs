//! Properties only the ClickHouse store has: group commit under concurrent
//! streaming, compaction that frees space, and the server version gate.

use std::sync::Arc;

use mutant_core::model::{DatasetRef, Filter, NewDataset, Record};
use mutant_core::store::{ClickHouseStore, Store};
use mutant_tests::{clickhouse_store, clickhouse_store_with, wait_for_mutations};

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
                    store
                        .upsert(&DatasetRef::parse("stream"), records)
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
        store
            .count(&DatasetRef::parse("stream"), &Filter::all())
            .await
            .unwrap(),
        20_000
    );
    assert_eq!(
        store
            .load(&DatasetRef::parse("stream"))
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
        store
            .upsert(&DatasetRef::parse(name), records)
            .await
            .unwrap();
    }
    store
        .delete_records(
            &DatasetRef::parse("keep"),
            &Filter::ids((0..40).map(|index| format!("r{index}"))),
        )
        .await
        .unwrap();
    store
        .delete_dataset(&DatasetRef::parse("drop"))
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
        store
            .count(&DatasetRef::parse("keep"), &Filter::all())
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
