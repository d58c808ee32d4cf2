//! Analysis jobs: a named algorithm run in the background over a target
//! dataset (and a reference, where it needs one), with progress, cancel and
//! ranked results. Jobs live in this server's memory.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::Service;
use super::kernels_run::{AnalysisInput, AnalysisOutput, AnalysisParams, compute};
use crate::api::wire::{AnalysisResults, AnalysisStatus, StartAnalysisRequest};
use crate::store::now_ms;
use crate::{Error, Result};

/// The algorithms of DESIGN.md's table that run as analyses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnalysisKind {
    /// Disagreement of a record's prediction with its reference neighbours' labels.
    BoundaryUncertainty,
    /// How unusual a record's vector norm is for its predicted class.
    ActivationUncertainty,
    /// Mahalanobis distance to the record's class in the reference.
    ClassOutlier,
    /// Labels that are probably wrong.
    Mislabel,
    /// Density-aware distance to a reference.
    Novelty,
    /// Density-aware distance to the rest of the dataset.
    Uniqueness,
    /// Pairs of (near) duplicates, within one dataset or across two.
    NearDuplicates,
    /// Has the target drifted from the reference?
    Drift,
    /// The next records to label.
    Select,
    /// PCA coordinates for plotting.
    Projection,
}

/// Whether a kind takes a reference dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceUse {
    /// It must have one.
    Required,
    /// It may have one.
    Optional,
    /// It takes none.
    None,
}

impl AnalysisKind {
    const ALL: [AnalysisKind; 10] = [
        AnalysisKind::BoundaryUncertainty,
        AnalysisKind::ActivationUncertainty,
        AnalysisKind::ClassOutlier,
        AnalysisKind::Mislabel,
        AnalysisKind::Novelty,
        AnalysisKind::Uniqueness,
        AnalysisKind::NearDuplicates,
        AnalysisKind::Drift,
        AnalysisKind::Select,
        AnalysisKind::Projection,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisKind::BoundaryUncertainty => "boundary_uncertainty",
            AnalysisKind::ActivationUncertainty => "activation_uncertainty",
            AnalysisKind::ClassOutlier => "class_outlier",
            AnalysisKind::Mislabel => "mislabel",
            AnalysisKind::Novelty => "novelty",
            AnalysisKind::Uniqueness => "uniqueness",
            AnalysisKind::NearDuplicates => "near_duplicates",
            AnalysisKind::Drift => "drift",
            AnalysisKind::Select => "select",
            AnalysisKind::Projection => "projection",
        }
    }

    /// Whether it compares against a reference dataset.
    pub fn reference_use(self) -> ReferenceUse {
        match self {
            AnalysisKind::BoundaryUncertainty
            | AnalysisKind::ActivationUncertainty
            | AnalysisKind::ClassOutlier
            | AnalysisKind::Novelty
            | AnalysisKind::Drift => ReferenceUse::Required,
            AnalysisKind::NearDuplicates | AnalysisKind::Select => ReferenceUse::Optional,
            AnalysisKind::Mislabel | AnalysisKind::Uniqueness | AnalysisKind::Projection => {
                ReferenceUse::None
            }
        }
    }
}

impl FromStr for AnalysisKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        AnalysisKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| Error::InvalidParameter {
                name: "kind",
                reason: format!(
                    "unknown analysis {text:?}; use one of {}",
                    AnalysisKind::ALL.map(AnalysisKind::as_str).join(", ")
                ),
            })
    }
}

/// One job: its status, progress, cancel flag and, once done, its output.
#[derive(Debug)]
struct Job {
    status: Mutex<AnalysisStatus>,
    output: Mutex<Option<Arc<AnalysisOutput>>>,
    progress: Arc<AtomicU32>,
    cancel: Arc<AtomicBool>,
}

impl Job {
    fn snapshot(&self) -> AnalysisStatus {
        let mut status = lock(&self.status).clone();
        if status.status == "running" {
            status.progress = f32::from_bits(self.progress.load(Ordering::Relaxed)).clamp(0.0, 1.0);
        }
        status
    }

