//! Fault injection (issue 7), on loopback only and bounded in time: a server
//! SIGKILLed mid-stream and restarted, a ClickHouse stopped mid-stream and started again,
//! and a ClickHouse that answers slowly for one dataset. In every case what
//! the SDK acknowledges is stored exactly once, and the server answers with a
//! clear error instead of hanging.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mutant_client::wire::{GetRecordsRequest, Include, KnnRequest};
use mutant_client::{BatchWriterConfig, Client, Error, NewDataset, Record, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::e2e_support::run;
use mutant_tests::{ServerProcess, clickhouse_url};

pub(crate) const DIMENSION: usize = 8;

/// The vector of record `index`: exact in f32 for every index used here.
pub(crate) fn vector(index: usize) -> Vec<f32> {
    (0..DIMENSION)
        .map(|position| ((index * (position + 1)) % 10_007) as f32 - position as f32 * 0.5)
        .collect()
}

pub(crate) fn record(index: usize) -> Record {
    Record::new(format!("r{index}"), vector(index))
}

/// Retries that outlast a server restart or a ClickHouse restart (over a
/// minute of waiting in all).
pub(crate) fn patient() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(80)
        .with_backoff(Duration::from_millis(50), Duration::from_secs(1))
}

/// Checks that every `stride`-th record of `0..n_records` reads back with its
/// exact vector.
pub(crate) async fn assert_sample_stored(
    client: &Client,
    dataset: &str,
    n_records: usize,
    stride: usize,
) {
    let ids: Vec<String> = (0..n_records)
        .step_by(stride)
        .map(|index| format!("r{index}"))
        .collect();
    let records = client
        .get_records(
            dataset,
            &GetRecordsRequest {
                ids: Some(ids.clone()),
                limit: Some(ids.len()),
                include: Some(vec![Include::Vector]),
                ..GetRecordsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(records.len(), ids.len(), "every sampled id is stored once");
    for stored in records {
        let index: usize = stored.id[1..].parse().unwrap();
        assert_eq!(
            stored.vector.as_deref(),
            Some(&vector(index)[..]),
            "{}",
            stored.id
        );
    }
}

/// One HTTP/1.1 exchange on a fresh connection: the status and the body.
pub(crate) async fn raw_request(
    base_url: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let address = base_url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    // The server must answer, even with ClickHouse stopped or slow: a
    // request it never answers fails the test instead of hanging it.
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_string(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within 60 s, the server hangs"))
        .unwrap();
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Times one request on a fresh connection, which must answer 200.
async fn timed_ok(base_url: &str, method: &str, path: &str, body: &str) -> Duration {
    let started = Instant::now();
    let (status, answer) = raw_request(base_url, method, path, body).await;
    assert_eq!(status, 200, "{method} {path}: {answer}");
    started.elapsed()
}

/// What a [`Proxy`] does to the bytes it forwards.
#[derive(Default)]
struct ProxyState {
    /// Where new connections go, as `host:port`.
    backend: String,
    /// Requests whose bytes contain this text are held back this long.
    slow_down: Option<(String, Duration)>,
}

/// A TCP forwarder on a loopback port, written for these tests: it can move
/// new connections to another backend, and hold back the requests that
/// mention a given text (a dataset's UUID in ClickHouse's SQL).
struct Proxy {
    address: String,
    state: Arc<Mutex<ProxyState>>,
    accepter: JoinHandle<()>,
}

impl Proxy {
    async fn start(backend: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(ProxyState {
            backend: backend.to_owned(),
            slow_down: None,
        }));
        let shared = Arc::clone(&state);
        let accepter = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(forward(inbound, Arc::clone(&shared)));
            }
        });
        Proxy {
            address,
            state,
            accepter,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Sends new connections to `backend`; open ones stay where they are.
    fn switch_to(&self, backend: &str) {
        self.state.lock().unwrap().backend = backend.to_owned();
    }

    /// Holds back by `delay` every request chunk that contains `marker`, or
    /// none when `None`.
    fn slow_down(&self, rule: Option<(String, Duration)>) {
        self.state.lock().unwrap().slow_down = rule;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepter.abort();
    }
}

/// Copies one connection both ways until either side closes or fails.
async fn forward(inbound: TcpStream, state: Arc<Mutex<ProxyState>>) {
    let backend = state.lock().unwrap().backend.clone();
    let Ok(outbound) = TcpStream::connect(&backend).await else {
        // The client sees its connection closed, as with a dead server.
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut inbound_read, mut inbound_write) = inbound.into_split();
    let (mut outbound_read, mut outbound_write) = outbound.into_split();
    let requests = async {
        let mut buffer = vec![0u8; 64 << 10];
        // The end of the previous chunk, so that a marker split across two
        // chunks is still seen.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n_bytes = match inbound_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n_bytes) => n_bytes,
            };
            let chunk = &buffer[..n_bytes];
            let rule = state.lock().unwrap().slow_down.clone();
            if let Some((marker, delay)) = rule {
                let mut window = std::mem::take(&mut tail);
                window.extend_from_slice(chunk);
                if window
                    .windows(marker.len())
                    .any(|part| part == marker.as_bytes())
                {
                    tokio::time::sleep(delay).await;
                }
                tail = window[window.len().saturating_sub(marker.len())..].to_vec();
            }
            if outbound_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let answers = async {
        let _ = tokio::io::copy(&mut outbound_read, &mut inbound_write).await;
    };
    tokio::select! {
        () = requests => {}
        () = answers => {}
    }
}

#[test]
fn a_killed_server_loses_nothing_acknowledged() {
    run(|| async {
        let doomed = ServerProcess::start("faults_server_kill").await;
        a_killed_server_loses_nothing_acknowledged_on(doomed).await;
    });
}

/// Streams records through `doomed`, SIGKILLs it mid-stream, restarts it
/// beside itself, and checks that every acknowledged record is stored once.
pub(crate) async fn a_killed_server_loses_nothing_acknowledged_on(doomed: ServerProcess) {
    const N_RECORDS: usize = 200_000;
    const KILL_AFTER: usize = 60_000;
    let mut restarted = None;
    // The client talks to one stable address, as behind a load balancer.
    let proxy = Proxy::start(doomed.url.trim_start_matches("http://")).await;
    let client = Client::new(&proxy.url()).unwrap().with_retry(patient());
    client
        .create_dataset(&NewDataset::new("stream", DIMENSION))
        .await
        .unwrap();

    let started = Instant::now();
    let mut writer = client
        .batch_writer("stream", BatchWriterConfig::default())
        .unwrap();
    let mut n_unacknowledged_at_kill = 0;
    for index in 0..N_RECORDS {
        if index == KILL_AFTER {
            n_unacknowledged_at_kill = writer.n_unacknowledged();
            let killed = std::process::Command::new("kill")
                .args(["-9", &doomed.pid().to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
            // Restarted on the same database; until it answers, the
            // writer's batches in flight meet a dead address and retry.
            let replacement = ServerProcess::start_beside(&doomed).await;
            proxy.switch_to(replacement.url.trim_start_matches("http://"));
            restarted = Some(replacement);
        }
        writer.write(record(index)).await.unwrap();
    }
    let summary = writer.finish().await.unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "server kill: {N_RECORDS} records in {:.1} s, {n_unacknowledged_at_kill} in flight at the kill, {} batches",
        elapsed.as_secs_f64(),
        summary.n_batches
    );
    assert!(
        n_unacknowledged_at_kill > 0,
        "the kill must land with records in flight"
    );
    assert_eq!(summary.n_records_written, N_RECORDS as u64);
    // Every acknowledged id exactly once: count is the number of distinct
    // live ids, through the restarted server.
    let restarted = restarted.expect("the server was restarted");
    let direct = Client::new(&restarted.url).unwrap();
    assert_eq!(direct.count("stream", None).await.unwrap(), N_RECORDS);
    assert_sample_stored(&client, "stream", N_RECORDS, 97).await;
    // The killed server's in-flight writes are among them.
    let around_kill = (KILL_AFTER - 5_000..KILL_AFTER + 1_000)
        .map(|index| format!("r{index}"))
        .collect::<Vec<_>>();
    let stored = client
        .get_records(
            "stream",
            &GetRecordsRequest {
                ids: Some(around_kill.clone()),
                limit: Some(around_kill.len()),
                ..GetRecordsRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), around_kill.len());
}

/// A ClickHouse of this test's own, on its own ports and data directory
/// (`scripts/clickhouse.sh` with `MUTANT_CLICKHOUSE_HTTP_PORT`), so that
/// stopping it disturbs no other test. Stopped when dropped.
struct PrivateClickHouse {
    http_port: u16,
    url: String,
}

impl PrivateClickHouse {
    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn script(http_port: u16, action: &str) -> String {
        let output = std::process::Command::new("bash")
            .arg(Self::root().join("scripts/clickhouse.sh"))
            .arg(action)
            .env("MUTANT_CLICKHOUSE_HTTP_PORT", http_port.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "scripts/clickhouse.sh {action} on port {http_port} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    async fn start(http_port: u16) -> PrivateClickHouse {
        let url = tokio::task::spawn_blocking(move || Self::script(http_port, "start"))
            .await
            .unwrap();
        assert_eq!(url, format!("http://127.0.0.1:{http_port}"));
        PrivateClickHouse { http_port, url }
    }

    /// Starts it again after [`PrivateClickHouse::stop`], on the same data.
    async fn restart(&self) {
        let http_port = self.http_port;
        tokio::task::spawn_blocking(move || Self::script(http_port, "start"))
            .await
            .unwrap();
    }

    /// Stops it with the script (SIGTERM), and, as a supervisor would, kills
    /// it after `grace` if it is still running: under a steady stream
    /// ClickHouse 18.16 keeps serving its open keep-alive connections for
    /// some 15 s after SIGTERM. Returns once its process is gone (its ports
    /// free), and whether it had to be killed.
    async fn stop(&self, grace: Duration) -> bool {
        let pid_file = Self::root().join(format!(".build/clickhouse-{}/pid", self.http_port));
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .to_owned();
        let http_port = self.http_port;
        tokio::task::spawn_blocking(move || Self::script(http_port, "stop"))
            .await
            .unwrap();
        wait_for_exit(&pid, grace).await
    }
}

/// Waits until process `pid`, already sent SIGTERM, is gone, killing it
/// after `grace`, as a supervisor would; returns whether it was killed.
pub(crate) async fn wait_for_exit(pid: &str, grace: Duration) -> bool {
    let process = PathBuf::from(format!("/proc/{pid}"));
    let stop_began = Instant::now();
    let mut killed = false;
    for _ in 0..600 {
        if !process.exists() {
            return killed;
        }
        if !killed && stop_began.elapsed() >= grace {
            let status = std::process::Command::new("kill")
                .args(["-9", pid])
                .status()
                .unwrap();
            killed = status.success();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("ClickHouse (pid {pid}) did not exit within 12 s of being stopped");
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Self::root().join("scripts/clickhouse.sh"))
            .arg("stop")
            .env("MUTANT_CLICKHOUSE_HTTP_PORT", self.http_port.to_string())
            .output();
    }
}

/// A ClickHouse a test owns and may stop: one node, or a whole cluster.
pub(crate) trait StoppableClickHouse {
    /// Stops it (SIGTERM, SIGKILL after `grace`); returns once it is gone,
    /// and whether it had to be killed.
    async fn stop(&self, grace: Duration) -> bool;
    /// Starts it again, on the same data.
    async fn restart(&self);
}

impl StoppableClickHouse for PrivateClickHouse {
    async fn stop(&self, grace: Duration) -> bool {
        PrivateClickHouse::stop(self, grace).await
    }

    async fn restart(&self) {
        PrivateClickHouse::restart(self).await;
    }
}

#[test]
fn clickhouse_stopping_mid_stream_gives_503_then_recovers() {
    run(|| async {
        let clickhouse = PrivateClickHouse::start(18_200).await;
        let server = ServerProcess::start_on("faults_clickhouse_stop", &clickhouse.url, &[]).await;
        clickhouse_stopping_mid_stream_gives_503_then_recovers_on(&clickhouse, &server).await;
    });
}

/// Streams records through `server`, stops `clickhouse` mid-stream, checks
/// the 503s, starts it again, and checks that the stream finishes with every
/// acknowledged record stored once.
pub(crate) async fn clickhouse_stopping_mid_stream_gives_503_then_recovers_on(
    clickhouse: &impl StoppableClickHouse,
    server: &ServerProcess,
) {
    /// Records written after ClickHouse is back, before the stream ends.
    const N_AFTER_RETURN: u64 = 5_000;
    let client = Client::new(&server.url).unwrap().with_retry(patient());
    client
        .create_dataset(&NewDataset::new("stream", DIMENSION))
        .await
        .unwrap();

    // A steady stream of about 10,000 records a second, until told to
    // end: it surely spans the outage, however long ClickHouse takes to
    // shut down.
    let n_written = Arc::new(AtomicU64::new(0));
    let end_stream = Arc::new(AtomicBool::new(false));
    let mut writer = client
        .batch_writer("stream", BatchWriterConfig::default())
        .unwrap();
    let progress = Arc::clone(&n_written);
    let ending = Arc::clone(&end_stream);
    let stream = tokio::spawn(async move {
        let mut index = 0;
        while !ending.load(Ordering::Acquire) && index < 1_000_000 {
            writer.write(record(index)).await.unwrap();
            index += 1;
            progress.store(index as u64, Ordering::Release);
            if index.is_multiple_of(500) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        (index, writer.finish().await)
    });
    let wait_for_writes = |target: u64| {
        let n_written = Arc::clone(&n_written);
        async move {
            for _ in 0..6_000 {
                if n_written.load(Ordering::Acquire) >= target {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the stream did not reach {target} writes within 60 s");
        }
    };
    wait_for_writes(8_000).await;

    let stopped_at = Instant::now();
    let killed = clickhouse.stop(Duration::from_secs(1)).await;
    let gone_after = stopped_at.elapsed();
    let n_written_at_stop = n_written.load(Ordering::Acquire);
    // A direct request, not retried: 503 `store_unavailable`, at once.
    let (status, body) = raw_request(&server.url, "POST", "/v1/datasets/stream/count", "{}").await;
    let first_503_after = stopped_at.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"store_unavailable\"") && body.contains("unreachable"),
        "{body}"
    );
    let impatient = Client::new(&server.url)
        .unwrap()
        .with_retry(RetryPolicy::none());
    assert!(matches!(
        impatient.count("stream", None).await,
        Err(Error::Unavailable { ref code, .. }) if code == "store_unavailable"
    ));

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !stream.is_finished(),
        "the stream runs on through the outage"
    );
    let n_written_while_down = n_written.load(Ordering::Acquire) - n_written_at_stop;
    let restarting_at = Instant::now();
    clickhouse.restart().await;
    let restart_took = restarting_at.elapsed();
    let mut first_answer_after = None;
    for _ in 0..300 {
        if impatient.count("stream", None).await.is_ok() {
            first_answer_after = Some(restarting_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_answer_after =
        first_answer_after.expect("the server answers within 6 s of ClickHouse's return");
    wait_for_writes(n_written.load(Ordering::Acquire) + N_AFTER_RETURN).await;
    end_stream.store(true, Ordering::Release);
    let (n_records, finished) = stream.await.unwrap();
    let summary = finished.unwrap();
    let finished_after = restarting_at.elapsed();
    eprintln!(
        "clickhouse stop: gone {:.2} s after the stop began (SIGTERM{}), first 503 {:.2} s after it; \
         {n_written_at_stop} writes before the stop, {n_written_while_down} accepted while down (then backpressure); \
         restart took {:.2} s, server answering {:.2} s and {n_records} records stored {:.2} s after the restart began",
        gone_after.as_secs_f64(),
        if killed { ", SIGKILL after 1 s" } else { "" },
        first_503_after.as_secs_f64(),
        restart_took.as_secs_f64(),
        first_answer_after.as_secs_f64(),
        finished_after.as_secs_f64(),
    );
    assert_eq!(summary.n_records_written, n_records as u64);
    assert_eq!(client.count("stream", None).await.unwrap(), n_records);
    assert_sample_stored(&client, "stream", n_records, 41).await;
}

#[test]
fn a_slow_clickhouse_times_out_clearly_and_others_stay_responsive() {
    run(|| async {
        // Under ClickHouse's 3 s keep-alive timeout, which would otherwise
        // close the held connection first.
        const TIMEOUT_MS: u64 = 2_500;
        const N_RECORDS: usize = 2_000;
        let proxy = Proxy::start(
            clickhouse_url()
                .trim_start_matches("http://")
                .trim_end_matches('/'),
        )
        .await;
        let timeout = TIMEOUT_MS.to_string();
        let server = ServerProcess::start_with(
            "faults_slow_clickhouse",
            &[
                ("MUTANT_CLICKHOUSE_URL", &proxy.url()),
                ("MUTANT_CLICKHOUSE_TIMEOUT_MS", &timeout),
            ],
        )
        .await;
        let client = Client::new(&server.url)
            .unwrap()
            .with_retry(RetryPolicy::none());
        let records: Vec<Record> = (0..N_RECORDS).map(record).collect();
        let mut slowed_id = String::new();
        for name in ["slowed", "healthy"] {
            let dataset = client
                .create_dataset(&NewDataset::new(name, DIMENSION))
                .await
                .unwrap();
            client.upsert(name, &records).await.unwrap();
            if name == "slowed" {
                slowed_id = dataset.id.to_string();
            }
        }
        let query = KnnRequest {
            queries: vec![vector(7)],
            k: 3,
            filter: None,
            include: None,
        };
        // Cached before the slowdown: kNN then only asks ClickHouse for changes.
        assert_eq!(client.knn("healthy", &query).await.unwrap()[0][0].id, "r7");

        // Every ClickHouse query that names the slowed dataset waits 8 s.
        proxy.slow_down(Some((slowed_id.clone(), Duration::from_secs(8))));
        let slowed_url = server.url.clone();
        let slowed = tokio::spawn(async move {
            let started = Instant::now();
            let answer = raw_request(&slowed_url, "POST", "/v1/datasets/slowed/count", "{}").await;
            (answer, started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(200)).await;

        // Meanwhile the server answers everything else promptly.
        let mut slowest = Duration::ZERO;
        let mut n_probes = 0;
        while !slowed.is_finished() && n_probes < 40 {
            for (method, path, body) in [
                ("GET", "/healthz", ""),
                ("GET", "/metrics", ""),
                ("POST", "/v1/datasets/healthy/count", "{}"),
            ] {
                slowest = slowest.max(timed_ok(&server.url, method, path, body).await);
            }
            let started = Instant::now();
            assert_eq!(client.knn("healthy", &query).await.unwrap()[0][0].id, "r7");
            slowest = slowest.max(started.elapsed());
            n_probes += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let ((status, body), took) = slowed.await.unwrap();
        eprintln!(
            "slow clickhouse: the slowed request failed after {:.2} s (timeout {TIMEOUT_MS} ms); \
             {n_probes} rounds of /healthz, /metrics, count and kNN on another dataset meanwhile, slowest {} ms",
            took.as_secs_f64(),
            slowest.as_millis()
        );
        assert!(
            n_probes >= 3,
            "the probes ran while the slowed request waited"
        );
        assert!(
            slowest < Duration::from_secs(2),
            "other requests stayed fast: {slowest:?}"
        );
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains("\"store_unavailable\"")
                && body.contains(&format!("no answer within {TIMEOUT_MS} ms")),
            "{body}"
        );
        assert!(
            took >= Duration::from_millis(TIMEOUT_MS - 100) && took < Duration::from_millis(6_000),
            "the timeout fired within its bound, long before ClickHouse answered: {took:?}"
        );
        // A kNN that has to load the slowed dataset times out the same way.
        let started = Instant::now();
        assert!(matches!(
            client.knn("slowed", &query).await,
            Err(Error::Unavailable { ref code, .. }) if code == "store_unavailable"
        ));
        assert!(started.elapsed() < Duration::from_millis(6_000));

        // Once ClickHouse is fast again, so is the slowed dataset.
        proxy.slow_down(None);
        assert_eq!(client.count("slowed", None).await.unwrap(), N_RECORDS);
        assert_eq!(client.knn("slowed", &query).await.unwrap()[0][0].id, "r7");
    });
}

/// A write whose INSERT runs far longer than the cache's two-second refresh
/// overlap is not missed by a cached copy in constant use (refreshed every
/// 100 ms while other writes stream in): the writing server publishes the
/// INSERT while it runs, and the reader's refreshes read from before it
/// until it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_insert_is_never_missed_by_a_cached_copy_in_constant_use() {
    use mutant_core::cache::DatasetCache;
    use mutant_core::ingest::ValidBatch;
    use mutant_core::model::Record as CoreRecord;
    use mutant_core::store::{ClickHouseConfig, ClickHouseStore, Records, Store};

    let reading_server: Arc<dyn Store> =
        Arc::new(mutant_tests::clickhouse_store("slow_insert").await);
    let dataset = reading_server
        .create_dataset(mutant_core::model::NewDataset::new("slow", 2))
        .await
        .unwrap();
    let batch = |id: String| ValidBatch::new(&dataset, vec![CoreRecord::new(id, vec![1.0, 2.0])]);
    reading_server
        .upsert(batch("first".into()).unwrap())
        .await
        .unwrap();
    let cache = DatasetCache::new(Arc::clone(&reading_server), 1 << 26);
    cache.get(&dataset).await.unwrap();

    let proxy = Proxy::start(clickhouse_url().trim_start_matches("http://")).await;
    let writing_server = Arc::new(
        ClickHouseStore::connect(
            ClickHouseConfig::new(proxy.url()).with_database("mutant_test_slow_insert"),
        )
        .await
        .unwrap(),
    );
    // The slow INSERT must open a connection of its own: ClickHouse gives a
    // kept-alive connection only its 3 s keep-alive timeout to send the next
    // request whole, and closes idle ones after it. Past it, the
    // connect-time connection is closed and forgotten.
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.slow_down(Some(("slowpoke".into(), Duration::from_secs(5))));
    let slow_started = Instant::now();
    let slow_write = {
        let (writer, slow) = (
            Arc::clone(&writing_server),
            batch("slowpoke".into()).unwrap(),
        );
        tokio::spawn(async move { writer.upsert(slow).await })
    };
    let mut n_streamed = 0;
    while !slow_write.is_finished() {
        n_streamed += 1;
        reading_server
            .upsert(batch(format!("streamed-{n_streamed}")).unwrap())
            .await
            .unwrap();
        cache.get(&dataset).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slow_write.await.unwrap().unwrap();
    // What matters is that the INSERT outlasted the overlap by far while the
    // copy kept refreshing; how many refreshes fit depends on the machine.
    let slow_took = slow_started.elapsed();
    assert!(
        slow_took >= Duration::from_secs(4),
        "the INSERT was held for only {slow_took:?}"
    );
    assert!(
        n_streamed >= 5,
        "the INSERT ran for only {n_streamed} refreshes"
    );
    let fresh = cache.get(&dataset).await.unwrap();
    assert!(
        fresh.ids.iter().any(|id| id == "slowpoke"),
        "the slow write is in the cached copy once acknowledged"
    );
    assert_eq!(fresh.n_records(), n_streamed + 2);
}
