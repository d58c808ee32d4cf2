//! Running analysis jobs so that every server sees them: the job row in the
//! store is the truth, and the server running a job rewrites it (progress,
//! heartbeat) every `analysis_heartbeat`. Any server that reads a queued or
//! running job whose heartbeat is older than `analysis_lease` marks it
//! failed, so a job whose server died never stays running. Cancel requests
//! reach the running server through the store, at its next heartbeat.
//!
//! The running server never overwrites a final state that someone else wrote
//! (a cancel of a queued job, a failure after a lost lease): it checks the
//! latest version at every heartbeat and before its last write, and stops.
//!
//! A server computes at most `analyses_in_flight` jobs at once
//! ([`Admission`]); the others stay `queued`, heartbeating, in the order
//! they were started, and a cancel takes a queued job out of the line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use uuid::Uuid;

use super::Service;
use super::admission::{Admission, Slot, Ticket};
use super::analysis_thread::run_analysis;
use super::budget::{self, AnalysisSize};
use super::graphs::SelfGraphs;
use super::kernels_run::{AnalysisInput, AnalysisOutput, compute};
use super::params::AnalysisParams;
use super::rows::{MIN_CHUNK_ROWS, RecordSnapshots, ResultRows, Snapshots, next_chunk_rows};
use crate::api::kinds::AnalysisKind;
use crate::model::{AnalysisJob, Dataset, Filter, JobState, Record};
use crate::store::{FetchQuery, StoredRow, now_ms};
use crate::{Error, Result};

/// Attempts at a job's last write before giving up (the lease then fails it).
const FINAL_WRITE_ATTEMPTS: u32 = 3;

/// A job this server runs: what `/metrics` counts and what kernels watch.
#[derive(Debug)]
struct LocalJob {
    state: Mutex<JobState>,
    progress: Arc<AtomicU32>,
    cancel: Arc<AtomicBool>,
    /// Wakes the job while it waits in the queue, when it is cancelled here.
    cancelled: Notify,
    /// The version of the job this server last wrote since it began
    /// computing it: what a status read here answers with, without asking
    /// the store (clients poll a running job many times a second).
    written: Mutex<Option<AnalysisJob>>,
}

impl LocalJob {
    fn progress(&self) -> f32 {
        f32::from_bits(self.progress.load(Ordering::Relaxed)).clamp(0.0, 1.0)
    }

    fn set_state(&self, state: JobState) {
        *lock(&self.state) = state;
    }

