//! [`ClickHouseStore`]: the [`Store`] on ClickHouse, the only persistence.
//!
//! It creates its database and tables itself, reads the server version once
//! and gates settings on it, coalesces concurrent writes into one INSERT
//! (`group_commit`), resolves versions on read, and keeps user values out of
//! SQL text (`sql`). Works against 18.16.1 (Debian's, the floor) and current
//! releases.

mod analyses;
mod catalogue;
mod group_commit;
mod in_flight;
mod load;
mod records;
mod rowbinary;
mod schema;
mod sql;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use clickhouse::Client;
use serde_json::{Map, Value};
use uuid::Uuid;

pub use self::group_commit::GroupCommitConfig;
use self::group_commit::GroupCommitter;
pub use self::schema::ServerVersion;
use super::{
    AnalysisStore, Catalogue, ChangeFeed, FeedRead, FetchQuery, Records, Resolved, ResultSelection,
    Store, VersionClock,
};
use crate::ingest::ValidBatch;
use crate::model::{
    AnalysisJob, Dataset, DatasetChanges, DatasetRef, DatasetUpdate, Filter, LoadedDataset,
    NewDataset, Record,
};
use crate::{Error, Result};

/// Where and how to reach ClickHouse.
#[derive(Debug, Clone, PartialEq)]
pub struct ClickHouseConfig {
    /// The HTTP interface, e.g. `http://127.0.0.1:8123` (the convention is the
    /// `MUTANT_CLICKHOUSE_URL` environment variable).
    pub url: String,
    /// The user; `default` when empty.
    pub user: String,
    /// The password; none when empty.
    pub password: String,
    /// The database Mutant creates and uses. Default `mutant`.
    pub database: String,
    /// How concurrent writes are coalesced.
    pub group_commit: GroupCommitConfig,
    /// Tombstones younger than this survive [`Store::compact`], so that a
    /// cache refreshing from a watermark up to this old still sees the
    /// deletes. Default 10 minutes.
    pub tombstone_grace: Duration,
    /// The longest wait for one exchange with ClickHouse: a whole query or
    /// INSERT, or, while a dataset loads, the next chunk of its rows (so a
    /// large load is bounded by its pace, not its size). Past it the call
    /// fails with [`Error::StoreUnavailable`], as for an unreachable server.
    /// Default 30 s.
    pub timeout: Duration,
}

impl ClickHouseConfig {
    /// The default user, no password, database `mutant`.
    pub fn new(url: impl Into<String>) -> Self {
        ClickHouseConfig {
            url: url.into(),
            user: String::new(),
            password: String::new(),
            database: "mutant".into(),
            group_commit: GroupCommitConfig::default(),
            tombstone_grace: Duration::from_secs(600),
            timeout: Duration::from_secs(30),
        }
    }

    /// Uses another database.
    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// Sets how long tombstones survive compaction.
    pub fn with_tombstone_grace(mut self, grace: Duration) -> Self {
        self.tombstone_grace = grace;
        self
    }

    /// Sets the longest wait for one exchange with ClickHouse (see
    /// [`ClickHouseConfig::timeout`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Why a ClickHouse call failed, cheap to clone so that one failed INSERT can
/// answer every writer whose rows it held.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StoreFailure {
    /// Not reachable: connection refused, reset or timed out.
    Unavailable(String),
    /// ClickHouse answered with an error.
    Failed(String),
}

impl From<clickhouse::error::Error> for StoreFailure {
    fn from(error: clickhouse::error::Error) -> Self {
        match error {
            clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut => {
                StoreFailure::Unavailable(error.to_string())
            }
            other => StoreFailure::Failed(other.to_string()),
        }
    }
}

/// The ClickHouse [`Store`].
///
/// ```no_run
/// # async fn example() -> mutant_core::Result<()> {
/// use mutant_core::ingest::ValidBatch;
/// use mutant_core::model::{NewDataset, Record};
/// use mutant_core::store::{Catalogue, ClickHouseConfig, ClickHouseStore, Records};
///
/// let store = ClickHouseStore::connect(ClickHouseConfig::new("http://127.0.0.1:8123")).await?;
/// let train = store.create_dataset(NewDataset::new("train", 3)).await?;
/// let records = vec![Record::new("a", vec![0.1, 0.2, 0.3])];
/// store.upsert(ValidBatch::new(&train, records)?).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ClickHouseStore {
    client: Client,
    url: String,
    server_version: ServerVersion,
    insert_settings: Vec<(String, String)>,
    committer: GroupCommitter,
    clock: Arc<VersionClock>,
    max_insert_bytes: usize,
    tombstone_grace: Duration,
    timeout: Duration,
}

