//! The ClickHouse schema Mutant creates for itself, idempotently, and the
//! server version that decides which settings may be sent.
//!
//! The catalogue, record and job tables are `ReplacingMergeTree(version)`:
//! every write is a new row with a higher version, and reads resolve each key
//! to its highest version (see ARCHITECTURE.md). The engines and types exist in 18.16.1, the floor.
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

pub(super) const CREATE_DATASETS: &str = "CREATE TABLE IF NOT EXISTS datasets (
    id UUID,
    version UInt64,
    deleted UInt8,
    name String,
    dimension UInt32,
    metric String,
    metadata String,
    created_at_ms UInt64,
    updated_at_ms UInt64,
    name_claimed UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY id";

/// Changes to datasets' metadata, one row each, composed on read in version
/// order (see `catalogue.rs`): a plain `MergeTree`, so that merges keep
/// every change; a retried INSERT repeats an identical change, which
/// composes to the same metadata.
pub(super) const CREATE_DATASET_METADATA: &str = "CREATE TABLE IF NOT EXISTS dataset_metadata (
    id UUID,
    version UInt64,
    replace UInt8,
    change String
) ENGINE = MergeTree ORDER BY (id, version)";

/// Columns added to tables after their first release, as `(table, column,
/// definition)`: a table created earlier gains them on start-up (18.16 has
/// no `ADD COLUMN IF NOT EXISTS`). Rows written before a column existed
/// read its default.
pub(super) const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("datasets", "name_claimed", "UInt64 DEFAULT version"),
    ("analysis_results", "score", "Float64 DEFAULT 0"),
    ("analysis_results", "flagged", "UInt8 DEFAULT 0"),
];

pub(super) const CREATE_RECORDS: &str = "CREATE TABLE IF NOT EXISTS records (
    dataset UUID,
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
    meta_numbers Array(Float64)
) ENGINE = ReplacingMergeTree(version) ORDER BY (dataset, id)";

/// Analysis jobs: one row per version of a job. The key holds
/// `cancel_requested` beside `id` so that a cancel request and the running
/// server's later heartbeats are different keys: merges never collapse the
/// request away, and `max(cancel_requested)` over a job's rows is exactly
/// "was a cancel ever requested".
pub(super) const CREATE_ANALYSES: &str = "CREATE TABLE IF NOT EXISTS analyses (
    id UUID,
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
    reference_watermark UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (id, cancel_requested)";

/// Ranked result rows of finished analyses, one JSON object per rank. Rows are
/// written once, before their job reads `done`; a retried INSERT can only
/// repeat identical rows, which reads drop.
pub(super) const CREATE_ANALYSIS_RESULTS: &str = "CREATE TABLE IF NOT EXISTS analysis_results (
    analysis UUID,
    rank UInt64,
    row String,
    score Float64,
    flagged UInt8
) ENGINE = MergeTree ORDER BY (analysis, rank)";

/// What each server publishes of its INSERTs that have run for a while: the
/// write version of the oldest (0 when none is left), so that every cache,
/// on any server, reads changes from before it until it lands. One key per
/// server process; `published_at_ms` lets readers ignore a server that died
/// with an INSERT in flight.
pub(super) const CREATE_INSERTS_IN_FLIGHT: &str = "CREATE TABLE IF NOT EXISTS inserts_in_flight (
    server String,
    version UInt64,
    oldest UInt64,
    published_at_ms UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY server";

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
}

/// Checks a database name before it is quoted into DDL.
pub(super) fn validate_database_name(name: &str) -> Result<()> {
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
            name: "database",
            reason: format!(
                "{name:?} is not a simple identifier; use ASCII letters, digits and '_'"
            ),
        });
    }
    Ok(())
}
