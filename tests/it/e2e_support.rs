//! What the end-to-end modules share: running a test body on a runtime whose
//! threads have room for the large, unoptimised futures of long tests, and
//! reading a server's metrics.

use std::future::Future;

use mutant_tests::ServerProcess;

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

/// The server's `/metrics` page (status line and headers included).
pub(crate) async fn metrics(server: &ServerProcess) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// The value of the metric line that starts with `name_and_labels` (its
/// whole name and labels, as printed), or `None` when there is none.
pub(crate) fn metric_value(page: &str, name_and_labels: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        let value = line.strip_prefix(name_and_labels)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
