//! Waiting on the SDK from Python: a future runs on the client's Tokio
//! runtime while the GIL is released, so other Python threads go on, and
//! the wait looks for Ctrl-C regularly, so a long upsert or query can be
//! interrupted like any Python call.

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

use crate::errors::to_py_err;

/// How often a wait takes the GIL back to look for a pending signal.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Runs `future` on `runtime` with the GIL released and returns its output,
/// its SDK error as the matching `mutant.errors` exception, or the
/// `KeyboardInterrupt` (or other signal handler's exception) that stopped
/// the wait; the future is then dropped, which abandons its request.
pub(crate) fn wait_for<T, F>(py: Python<'_>, runtime: &Runtime, future: F) -> PyResult<T>
where
    T: Send,
    F: Future<Output = mutant_client::Result<T>> + Send,
{
    let outcome: PyResult<mutant_client::Result<T>> = py.detach(|| {
        runtime.block_on(async {
            tokio::pin!(future);
            loop {
                tokio::select! {
                    output = &mut future => return Ok(output),
                    () = tokio::time::sleep(SIGNAL_CHECK_INTERVAL) => {
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    });
    outcome?.map_err(to_py_err)
}
