//! Analyses: start one, follow its progress until it ends, page through its
//! ranked results, cancel it.

use std::time::Duration;

use hyper::Method;
use uuid::Uuid;

use mutant_core::api::results::{ResultsFormat, ResultsQuery};
use mutant_core::api::vocabulary::JobStatus;
use mutant_core::api::wire::{AnalysisResults, AnalysisStatus, StartAnalysisRequest};
use serde_json::Value;

use crate::endpoint::{analysis_path, analysis_results_path};
use crate::transport::Replay;
use crate::{Client, Error, Result};

/// The first wait between two polls of an analysis; waits grow by half up to
/// the client's poll interval.
const FIRST_POLL_WAIT: Duration = Duration::from_millis(50);

/// Where an analysis stands, from its `status` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `queued` or `running`.
    Pending,
    /// `done`, or `stale` (done, but its datasets have changed since).
    Done,
    /// `failed`.
    Failed,
    /// `cancelled`.
    Cancelled,
}

impl Phase {
    fn of(status: &AnalysisStatus) -> Phase {
        match status.status {
            JobStatus::Queued | JobStatus::Running => Phase::Pending,
            JobStatus::Done | JobStatus::Stale => Phase::Done,
            JobStatus::Failed => Phase::Failed,
            JobStatus::Cancelled => Phase::Cancelled,
        }
    }
}

impl Client {
    /// Starts an analysis and returns its status (`queued` at first); follow
    /// it with [`wait_for_analysis`](Client::wait_for_analysis).
    ///
    /// This request is not repeated after it may have reached the server,
    /// since a repeat would start a second analysis.
    pub async fn start_analysis(&self, request: &StartAnalysisRequest) -> Result<AnalysisStatus> {
        self.transport
            .send_json(
                Method::POST,
                "/v1/analyses",
                request,
                Replay::OnlyIfUnprocessed,
            )
            .await
    }

    /// Where an analysis stands: status, progress from 0 to 1, error.
    pub async fn analysis_status(&self, id: Uuid) -> Result<AnalysisStatus> {
        self.transport.get_json(&analysis_path(id, "")).await
    }

    /// A page of a finished analysis's results, ranked, highest score first:
    /// `limit` rows from row `offset`, with the total number of rows.
    /// Before the analysis is done this fails with
    /// [`Error::AnalysisNotFinished`].
    pub async fn analysis_results(
        &self,
        id: Uuid,
        limit: usize,
        offset: usize,
    ) -> Result<AnalysisResults> {
        let query = ResultsQuery {
            limit: Some(limit),
            offset,
            ..ResultsQuery::default()
        };
        self.analysis_results_matching(id, &query).await
    }

