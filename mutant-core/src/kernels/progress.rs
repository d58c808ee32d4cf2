//! How a kernel runs: its thread count, its progress callback and its
//! cancellation flag, plus the small scoped-thread pool the kernels share.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::{Error, Result};

/// How a kernel runs: how many threads it may use, where it reports the
/// fraction done, and the flag that cancels it.
///
/// Progress is reported as a fraction in `[0, 1]`, never decreasing, from
/// whichever worker thread finished a piece of work (hence `Sync`). A kernel
/// checks the cancel flag between pieces of work and returns
/// [`Error::Cancelled`] once it is set.
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use mutant_core::kernels::Execution;
/// let cancel = AtomicBool::new(false);
/// let report = |fraction_done: f32| assert!((0.0..=1.0).contains(&fraction_done));
/// let execution = Execution::new().with_threads(2).with_progress(&report).with_cancel_flag(&cancel);
/// assert_eq!(execution.threads(), 2);
/// ```
#[derive(Clone, Copy)]
pub struct Execution<'a> {
    threads: usize,
    progress: Option<&'a (dyn Fn(f32) + Sync)>,
    /// The share of the whole run this execution's progress covers.
    share: (f32, f32),
    cancel: Option<&'a AtomicBool>,
}

impl std::fmt::Debug for Execution<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Execution")
            .field("threads", &self.threads)
            .field("has_progress", &self.progress.is_some())
            .field("has_cancel_flag", &self.cancel.is_some())
            .finish()
    }
}

impl Default for Execution<'_> {
    fn default() -> Self {
        Execution::new()
    }
}

impl<'a> Execution<'a> {
    /// All available cores, no progress reporting, not cancellable.
    pub fn new() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Execution {
            threads,
            progress: None,
            share: (0.0, 1.0),
            cancel: None,
        }
    }

    /// One thread: the calling one.
    pub fn single_threaded() -> Self {
        Execution {
            threads: 1,
            ..Execution::new()
        }
    }

    /// The same, with `threads` worker threads (0 is taken as 1).
    pub fn with_threads(self, threads: usize) -> Self {
        Execution {
            threads: threads.max(1),
            ..self
        }
    }

    /// The same, reporting the fraction done to `progress`.
    pub fn with_progress(self, progress: &'a (dyn Fn(f32) + Sync)) -> Self {
        Execution {
            progress: Some(progress),
            ..self
        }
    }

    /// The same, stopping with [`Error::Cancelled`] once `cancel` is set.
    pub fn with_cancel_flag(self, cancel: &'a AtomicBool) -> Self {
        Execution {
            cancel: Some(cancel),
            ..self
        }
    }

    /// The number of threads a kernel may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The same execution for one phase of a longer run, covering the
    /// fraction `start..end` of this one's progress: a run of several
    /// kernels gives each its part, and its progress climbs once from 0 to 1
    /// instead of restarting with every kernel.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use mutant_core::kernels::{knn_graph, DatasetView, Execution, KnnOptions, Metric};
    /// let seen = Mutex::new(Vec::new());
    /// let report = |fraction: f32| seen.lock().unwrap().push(fraction);
    /// let execution = Execution::new().with_progress(&report);
    /// let dataset = DatasetView::new(&[0.0f32, 1.0, 5.0], 1)?;
    /// knn_graph(&dataset, Metric::L2, &KnnOptions::new(1), &execution.part(0.5, 1.0))?;
    /// assert!(seen.lock().unwrap().iter().all(|&fraction| fraction >= 0.5));
    /// # Ok::<(), mutant_core::Error>(())
    /// ```
    pub fn part(&self, start: f32, end: f32) -> Execution<'a> {
        let (from, to) = self.share;
        let at = |fraction: f32| from + (to - from) * fraction.clamp(0.0, 1.0);
        Execution {
            share: (at(start), at(end)),
            ..*self
        }
    }

    /// An error if the caller has asked to stop.
    pub(crate) fn check_cancelled(&self) -> Result<()> {
        match self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    /// A tracker for one stage of a kernel that covers `[start, end)` of the
    /// whole run's progress and consists of `total_units` pieces of work.
    pub(crate) fn stage(&self, start: f32, end: f32, total_units: usize) -> Stage<'_> {
        Stage {
            execution: self,
            start,
            end,
            total_units: total_units.max(1),
            done_units: AtomicUsize::new(0),
            last_reported: Mutex::new(f32::NEG_INFINITY),
        }
    }
}

/// Progress of one stage of a kernel; shared by its worker threads.
pub(crate) struct Stage<'a> {
    execution: &'a Execution<'a>,
    start: f32,
    end: f32,
    total_units: usize,
    done_units: AtomicUsize,
    last_reported: Mutex<f32>,
}

