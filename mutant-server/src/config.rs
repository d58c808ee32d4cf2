//! The server's configuration: `MUTANT_*` environment variables over
//! defaults, and a `--flag value` twin for each (flags win), read once at
//! start-up into one [`Config`], with a typed error naming the variable and
//! the flag of a bad setting.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use mutant_core::service::ServiceConfig;
use mutant_core::store::GroupCommitConfig;

/// Everything the server is configured with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    /// Where to listen. `MUTANT_LISTEN` / `--listen`; default `127.0.0.1:7311`.
    pub(crate) listen: SocketAddr,
    /// ClickHouse's HTTP interface. `MUTANT_CLICKHOUSE_URL` / `--clickhouse-url`; default `http://127.0.0.1:8123`.
    pub(crate) clickhouse_url: String,
    /// `MUTANT_CLICKHOUSE_USER` / `--clickhouse-user`; default none (ClickHouse's `default` user).
    pub(crate) clickhouse_user: String,
    /// `MUTANT_CLICKHOUSE_PASSWORD` / `--clickhouse-password`; default none.
    pub(crate) clickhouse_password: String,
    /// The database Mutant owns. `MUTANT_DATABASE` / `--database`; default `mutant`.
    pub(crate) database: String,
    /// The ClickHouse cluster (a name in its `remote_servers`) to spread the
    /// tables over: local tables `ON CLUSTER`, replicated where shards have
    /// replicas, read and written through `Distributed` tables.
    /// `MUTANT_CLICKHOUSE_CLUSTER` / `--clickhouse-cluster`; default none (one node).
    pub(crate) clickhouse_cluster: Option<String>,
    /// Bytes of datasets kept in memory. `MUTANT_CACHE_BYTES` / `--cache-bytes`; default 4 GiB.
    pub(crate) cache_bytes: usize,
    /// When set, every request but `/healthz` needs `Authorization: Bearer <token>`.
    /// `MUTANT_API_TOKEN` / `--api-token`; default none.
    pub(crate) api_token: Option<String>,
    /// The largest request body, in bytes. `MUTANT_MAX_BODY_BYTES` / `--max-body-bytes`; default 256 MiB.
    pub(crate) max_body_bytes: usize,
    /// Working memory one analysis may need beyond the cached datasets it
    /// reads, in bytes; an analysis estimated over it is refused with 413
    /// `analysis_too_large`. `MUTANT_ANALYSIS_BYTES` / `--analysis-bytes`;
    /// default a quarter of the machine's memory (see
    /// [`default_analysis_bytes`]).
    pub(crate) analysis_bytes: usize,
    /// Threads per kernel. `MUTANT_KERNEL_THREADS` / `--kernel-threads`; default: the machine's cores.
    pub(crate) kernel_threads: usize,
    /// How often the server running an analysis rewrites its job (progress,
    /// heartbeat, cancel check). `MUTANT_ANALYSIS_HEARTBEAT_MS` /
    /// `--analysis-heartbeat-ms`, in milliseconds; default 1 s.
    pub(crate) analysis_heartbeat: Duration,
    /// How long without a heartbeat before any server marks a queued or
    /// running analysis failed; over twice the heartbeat, and the same on
    /// every server. `MUTANT_ANALYSIS_LEASE_MS` / `--analysis-lease-ms`, in
    /// milliseconds; default 10 s.
    pub(crate) analysis_lease: Duration,
    /// The longest wait for one exchange with ClickHouse (a query, an
    /// INSERT, or the next chunk of a loading dataset); past it the request
    /// fails with 503 `store_unavailable`. `MUTANT_CLICKHOUSE_TIMEOUT_MS` /
    /// `--clickhouse-timeout-ms`, in milliseconds; default 30 s.
    pub(crate) clickhouse_timeout: Duration,
    /// How many coalesced INSERTs may run at once; while they run, the next
    /// one keeps gathering writes. `MUTANT_INSERTS_IN_FLIGHT` /
    /// `--inserts-in-flight`; default 2.
    pub(crate) inserts_in_flight: usize,
    /// Time between compactions, which physically remove deleted datasets
    /// (with their analyses) and expired deleted records.
    /// `MUTANT_COMPACT_INTERVAL_S` / `--compact-interval-s`, in seconds;
    /// default 1 hour.
    pub(crate) compact_interval: Duration,
    /// How many analyses this server computes at once; the others wait
    /// `queued`, in the order they were started.
    /// `MUTANT_ANALYSES_IN_FLIGHT` / `--analyses-in-flight`; default 1, or
    /// 2 from 8 cores up.
    pub(crate) analyses_in_flight: usize,
    /// The longest a client may take to send a request head, from the
    /// connection's start or from the first byte of a later request; past
    /// it the server closes the connection. `MUTANT_HEADER_TIMEOUT_MS` /
    /// `--header-timeout-ms`, in milliseconds; default 10 s.
    pub(crate) header_timeout: Duration,
    /// The longest a kept-alive connection may wait for its next request
    /// after an answer before the server closes it.
    /// `MUTANT_IDLE_TIMEOUT_MS` / `--idle-timeout-ms`, in milliseconds;
    /// default 60 s.
    pub(crate) idle_timeout: Duration,
    /// The most connections served at once; further clients wait in the
    /// listen backlog until one closes. `MUTANT_MAX_CONNECTIONS` /
    /// `--max-connections`; default 1024.
    pub(crate) max_connections: usize,
}