    /// Moves a queued job to running, unless a cancel came first (checked
    /// under the state's lock, which [`Analyses::cancel_here`] also takes,
    /// so a cancel that answered `cancelled` is never followed by a run).
    fn start_unless_cancelled(&self) -> bool {
        let mut state = lock(&self.state);
        if self.cancel.load(Ordering::Relaxed) {
            return false;
        }
        *state = JobState::Running;
        true
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The analyses this server runs or ran since it started, and the queue
/// they wait in for a slot to compute.
#[derive(Debug)]
pub struct Analyses {
    jobs: Mutex<HashMap<Uuid, Arc<LocalJob>>>,
    admission: Arc<Admission>,
}

impl Analyses {
    /// No analyses yet; at most `in_flight` will compute at once.
    pub fn new(in_flight: usize) -> Self {
        Analyses {
            jobs: Mutex::new(HashMap::new()),
            admission: Admission::new(in_flight),
        }
    }

    /// How many of this server's analyses compute now, and how many wait
    /// for a slot.
    pub fn computing_and_waiting(&self) -> (usize, usize) {
        self.admission.counts()
    }

    /// How many of this server's jobs are in each status (from memory, not
    /// from the store).
    pub fn counts_by_status(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<JobState, usize> = HashMap::new();
        for job in lock(&self.jobs).values() {
            *counts.entry(*lock(&job.state)).or_default() += 1;
        }
        let mut counts: Vec<_> = counts
            .into_iter()
            .map(|(state, count)| (state.as_str().to_owned(), count))
            .collect();
        counts.sort();
        counts
    }

    fn register(&self, id: Uuid) -> Arc<LocalJob> {
        let job = Arc::new(LocalJob {
            state: Mutex::new(JobState::Queued),
            progress: Arc::new(AtomicU32::new(0)),
            cancel: Arc::new(AtomicBool::new(false)),
            cancelled: Notify::new(),
            written: Mutex::new(None),
        });
        lock(&self.jobs).insert(id, Arc::clone(&job));
        job
    }

    fn running_here(&self, id: Uuid) -> Option<Arc<LocalJob>> {
        lock(&self.jobs)
            .get(&id)
            .filter(|job| !lock(&job.state).is_final())
            .cloned()
    }

    /// Stops a job at once if this server runs it, and returns its state
    /// here (queued or running): its own task then writes its final state.
    pub(super) fn cancel_here(&self, id: Uuid) -> Option<JobState> {
        let local = self.running_here(id)?;
        let state = lock(&local.state);
        local.cancel.store(true, Ordering::Relaxed);
        local.cancelled.notify_one();
        Some(*state)
    }
}

/// What a job computes on.
struct JobInput {
    kind: AnalysisKind,
    params: AnalysisParams,
    target: Dataset,
    reference: Option<Dataset>,
}

/// What a finished computation hands back: its rows (to be shaped as they
/// are stored) with the snapshots of the records they are about, and the
/// data versions of the datasets it loaded.
struct Computed {
    output: AnalysisOutput,
    snapshots: Snapshots,
    target_watermark: u64,
    reference_watermark: u64,
    phases: Phases,
}

/// Where a computation's time went, for the log line of a finished job.
#[derive(Debug, Clone, Copy)]
struct Phases {
    /// Bringing the datasets up to date in the cache.
    data: Duration,
    /// The kernel, from its start to its rows.
    kernel: Duration,
    /// Reading the records' fields for the snapshots, beside the kernel.
    fields: Duration,
    /// Indexing those fields.
    snapshots: Duration,
}

impl Service {
    /// Runs a queued job in the background on this server.
    pub(super) fn spawn_job(
        &self,
        job: AnalysisJob,
        kind: AnalysisKind,
        params: AnalysisParams,
        target: Dataset,
        reference: Option<Dataset>,
    ) {
        let local = self.analyses().register(job.id);
        // In the queue now, so that jobs are admitted in the order they came.
        let ticket = self.analyses().admission.enqueue(job.id);
        let service = self.clone();
        let input = JobInput {
            kind,
            params,
            target,
            reference,
        };
        tokio::spawn(async move { service.drive(job, input, local, ticket).await });
    }

    /// Waits for a slot, then computes the job while heartbeating, stores
    /// its results and its final state.
    async fn drive(
        &self,
        mut job: AnalysisJob,
        input: JobInput,
        local: Arc<LocalJob>,
        ticket: Ticket,
    ) {
        let Some(_slot) = self.wait_for_slot(&mut job, &local, ticket).await else {
            return;
        };
        // Cancelled or failed through another server since the last
        // heartbeat: writing `running` now would undo that.
        if let Some(state) = self.final_state_elsewhere(&mut job, &local).await {
            local.set_state(state);
            return;
        }
        if !local.start_unless_cancelled() {
            self.end_cancelled_in_queue(&mut job, &local).await;
            return;
        }
        job.state = JobState::Running;
        job.started_at_ms = Some(now_ms());
        job.heartbeat_at_ms = now_ms();
        self.write_job(&job, &local).await;
        let kind = input.kind;
        let work = self.compute_job(input, &local);
        let mut work = std::pin::pin!(work);
        let mut ticker = tokio::time::interval(self.inner.config.analysis_heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut taken_over: Option<JobState> = None;
        let outcome = loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                _ = ticker.tick(), if taken_over.is_none() => {
                    taken_over = self.heartbeat(&mut job, &local).await;
                }
            }
        };
        if taken_over.is_none() {
            taken_over = self.final_state_elsewhere(&mut job, &local).await;
        }
        if let Some(state) = taken_over {
            local.set_state(state);
            return;
        }
        job.progress = local.progress();
        job.finished_at_ms = Some(now_ms());
        let stored_after = Instant::now();
        let state = match outcome {
            Ok(computed) => match self
                .store_results(job.id, computed.output.rows, computed.snapshots)
                .await
            {
                Ok(n_results) => {
                    let phases = computed.phases;
                    tracing::info!(
                        analysis = %job.id,
                        kind = kind.as_str(),
                        rows = n_results,
                        data_ms = duration_ms(phases.data),
                        kernel_ms = duration_ms(phases.kernel),
                        fields_ms = duration_ms(phases.fields),
                        snapshots_ms = duration_ms(phases.snapshots),
                        store_ms = duration_ms(stored_after.elapsed()),
                        "analysis done"
                    );
                    job.progress = 1.0;
                    job.n_results = n_results as u64;
                    job.summary = Some(computed.output.summary);
                    job.target_watermark = computed.target_watermark;
                    job.reference_watermark = computed.reference_watermark;
                    JobState::Done
                }
                Err(error) => {
                    job.error = Some(format!("storing the results failed: {error}"));
                    JobState::Failed
                }
            },
            Err(Error::Cancelled) => JobState::Cancelled,
            Err(error) => {
                job.error = Some(error.to_string());
                JobState::Failed
            }
        };
        job.state = state;
        job.heartbeat_at_ms = now_ms();
        for attempt in 1..=FINAL_WRITE_ATTEMPTS {
            if self.write_job(&job, &local).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        local.set_state(state);
    }

    /// Waits, `queued`, for the job's turn, heartbeating meanwhile so that
    /// the lease does not fail a job that only waits. `None` when the job
    /// ended while it waited: cancelled here or elsewhere, or failed by
    /// another server; its queue place is then given up.
    async fn wait_for_slot(
        &self,
        job: &mut AnalysisJob,
        local: &LocalJob,
        mut ticket: Ticket,
    ) -> Option<Slot> {
        // Waiting costs nothing but the lease: heartbeat a few times per
        // lease, not every heartbeat, so a long queue does not load the store.
        let config = &self.inner.config;
        let heartbeat = config.analysis_heartbeat.max(config.analysis_lease / 4);
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if local.cancel.load(Ordering::Relaxed) {
                self.end_cancelled_in_queue(job, local).await;
                return None;
            }
            tokio::select! {
                biased;
                slot = ticket.admitted() => return Some(slot),
                () = local.cancelled.notified() => {}
                _ = ticker.tick() => {
                    if let Some(state) = self.heartbeat(job, local).await {
                        local.set_state(state);
                        return None;
                    }
                }
            }
        }
    }

    /// Writes the final `cancelled` of a job cancelled before it computed.
    async fn end_cancelled_in_queue(&self, job: &mut AnalysisJob, local: &LocalJob) {
        job.state = JobState::Cancelled;
        job.cancel_requested = true;
        job.finished_at_ms = Some(now_ms());
        job.heartbeat_at_ms = now_ms();
        self.write_job(job, local).await;
        local.set_state(JobState::Cancelled);
    }

    async fn compute_job(&self, input: JobInput, local: &LocalJob) -> Result<Computed> {
        if local.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let started = Instant::now();
        let (target, target_watermark) = self.cache().get_with_version(&input.target).await?;
        let (reference, reference_watermark) = match &input.reference {
            Some(reference) => {
                let (loaded, version) = self.cache().get_with_version(reference).await?;
                (Some(loaded), version)
            }
            None => (None, 0),
        };
        // The data may have grown since the request was checked.
        let size = AnalysisSize {
            n_target: target.n_records(),
            n_reference: reference
                .as_ref()
                .map_or(0, |reference| reference.n_records()),
            dimension: target.dataset.dimension,
            threads: self.kernel_threads(),
        };
        let data = started.elapsed();
        let budget_bytes = self.inner.config.analysis_bytes;
        budget::estimate(input.kind, &input.params, size).within(input.kind, budget_bytes)?;
        // Pairs name records of the reference too; every other row only
        // records of the target.
        let reference_snapshot_wanted =
            input.kind == AnalysisKind::NearDuplicates && reference.is_some();
        let kernel_input = AnalysisInput {
            kind: input.kind,
            params: input.params,
            target: Arc::clone(&target),
            reference: reference.clone(),
            threads: self.kernel_threads(),
            budget_bytes,
            progress: Arc::clone(&local.progress),
            cancel: Arc::clone(&local.cancel),
            kept: SelfGraphs {
                target: self.cache().kept_graphs(&target),
                reference: reference
                    .as_ref()
                    .map(|reference| self.cache().kept_graphs(reference))
                    .unwrap_or_default(),
            },
        };
        let computing = timed(run_analysis(move || compute(&kernel_input)));
        // Drift's rows are classes: no record to snapshot.
        let target_snapshot_wanted = input.kind != AnalysisKind::Drift;
        let fetching_target = timed(async {
            if target_snapshot_wanted {
                self.record_fields(&input.target).await
            } else {
                Ok(Vec::new())
            }
        });
        let fetching_reference = async {
            match (&input.reference, reference_snapshot_wanted) {
                (Some(dataset), true) => self.record_fields(dataset).await,
                _ => Ok(Vec::new()),
            }
        };
        let ((output, kernel), (target_fields, fields), reference_fields) =
            tokio::join!(computing, fetching_target, fetching_reference);
        let (mut output, target_fields, reference_fields) =
            (output?, target_fields?, reference_fields?);
        let built = std::mem::take(&mut output.built);
        for graph in built.target {
            self.cache().keep_graph(&target, graph);
        }
        if let Some(reference) = &reference {
            for graph in built.reference {
                self.cache().keep_graph(reference, graph);
            }
        }
        // A cancel that came while the record fields were read: the rows
        // are not worth shaping or storing.
        if local.cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        // Indexing the fields read is the analysis's work too: on its
        // low-priority thread.
        let indexing_from = Instant::now();
        let snapshots = run_analysis(move || {
            Ok(Snapshots {
                target: RecordSnapshots::new(target, target_fields),
                others: reference
                    .filter(|_| reference_snapshot_wanted)
                    .map(|reference| RecordSnapshots::new(reference, reference_fields)),
            })
        })
        .await?;
        Ok(Computed {
            output,
            snapshots,
            target_watermark,
            reference_watermark,
            phases: Phases {
                data,
                kernel,
                fields,
                snapshots: indexing_from.elapsed(),
            },
        })
    }

    /// Every record of a dataset without its vector: the uri and metadata
    /// that result rows keep as they were when their analysis ran.
    async fn record_fields(&self, dataset: &Dataset) -> Result<Vec<Record>> {
        let query = FetchQuery {
            filter: Filter::all(),
            limit: usize::MAX,
            offset: 0,
            with_vectors: false,
        };
        self.store().fetch(dataset, &query).await
    }

    /// Picks up a cancel request, notices a final state written elsewhere,
    /// and rewrites the job with its progress and a fresh heartbeat. Returns
    /// the final state if someone else ended the job.
    async fn heartbeat(&self, job: &mut AnalysisJob, local: &LocalJob) -> Option<JobState> {
        if let Some(state) = self.final_state_elsewhere(job, local).await {
            return Some(state);
        }
        job.progress = job.progress.max(local.progress());
        job.heartbeat_at_ms = now_ms();
        self.write_job(job, local).await;
        None
    }

    /// Reads the job's latest version: copies a cancel request onto the
    /// kernels' flag, and returns the state if it is final (the lease ran out,
    /// or a cancel caught it queued).
    async fn final_state_elsewhere(
        &self,
        job: &mut AnalysisJob,
        local: &LocalJob,
    ) -> Option<JobState> {
        let latest = match self.store().get_analysis(job.id).await {
            Ok(latest) => latest,
            Err(error) => {
                tracing::warn!(analysis = %job.id, %error, "cannot read the analysis job; carrying on");
                return None;
            }
        };
        if latest.cancel_requested {
            job.cancel_requested = true;
            local.cancel.store(true, Ordering::Relaxed);
        }
        if latest.state.is_final() {
            local.cancel.store(true, Ordering::Relaxed);
            return Some(latest.state);
        }
        None
    }

    /// Stores the rows of job `id` a chunk at a time: each chunk is shaped
    /// on the analysis threads while the one before it is written, so only
    /// two chunks of rows are ever held. Returns how many rows there were.
    async fn store_results(
        &self,
        id: Uuid,
        rows: ResultRows,
        snapshots: Snapshots,
    ) -> Result<usize> {
        let n_rows = rows.len();
        let chunk_after =
            |start: usize, n_chunk_rows: usize| start..(start + n_chunk_rows).min(n_rows);
        let threads = self.kernel_threads();
        let mut shaped =
            shape_chunk(rows, snapshots, chunk_after(0, MIN_CHUNK_ROWS), threads).await?;
        let mut first_rank = 0;
        loop {
            let (rows, snapshots, chunk) = shaped;
            let next_rank = first_rank + chunk.len();
            let n_chunk_rows = next_chunk_rows(&chunk);
            let storing = self
                .store()
                .put_analysis_results(id, first_rank as u64, &chunk);
            if next_rank >= n_rows {
                storing.await?;
                return Ok(n_rows);
            }
            let shaping = shape_chunk(
                rows,
                snapshots,
                chunk_after(next_rank, n_chunk_rows),
                threads,
            );
            let (stored, next) = tokio::join!(storing, shaping);
            stored?;
            shaped = next?;
            first_rank = next_rank;
        }
    }

    /// Writes a version of the job; a failure is logged, and the lease takes
    /// care of a job whose server can no longer write. A version written
    /// once the job left the queue is kept for status reads here.
    async fn write_job(&self, job: &AnalysisJob, local: &LocalJob) -> bool {
        match self.store().put_analysis(job).await {
            Ok(()) => {
                if job.state != JobState::Queued {
                    *lock(&local.written) = Some(job.clone());
                }
                true
            }
            Err(error) => {
                tracing::warn!(analysis = %job.id, %error, "cannot write the analysis job");
                false
            }
        }
    }

    /// The job's latest version, failed first if its server stopped
    /// heartbeating for longer than the lease. A job this server computes
    /// is answered from what it last wrote, with its live progress: a
    /// cancel requested through another server shows from its next
    /// heartbeat on, when this server reads it.
    pub(super) async fn current_job(&self, id: Uuid) -> Result<AnalysisJob> {
        let local = self.analyses().running_here(id);
        if let Some(local) = &local {
            let written = lock(&local.written).clone();
            if let Some(mut job) = written {
                job.progress = job.progress.max(local.progress());
                job.cancel_requested |= local.cancel.load(Ordering::Relaxed);
                return Ok(job);
            }
        }
        let mut job = self.store().get_analysis(id).await?;
        if let Some(local) = local {
            // This server runs it: fresher progress than the last heartbeat,
            // and no lease to check.
            if !job.state.is_final() {
                job.progress = job.progress.max(local.progress());
            }
            return Ok(job);
        }
        let now = now_ms();
        let silent_ms = now.saturating_sub(job.heartbeat_at_ms);
        if job.state.is_final() || silent_ms <= duration_ms(self.inner.config.analysis_lease) {
            return Ok(job);
        }
        job.state = JobState::Failed;
        job.error = Some(format!(
            "the server running this analysis stopped (last heartbeat {} s ago); start it again",
            silent_ms / 1000
        ));
        job.finished_at_ms = Some(now);
        self.store().put_analysis(&job).await?;
        Ok(job)
    }

    /// Whether a done job's datasets have writes newer than it was computed
    /// on (or are gone).
    pub(super) async fn is_stale(&self, job: &AnalysisJob) -> Result<bool> {
        if job.state != JobState::Done {
            return Ok(false);
        }
        let datasets = std::iter::once((job.target, job.target_watermark)).chain(
            job.reference
                .map(|reference| (reference, job.reference_watermark)),
        );
        for (dataset_id, watermark) in datasets {
            match self.store().dataset_watermark(dataset_id).await {
                Ok(current) if current > watermark => return Ok(true),
                Ok(_) => {}
                Err(Error::UnknownDataset { .. }) => return Ok(true),
                Err(error) => return Err(error),
            }
        }
        Ok(false)
    }
}

/// The rows at `ranks` shaped and attached to their snapshots, on the
/// analysis thread and `threads - 1` more; rows and snapshots come back for
/// the next chunk.
async fn shape_chunk(
    rows: ResultRows,
    snapshots: Snapshots,
    ranks: std::ops::Range<usize>,
    threads: usize,
) -> Result<(ResultRows, Snapshots, Vec<StoredRow>)> {
    run_analysis(move || {
        let chunk = rows.stored(ranks, &snapshots, threads)?;
        Ok((rows, snapshots, chunk))
    })
    .await
}

/// `work`'s output and how long it took.
async fn timed<T>(work: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let output = work.await;
    (output, started.elapsed())
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
