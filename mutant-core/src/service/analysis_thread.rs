//! The thread an analysis computes on: its own, not the async runtime's and
//! not the blocking pool that loads and kNN searches share, and at a lower
//! scheduling priority (10 nice steps below) than the threads that answer requests, so
//! that `/healthz`, writes and ClickHouse itself keep the CPU they need
//! while analyses run. The kernels' worker threads are spawned from it and
//! inherit its priority. A thread's priority cannot be raised back without
//! privileges, which is why the thread is not borrowed from a pool.

use crate::{Error, Result};

/// How many nice steps analysis threads run below the server's: about a
/// tenth of a request thread's share of a busy CPU, and all of an idle one.
const ANALYSIS_NICE_STEPS: i32 = 10;
/// The lowest priority there is.
const LOWEST_NICE: i32 = 19;

/// Runs `work` on a new low-priority thread and waits for it without
/// holding an async thread.
pub(super) async fn run_analysis<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("mutant-analysis".into())
        .spawn(move || {
            lower_this_threads_priority();
            // The receiver is gone only if the job was dropped: nothing to tell.
            let _ = sender.send(work());
        })
        .map_err(|error| Error::Internal {
            message: format!("cannot start an analysis thread: {error}"),
        })?;
    receiver.await.map_err(|_| Error::Internal {
        message: "an analysis thread ended without an answer (it panicked)".into(),
    })?
}

/// Lowers the calling thread's priority by [`ANALYSIS_NICE_STEPS`] (to
/// at most [`LOWEST_NICE`]); a failure (a sandbox that forbids it) leaves
/// the priority as it was.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lower_this_threads_priority() {
    // SAFETY: getpriority and setpriority take plain integers and touch no
    // memory of ours; on Linux, PRIO_PROCESS with who = 0 names the calling
    // thread (nice values are per thread), so only this thread is affected.
    // getpriority's -1 is also a valid nice value; at worst the thread ends
    // 9 steps lower instead of 10.
    let status = unsafe {
        let current = libc::getpriority(libc::PRIO_PROCESS, 0);
        libc::setpriority(
            libc::PRIO_PROCESS,
            0,
            (current + ANALYSIS_NICE_STEPS).min(LOWEST_NICE),
        )
    };
    if status != 0 {
        tracing::debug!("could not lower the analysis thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread, from procfs.
    #[cfg(target_os = "linux")]
    fn own_nice() -> i32 {
        let status = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19 (nice), counted after the parenthesised command name.
        let after_name = &status[status.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn analyses_run_at_a_lower_priority_on_their_own_thread() {
        let caller_nice = own_nice();
        let (analysis_nice, name) =
            run_analysis(|| Ok((own_nice(), std::thread::current().name().map(str::to_owned))))
                .await
                .unwrap();
        assert_eq!(name.as_deref(), Some("mutant-analysis"));
        assert_eq!(
            analysis_nice,
            (caller_nice + ANALYSIS_NICE_STEPS).min(LOWEST_NICE)
        );
        assert_eq!(
            own_nice(),
            caller_nice,
            "the caller's priority is untouched"
        );
    }

    #[tokio::test]
    async fn an_error_of_the_work_comes_back() {
        let outcome: Result<()> = run_analysis(|| Err(Error::Cancelled)).await;
        assert!(matches!(outcome, Err(Error::Cancelled)));
    }
}
