//! The ClickHouse schema Mutant creates for itself, idempotently, and the
//! server version that decides which settings may be sent.
//!
//! The catalogue, record and job tables are `ReplacingMergeTree(version)`:
//! every write is a new row with a higher version, and reads resolve each key
//! to its highest version (see ARCHITECTURE.md). The engines and types exist in 18.16.1, the floor.
//!
//! On a cluster (`ClickHouseConfig::cluster`) each table is a local table on
//! every node, created `ON CLUSTER` (`Replicated*` when the cluster has
//! replicas), under the name `<table>_local`, and a `Distributed` table under
//! the table's own name: every query reads and writes through it unchanged.
//!
//! Record metadata is kept twice: as canonical JSON (`metadata`, returned to
//! clients) and as parallel typed arrays (`meta_*`) that filters compare
//! exactly, since 18.16 has no JSON type and its `visitParam*` functions
//! misread some escaped strings.

use crate::{Error, Result};

/// The columns of `records`, in the order RowBinary rows are encoded.
pub(super) const RECORD_COLUMNS: &str = "dataset, id, version, deleted, vector, label, prediction, uri, metadata, meta_keys, meta_kinds, meta_strings, meta_numbers";

/// `meta_kinds` values: what each metadata value is (0, the array default,
/// stands for an absent key).
pub(super) const META_KIND_STRING: u8 = 1;
pub(super) const META_KIND_NUMBER: u8 = 2;
pub(super) const META_KIND_BOOL: u8 = 3;

/// One of Mutant's tables: its columns, engine and key, from which the
/// DDL for a single node and for a cluster is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct Table {
    /// The name every query uses: the table itself on a single node, the
    /// `Distributed` table over the shards' local tables on a cluster.
    pub(super) name: &'static str,
    columns: &'static str,
    /// `Some(column)` for `ReplacingMergeTree(column)`, `None` for `MergeTree`.
    version_column: Option<&'static str>,
    order_by: &'static str,
    /// How a cluster spreads the rows over its shards: a hash of a prefix of
    /// `order_by`, so that all rows of one key (every version of a record,
    /// of a dataset, of a job) live on one shard. Reads that resolve
    /// versions per shard (`FINAL`, a mutation's subquery on the local
    /// table) are then right, and aggregations across shards are too.
    sharding_key: &'static str,
}

pub(super) const DATASETS: Table = Table {
    name: "datasets",
    columns: "id UUID,
    version UInt64,
    deleted UInt8,
    name String,
    dimension UInt32,
    metric String,
    metadata String,
    created_at_ms UInt64,
    updated_at_ms UInt64,
    name_claimed UInt64",
    version_column: Some("version"),
    order_by: "id",
    sharding_key: "cityHash64(toString(id))",
};

/// Changes to datasets' metadata, one row each, composed on read in version
/// order (see `catalogue.rs`): a plain `MergeTree`, so that merges keep
/// every change; a retried INSERT repeats an identical change, which
/// composes to the same metadata.
pub(super) const DATASET_METADATA: Table = Table {
    name: "dataset_metadata",
    columns: "id UUID,
    version UInt64,
    replace UInt8,
    change String",
    version_column: None,
    order_by: "(id, version)",
    sharding_key: "cityHash64(toString(id))",
};

/// Records are spread over the shards by `(dataset, id)`, not by dataset:
/// every shard holds a share of every dataset, so loading one dataset reads
/// all shards at once (see ARCHITECTURE.md).
pub(super) const RECORDS: Table = Table {
    name: "records",
    columns: "dataset UUID,
    id String,
    version UInt64,
    deleted UInt8,
    vector Array(Float32),
    label Nullable(String),
    prediction Nullable(String),
    uri Nullable(String),
    metadata String,
    meta_keys Array(String),
    meta_kinds Array(UInt8),
    meta_strings Array(String),
    meta_numbers Array(Float64)",
    version_column: Some("version"),
    order_by: "(dataset, id)",
    sharding_key: "cityHash64(toString(dataset), id)",
};

