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
    AnalysisStore, CacheLoad, Catalogue, ChangeFeed, FeedRead, FetchQuery, Records, Resolved,
    ResultSelection, Store, StoredRow, VersionClock,
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
    /// The cluster (a name in ClickHouse's `remote_servers`) to spread the
    /// tables over: local tables `ON CLUSTER`, replicated when a shard has
    /// replicas, and `Distributed` tables that every read and write goes
    /// through (see ARCHITECTURE.md). `None` (the default): one node.
    pub cluster: Option<String>,
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
            cluster: None,
        }
    }

    /// Spreads the tables over `cluster` (see [`ClickHouseConfig::cluster`]).
    pub fn with_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
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

/// ClickHouse's error codes that say part of a cluster cannot be reached
/// for now, so the request may succeed later: 209 `SOCKET_TIMEOUT`, 210
/// `NETWORK_ERROR`, 242 `TABLE_IS_READ_ONLY` (a replica without ZooKeeper),
/// 279 `ALL_CONNECTION_TRIES_FAILED` (every replica of a shard down), 285
/// `TOO_FEW_LIVE_REPLICAS` (fewer live replicas than the insert quorum), 286
/// `UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE`, 289 `REPLICA_IS_NOT_IN_QUORUM`
/// (a replica behind the quorum, asked to read), 319
/// `UNKNOWN_STATUS_OF_INSERT` (the quorum was not reached in time), 999
/// (ZooKeeper unreachable).
const CLUSTER_UNAVAILABLE_CODES: [u32; 9] = [209, 210, 242, 279, 285, 286, 289, 319, 999];

/// The code of ClickHouse's error text (`Code: 286, e.displayText() = ...`
/// on 18.16, `Code: 286. DB::Exception: ...` later), if it has one.
fn error_code(text: &str) -> Option<u32> {
    let after = &text[text.find("Code: ")? + "Code: ".len()..];
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    after[..digits].parse().ok()
}

impl From<clickhouse::error::Error> for StoreFailure {
    fn from(error: clickhouse::error::Error) -> Self {
        match error {
            clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut => {
                StoreFailure::Unavailable(error.to_string())
            }
            other => {
                let text = other.to_string();
                match error_code(&text) {
                    Some(code) if CLUSTER_UNAVAILABLE_CODES.contains(&code) => {
                        StoreFailure::Unavailable(text)
                    }
                    Some(_) | None => StoreFailure::Failed(text),
                }
            }
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
    layout: schema::Layout,
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
        let layout = match &config.cluster {
            Some(name) => schema::Layout::clustered(
                &config.database,
                schema::read_cluster(&client, name).await?,
            ),
            None => schema::Layout::single(&config.database),
        };
        for (name, value) in schema::cluster_settings(&layout, server_version, config.timeout) {
            client = client.with_setting(name, value);
        }
        schema::create(&client, &layout).await.map_err(failure)?;
        let client = client.with_database(&config.database);
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
            layout,
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

/// An error ClickHouse gives when it refuses a quorum INSERT because the
/// previous one into the same table and shard has not reached its quorum:
/// 18.16 takes one quorum INSERT at a time per replicated table and shard
/// (later releases too, with `insert_quorum_parallel = 0`, which Mutant sets
/// there so that reads see every acknowledged write).
trait QuorumRefusal {
    fn is_quorum_busy(&self) -> bool;
}

/// ClickHouse's code 286, `UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE`.
const QUORUM_BUSY_CODE: u32 = 286;

impl QuorumRefusal for StoreFailure {
    fn is_quorum_busy(&self) -> bool {
        matches!(self, StoreFailure::Unavailable(reason) if error_code(reason) == Some(QUORUM_BUSY_CODE))
    }
}

impl QuorumRefusal for Error {
    fn is_quorum_busy(&self) -> bool {
        matches!(self, Error::StoreUnavailable { reason, .. } if error_code(reason) == Some(QUORUM_BUSY_CODE))
    }
}

/// Runs `insert` again, after a short random pause, while ClickHouse refuses
/// it for a quorum INSERT still in progress, for up to `timeout`. Sending an
/// INSERT again is harmless: rows are versioned (or, for analysis results,
/// identical), and a replicated table drops a block it already holds, so a
/// shard that took the first attempt is not written twice.
async fn retry_while_quorum_busy<T, E: QuorumRefusal, Attempt: Future<Output = Result<T, E>>>(
    timeout: Duration,
    mut insert: impl FnMut() -> Attempt,
) -> Result<T, E> {
    let started = tokio::time::Instant::now();
    let mut pause_ms = 5u64;
    loop {
        match insert().await {
            Err(refusal)
                if refusal.is_quorum_busy()
                    && started.elapsed() + Duration::from_millis(pause_ms) < timeout =>
            {
                let jittered_ms =
                    pause_ms / 2 + (Uuid::new_v4().as_u128() % u128::from(pause_ms)) as u64;
                tokio::time::sleep(Duration::from_millis(jittered_ms)).await;
                pause_ms = (pause_ms * 2).min(100);
            }
            outcome => return outcome,
        }
    }
}

/// Sends one INSERT of pre-encoded `records` rows (again while a quorum
/// INSERT holds the table, see [`retry_while_quorum_busy`]).
async fn insert_rows(
    client: &Client,
    settings: &[(String, String)],
    timeout: Duration,
    chunks: Vec<Bytes>,
) -> Result<(), StoreFailure> {
    retry_while_quorum_busy(timeout, || {
        insert_rows_once(client, settings, timeout, chunks.clone())
    })
    .await
}

async fn insert_rows_once(
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
        let load = load::load(self, dataset.clone(), max_bytes, u64::MAX).await?;
        Ok(load.loaded)
    }

    async fn load_for_cache(
        &self,
        dataset: &Dataset,
        max_bytes: usize,
        read_after: u64,
    ) -> Result<CacheLoad> {
        load::load(self, dataset.clone(), max_bytes, read_after).await
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

    async fn put_analysis_results(
        &self,
        id: Uuid,
        first_rank: u64,
        rows: &[StoredRow],
    ) -> Result<()> {
        self.bounded(async { analyses::put_results(self, id, first_rank, rows).await })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_both_error_formats() {
        assert_eq!(
            error_code(
                "Code: 286, e.displayText() = DB::Exception: Another quorum insert has been already started."
            ),
            Some(286)
        );
        assert_eq!(error_code("Code: 2860. DB::Exception: x"), Some(2860));
        assert_eq!(error_code("connection refused"), None);
    }

    #[test]
    fn a_busy_quorum_and_missing_replicas_are_unavailability() {
        let busy = StoreFailure::from(clickhouse::error::Error::BadResponse(
            "Code: 286, e.displayText() = DB::Exception: Another quorum insert has been already started."
                .into(),
        ));
        assert!(busy.is_quorum_busy());
        let too_few = StoreFailure::from(clickhouse::error::Error::BadResponse(
            "Code: 285, e.displayText() = DB::Exception: Number of alive replicas (1) is less than requested quorum (2)."
                .into(),
        ));
        assert!(matches!(too_few, StoreFailure::Unavailable(_)) && !too_few.is_quorum_busy());
        let syntax = StoreFailure::from(clickhouse::error::Error::BadResponse(
            "Code: 62, e.displayText() = DB::Exception: Syntax error".into(),
        ));
        assert!(matches!(syntax, StoreFailure::Failed(_)));
    }
}
