//! Analysis jobs and their results in the `analyses` and `analysis_results`
//! tables, and the data watermark of a dataset that tells whether a finished
//! analysis is stale.
//!
//! A job is read back as its highest version, with `cancel_requested` true if
//! any version has it (the two values of the flag are different keys, see
//! `schema::ANALYSES`). Results are plain rows keyed by rank; a
//! repeated INSERT only repeats identical rows, and reads keep one per rank.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::sql::Sql;
use super::{ClickHouseStore, catalogue};
use crate::model::{AnalysisJob, DatasetRef, JobState};
use crate::store::{ResultSelection, StoredRow};
use crate::{Error, Result};

/// Result rows per INSERT: big enough for ClickHouse's taste (>= 1,000 rows),
/// small enough to bound what one failed INSERT costs.
const RESULT_ROWS_PER_INSERT: usize = 20_000;

#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
struct JobRow {
    #[serde(with = "clickhouse::serde::uuid")]
    id: Uuid,
    cancel_requested: u8,
    version: u64,
    kind: String,
    #[serde(with = "clickhouse::serde::uuid")]
    target: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    reference: Uuid,
    params: String,
    status: String,
    progress: f32,
    error: String,
    summary: String,
    n_results: u64,
    created_at_ms: u64,
    started_at_ms: u64,
    finished_at_ms: u64,
    heartbeat_at_ms: u64,
    server: String,
    target_watermark: u64,
    reference_watermark: u64,
}

impl JobRow {
    fn from_job(job: &AnalysisJob, version: u64) -> Self {
        JobRow {
            id: job.id,
            cancel_requested: u8::from(job.cancel_requested),
            version,
            kind: job.kind.clone(),
            target: job.target,
            reference: job.reference.unwrap_or_else(Uuid::nil),
            params: Value::Object(job.params.clone()).to_string(),
            status: job.state.as_str().to_owned(),
            progress: job.progress,
            error: job.error.clone().unwrap_or_default(),
            summary: job
                .summary
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
            n_results: job.n_results,
            created_at_ms: job.created_at_ms,
            started_at_ms: job.started_at_ms.unwrap_or(0),
            finished_at_ms: job.finished_at_ms.unwrap_or(0),
            heartbeat_at_ms: job.heartbeat_at_ms,
            server: job.server.clone(),
            target_watermark: job.target_watermark,
            reference_watermark: job.reference_watermark,
        }
    }

    fn into_job(self, cancel_requested: bool) -> Result<AnalysisJob> {
        let params = match serde_json::from_str(&self.params) {
            Ok(Value::Object(params)) => params,
            Ok(_) | Err(_) => serde_json::Map::new(),
        };
        let summary = match self.summary.as_str() {
            "" => None,
            text => Some(serde_json::from_str(text).map_err(|error| Error::Store {
                message: format!("analysis {} has an unreadable summary: {error}", self.id),
            })?),
        };
        let nonzero = |value: u64| (value != 0).then_some(value);
        Ok(AnalysisJob {
            id: self.id,
            kind: self.kind,
            target: self.target,
            reference: (!self.reference.is_nil()).then_some(self.reference),
            params,
            state: self.status.parse::<JobState>()?,
            progress: self.progress,
            error: (!self.error.is_empty()).then_some(self.error),
            summary,
            n_results: self.n_results,
            created_at_ms: self.created_at_ms,
            started_at_ms: nonzero(self.started_at_ms),
            finished_at_ms: nonzero(self.finished_at_ms),
            heartbeat_at_ms: self.heartbeat_at_ms,
            server: self.server,
            cancel_requested,
            target_watermark: self.target_watermark,
            reference_watermark: self.reference_watermark,
        })
    }
}

#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
struct ResultRow {
    #[serde(with = "clickhouse::serde::uuid")]
    analysis: Uuid,
    rank: u64,
    row: String,
    score: f64,
    flagged: u8,
}