/// Analysis jobs: one row per version of a job. The key holds
/// `cancel_requested` beside `id` so that a cancel request and the running
/// server's later heartbeats are different keys: merges never collapse the
/// request away, and `max(cancel_requested)` over a job's rows is exactly
/// "was a cancel ever requested".
pub(super) const ANALYSES: Table = Table {
    name: "analyses",
    columns: "id UUID,
    cancel_requested UInt8,
    version UInt64,
    kind String,
    target UUID,
    reference UUID,
    params String,
    status String,
    progress Float32,
    error String,
    summary String,
    n_results UInt64,
    created_at_ms UInt64,
    started_at_ms UInt64,
    finished_at_ms UInt64,
    heartbeat_at_ms UInt64,
    server String,
    target_watermark UInt64,
    reference_watermark UInt64",
    version_column: Some("version"),
    order_by: "(id, cancel_requested)",
    sharding_key: "cityHash64(toString(id))",
};

/// Ranked result rows of finished analyses, one JSON object per rank. Rows are
/// written once, before their job reads `done`; a retried INSERT can only
/// repeat identical rows, which reads drop.
pub(super) const ANALYSIS_RESULTS: Table = Table {
    name: "analysis_results",
    columns: "analysis UUID,
    rank UInt64,
    row String,
    score Float64,
    flagged UInt8",
    version_column: None,
    order_by: "(analysis, rank)",
    sharding_key: "cityHash64(toString(analysis), rank)",
};

/// Every table, in creation order.
pub(super) const TABLES: [Table; 6] = [
    DATASETS,
    DATASET_METADATA,
    RECORDS,
    ANALYSES,
    ANALYSIS_RESULTS,
    INSERTS_IN_FLIGHT,
];

/// Columns added to tables after their first release, as `(table, column,
/// definition)`: a table created earlier gains them on start-up (18.16 has
/// no `ADD COLUMN IF NOT EXISTS`). Rows written before a column existed
/// read its default.
pub(super) const ADDED_COLUMNS: &[(Table, &str, &str)] = &[
    (DATASETS, "name_claimed", "UInt64 DEFAULT version"),
    (ANALYSIS_RESULTS, "score", "Float64 DEFAULT 0"),
    (ANALYSIS_RESULTS, "flagged", "UInt8 DEFAULT 0"),
];

/// The cluster Mutant's tables live on, as `system.clusters` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cluster {
    /// The name in ClickHouse's `remote_servers`, checked to be an identifier.
    pub(super) name: String,
    /// The fewest replicas any shard has.
    pub(super) min_replicas: u64,
    /// The most replicas any shard has: with more than one, local tables are
    /// replicated.
    pub(super) max_replicas: u64,
}

impl Cluster {
    /// The replicas an INSERT must reach before it is acknowledged: a
    /// majority of the smallest shard's replicas (2 of 2, 2 of 3), or `None`
    /// when a shard has a single replica and there is no quorum to wait for.
    pub(super) fn insert_quorum(&self) -> Option<u64> {
        (self.min_replicas > 1).then_some(self.min_replicas / 2 + 1)
    }
}

/// Where Mutant's tables are: one database on one node, or local tables on
/// every node of a cluster with `Distributed` tables over them. It writes the
/// DDL and names the tables that mutations and their subqueries address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    database: String,
    cluster: Option<Cluster>,
    replicated: bool,
}

impl Layout {
    /// One node.
    pub(super) fn single(database: &str) -> Self {
        Layout {
            database: database.to_owned(),
            cluster: None,
            replicated: false,
        }
    }

    /// A cluster; its local tables are replicated when a shard has replicas.
    pub(super) fn clustered(database: &str, cluster: Cluster) -> Self {
        Layout {
            database: database.to_owned(),
            replicated: cluster.max_replicas > 1,
            cluster: Some(cluster),
        }
    }

    /// The cluster, if any.
    pub(super) fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// Whether the local tables are replicated.
    pub(super) fn is_replicated(&self) -> bool {
        self.replicated
    }

