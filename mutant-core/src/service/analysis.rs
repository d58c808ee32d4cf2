//! Analyses as the protocol sees them: a named algorithm run in the
//! background over a target dataset (and a reference, where it needs one).
//! Jobs and their ranked results are kept in the store, so any server answers
//! status, results and cancel for a job any server started; `jobs.rs` runs
//! them.

use serde_json::Value;
use uuid::Uuid;

use super::budget::{self, AnalysisSize};
use super::params::AnalysisParams;
use super::{Service, rows};
use crate::api::MAX_PAGE;
use crate::api::kinds::{AnalysisKind, ReferenceUse};
use crate::api::results::{JoinedFields, ResultsQuery};
use crate::api::vocabulary::JobStatus;
use crate::api::wire::{AnalysisResults, AnalysisStatus, StartAnalysisRequest};
use crate::model::{AnalysisJob, Dataset, Filter, JobState};
use crate::store::{ResultSelection, now_ms};
use crate::{Error, Result};

impl Service {
    /// `POST /v1/analyses`: checks the request, records the job as `queued`
    /// in the store and returns at once; this server runs it.
    pub async fn start_analysis(&self, request: StartAnalysisRequest) -> Result<AnalysisStatus> {
        let kind: AnalysisKind = request.kind.parse()?;
        let raw_params = request.params.unwrap_or_default();
        let params = AnalysisParams::parse(kind, &raw_params)?;
        let target = self.resolve(&request.target).await?;
        let reference = match (kind.reference_use(), &request.reference) {
            (ReferenceUse::Required | ReferenceUse::Optional, Some(reference)) => {
                Some(self.resolve(reference).await?)
            }
            (ReferenceUse::Required, None) => {
                return Err(Error::InvalidParameter {
                    name: "reference",
                    reason: format!(
                        "{} compares against a reference dataset; name one in \"reference\"",
                        kind.as_str()
                    ),
                });
            }
            (ReferenceUse::None, Some(_)) => {
                return Err(Error::InvalidParameter {
                    name: "reference",
                    reason: format!(
                        "{} works on the target alone; drop \"reference\"",
                        kind.as_str()
                    ),
                });
            }
            (ReferenceUse::Optional | ReferenceUse::None, None) => None,
        };
        if let Some(reference) = reference
            .as_ref()
            .filter(|reference| reference.dimension != target.dimension)
        {
            return Err(Error::InvalidParameter {
                name: "reference",
                reason: format!(
                    "the target {:?} has dimension {} but the reference {:?} has {}; compare datasets of one dimension",
                    target.name, target.dimension, reference.name, reference.dimension
                ),
            });
        }
        self.check_budget(kind, &params, &target, reference.as_ref())
            .await?;
        let mut job = AnalysisJob::queued(Uuid::new_v4(), kind.as_str(), target.id, now_ms());
        job.reference = reference.as_ref().map(|reference| reference.id);
        job.params = raw_params;
        job.server = self.inner.server_id.clone();
        self.store().put_analysis(&job).await?;
        let status = status_of(&job, false)?;
        self.spawn_job(job, kind, params, target, reference);
        Ok(status)
    }

    /// Refuses an analysis whose estimated working memory, from the
    /// datasets' record counts in the store, is over the budget: the POST
    /// answers `analysis_too_large` and nothing is queued.
    async fn check_budget(
        &self,
        kind: AnalysisKind,
        params: &AnalysisParams,
        target: &Dataset,
        reference: Option<&Dataset>,
    ) -> Result<()> {
        let n_target = self.store().count(target, &Filter::all()).await?;
        let n_reference = match reference {
            Some(reference) => self.store().count(reference, &Filter::all()).await?,
            None => 0,
        };
        let size = AnalysisSize {
            n_target,
            n_reference,
            dimension: target.dimension,
            threads: self.kernel_threads(),
        };
        budget::estimate(kind, params, size).within(kind, self.inner.config.analysis_bytes)
    }

    /// `GET /v1/analyses/{id}`: the job's latest version; a job whose server
    /// stopped heartbeating is marked failed first, and a done job whose
    /// datasets changed since reads `stale`.
    pub async fn analysis_status(&self, id: Uuid) -> Result<AnalysisStatus> {
        let job = self.current_job(id).await?;
        let stale = self.is_stale(&job).await?;
        status_of(&job, stale)
    }

    /// `GET /v1/analyses/{id}/results`: a page of ranked rows that pass the
    /// query's filters, from the store, with the record fields it asks for.
    /// A `stale` analysis still has its results.
    pub async fn analysis_results(
        &self,
        id: Uuid,
        query: &ResultsQuery,
    ) -> Result<AnalysisResults> {
        let job = self.finished_job(id).await?;
        let selection = selection_of(query, query.page_size());
        let total = if query.is_filtered() {
            self.store().count_analysis_results(id, &selection).await?
        } else {
            job.n_results
        };
        let results = self
            .store()
            .analysis_results(id, &selection)
            .await?
            .into_iter()
            .map(|row| rows::for_reading(row, query.include))
            .collect();
        Ok(AnalysisResults {
            results,
            total: usize::try_from(total).unwrap_or(usize::MAX),
            summary: job.summary,
        })
    }

