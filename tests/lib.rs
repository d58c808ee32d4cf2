//! Shared support for Mutant's integration tests: reaching the ClickHouse that
//! `scripts/clickhouse.sh` starts (one node, and the cluster of
//! `start-cluster`), and one database per test; and the shared pieces of the
//! benchmark programs (`bench`).

pub mod bench;
pub mod quality;

use std::sync::OnceLock;
use std::time::Duration;

use mutant_core::store::{ClickHouseConfig, ClickHouseStore};

/// The URL [`start_clickhouse`] found, when it had to start ClickHouse.
static STARTED_CLICKHOUSE: OnceLock<String> = OnceLock::new();

/// The ClickHouse URL tests use: `MUTANT_CLICKHOUSE_URL`, by convention, or
/// the one [`start_clickhouse`] started.
pub fn clickhouse_url() -> String {
    std::env::var("MUTANT_CLICKHOUSE_URL")
        .ok()
        .or_else(|| STARTED_CLICKHOUSE.get().cloned())
        .unwrap_or_else(|| "http://127.0.0.1:8123".to_owned())
}

/// Makes sure a ClickHouse answers: with `MUTANT_CLICKHOUSE_URL` set, that
/// one; otherwise `scripts/clickhouse.sh start` (which reuses an instance it
/// started before), whose URL [`clickhouse_url`] returns from then on.
/// Panics, with the script's exit status, when it cannot start one.
pub fn start_clickhouse() -> String {
    if std::env::var_os("MUTANT_CLICKHOUSE_URL").is_some() {
        return clickhouse_url();
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/clickhouse.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .arg("start")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
    let url = String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    assert!(
        output.status.success() && url.starts_with("http"),
        "{} start failed ({}); see its messages above",
        script.display(),
        output.status
    );
    STARTED_CLICKHOUSE.get_or_init(|| url).clone()
}

/// A store on a fresh database named after the test. Panics, with how to fix
/// it, when no ClickHouse answers: ClickHouse tests fail, they never skip.
pub async fn clickhouse_store(test_name: &str) -> ClickHouseStore {
    clickhouse_store_with(test_name, |config| config).await
}

/// Like [`clickhouse_store`], with the configuration adjusted first.
pub async fn clickhouse_store_with(
    test_name: &str,
    adjust: impl FnOnce(ClickHouseConfig) -> ClickHouseConfig,
) -> ClickHouseStore {
    let url = clickhouse_url();
    let database = format!("mutant_test_{test_name}");
    drop_database(&url, &database).await;
    let config = adjust(ClickHouseConfig::new(&url).with_database(&database));
    match ClickHouseStore::connect(config).await {
        Ok(store) => store,
        Err(error) => panic!(
            "cannot use ClickHouse at {url} ({error}); start one with `scripts/clickhouse.sh start` \
             and export MUTANT_CLICKHOUSE_URL to the URL it prints"
        ),
    }
}

/// The name `scripts/clickhouse.sh start-cluster` gives its cluster.
pub const CLUSTER: &str = "mutant";

/// A node of the test cluster: `MUTANT_CLICKHOUSE_CLUSTER_URL`, which
/// `scripts/test.sh` exports after `scripts/clickhouse.sh start-cluster`.
/// Panics when it is not set: the cluster tests fail, they never skip.
pub fn clickhouse_cluster_url() -> String {
    std::env::var("MUTANT_CLICKHOUSE_CLUSTER_URL").unwrap_or_else(|_| {
        panic!(
            "MUTANT_CLICKHOUSE_CLUSTER_URL is not set: start the test cluster with \
             `scripts/clickhouse.sh start-cluster` and export the URL it prints \
             (scripts/test.sh does both)"
        )
    })
}

/// A store on a fresh database named after the test, spread over the test
/// cluster ([`CLUSTER`] at [`clickhouse_cluster_url`]).
pub async fn clickhouse_cluster_store(test_name: &str) -> ClickHouseStore {
    let url = clickhouse_cluster_url();
    let database = format!("mutant_test_{test_name}");
    drop_database_on_cluster(&url, &database).await;
    let config = ClickHouseConfig::new(&url)
        .with_database(&database)
        .with_cluster(CLUSTER);
    match ClickHouseStore::connect(config).await {
        Ok(store) => store,
        Err(error) => panic!(
            "cannot use the ClickHouse cluster {CLUSTER} at {url} ({error}); start it with \
             `scripts/clickhouse.sh start-cluster` and export MUTANT_CLICKHOUSE_CLUSTER_URL \
             to the URL it prints"
        ),
    }
}

/// Drops `database` on every node of the cluster [`CLUSTER`] that `url`
/// belongs to, with its replicated tables' entries in ZooKeeper (a table
/// created again under the same path would otherwise find them).
pub async fn drop_database_on_cluster(url: &str, database: &str) {
    let client = clickhouse::Client::default().with_url(url);
    let statement = format!("DROP DATABASE IF EXISTS `{database}` ON CLUSTER {CLUSTER}");
    // An unreachable cluster is reported by `connect` right after.
    let _ = tokio::time::timeout(Duration::from_secs(60), client.query(&statement).execute()).await;
}

/// Drops `database` and everything in it, if it exists.
pub async fn drop_database(url: &str, database: &str) {
    let client = clickhouse::Client::default().with_url(url);
    let statement = format!("DROP DATABASE IF EXISTS `{database}`");
    // An unreachable server is reported by `connect` right after.
    let _ = tokio::time::timeout(Duration::from_secs(10), client.query(&statement).execute()).await;
}

/// Waits until ClickHouse has run no background merge for a second (at
/// most 60 s), so that a measurement does not pay for the parts an earlier
/// one left behind: right after an INSERT, a merge may not have started yet.
pub async fn wait_for_quiet_clickhouse() {
    let client = clickhouse::Client::default()
        .with_url(clickhouse_url())
        .with_validation(false);
    let mut quiet_polls = 0;
    for _ in 0..600 {
        let merges: u64 = client
            .query("SELECT count() FROM system.merges")
            .fetch_one()
            .await
            .expect("system.merges is readable");
        quiet_polls = if merges == 0 { quiet_polls + 1 } else { 0 };
        if quiet_polls == 10 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until ClickHouse has applied every mutation of `database`.
pub async fn wait_for_mutations(store: &ClickHouseStore, database: &str) {
    for _ in 0..600 {
        let pending: u64 = store
            .client()
            .query("SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0")
            .bind(database)
            .fetch_one()
            .await
            .expect("system.mutations is readable");
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("mutations in {database} did not finish within 60 s");
}

/// A real `mutant-server` process on a free loopback port, with its own
/// database; killed when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    /// The variables it was started with beyond the defaults, which a server
    /// started beside it gets too (the same ClickHouse, the same cluster).
    environment: Vec<(String, String)>,
    /// The base URL clients use, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// The ClickHouse database it owns.
    pub database: String,
    /// Where its log goes.
    log_path: std::path::PathBuf,
}

impl ServerProcess {
    /// Starts a server for `test_name` and waits until it answers.
    pub async fn start(test_name: &str) -> ServerProcess {
        ServerProcess::start_with(test_name, &[]).await
    }

    /// Like [`ServerProcess::start`], with extra environment variables.
    pub async fn start_with(test_name: &str, extra_env: &[(&str, &str)]) -> ServerProcess {
        let database = format!("mutant_e2e_{test_name}");
        drop_database(&clickhouse_url(), &database).await;
        ServerProcess::spawn(database, extra_env).await
    }

    /// Like [`ServerProcess::start_with`], listening on every interface
    /// (`0.0.0.0`) instead of loopback; clients still use loopback.
    pub async fn start_on_every_interface(
        test_name: &str,
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        let database = format!("mutant_e2e_{test_name}");
        drop_database(&clickhouse_url(), &database).await;
        ServerProcess::spawn_program(&server_binary(), "0.0.0.0", database, extra_env).await
    }

    /// What the server has logged so far (at `MUTANT_TEST_SERVER_LOG`'s
    /// level, `warn` by default).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Another server on the same ClickHouse database as `other`, as when
    /// several stateless servers run behind one address.
    pub async fn start_beside(other: &ServerProcess) -> ServerProcess {
        ServerProcess::start_beside_with(other, &[]).await
    }

    /// Like [`ServerProcess::start_beside`], with extra environment variables.
    pub async fn start_beside_with(
        other: &ServerProcess,
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut environment: Vec<(&str, &str)> = other
            .environment
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        environment.extend_from_slice(extra_env);
        ServerProcess::spawn(other.database.clone(), &environment).await
    }

    /// Like [`ServerProcess::start_with`], on the test cluster
    /// ([`clickhouse_cluster_url`], `MUTANT_CLICKHOUSE_CLUSTER` [`CLUSTER`]);
    /// its database there is dropped on every node first.
    pub async fn start_on_cluster(test_name: &str, extra_env: &[(&str, &str)]) -> ServerProcess {
        let url = clickhouse_cluster_url();
        ServerProcess::start_on_cluster_at(test_name, &url, extra_env).await
    }

    /// Like [`ServerProcess::start_on_cluster`], on the cluster whose node
    /// `clickhouse_url` is (a test's own cluster).
    pub async fn start_on_cluster_at(
        test_name: &str,
        clickhouse_url: &str,
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        let database = format!("mutant_e2e_{test_name}");
        drop_database_on_cluster(clickhouse_url, &database).await;
        let mut env = vec![
            ("MUTANT_CLICKHOUSE_URL", clickhouse_url),
            ("MUTANT_CLICKHOUSE_CLUSTER", CLUSTER),
        ];
        env.extend_from_slice(extra_env);
        ServerProcess::spawn(database, &env).await
    }

    /// The server program at `binary` (another build, say) on `database`,
    /// which keeps what it holds: for benchmarks that reuse their data.
    pub async fn start_program(binary: &std::path::Path, database: &str) -> ServerProcess {
        ServerProcess::spawn_program(binary, "127.0.0.1", database.to_owned(), &[]).await
    }

    async fn spawn(database: String, extra_env: &[(&str, &str)]) -> ServerProcess {
        ServerProcess::spawn_program(&server_binary(), "127.0.0.1", database, extra_env).await
    }

    async fn spawn_program(
        binary: &std::path::Path,
        host: &str,
        database: String,
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let log_path = std::env::temp_dir().join(format!("{database}.{}.log", std::process::id()));
        let mut command = std::process::Command::new(binary);
        command
            .env("MUTANT_LISTEN", format!("{host}:{port}"))
            .env("MUTANT_CLICKHOUSE_URL", clickhouse_url())
            .env("MUTANT_DATABASE", &database)
            .env(
                "RUST_LOG",
                std::env::var("MUTANT_TEST_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdout(std::process::Stdio::null())
            // Not the test's own stderr: a server outliving an aborted test
            // process must not hold the test runner's output pipe open.
            .stderr(server_log(&log_path));
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command.spawn().expect("mutant-server starts");
        let server = ServerProcess {
            child,
            environment: extra_env
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            url: format!("http://127.0.0.1:{port}"),
            database,
            log_path,
        };
        server.wait_until_ready().await;
        server
    }

    async fn wait_until_ready(&self) {
        let address = self.url.trim_start_matches("http://").to_owned();
        for _ in 0..300 {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let request = format!(
                    "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
                );
                let mut answer = String::new();
                if stream.write_all(request.as_bytes()).await.is_ok()
                    && stream.read_to_string(&mut answer).await.is_ok()
                    && answer.starts_with("HTTP/1.1 200")
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "mutant-server did not answer on {} within 30 s; is ClickHouse at {} up? \
             Start one with `scripts/clickhouse.sh start` and export the URL it prints \
             as MUTANT_CLICKHOUSE_URL (its log is in {})",
            self.url,
            clickhouse_url(),
            std::env::temp_dir().display()
        );
    }

    /// The process id, to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a test server's log goes: a file in the temporary directory, named
/// after its database. `MUTANT_TEST_SERVER_LOG` sets its level (`RUST_LOG`
/// syntax, default `warn`).
fn server_log(path: &std::path::Path) -> std::process::Stdio {
    match std::fs::File::create(path) {
        Ok(file) => std::process::Stdio::from(file),
        Err(_) => std::process::Stdio::null(),
    }
}

/// The `mutant-server` binary beside the test executable; `scripts/test.sh`
/// builds it before the tests run.
pub fn server_binary() -> std::path::PathBuf {
    let test_executable = std::env::current_exe().expect("the test executable's path");
    let profile_dir = test_executable
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("mutant-server");
    assert!(
        binary.exists(),
        "{} is missing; build it with `cargo build -p mutant-server` (scripts/test.sh does)",
        binary.display()
    );
    binary
}

impl ServerProcess {
    /// Like [`ServerProcess::start_with`], on the ClickHouse at
    /// `clickhouse_url` instead of [`clickhouse_url`]'s: its database there is
    /// dropped first, and the server is pointed at it.
    pub async fn start_on(
        test_name: &str,
        clickhouse_url: &str,
        extra_env: &[(&str, &str)],
    ) -> ServerProcess {
        let database = format!("mutant_e2e_{test_name}");
        drop_database(clickhouse_url, &database).await;
        let mut env = vec![("MUTANT_CLICKHOUSE_URL", clickhouse_url)];
        env.extend_from_slice(extra_env);
        ServerProcess::spawn(database, &env).await
    }
}

/// How many statements the ClickHouse at [`clickhouse_url`] has run since
/// it started (its `Query` event), this read included. Only meaningful when
/// nothing else uses that ClickHouse meanwhile.
pub async fn clickhouse_statements_so_far() -> u64 {
    clickhouse::Client::default()
        .with_url(clickhouse_url())
        .with_validation(false)
        .query("SELECT value FROM system.events WHERE event = 'Query'")
        .fetch_one::<u64>()
        .await
        .unwrap_or_else(|error| panic!("cannot read ClickHouse's statement count: {error}"))
}