    /// ` ON CLUSTER `name`` on a cluster, nothing on one node.
    fn on_cluster(&self) -> String {
        match &self.cluster {
            Some(cluster) => format!(" ON CLUSTER `{}`", cluster.name),
            None => String::new(),
        }
    }

    /// The table that holds the rows on this node: `db.records` on one node,
    /// `db.records_local` on a cluster (where `records` is the `Distributed`
    /// table every query reads and writes through).
    pub(super) fn local_table(&self, table: &Table) -> String {
        match &self.cluster {
            Some(_) => format!("`{}`.`{}_local`", self.database, table.name),
            None => format!("`{}`.`{}`", self.database, table.name),
        }
    }

    /// What `ALTER TABLE` names to change `table`'s rows everywhere: the
    /// local tables on every node of a cluster (a mutation runs on each
    /// shard, and replicated tables pass it to their replicas).
    pub(super) fn alter_target(&self, table: &Table) -> String {
        format!("{}{}", self.local_table(table), self.on_cluster())
    }

    /// `CREATE DATABASE IF NOT EXISTS`, on every node of a cluster.
    pub(super) fn create_database(&self) -> String {
        format!(
            "CREATE DATABASE IF NOT EXISTS `{}`{}",
            self.database,
            self.on_cluster()
        )
    }

    /// The statements that create `table` if it does not exist: the table
    /// itself on one node; on a cluster, the local table on every node
    /// (`Replicated*` under `/clickhouse/tables/{shard}/<database>/<table>`
    /// when replicated) and then the `Distributed` table over them.
    pub(super) fn create_table(&self, table: &Table) -> Vec<String> {
        let engine = match (self.replicated, table.version_column) {
            (false, Some(version)) => format!("ReplacingMergeTree({version})"),
            (false, None) => "MergeTree".to_owned(),
            (true, version) => {
                let path = format!(
                    "'/clickhouse/tables/{{shard}}/{}/{}', '{{replica}}'",
                    self.database, table.name
                );
                match version {
                    Some(version) => format!("ReplicatedReplacingMergeTree({path}, {version})"),
                    None => format!("ReplicatedMergeTree({path})"),
                }
            }
        };
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS {}{} (\n    {}\n) ENGINE = {engine} ORDER BY {}",
            self.local_table(table),
            self.on_cluster(),
            table.columns,
            table.order_by
        )];
        if self.cluster.is_some() {
            statements.push(self.create_distributed(table));
        }
        statements
    }

    /// The `Distributed` table over `table`'s local tables, on every node.
    fn create_distributed(&self, table: &Table) -> String {
        let cluster_name = self.cluster.as_ref().map_or("", |cluster| &cluster.name);
        format!(
            "CREATE TABLE IF NOT EXISTS `{database}`.`{name}`{on_cluster} AS {local} \
             ENGINE = Distributed(`{cluster_name}`, `{database}`, `{name}_local`, {sharding_key})",
            database = self.database,
            name = table.name,
            on_cluster = self.on_cluster(),
            local = self.local_table(table),
            sharding_key = table.sharding_key,
        )
    }

    /// `ALTER TABLE ... ADD COLUMN` on the table that holds `table`'s rows
    /// (on every node of a cluster).
    pub(super) fn add_column(&self, table: &Table, column: &str, definition: &str) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {column} {definition}",
            self.alter_target(table)
        )
    }

    /// On a cluster, the statements that create `table`'s `Distributed`
    /// table again, so that it gains the columns its local tables gained
    /// (18.16 refuses `ALTER ... ON CLUSTER` on a `Distributed` table over
    /// replicated shards). It holds no rows: INSERTs through it are
    /// synchronous. Nothing on one node.
    pub(super) fn recreate_distributed(&self, table: &Table) -> Vec<String> {
        if self.cluster.is_none() {
            return Vec::new();
        }
        vec![
            format!(
                "DROP TABLE IF EXISTS `{}`.`{}`{}",
                self.database,
                table.name,
                self.on_cluster()
            ),
            self.create_distributed(table),
        ]
    }

    /// The name, without database, of the table that holds `table`'s rows.
    fn local_name(&self, table: &Table) -> String {
        match &self.cluster {
            Some(_) => format!("{}_local", table.name),
            None => table.name.to_owned(),
        }
    }
}