impl Stage<'_> {
    /// Records `units` more pieces of work done, reports progress when it moved
    /// by at least a percent (or the stage finished), and checks for
    /// cancellation.
    pub(crate) fn advance(&self, units: usize) -> Result<()> {
        let done = self.done_units.fetch_add(units, Ordering::Relaxed) + units;
        if let Some(progress) = self.execution.progress {
            let within = (done as f32 / self.total_units as f32).min(1.0);
            let (from, to) = self.execution.share;
            let fraction = from + (to - from) * (self.start + (self.end - self.start) * within);
            // The lock keeps reports monotonic although workers finish out of order.
            let mut last = self
                .last_reported
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if fraction >= *last + 0.01 || (within >= 1.0 && fraction > *last) {
                *last = fraction;
                progress(fraction.clamp(0.0, 1.0));
            }
        }
        self.execution.check_cancelled()
    }
}

/// Runs `work` on `n_workers` threads, the caller's among them (no thread
/// is spawned for one worker), and returns each one's result; a worker's
/// panic is resumed on the caller's thread.
pub(crate) fn on_threads<Output: Send>(
    n_workers: usize,
    work: impl Fn() -> Output + Sync,
) -> Vec<Output> {
    if n_workers <= 1 {
        return vec![work()];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..n_workers).map(|_| scope.spawn(&work)).collect();
        let mut results = vec![work()];
        for handle in handles {
            results.push(match handle.join() {
                Ok(result) => result,
                Err(payload) => std::panic::resume_unwind(payload),
            });
        }
        results
    })
}

/// Runs `work(state, item_idx)` for every item in `0..n_items` on up to
/// `threads` scoped threads (the caller's thread is one of them), each with its
/// own `state` from `make_state`, and returns the results in item order.
/// Items are claimed dynamically; the first error stops the claiming and is
/// returned.
pub(crate) fn parallel_map<State, Output, MakeState, Work>(
    threads: usize,
    n_items: usize,
    make_state: MakeState,
    work: Work,
) -> Result<Vec<Output>>
where
    Output: Send,
    MakeState: Fn() -> State + Sync,
    Work: Fn(&mut State, usize) -> Result<Output> + Sync,
{
    let n_workers = threads.max(1).min(n_items.max(1));
    let next_item = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let run_worker = || -> Result<Vec<(usize, Output)>> {
        let mut state = make_state();
        let mut outputs = Vec::new();
        loop {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let item_idx = next_item.fetch_add(1, Ordering::Relaxed);
            if item_idx >= n_items {
                break;
            }
            match work(&mut state, item_idx) {
                Ok(output) => outputs.push((item_idx, output)),
                Err(error) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(error);
                }
            }
        }
        Ok(outputs)
    };
    let per_worker = on_threads(n_workers, run_worker);
    let mut slots: Vec<Option<Output>> = (0..n_items).map(|_| None).collect();
    for worker_result in per_worker {
        for (item_idx, output) in worker_result? {
            slots[item_idx] = Some(output);
        }
    }
    Ok(slots
        .into_iter()
        .map(|slot| slot.expect("every item below n_items was claimed and finished"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_map_keeps_item_order() {
        let squares = parallel_map(3, 50, || (), |_, item_idx| Ok(item_idx * item_idx)).unwrap();
        assert_eq!(
            squares,
            (0..50).map(|value| value * value).collect::<Vec<_>>()
        );
    }

    #[test]
    fn parallel_map_returns_first_error() {
        let result = parallel_map(
            2,
            10,
            || (),
            |_, item_idx| {
                if item_idx == 4 {
                    Err(Error::Cancelled)
                } else {
                    Ok(())
                }
            },
        );
        assert!(matches!(result, Err(Error::Cancelled)));
    }

    #[test]
    fn progress_is_monotonic_and_reaches_the_end() {
        let reports = Mutex::new(Vec::new());
        let report = |fraction: f32| reports.lock().unwrap().push(fraction);
        let execution = Execution::new().with_progress(&report);
        let stage = execution.stage(0.0, 1.0, 200);
        parallel_map(2, 200, || (), |_, _| stage.advance(1)).unwrap();
        let reports = reports.into_inner().unwrap();
        assert!(reports.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(reports.last().copied(), Some(1.0));
    }

    #[test]
    fn cancelled_stage_stops() {
        let cancel = AtomicBool::new(true);
        let execution = Execution::new().with_cancel_flag(&cancel);
        let stage = execution.stage(0.0, 1.0, 10);
        assert!(matches!(stage.advance(1), Err(Error::Cancelled)));
    }
}