    /// A page of the rows that pass `query`'s filters (`flagged`,
    /// `min_score`), in rank order, with the record fields it asks for
    /// joined on as they were when the analysis ran; `total` counts every
    /// matching row. The query's format is ignored: this reads a JSON page.
    ///
    /// ```no_run
    /// use mutant_client::results::{JoinedFields, ResultsQuery};
    ///
    /// # async fn run(client: mutant_client::Client, id: uuid::Uuid) -> mutant_client::Result<()> {
    /// let flagged = ResultsQuery {
    ///     flagged: Some(true),
    ///     include: JoinedFields { label: true, uri: true, ..JoinedFields::default() },
    ///     ..ResultsQuery::default()
    /// };
    /// let page = client.analysis_results_matching(id, &flagged).await?;
    /// println!("{} flagged records", page.total);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn analysis_results_matching(
        &self,
        id: Uuid,
        query: &ResultsQuery,
    ) -> Result<AnalysisResults> {
        let query = ResultsQuery {
            format: ResultsFormat::Json,
            ..query.clone()
        };
        self.transport
            .get_json(&analysis_results_path(id, &query))
            .await
    }

    /// Every row that passes `query`'s filters, from its `offset` on (at
    /// most its `limit`, when set), in one streamed answer (NDJSON) instead
    /// of pages. Fails with the server's error if the stream ends with one.
    pub async fn all_analysis_results(&self, id: Uuid, query: &ResultsQuery) -> Result<Vec<Value>> {
        let query = ResultsQuery {
            format: ResultsFormat::Ndjson,
            ..query.clone()
        };
        let path = analysis_results_path(id, &query);
        let answer = self
            .transport
            .execute(Method::GET, &path, None, None, Replay::Safe)
            .await?;
        let mut rows = Vec::new();
        for line in answer.body.split(|&byte| byte == b'\n') {
            if line.is_empty() {
                continue;
            }
            let row: Value = crate::transport::decode_json(Method::GET, &path, line)?;
            if row.get("error").is_some() && row.get("rank").is_none() {
                return Err(Error::from_response(500, line));
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// Cancels an analysis and returns its status.
    pub async fn cancel_analysis(&self, id: Uuid) -> Result<AnalysisStatus> {
        let path = analysis_path(id, "");
        let answer = self
            .transport
            .execute(Method::DELETE, &path, None, None, Replay::Safe)
            .await?;
        crate::transport::decode_json(Method::DELETE, &path, &answer.body)
    }

    /// Polls an analysis until it ends, calling `on_progress` with its status
    /// first and then whenever its status or progress changes. Returns the
    /// final status when it is `done` (or `stale`); fails with [`Error::AnalysisFailed`] or
    /// [`Error::AnalysisCancelled`] otherwise. Polls start fast and slow down
    /// to the client's poll interval.
    ///
    /// ```no_run
    /// use mutant_client::wire::StartAnalysisRequest;
    ///
    /// # async fn run(client: mutant_client::Client) -> mutant_client::Result<()> {
    /// let started = client
    ///     .start_analysis(&StartAnalysisRequest {
    ///         kind: "mislabel".into(),
    ///         target: "train".into(),
    ///         reference: None,
    ///         params: serde_json::json!({"k": 10}).as_object().cloned(),
    ///     })
    ///     .await?;
    /// client
    ///     .wait_for_analysis(started.id, |status| {
    ///         eprintln!("{}: {:.0}%", status.status, status.progress * 100.0)
    ///     })
    ///     .await?;
    /// let top = client.analysis_results(started.id, 20, 0).await?;
    /// println!("{} of {} records", top.results.len(), top.total);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for_analysis(
        &self,
        id: Uuid,
        mut on_progress: impl FnMut(&AnalysisStatus),
    ) -> Result<AnalysisStatus> {
        let mut wait = FIRST_POLL_WAIT.min(self.poll_interval);
        let mut last_seen: Option<(JobStatus, f32)> = None;
        loop {
            let status = self.analysis_status(id).await?;
            let seen = (status.status, status.progress);
            if last_seen.as_ref() != Some(&seen) {
                on_progress(&status);
                last_seen = Some(seen);
            }
            match Phase::of(&status) {
                Phase::Pending => {}
                Phase::Done => return Ok(status),
                Phase::Failed => {
                    return Err(Error::AnalysisFailed {
                        id,
                        message: status
                            .error
                            .unwrap_or_else(|| "the server gave no reason".to_owned()),
                        kind: status.kind.as_str().to_owned(),
                    });
                }
                Phase::Cancelled => {
                    return Err(Error::AnalysisCancelled {
                        id,
                        kind: status.kind.as_str().to_owned(),
                    });
                }
            }
            tokio::time::sleep(wait).await;
            wait = wait.mul_f32(1.5).min(self.poll_interval);
        }
    }

    /// Starts an analysis and waits for it (see
    /// [`wait_for_analysis`](Client::wait_for_analysis)); returns its final
    /// status, whose `id` pages through the results.
    pub async fn run_analysis(
        &self,
        request: &StartAnalysisRequest,
        on_progress: impl FnMut(&AnalysisStatus),
    ) -> Result<AnalysisStatus> {
        let started = self.start_analysis(request).await?;
        self.wait_for_analysis(started.id, on_progress).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutant_core::api::vocabulary::AnalysisKind;

    fn status(status: JobStatus) -> AnalysisStatus {
        AnalysisStatus {
            id: Uuid::from_u128(7),
            kind: AnalysisKind::Mislabel,
            status,
            progress: 0.5,
            error: None,
            target: Uuid::from_u128(1),
            reference: None,
            params: Default::default(),
            created_at_ms: 0,
            started_at_ms: None,
            finished_at_ms: None,
            server: None,
            summary: None,
        }
    }

    #[test]
    fn statuses_are_read_into_phases() {
        for (job_status, phase) in [
            (JobStatus::Queued, Phase::Pending),
            (JobStatus::Running, Phase::Pending),
            (JobStatus::Done, Phase::Done),
            (JobStatus::Stale, Phase::Done),
            (JobStatus::Failed, Phase::Failed),
            (JobStatus::Cancelled, Phase::Cancelled),
        ] {
            assert_eq!(Phase::of(&status(job_status)), phase);
        }
        let unknown = serde_json::from_value::<AnalysisStatus>(serde_json::json!({
            "id": Uuid::from_u128(7), "kind": "mislabel", "status": "paused", "progress": 0.0,
            "target": Uuid::from_u128(1), "params": {}, "created_at_ms": 0
        }));
        assert!(unknown.is_err());
    }
}