impl ClickHouseStore {
    /// Connects, reads the server version, and creates the database and
    /// tables if they do not exist. Must run inside a tokio runtime.
    pub async fn connect(config: ClickHouseConfig) -> Result<Self> {
        schema::validate_database_name(&config.database)?;
        let mut client = Client::default()
            .with_url(&config.url)
            .with_validation(false)
            .with_compression(clickhouse::Compression::None);
        if !config.user.is_empty() {
            client = client.with_user(&config.user);
        }
        if !config.password.is_empty() {
            client = client.with_password(&config.password);
        }
        let failure = |error: clickhouse::error::Error| into_error(&config.url, error.into());
        let version_text: String = client
            .query("SELECT version()")
            .fetch_one()
            .await
            .map_err(failure)?;
        let server_version = ServerVersion::parse(&version_text)?;
        client
            .query(&format!(
                "CREATE DATABASE IF NOT EXISTS `{}`",
                config.database
            ))
            .execute()
            .await
            .map_err(failure)?;
        let client = client.with_database(&config.database);
        for statement in [
            schema::CREATE_DATASETS,
            schema::CREATE_DATASET_METADATA,
            schema::CREATE_RECORDS,
            schema::CREATE_ANALYSES,
            schema::CREATE_ANALYSIS_RESULTS,
            schema::CREATE_INSERTS_IN_FLIGHT,
        ] {
            client.query(statement).execute().await.map_err(failure)?;
        }
        for &(table, column, definition) in schema::ADDED_COLUMNS {
            let has_column = || async {
                client
                    .query(
                        "SELECT count() FROM system.columns \
                         WHERE database = currentDatabase() AND table = ? AND name = ?",
                    )
                    .bind(table)
                    .bind(column)
                    .fetch_one::<u64>()
                    .await
                    .map(|count| count > 0)
            };
            if has_column().await.map_err(failure)? {
                continue;
            }
            let added = client
                .query(&format!(
                    "ALTER TABLE {table} ADD COLUMN {column} {definition}"
                ))
                .execute()
                .await;
            // Another server starting at the same moment may have added it.
            if let Err(error) = added
                && !has_column().await.map_err(failure)?
            {
                return Err(failure(error));
            }
        }
        let mut insert_settings = Vec::new();
        if server_version.has_async_insert() {
            insert_settings.push(("async_insert".to_owned(), "0".to_owned()));
        }
        let clock = Arc::new(VersionClock::default());
        let in_flight = Arc::new(in_flight::InFlight::default());
        let committer = GroupCommitter::start(
            client.clone(),
            insert_settings.clone(),
            config.group_commit,
            config.timeout,
            Arc::clone(&clock),
            Arc::clone(&in_flight),
        );
        tokio::spawn(in_flight::publish(
            client.clone(),
            insert_settings.clone(),
            in_flight,
            Arc::clone(&clock),
            Uuid::new_v4().to_string(),
        ));
        Ok(ClickHouseStore {
            client,
            url: config.url,
            server_version,
            insert_settings,
            committer,
            clock,
            max_insert_bytes: config.group_commit.max_bytes,
            tombstone_grace: config.tombstone_grace,
            timeout: config.timeout,
        })
    }

    /// The ClickHouse release this store talks to.
    pub fn server_version(&self) -> ServerVersion {
        self.server_version
    }

    /// The driver client, bound to Mutant's database (for tools and benchmarks).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The statement a full [`Records::load`] sends, for measuring the same
    /// bytes fetched raw.
    pub fn load_statement(dataset: &Dataset) -> String {
        load::load_statement(dataset)
    }

    fn error(&self, failure: impl Into<StoreFailure>) -> Error {
        into_error(&self.url, failure.into())
    }

    /// Runs `exchange`, failing with [`Error::StoreUnavailable`] when it takes
    /// longer than the configured timeout: a stalled ClickHouse must not hold
    /// a request (and its client) forever.
    async fn bounded<T>(&self, exchange: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(self.error(timed_out(self.timeout))),
        }
    }
}

/// The failure of an exchange that outlived `timeout`.
pub(super) fn timed_out(timeout: Duration) -> StoreFailure {
    StoreFailure::Unavailable(format!(
        "no answer within {} ms, the ClickHouse timeout; if ClickHouse is only busy, raise the timeout (MUTANT_CLICKHOUSE_TIMEOUT_MS)",
        timeout.as_millis()
    ))
}

fn into_error(url: &str, failure: StoreFailure) -> Error {
    match failure {
        StoreFailure::Unavailable(reason) => Error::StoreUnavailable {
            url: url.to_owned(),
            reason,
        },
        StoreFailure::Failed(message) => Error::Store { message },
    }
}