/// A bad configuration: which setting, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConfigError {
    /// `--help` was asked for.
    #[error("{usage}")]
    Help { usage: String },
    /// A flag no setting has.
    #[error("unknown flag {flag:?}; the settings are:\n{usage}")]
    UnknownFlag { flag: String, usage: String },
    /// A flag at the end of the command line, without its value.
    #[error("{flag} needs a value, as in `{flag} <value>`")]
    MissingValue { flag: &'static str },
    /// A value that does not read as the setting's kind.
    #[error("{variable} (or {flag}) must be {expected}, got {value:?}")]
    BadValue {
        variable: &'static str,
        flag: &'static str,
        expected: &'static str,
        value: String,
    },
    /// The lease is too short for the heartbeat.
    #[error(
        "MUTANT_ANALYSIS_LEASE_MS (or --analysis-lease-ms, {lease_ms}) must be over twice MUTANT_ANALYSIS_HEARTBEAT_MS (or --analysis-heartbeat-ms, {heartbeat_ms}), or running analyses would be failed while their server is alive"
    )]
    LeaseTooShort { lease_ms: u128, heartbeat_ms: u128 },
}

/// One setting: its environment variable and its flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Setting {
    variable: &'static str,
    flag: &'static str,
}

const fn setting(variable: &'static str, flag: &'static str) -> Setting {
    Setting { variable, flag }
}

const LISTEN: Setting = setting("MUTANT_LISTEN", "--listen");
const CLICKHOUSE_URL: Setting = setting("MUTANT_CLICKHOUSE_URL", "--clickhouse-url");
const CLICKHOUSE_USER: Setting = setting("MUTANT_CLICKHOUSE_USER", "--clickhouse-user");
const CLICKHOUSE_PASSWORD: Setting = setting("MUTANT_CLICKHOUSE_PASSWORD", "--clickhouse-password");
const DATABASE: Setting = setting("MUTANT_DATABASE", "--database");
const CLICKHOUSE_CLUSTER: Setting = setting("MUTANT_CLICKHOUSE_CLUSTER", "--clickhouse-cluster");
const CACHE_BYTES: Setting = setting("MUTANT_CACHE_BYTES", "--cache-bytes");
const API_TOKEN: Setting = setting("MUTANT_API_TOKEN", "--api-token");
const MAX_BODY_BYTES: Setting = setting("MUTANT_MAX_BODY_BYTES", "--max-body-bytes");
const ANALYSIS_BYTES: Setting = setting("MUTANT_ANALYSIS_BYTES", "--analysis-bytes");
const KERNEL_THREADS: Setting = setting("MUTANT_KERNEL_THREADS", "--kernel-threads");
const ANALYSIS_HEARTBEAT_MS: Setting =
    setting("MUTANT_ANALYSIS_HEARTBEAT_MS", "--analysis-heartbeat-ms");