    fn update(&self, change: impl FnOnce(&mut AnalysisStatus)) {
        change(&mut lock(&self.status));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The analyses this server knows.
#[derive(Debug, Default)]
pub struct Analyses {
    jobs: Mutex<HashMap<Uuid, Arc<Job>>>,
}

impl Analyses {
    fn job(&self, id: Uuid) -> Result<Arc<Job>> {
        lock(&self.jobs)
            .get(&id)
            .cloned()
            .ok_or(Error::UnknownAnalysis { id })
    }

    /// How many jobs are in each status.
    pub fn counts_by_status(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for job in lock(&self.jobs).values() {
            *counts.entry(lock(&job.status).status.clone()).or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort();
        counts
    }
}

impl Service {
    /// `POST /v1/analyses`: checks the request, queues the job and returns at once.
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
        let status = AnalysisStatus {
            id: Uuid::new_v4(),
            kind: kind.as_str().to_owned(),
            status: "queued".into(),
            progress: 0.0,
            error: None,
            target: target.id,
            reference: reference.as_ref().map(|reference| reference.id),
            params: raw_params,
            created_at_ms: now_ms(),
            started_at_ms: None,
            finished_at_ms: None,
        };
        let job = Arc::new(Job {
            status: Mutex::new(status.clone()),
            output: Mutex::new(None),
            progress: Arc::new(AtomicU32::new(0)),
            cancel: Arc::new(AtomicBool::new(false)),
        });
        lock(&self.inner.analyses.jobs).insert(status.id, Arc::clone(&job));
        let service = self.clone();
        tokio::spawn(async move {
            let outcome = service.run_job(&job, kind, params, target, reference).await;
            let finished = now_ms();
            match outcome {
                Ok(output) => {
                    *lock(&job.output) = Some(Arc::new(output));
                    job.update(|status| {
                        status.status = "done".into();
                        status.progress = 1.0;
                        status.finished_at_ms = Some(finished);
                    });
                }
                Err(Error::Cancelled) => job.update(|status| {
                    status.status = "cancelled".into();
                    status.progress =
                        f32::from_bits(job.progress.load(Ordering::Relaxed)).clamp(0.0, 1.0);
                    status.finished_at_ms = Some(finished);
                }),
                Err(error) => job.update(|status| {
                    status.status = "failed".into();
                    status.progress =
                        f32::from_bits(job.progress.load(Ordering::Relaxed)).clamp(0.0, 1.0);
                    status.error = Some(error.to_string());
                    status.finished_at_ms = Some(finished);
                }),
            }
        });
        Ok(status)
    }

    async fn run_job(
        &self,
        job: &Job,
        kind: AnalysisKind,
        params: AnalysisParams,
        target: crate::model::Dataset,
        reference: Option<crate::model::Dataset>,
    ) -> Result<AnalysisOutput> {
        if job.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        job.update(|status| {
            status.status = "running".into();
            status.started_at_ms = Some(now_ms());
        });
        let target = self.cache().get(&target).await?;
        let reference = match reference {
            Some(reference) => Some(self.cache().get(&reference).await?),
            None => None,
        };
        let input = AnalysisInput {
            kind,
            params,
            target,
            reference,
            threads: self.kernel_threads(),
            progress: Arc::clone(&job.progress),
            cancel: Arc::clone(&job.cancel),
        };
        super::run_blocking(move || compute(&input)).await
    }

    /// `GET /v1/analyses/{id}`.
    pub fn analysis_status(&self, id: Uuid) -> Result<AnalysisStatus> {
        Ok(self.inner.analyses.job(id)?.snapshot())
    }

    /// `GET /v1/analyses/{id}/results`: a page of ranked rows.
    pub fn analysis_results(
        &self,
        id: Uuid,
        limit: usize,
        offset: usize,
    ) -> Result<AnalysisResults> {
        let job = self.inner.analyses.job(id)?;
        let status = job.snapshot();
        let Some(output) = lock(&job.output).clone() else {
            return Err(Error::AnalysisNotFinished {
                id,
                status: status.status,
            });
        };
        let limit = limit.min(super::MAX_PAGE);
        let results = output
            .rows
            .iter()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect();
        Ok(AnalysisResults {
            results,
            total: output.rows.len(),
            summary: output.summary.clone(),
        })
    }

    /// `DELETE /v1/analyses/{id}`: cancels a queued or running analysis.
    pub fn cancel_analysis(&self, id: Uuid) -> Result<AnalysisStatus> {
        let job = self.inner.analyses.job(id)?;
        job.cancel.store(true, Ordering::Relaxed);
        Ok(job.snapshot())
    }
}

/// A JSON object from pairs, for result rows.
pub(super) fn object(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect::<Map<String, Value>>(),
    )
}

/// `null` for a NaN or infinite float (JSON has neither), the number otherwise.
pub(super) fn number(value: f32) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}