/// What each server publishes of its INSERTs that have run for a while: the
/// write version of the oldest (0 when none is left), so that every cache,
/// on any server, reads changes from before it until it lands. One key per
/// server process; `published_at_ms` lets readers ignore a server that died
/// with an INSERT in flight.
pub(super) const INSERTS_IN_FLIGHT: Table = Table {
    name: "inserts_in_flight",
    columns: "server String,
    version UInt64,
    oldest UInt64,
    published_at_ms UInt64",
    version_column: Some("version"),
    order_by: "server",
    sharding_key: "cityHash64(server)",
};

/// A ClickHouse release, as `SELECT version()` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    /// The year-based major number (18 for 18.16.1).
    pub major: u32,
    /// The minor number (16 for 18.16.1).
    pub minor: u32,
}

impl ServerVersion {
    /// Reads `"18.16.1"` or `"24.8.4.13"`.
    ///
    /// ```
    /// # use mutant_core::store::clickhouse::ServerVersion;
    /// let version = ServerVersion::parse("18.16.1")?;
    /// assert!(!version.has_async_insert());
    /// assert!(ServerVersion::parse("24.8.4.13")?.has_async_insert());
    /// # Ok::<(), mutant_core::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = text.trim().split('.').map(str::parse::<u32>);
        match (parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor))) => Ok(ServerVersion { major, minor }),
            _ => Err(Error::Store {
                message: format!("cannot read the ClickHouse version {text:?}"),
            }),
        }
    }

    /// `async_insert` appeared in 21.11; recent releases turn it on by
    /// default, and then an acknowledged INSERT is not yet an inserted one.
    pub fn has_async_insert(self) -> bool {
        self >= ServerVersion {
            major: 21,
            minor: 11,
        }
    }

    /// `insert_quorum_parallel` appeared in 20.10 and is on by default in
    /// later releases; with it, `select_sequential_consistency` no longer
    /// guarantees that a read sees every acknowledged INSERT.
    pub fn has_insert_quorum_parallel(self) -> bool {
        self >= ServerVersion {
            major: 20,
            minor: 10,
        }
    }
}

/// Reads `name`'s shape from `system.clusters` on the node `client` talks to.
pub(super) async fn read_cluster(client: &clickhouse::Client, name: &str) -> Result<Cluster> {
    validate_cluster_name(name)?;
    #[derive(Debug, clickhouse::Row, serde::Deserialize)]
    struct Shape {
        n_shards: u64,
        min_replicas: u64,
        max_replicas: u64,
    }
    let shape: Shape = client
        .query(
            "SELECT uniqExact(shard_num) AS n_shards, min(n) AS min_replicas, max(n) AS max_replicas \
             FROM (SELECT shard_num, count() AS n FROM system.clusters WHERE cluster = ? GROUP BY shard_num)",
        )
        .bind(name)
        .fetch_one()
        .await
        .map_err(|error| Error::Store {
            message: format!("cannot read cluster {name:?} from system.clusters: {error}"),
        })?;
    if shape.n_shards == 0 {
        return Err(Error::InvalidParameter {
            name: "cluster",
            reason: format!(
                "ClickHouse has no cluster {name:?} in its remote_servers (see system.clusters); \
                 set MUTANT_CLICKHOUSE_CLUSTER to one of its clusters, or unset it for a single node"
            ),
        });
    }
    Ok(Cluster {
        name: name.to_owned(),
        min_replicas: shape.min_replicas,
        max_replicas: shape.max_replicas,
    })
}