/// Sends one INSERT of pre-encoded `records` rows.
async fn insert_rows(
    client: &Client,
    settings: &[(String, String)],
    timeout: Duration,
    chunks: Vec<Bytes>,
) -> Result<(), StoreFailure> {
    let mut insert = client
        .insert_formatted_with(format!(
            "INSERT INTO records ({}) FORMAT RowBinary",
            schema::RECORD_COLUMNS
        ))
        .with_timeouts(Some(timeout), Some(timeout));
    for (name, value) in settings {
        insert = insert.with_setting(name, value);
    }
    for chunk in chunks {
        insert.send(chunk).await?;
    }
    insert.end().await?;
    Ok(())
}

#[async_trait]
impl Catalogue for ClickHouseStore {
    async fn create_dataset(&self, new_dataset: NewDataset) -> Result<Dataset> {
        self.bounded(async { catalogue::create(self, new_dataset).await })
            .await
    }

    async fn resolve(&self, dataset: &DatasetRef) -> Result<Resolved> {
        self.bounded(async { catalogue::resolve_stamped(self, dataset).await })
            .await
    }

    async fn list_datasets(
        &self,
        metadata_pattern: Option<&Map<String, Value>>,
    ) -> Result<Vec<Dataset>> {
        self.bounded(async {
            let datasets = catalogue::live_datasets(self).await?;
            Ok(super::select_datasets(datasets, metadata_pattern))
        })
        .await
    }

    async fn update_dataset(&self, dataset: &Resolved, update: DatasetUpdate) -> Result<Dataset> {
        self.bounded(async { catalogue::update(self, dataset, update).await })
            .await
    }

    async fn delete_dataset(&self, dataset: &Resolved) -> Result<()> {
        self.bounded(async { catalogue::delete(self, dataset).await })
            .await
    }
}

#[async_trait]
impl Records for ClickHouseStore {
    async fn upsert(&self, batch: ValidBatch) -> Result<usize> {
        self.bounded(async { records::upsert(self, batch).await })
            .await
    }

    async fn delete_records(&self, dataset: &Dataset, filter: &Filter) -> Result<usize> {
        self.bounded(async { records::delete(self, dataset, filter).await })
            .await
    }

    async fn fetch(&self, dataset: &Dataset, query: &FetchQuery) -> Result<Vec<Record>> {
        self.bounded(async { records::fetch(self, dataset, query).await })
            .await
    }

    async fn count(&self, dataset: &Dataset, filter: &Filter) -> Result<usize> {
        self.bounded(async { records::count(self, dataset, filter).await })
            .await
    }

    async fn load_within(&self, dataset: &Dataset, max_bytes: usize) -> Result<LoadedDataset> {
        load::load(self, dataset.clone(), max_bytes).await
    }
}

#[async_trait]
impl ChangeFeed for ClickHouseStore {
    async fn changes_since(
        &self,
        dataset: &Dataset,
        since: u64,
        whole_after: u64,
    ) -> Result<FeedRead> {
        self.bounded(async { load::changes_since(self, dataset, since, whole_after).await })
            .await
    }

    async fn changes_of(
        &self,
        dataset: &Dataset,
        since: u64,
        ids: &[String],
    ) -> Result<DatasetChanges> {
        self.bounded(async { load::changes_of(self, dataset, since, ids).await })
            .await
    }

    async fn dataset_watermark(&self, dataset_id: Uuid) -> Result<u64> {
        self.bounded(async { analyses::dataset_watermark(self, dataset_id).await })
            .await
    }
}

#[async_trait]
impl AnalysisStore for ClickHouseStore {
    async fn put_analysis(&self, job: &AnalysisJob) -> Result<()> {
        self.bounded(async { analyses::put(self, job).await }).await
    }

    async fn get_analysis(&self, id: Uuid) -> Result<AnalysisJob> {
        self.bounded(async { analyses::get(self, id).await }).await
    }

    async fn list_analyses(&self, target: Option<Uuid>, limit: usize) -> Result<Vec<AnalysisJob>> {
        self.bounded(async { analyses::list(self, target, limit).await })
            .await
    }

    async fn put_analysis_results(&self, id: Uuid, rows: &[Value]) -> Result<()> {
        self.bounded(async { analyses::put_results(self, id, rows).await })
            .await
    }

    async fn analysis_results(&self, id: Uuid, selection: &ResultSelection) -> Result<Vec<Value>> {
        self.bounded(async { analyses::results(self, id, selection).await })
            .await
    }

    async fn count_analysis_results(&self, id: Uuid, selection: &ResultSelection) -> Result<u64> {
        self.bounded(async { analyses::count_results(self, id, selection).await })
            .await
    }
}

#[async_trait]
impl Store for ClickHouseStore {
    async fn compact(&self) -> Result<()> {
        records::compact(self).await
    }
}