pub(super) async fn put(store: &ClickHouseStore, job: &AnalysisJob) -> Result<()> {
    let row = JobRow::from_job(job, store.clock.next());
    super::retry_while_quorum_busy(store.timeout, || put_row(store, &row)).await
}

/// Writes one job row.
async fn put_row(store: &ClickHouseStore, row: &JobRow) -> Result<()> {
    let mut insert = store
        .client
        .insert::<JobRow>("analyses")
        .await
        .map_err(|error| store.error(error))?;
    for (name, value) in &store.insert_settings {
        insert = insert.with_setting(name, value);
    }
    insert
        .write(row)
        .await
        .map_err(|error| store.error(error))?;
    insert.end().await.map_err(|error| store.error(error))
}

pub(super) async fn get(store: &ClickHouseStore, id: Uuid) -> Result<AnalysisJob> {
    // The latest row of each flag value and of final and non-final states:
    // at most four rows, whatever the number of heartbeats not merged yet.
    let rows: Vec<JobRow> = store
        .client
        .query(
            "SELECT ?fields FROM analyses WHERE id = toUUID(?) \
             ORDER BY version DESC LIMIT 1 BY cancel_requested, status IN ('done', 'failed', 'cancelled')",
        )
        .bind(id.to_string())
        .fetch_all()
        .await
        .map_err(|error| store.error(error))?;
    latest_of(&rows).ok_or(Error::UnknownAnalysis { id })?
}

/// The job that the rows of one id (at most one per flag value and
/// finality) say: the latest final one if any, else the latest.
fn latest_of(rows: &[JobRow]) -> Option<Result<AnalysisJob>> {
    let cancel_requested = rows.iter().any(|row| row.cancel_requested != 0);
    // A final state is final: a heartbeat written after another server
    // cancelled the job or failed it must not bring it back to `running`.
    let is_final = |row: &JobRow| matches!(row.status.as_str(), "done" | "failed" | "cancelled");
    let latest_final = rows
        .iter()
        .filter(|row| is_final(row))
        .max_by_key(|row| row.version);
    let latest = latest_final.or_else(|| rows.iter().max_by_key(|row| row.version));
    latest.cloned().map(|row| row.into_job(cancel_requested))
}

pub(super) async fn list(
    store: &ClickHouseStore,
    target: Option<Uuid>,
    limit: usize,
) -> Result<Vec<AnalysisJob>> {
    let mut query = store.client.query(
        "SELECT ?fields FROM analyses WHERE (? = 0 OR target = toUUID(?)) AND id IN ( \
             SELECT id FROM analyses WHERE (? = 0 OR target = toUUID(?)) \
             GROUP BY id ORDER BY min(created_at_ms) DESC, id LIMIT ?) \
         ORDER BY version DESC LIMIT 1 BY id, cancel_requested, status IN ('done', 'failed', 'cancelled')",
    );
    let target_text = target.unwrap_or_else(Uuid::nil).to_string();
    for _ in 0..2 {
        query = query
            .bind(u8::from(target.is_some()))
            .bind(target_text.as_str());
    }
    let rows: Vec<JobRow> = query
        .bind(limit as u64)
        .fetch_all()
        .await
        .map_err(|error| store.error(error))?;
    let mut by_id: std::collections::HashMap<Uuid, Vec<JobRow>> = std::collections::HashMap::new();
    for row in rows {
        by_id.entry(row.id).or_default().push(row);
    }
    let mut jobs = by_id
        .values()
        .filter_map(|rows| latest_of(rows))
        .collect::<Result<Vec<_>>>()?;
    jobs.sort_by_key(|job| std::cmp::Reverse((job.created_at_ms, job.id)));
    Ok(jobs)
}

pub(super) async fn put_results(
    store: &ClickHouseStore,
    id: Uuid,
    first_rank: u64,
    rows: &[StoredRow],
) -> Result<()> {
    for (chunk_idx, chunk) in rows.chunks(RESULT_ROWS_PER_INSERT).enumerate() {
        let chunk_rank = first_rank + (chunk_idx * RESULT_ROWS_PER_INSERT) as u64;
        super::retry_while_quorum_busy(store.timeout, || {
            put_result_chunk(store, id, chunk_rank, chunk)
        })
        .await?;
    }
    Ok(())
}