/// The settings every statement carries on `layout`: INSERTs through a
/// `Distributed` table return only once every shard has its rows, and on
/// replicated tables once a quorum of each shard's replicas has them, and
/// reads see every INSERT a quorum acknowledged; a subquery on a
/// `Distributed` table inside a query on one runs once, on the node asked
/// (`GLOBAL IN`), instead of being refused.
pub(super) fn cluster_settings(
    layout: &Layout,
    server_version: ServerVersion,
    timeout: std::time::Duration,
) -> Vec<(&'static str, String)> {
    let Some(cluster) = layout.cluster() else {
        return Vec::new();
    };
    let mut settings = vec![
        ("insert_distributed_sync", "1".to_owned()),
        (
            "insert_distributed_timeout",
            timeout.as_secs().max(1).to_string(),
        ),
        ("distributed_product_mode", "global".to_owned()),
        // DDL `ON CLUSTER` waits for every node; a node that is down fails
        // it within the timeout instead of 180 s.
        (
            "distributed_ddl_task_timeout",
            timeout.as_secs().max(1).to_string(),
        ),
    ];
    if let Some(quorum) = cluster.insert_quorum().filter(|_| layout.is_replicated()) {
        settings.push(("insert_quorum", quorum.to_string()));
        settings.push((
            "insert_quorum_timeout",
            timeout.as_millis().max(1).to_string(),
        ));
        settings.push(("select_sequential_consistency", "1".to_owned()));
        if server_version.has_insert_quorum_parallel() {
            settings.push(("insert_quorum_parallel", "0".to_owned()));
        }
    }
    settings
}

/// Creates the database and every table if they do not exist, and adds the
/// columns of [`ADDED_COLUMNS`] to tables created before them. `client` is
/// not yet bound to the database (it may not exist).
pub(super) async fn create(
    client: &clickhouse::Client,
    layout: &Layout,
) -> std::result::Result<(), clickhouse::error::Error> {
    client.query(&layout.create_database()).execute().await?;
    for table in &TABLES {
        for statement in layout.create_table(table) {
            client.query(&statement).execute().await?;
        }
    }
    for (table, column, definition) in ADDED_COLUMNS {
        let has_column = |table_name: String| async move {
            client
                .query(
                    "SELECT count() FROM system.columns \
                     WHERE database = ? AND table = ? AND name = ?",
                )
                .bind(&layout.database)
                .bind(table_name)
                .bind(*column)
                .fetch_one::<u64>()
                .await
                .map(|count| count > 0)
        };
        let local_name = layout.local_name(table);
        if !has_column(local_name.clone()).await? {
            let added = client
                .query(&layout.add_column(table, column, definition))
                .execute()
                .await;
            // Another server starting at the same moment may have added it.
            if let Err(error) = added
                && !has_column(local_name).await?
            {
                return Err(error);
            }
        }
        if layout.cluster.is_some() && !has_column(table.name.to_owned()).await? {
            // Both statements are idempotent (`IF [NOT] EXISTS`).
            for statement in layout.recreate_distributed(table) {
                client.query(&statement).execute().await?;
            }
        }
    }
    Ok(())
}

/// Checks a database name before it is quoted into DDL.
pub(super) fn validate_database_name(name: &str) -> Result<()> {
    validate_identifier("database", name)
}

/// Checks a cluster name before it is quoted into DDL.
pub(super) fn validate_cluster_name(name: &str) -> Result<()> {
    validate_identifier("cluster", name)
}

/// Checks that `name` is a plain ASCII identifier, safe between backquotes.
fn validate_identifier(what: &'static str, name: &str) -> Result<()> {
    let starts_with_letter = name
        .as_bytes()
        .first()
        .is_some_and(|byte| byte.is_ascii_alphabetic() || *byte == b'_');
    if !starts_with_letter
        || name.len() > 128
        || !name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
    {
        return Err(Error::InvalidParameter {
            name: what,
            reason: format!(
                "{name:?} is not a simple identifier; use ASCII letters, digits and '_'"
            ),
        });
    }
    Ok(())
}