    /// Every row that passes the query's filters (from `offset`, at most
    /// `limit` when given), read from the store a page at a time: the
    /// NDJSON form of `GET /v1/analyses/{id}/results`. Fails at once, before
    /// any row, when the analysis is unknown or not done.
    pub async fn analysis_result_rows(&self, id: Uuid, query: &ResultsQuery) -> Result<ResultRows> {
        self.finished_job(id).await?;
        Ok(ResultRows {
            service: self.clone(),
            id,
            selection: selection_of(query, MAX_PAGE),
            remaining: query.limit.unwrap_or(usize::MAX),
            include: query.include,
        })
    }

    async fn finished_job(&self, id: Uuid) -> Result<AnalysisJob> {
        let job = self.current_job(id).await?;
        if job.state != JobState::Done {
            return Err(Error::AnalysisNotFinished {
                id,
                status: job.state.as_str().to_owned(),
            });
        }
        Ok(job)
    }

    /// `DELETE /v1/analyses/{id}`: cancels a queued or running analysis,
    /// wherever it runs. A queued job is cancelled at once; a running one
    /// stops at its server's next heartbeat. A finished one is left alone.
    pub async fn cancel_analysis(&self, id: Uuid) -> Result<AnalysisStatus> {
        let mut job = self.current_job(id).await?;
        if job.state.is_final() {
            let stale = self.is_stale(&job).await?;
            return status_of(&job, stale);
        }
        job.cancel_requested = true;
        // A job this server runs writes its own final state: `cancelled`
        // (at once from the queue, within a second while it computes), or
        // `done` if it was storing its results. Writing it here could undo
        // its `running`, since a job that just left the queue may still read
        // `queued` in the store.
        match self.analyses().cancel_here(id) {
            Some(JobState::Queued) => {
                job.state = JobState::Cancelled;
                job.finished_at_ms = Some(now_ms());
                return status_of(&job, false);
            }
            Some(_) => return status_of(&job, false),
            None => {}
        }
        if job.state == JobState::Queued {
            job.state = JobState::Cancelled;
            job.finished_at_ms = Some(now_ms());
        }
        self.store().put_analysis(&job).await?;
        status_of(&job, false)
    }
}

/// The rows of a finished analysis, a page at a time (see
/// [`Service::analysis_result_rows`]).
#[derive(Debug)]
pub struct ResultRows {
    service: Service,
    id: Uuid,
    selection: ResultSelection,
    remaining: usize,
    include: JoinedFields,
}

impl ResultRows {
    /// The next page of rows, `None` once every row was returned.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Value>>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.selection.limit = self.remaining.min(MAX_PAGE);
        let page = self
            .service
            .store()
            .analysis_results(self.id, &self.selection)
            .await?;
        if page.is_empty() {
            self.remaining = 0;
            return Ok(None);
        }
        self.selection.offset += page.len();
        self.remaining = if page.len() < self.selection.limit {
            0
        } else {
            self.remaining - page.len()
        };
        Ok(Some(
            page.into_iter()
                .map(|row| rows::for_reading(row, self.include))
                .collect(),
        ))
    }
}

fn selection_of(query: &ResultsQuery, limit: usize) -> ResultSelection {
    ResultSelection {
        offset: query.offset,
        limit,
        flagged: query.flagged,
        min_score: query.min_score,
    }
}

/// The wire form of a job version.
pub(super) fn status_of(job: &AnalysisJob, stale: bool) -> Result<AnalysisStatus> {
    let kind = job.kind.parse::<AnalysisKind>().map_err(|_| Error::Store {
        message: format!(
            "analysis {} is stored with an unknown kind {:?}; it was written by a newer server",
            job.id, job.kind
        ),
    })?;
    let status = match (job.state, stale) {
        (JobState::Done, true) => JobStatus::Stale,
        (JobState::Queued, _) => JobStatus::Queued,
        (JobState::Running, _) => JobStatus::Running,
        (JobState::Done, false) => JobStatus::Done,
        (JobState::Failed, _) => JobStatus::Failed,
        (JobState::Cancelled, _) => JobStatus::Cancelled,
    };
    Ok(AnalysisStatus {
        id: job.id,
        kind,
        status,
        progress: job.progress.clamp(0.0, 1.0),
        error: job.error.clone(),
        target: job.target,
        reference: job.reference,
        params: job.params.clone(),
        created_at_ms: job.created_at_ms,
        started_at_ms: job.started_at_ms,
        finished_at_ms: job.finished_at_ms,
        server: (!job.server.is_empty()).then(|| job.server.clone()),
        summary: job.summary.clone().filter(|_| job.state == JobState::Done),
    })
}