const ANALYSIS_LEASE_MS: Setting = setting("MUTANT_ANALYSIS_LEASE_MS", "--analysis-lease-ms");
const CLICKHOUSE_TIMEOUT_MS: Setting =
    setting("MUTANT_CLICKHOUSE_TIMEOUT_MS", "--clickhouse-timeout-ms");
const INSERTS_IN_FLIGHT: Setting = setting("MUTANT_INSERTS_IN_FLIGHT", "--inserts-in-flight");
const COMPACT_INTERVAL_S: Setting = setting("MUTANT_COMPACT_INTERVAL_S", "--compact-interval-s");
const ANALYSES_IN_FLIGHT: Setting = setting("MUTANT_ANALYSES_IN_FLIGHT", "--analyses-in-flight");
const HEADER_TIMEOUT_MS: Setting = setting("MUTANT_HEADER_TIMEOUT_MS", "--header-timeout-ms");
const IDLE_TIMEOUT_MS: Setting = setting("MUTANT_IDLE_TIMEOUT_MS", "--idle-timeout-ms");
const MAX_CONNECTIONS: Setting = setting("MUTANT_MAX_CONNECTIONS", "--max-connections");

/// Every setting, in the order `--help` lists them.
const SETTINGS: [Setting; 20] = [
    LISTEN,
    CLICKHOUSE_URL,
    CLICKHOUSE_USER,
    CLICKHOUSE_PASSWORD,
    DATABASE,
    CLICKHOUSE_CLUSTER,
    CACHE_BYTES,
    API_TOKEN,
    MAX_BODY_BYTES,
    ANALYSIS_BYTES,
    KERNEL_THREADS,
    ANALYSIS_HEARTBEAT_MS,
    ANALYSIS_LEASE_MS,
    CLICKHOUSE_TIMEOUT_MS,
    INSERTS_IN_FLIGHT,
    COMPACT_INTERVAL_S,
    ANALYSES_IN_FLIGHT,
    HEADER_TIMEOUT_MS,
    IDLE_TIMEOUT_MS,
    MAX_CONNECTIONS,
];

/// The raw values given, by setting: from the environment, then the flags.
struct Given(HashMap<Setting, String>);

impl Given {
    fn text(&self, setting: Setting) -> Option<String> {
        self.0
            .get(&setting)
            .filter(|value| !value.is_empty())
            .cloned()
    }

    fn text_or(&self, setting: Setting, default: &str) -> String {
        self.text(setting).unwrap_or_else(|| default.to_owned())
    }

    /// A positive whole number, or `default` when not given.
    fn count(&self, setting: Setting, default: usize) -> Result<usize, ConfigError> {
        match self.text(setting) {
            None => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|number| *number > 0)
                .ok_or(ConfigError::BadValue {
                    variable: setting.variable,
                    flag: setting.flag,
                    expected: "a positive whole number",
                    value: text,
                }),
        }
    }

    /// A positive duration given in `unit`s.
    fn duration(
        &self,
        setting: Setting,
        unit: Duration,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.text(setting) {
            None => Ok(default),
            Some(_) => {
                let count = self.count(setting, 1)?;
                Ok(unit.saturating_mul(u32::try_from(count).unwrap_or(u32::MAX)))
            }
        }
    }
}

