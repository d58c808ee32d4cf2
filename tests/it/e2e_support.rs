//! What the end-to-end modules share: running a test body on a runtime whose
//! threads have room for the large, unoptimised futures of long tests.

use std::future::Future;

/// The stack of the thread driving a test body, and of the runtime's workers.
const STACK_BYTES: usize = 64 << 20;

/// Runs `body` to completion on a two-worker Tokio runtime, driven from a
/// thread with a large stack (a debug build's futures with many `json!`
/// temporaries overflow the test harness's 2 MiB), and re-raises its panic.
pub(crate) fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let outcome = std::thread::Builder::new()
        .name("e2e".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(STACK_BYTES)
                .enable_all()
                .build()
                .expect("a Tokio runtime")
                .block_on(body());
        })
        .expect("a test thread")
        .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