/// Writes result rows from rank `first_rank` in one INSERT.
async fn put_result_chunk(
    store: &ClickHouseStore,
    id: Uuid,
    first_rank: u64,
    chunk: &[StoredRow],
) -> Result<()> {
    let mut insert = store
        .client
        .insert::<ResultRow>("analysis_results")
        .await
        .map_err(|error| store.error(error))?;
    for (name, value) in &store.insert_settings {
        insert = insert.with_setting(name, value);
    }
    for (rank, row) in (first_rank..).zip(chunk) {
        insert
            .write(&ResultRow {
                analysis: id,
                rank,
                row: row.json.clone(),
                score: row.score,
                flagged: u8::from(row.flagged),
            })
            .await
            .map_err(|error| store.error(error))?;
    }
    insert.end().await.map_err(|error| store.error(error))
}

/// `SELECT <columns> FROM analysis_results` for one analysis, with the
/// filters of `selection`, their values bound.
fn selected(columns: &str, id: Uuid, selection: &ResultSelection) -> Sql {
    let mut sql = Sql::new("SELECT ");
    sql.push(columns)
        .push(" FROM analysis_results WHERE analysis = toUUID(")
        .text_arg(&id.to_string())
        .push(")");
    if let Some(flagged) = selection.flagged {
        sql.push(" AND flagged = ").unsigned_arg(u64::from(flagged));
    }
    if let Some(min_score) = selection.min_score {
        sql.push(" AND score >= ").float_arg(min_score);
    }
    sql
}

pub(super) async fn results(
    store: &ClickHouseStore,
    id: Uuid,
    selection: &ResultSelection,
) -> Result<Vec<Value>> {
    if selection.limit == 0 {
        return Ok(Vec::new());
    }
    let mut sql = selected("?fields", id, selection);
    // Unfiltered pages are rank ranges, read straight off the primary key;
    // filtered ones skip matching rows, one per rank (a retried INSERT
    // repeats rows).
    if selection.flagged.is_none() && selection.min_score.is_none() {
        sql.push(" AND rank >= ")
            .unsigned_arg(selection.offset as u64)
            .push(" AND rank < ")
            .unsigned_arg(selection.offset.saturating_add(selection.limit) as u64)
            .push(" ORDER BY rank");
    } else {
        sql.push(" ORDER BY rank LIMIT 1 BY rank LIMIT ")
            .unsigned_arg(selection.offset as u64)
            .push(", ")
            .unsigned_arg(selection.limit as u64);
    }
    let rows: Vec<ResultRow> = sql
        .bind_into(&store.client)
        .fetch_all()
        .await
        .map_err(|error| store.error(error))?;
    let mut page = Vec::with_capacity(rows.len());
    let mut previous_rank = None;
    for row in rows {
        if previous_rank == Some(row.rank) {
            continue;
        }
        previous_rank = Some(row.rank);
        page.push(
            serde_json::from_str(&row.row).map_err(|error| Error::Store {
                message: format!("analysis {id} has an unreadable result row: {error}"),
            })?,
        );
    }
    Ok(page)
}

pub(super) async fn count_results(
    store: &ClickHouseStore,
    id: Uuid,
    selection: &ResultSelection,
) -> Result<u64> {
    selected("uniqExact(rank)", id, selection)
        .bind_into(&store.client)
        .fetch_one::<u64>()
        .await
        .map_err(|error| store.error(error))
}

pub(super) async fn dataset_watermark(store: &ClickHouseStore, dataset_id: Uuid) -> Result<u64> {
    let dataset = catalogue::resolve(store, &DatasetRef::Id(dataset_id)).await?;
    store
        .client
        .query("SELECT max(version) FROM records WHERE dataset = toUUID(?)")
        .bind(dataset.id.to_string())
        .fetch_one::<u64>()
        .await
        .map_err(|error| store.error(error))
}