impl Config {
    /// Reads the environment, then the flags (which win).
    pub(crate) fn load(
        env: impl Fn(&str) -> Option<String>,
        args: &[String],
    ) -> Result<Config, ConfigError> {
        let mut given = Given(
            SETTINGS
                .iter()
                .filter_map(|&setting| env(setting.variable).map(|value| (setting, value)))
                .collect(),
        );
        let mut arguments = args.iter();
        while let Some(flag) = arguments.next() {
            if flag == "--help" || flag == "-h" {
                return Err(ConfigError::Help { usage: usage() });
            }
            let setting = SETTINGS
                .iter()
                .find(|setting| setting.flag == flag)
                .copied()
                .ok_or_else(|| ConfigError::UnknownFlag {
                    flag: flag.clone(),
                    usage: usage(),
                })?;
            let value = arguments
                .next()
                .ok_or(ConfigError::MissingValue { flag: setting.flag })?;
            given.0.insert(setting, value.clone());
        }
        let listen_text = given.text_or(LISTEN, "127.0.0.1:7311");
        let listen = listen_text.parse().map_err(|_| ConfigError::BadValue {
            variable: LISTEN.variable,
            flag: LISTEN.flag,
            expected: "an address like 127.0.0.1:7311",
            value: listen_text,
        })?;
        let millisecond = Duration::from_millis(1);
        let analysis_heartbeat =
            given.duration(ANALYSIS_HEARTBEAT_MS, millisecond, Duration::from_secs(1))?;
        let analysis_lease =
            given.duration(ANALYSIS_LEASE_MS, millisecond, Duration::from_secs(10))?;
        if analysis_lease <= 2 * analysis_heartbeat {
            return Err(ConfigError::LeaseTooShort {
                lease_ms: analysis_lease.as_millis(),
                heartbeat_ms: analysis_heartbeat.as_millis(),
            });
        }
        Ok(Config {
            listen,
            clickhouse_url: given.text_or(CLICKHOUSE_URL, "http://127.0.0.1:8123"),
            clickhouse_user: given.text_or(CLICKHOUSE_USER, ""),
            clickhouse_password: given.text_or(CLICKHOUSE_PASSWORD, ""),
            database: given.text_or(DATABASE, "mutant"),
            clickhouse_cluster: given.text(CLICKHOUSE_CLUSTER),
            cache_bytes: given.count(CACHE_BYTES, 4 << 30)?,
            api_token: given.text(API_TOKEN),
            max_body_bytes: given.count(MAX_BODY_BYTES, 256 << 20)?,
            analysis_bytes: given.count(
                ANALYSIS_BYTES,
                default_analysis_bytes(machine_memory_bytes()),
            )?,
            kernel_threads: given.count(
                KERNEL_THREADS,
                std::thread::available_parallelism().map_or(1, usize::from),
            )?,
            analysis_heartbeat,
            analysis_lease,
            clickhouse_timeout: given.duration(
                CLICKHOUSE_TIMEOUT_MS,
                millisecond,
                Duration::from_secs(30),
            )?,
            inserts_in_flight: given.count(
                INSERTS_IN_FLIGHT,
                GroupCommitConfig::default().max_inserts_in_flight,
            )?,
            compact_interval: given.duration(
                COMPACT_INTERVAL_S,
                Duration::from_secs(1),
                Duration::from_secs(3_600),
            )?,
            analyses_in_flight: given.count(
                ANALYSES_IN_FLIGHT,
                ServiceConfig::default().analyses_in_flight,
            )?,
            header_timeout: given.duration(
                HEADER_TIMEOUT_MS,
                millisecond,
                Duration::from_secs(10),
            )?,
            idle_timeout: given.duration(IDLE_TIMEOUT_MS, millisecond, Duration::from_secs(60))?,
            max_connections: given.count(MAX_CONNECTIONS, 1_024)?,
        })
    }
}

/// The smallest default analysis budget, whatever the machine reports.
const MIN_DEFAULT_ANALYSIS_BYTES: usize = 256 << 20;

