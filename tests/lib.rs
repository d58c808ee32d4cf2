//! Shared support for Mutant's integration tests: reaching the ClickHouse that
//! `scripts/clickhouse.sh` starts, and one database per test.

use std::time::Duration;

use mutant_core::store::{ClickHouseConfig, ClickHouseStore};

/// The ClickHouse URL tests use: `MUTANT_CLICKHOUSE_URL`, by convention.
pub fn clickhouse_url() -> String {
    std::env::var("MUTANT_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".to_owned())
}

/// A store on a fresh database named after the test. Panics, with how to fix
/// it, when no ClickHouse answers: ClickHouse tests fail, they never skip.
pub async fn clickhouse_store(test_name: &str) -> ClickHouseStore {
    clickhouse_store_with(test_name, |config| config).await
}

/// Like [`clickhouse_store`], with the configuration adjusted first.
pub async fn clickhouse_store_with(
    test_name: &str,
    adjust: impl FnOnce(ClickHouseConfig) -> ClickHouseConfig,
) -> ClickHouseStore {
    let url = clickhouse_url();
    let database = format!("mutant_test_{test_name}");
    drop_database(&url, &database).await;
    let config = adjust(ClickHouseConfig::new(&url).with_database(&database));
    match ClickHouseStore::connect(config).await {
        Ok(store) => store,
        Err(error) => panic!(
            "cannot use ClickHouse at {url} ({error}); start one with `scripts/clickhouse.sh start` \
             and export MUTANT_CLICKHOUSE_URL to the URL it prints"
        ),
    }
}

async fn drop_database(url: &str, database: &str) {
    let client = clickhouse::Client::default().with_url(url);
    let statement = format!("DROP DATABASE IF EXISTS `{database}`");
    // An unreachable server is reported by `connect` right after.
    let _ = tokio::time::timeout(Duration::from_secs(10), client.query(&statement).execute()).await;
}

/// Waits until ClickHouse has applied every mutation of `database`.
pub async fn wait_for_mutations(store: &ClickHouseStore, database: &str) {
    for _ in 0..600 {
        let pending: u64 = store
            .client()
            .query("SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0")
            .bind(database)
            .fetch_one()
            .await
            .expect("system.mutations is readable");
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("mutations in {database} did not finish within 60 s");
}
