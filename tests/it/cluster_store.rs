//! Properties of the ClickHouse store that only a cluster can break (issue
//! 16), on the test cluster: the lock-free name claim on replicated tables
//! read through `Distributed` tables, and a schema from before a column
//! existed upgraded `ON CLUSTER`.

use std::sync::Arc;

use mutant_core::Error;
use mutant_core::model::{DatasetRef, NewDataset};
use mutant_core::store::{Catalogue, ClickHouseConfig, ClickHouseStore};
use mutant_tests::{
    CLUSTER, clickhouse_cluster_store, clickhouse_cluster_url, drop_database_on_cluster,
};

async fn cluster_store(database: &str) -> ClickHouseStore {
    let config = ClickHouseConfig::new(clickhouse_cluster_url())
        .with_database(database)
        .with_cluster(CLUSTER);
    ClickHouseStore::connect(config).await.unwrap()
}

/// Eight stores racing for one name on the cluster leave exactly one dataset
/// under it, which every store resolves by name and by id: a claim's row is
/// on a quorum of its shard's replicas before it reads the name back, and
/// that read sees it whichever replica answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_racing_creates_of_one_name_leave_one_dataset() {
    let first = clickhouse_cluster_store("name_race_cluster").await;
    let mut stores = vec![Arc::new(first)];
    for _ in 1..8 {
        stores.push(Arc::new(
            cluster_store("mutant_test_name_race_cluster").await,
        ));
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
        }
    }
    assert_eq!(stores[0].list_datasets(None).await.unwrap().len(), 3);
}

/// A catalogue created on the cluster before `name_claimed` existed gains
/// the column on every node at start-up (the local tables `ON CLUSTER`, then
/// the `Distributed` table created again), and its dataset resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_catalogue_from_before_name_claims_is_upgraded_on_start() {
    let url = clickhouse_cluster_url();
    let database = "mutant_test_catalogue_upgrade_cluster";
    drop_database_on_cluster(&url, database).await;
    let client = clickhouse::Client::default()
        .with_url(&url)
        .with_validation(false)
        .with_setting("insert_distributed_sync", "1");
    let columns = "id UUID, version UInt64, deleted UInt8, name String, dimension UInt32, \
                   metric String, metadata String, created_at_ms UInt64, updated_at_ms UInt64";
    for statement in [
        format!("CREATE DATABASE `{database}` ON CLUSTER {CLUSTER}"),
        format!(
            "CREATE TABLE `{database}`.datasets_local ON CLUSTER {CLUSTER} ({columns}) \
             ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{database}/datasets', \
             '{{replica}}', version) ORDER BY id"
        ),
        format!(
            "CREATE TABLE `{database}`.datasets ON CLUSTER {CLUSTER} AS `{database}`.datasets_local \
             ENGINE = Distributed({CLUSTER}, `{database}`, datasets_local, cityHash64(toString(id)))"
        ),
        format!(
            "INSERT INTO `{database}`.datasets VALUES \
             ('00000000-0000-4000-8000-000000000001', 7, 0, 'old', 3, 'cosine', '{{}}', 1, 1)"
        ),
    ] {
        client.query(&statement).execute().await.unwrap();
    }
    for _ in 0..2 {
        let store = cluster_store(database).await;
        let old = store.get_dataset(&DatasetRef::parse("old")).await.unwrap();
        assert_eq!(old.dimension, 3);
        assert!(matches!(
            store.create_dataset(NewDataset::new("old", 3)).await,
            Err(Error::DatasetExists { .. })
        ));
    }
    let n_nodes_with_column: u64 = client
        .query(&format!(
            "SELECT count() FROM cluster({CLUSTER}, system.columns) \
             WHERE database = '{database}' AND table = 'datasets_local' AND name = 'name_claimed'"
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        n_nodes_with_column, 2,
        "one replica of each shard, as `cluster()` reads them"
    );
}