/// The budget of one analysis when none is configured: a quarter of
/// `machine_bytes` (at least 256 MiB; 2 GiB when the memory is unknown).
///
/// Why a quarter: the same memory holds the dataset cache
/// (`MUTANT_CACHE_BYTES`, whose datasets an analysis reads in place and
/// are not counted here), the rows an analysis hands to ClickHouse, the
/// other requests, and often ClickHouse itself; and a few analyses may
/// run at once. A quarter leaves an analysis room for what its kernels
/// really need on one machine (a 768-d kNN graph over a million records
/// needs under 1 GiB) while two at once still cannot take the machine.
pub(crate) fn default_analysis_bytes(machine_bytes: Option<u64>) -> usize {
    match machine_bytes {
        Some(bytes) => usize::try_from(bytes / 4)
            .unwrap_or(usize::MAX)
            .max(MIN_DEFAULT_ANALYSIS_BYTES),
        None => 2 << 30,
    }
}

/// The memory this process may use: the machine's (`MemTotal` of
/// `/proc/meminfo`), or its control group's limit (cgroup v2's
/// `memory.max`, v1's `memory.limit_in_bytes`) when that is lower, as in a
/// container. `None` where neither can be read (not Linux).
fn machine_memory_bytes() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let total = read("/proc/meminfo").and_then(|text| mem_total_bytes(&text));
    let limits = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ];
    let cgroup = limits
        .iter()
        .filter_map(|path| read(path))
        .filter_map(|text| text.trim().parse::<u64>().ok())
        .min();
    match (total, cgroup) {
        (Some(total), Some(limit)) => Some(total.min(limit)),
        (total, limit) => total.or(limit),
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

impl Config {
    /// Whether the server listens beyond loopback with no token: anyone who
    /// can reach the address can read, write and delete every dataset.
    pub(crate) fn exposed_without_token(&self) -> bool {
        !self.listen.ip().is_loopback() && self.api_token.is_none()
    }
}

fn usage() -> String {
    let mut text = String::from("usage: mutant-server [--flag value]...\n");
    for setting in SETTINGS {
        text.push_str(&format!("  {:<24} or {}\n", setting.flag, setting.variable));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(flags: &[&str]) -> Result<Config, ConfigError> {
        let args: Vec<String> = flags.iter().map(|flag| (*flag).to_owned()).collect();
        Config::load(|_| None, &args)
    }

    #[test]
    fn flags_win_over_the_environment_and_defaults_fill_the_rest() {
        let env = |name: &str| (name == "MUTANT_DATABASE").then(|| "from_env".to_owned());
        let config = Config::load(env, &["--database".into(), "from_flag".into()]).unwrap();
        assert_eq!(config.database, "from_flag");
        assert_eq!(config.listen.to_string(), "127.0.0.1:7311");
        assert_eq!(config.analysis_lease, Duration::from_secs(10));
        assert_eq!(config.clickhouse_timeout, Duration::from_secs(30));
        assert_eq!(config.inserts_in_flight, 2);
        assert_eq!(config.compact_interval, Duration::from_secs(3_600));
        assert_eq!(
            config.analyses_in_flight,
            ServiceConfig::default().analyses_in_flight
        );
        assert_eq!(config.header_timeout, Duration::from_secs(10));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.max_connections, 1_024);
        let from_env = Config::load(
            |name| (name == "MUTANT_ANALYSIS_HEARTBEAT_MS").then(|| "250".to_owned()),
            &[],
        )
        .unwrap();
        assert_eq!(from_env.analysis_heartbeat, Duration::from_millis(250));
    }

    #[test]
    fn listening_beyond_loopback_without_a_token_is_exposed() {
        assert!(!load(&[]).unwrap().exposed_without_token());
        assert!(
            load(&["--listen", "0.0.0.0:7311"])
                .unwrap()
                .exposed_without_token()
        );
        assert!(
            load(&["--listen", "[::]:7311"])
                .unwrap()
                .exposed_without_token()
        );
        assert!(
            !load(&["--listen", "[::1]:7311"])
                .unwrap()
                .exposed_without_token()
        );
        assert!(
            !load(&["--listen", "0.0.0.0:7311", "--api-token", "secret"])
                .unwrap()
                .exposed_without_token()
        );
    }

    #[test]
    fn bad_settings_name_their_variable_and_flag() {
        let bad = load(&["--cache-bytes", "lots"]).unwrap_err();
        assert_eq!(
            bad,
            ConfigError::BadValue {
                variable: "MUTANT_CACHE_BYTES",
                flag: "--cache-bytes",
                expected: "a positive whole number",
                value: "lots".into()
            }
        );
        let message = bad.to_string();
        assert!(message.contains("MUTANT_CACHE_BYTES") && message.contains("--cache-bytes"));
        assert!(matches!(
            load(&["--bogus", "1"]),
            Err(ConfigError::UnknownFlag { .. })
        ));
        assert!(matches!(
            load(&["--clickhouse-timeout-ms", "0"]),
            Err(ConfigError::BadValue {
                variable: "MUTANT_CLICKHOUSE_TIMEOUT_MS",
                ..
            })
        ));
        assert!(matches!(
            load(&["--analyses-in-flight", "0"]),
            Err(ConfigError::BadValue {
                variable: "MUTANT_ANALYSES_IN_FLIGHT",
                ..
            })
        ));
        assert!(matches!(
            load(&["--header-timeout-ms", "soon"]),
            Err(ConfigError::BadValue {
                variable: "MUTANT_HEADER_TIMEOUT_MS",
                ..
            })
        ));
        assert!(matches!(
            load(&["--analysis-lease-ms", "1500"]),
            Err(ConfigError::LeaseTooShort { .. })
        ));
        assert_eq!(
            load(&["--database"]),
            Err(ConfigError::MissingValue { flag: "--database" })
        );
        assert!(matches!(
            Config::load(
                |name| (name == "MUTANT_LISTEN").then(|| "nowhere".into()),
                &[]
            ),
            Err(ConfigError::BadValue {
                variable: "MUTANT_LISTEN",
                ..
            })
        ));
        assert!(matches!(load(&["--help"]), Err(ConfigError::Help { .. })));
    }

    #[test]
    fn the_analysis_budget_defaults_to_a_quarter_of_the_machine() {
        let meminfo = "MemTotal:       24684084 kB\nMemFree:        20115496 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(24_684_084 * 1024));
        assert_eq!(mem_total_bytes("nothing here"), None);
        assert_eq!(default_analysis_bytes(Some(16 << 30)), 4 << 30);
        assert_eq!(
            default_analysis_bytes(Some(512 << 20)),
            MIN_DEFAULT_ANALYSIS_BYTES
        );
        assert_eq!(default_analysis_bytes(None), 2 << 30);
        let config = load(&["--analysis-bytes", "1048576"]).unwrap();
        assert_eq!(config.analysis_bytes, 1 << 20);
        assert!(load(&[]).unwrap().analysis_bytes >= MIN_DEFAULT_ANALYSIS_BYTES);
        assert!(matches!(
            load(&["--analysis-bytes", "0"]),
            Err(ConfigError::BadValue {
                variable: "MUTANT_ANALYSIS_BYTES",
                ..
            })
        ));
    }

    #[test]
    fn every_setting_is_documented_where_operators_look() {
        for (document, text) in [
            ("README.md", include_str!("../../README.md")),
            ("PROTOCOL.md", include_str!("../../PROTOCOL.md")),
        ] {
            for setting in SETTINGS {
                assert!(
                    text.contains(&format!("| `{}` | `{}` |", setting.variable, setting.flag)),
                    "{document}'s settings table lacks {} / {}",
                    setting.variable,
                    setting.flag
                );
            }
        }
    }
}
