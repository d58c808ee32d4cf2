//! An analysis job as it is persisted: what runs, on which data, where it
//! stands, which server runs it, and the data versions it was computed on.
//! Every change is a new version of the whole job, written through the store.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{Error, Result};

/// Where a job stands. `stale` is not a stored state: it is how a `done` job
/// reads once its datasets have newer writes than it was computed on.
///
/// ```
/// # use mutant_core::model::JobState;
/// assert_eq!("running".parse::<JobState>()?, JobState::Running);
/// assert!("paused".parse::<JobState>().is_err());
/// # Ok::<(), mutant_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    /// Recorded, not started yet.
    Queued,
    /// Loading data or computing on the server named in the job.
    Running,
    /// Finished; its results are stored.
    Done,
    /// Stopped by an error, or its server stopped (its lease ran out).
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl JobState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will change no more (apart from reading as stale).
    pub fn is_final(self) -> bool {
        match self {
            JobState::Done | JobState::Failed | JobState::Cancelled => true,
            JobState::Queued | JobState::Running => false,
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Failed,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
        .ok_or_else(|| Error::Store {
            message: format!("an analysis has the unknown stored status {text:?}"),
        })
    }
}

/// One version of an analysis job.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisJob {
    /// The analysis id.
    pub id: Uuid,
    /// The algorithm's wire name.
    pub kind: String,
    /// The dataset scored.
    pub target: Uuid,
    /// The dataset compared against, if any.
    pub reference: Option<Uuid>,
    /// Parameters as the client gave them.
    pub params: Map<String, Value>,
    /// Where it stands.
    pub state: JobState,
    /// 0 to 1.
    pub progress: f32,
    /// Why it failed.
    pub error: Option<String>,
    /// Kind-level results (`drift`, `projection`), once done.
    pub summary: Option<Value>,
    /// How many result rows it stored, once done.
    pub n_results: u64,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When it started running.
    pub started_at_ms: Option<u64>,
    /// When it ended.
    pub finished_at_ms: Option<u64>,
    /// The last sign of life from the server running it.
    pub heartbeat_at_ms: u64,
    /// The server that runs it: a per-process id and where it listens.
    pub server: String,
    /// Whether someone asked it to stop. Once true in any version, the store
    /// reads it true in every later one.
    pub cancel_requested: bool,
    /// The target's data version (the highest record version) it was computed on.
    pub target_watermark: u64,
    /// The reference's data version it was computed on; 0 without a reference.
    pub reference_watermark: u64,
}

impl AnalysisJob {
    /// A queued job.
    pub fn queued(id: Uuid, kind: &str, target: Uuid, now_ms: u64) -> Self {
        AnalysisJob {
            id,
            kind: kind.to_owned(),
            target,
            reference: None,
            params: Map::new(),
            state: JobState::Queued,
            progress: 0.0,
            error: None,
            summary: None,
            n_results: 0,
            created_at_ms: now_ms,
            started_at_ms: None,
            finished_at_ms: None,
            heartbeat_at_ms: now_ms,
            server: String::new(),
            cancel_requested: false,
            target_watermark: 0,
            reference_watermark: 0,
        }
    }
}
