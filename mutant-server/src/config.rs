//! The server's configuration: `MUTANT_*` environment variables over
//! defaults, and a `--flag value` twin for each, read once at start-up.

use std::net::SocketAddr;

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
    /// Bytes of datasets kept in memory. `MUTANT_CACHE_BYTES` / `--cache-bytes`; default 4 GiB.
    pub(crate) cache_bytes: usize,
    /// When set, every request but `/healthz` needs `Authorization: Bearer <token>`.
    /// `MUTANT_API_TOKEN` / `--api-token`; default none.
    pub(crate) api_token: Option<String>,
    /// The largest request body, in bytes. `MUTANT_MAX_BODY_BYTES` / `--max-body-bytes`; default 256 MiB.
    pub(crate) max_body_bytes: usize,
    /// Threads per kernel. `MUTANT_KERNEL_THREADS` / `--kernel-threads`; default: the machine's cores.
    pub(crate) kernel_threads: usize,
    /// How often, in milliseconds, the server running an analysis rewrites its
    /// job (progress, heartbeat, cancel check).
    /// `MUTANT_ANALYSIS_HEARTBEAT_MS` / `--analysis-heartbeat-ms`; default 1000.
    pub(crate) analysis_heartbeat_ms: usize,
    /// Milliseconds without a heartbeat after which any server marks a queued
    /// or running analysis failed; over twice the heartbeat, and the same on
    /// every server. `MUTANT_ANALYSIS_LEASE_MS` / `--analysis-lease-ms`; default 10000.
    pub(crate) analysis_lease_ms: usize,
    /// The longest wait, in milliseconds, for one exchange with ClickHouse (a
    /// query, an INSERT, or the next chunk of a loading dataset); past it the
    /// request fails with 503 `store_unavailable`.
    /// `MUTANT_CLICKHOUSE_TIMEOUT_MS` / `--clickhouse-timeout-ms`; default 30000.
    pub(crate) clickhouse_timeout_ms: usize,
    /// How many coalesced INSERTs may run at once; while they run, the next
    /// one keeps gathering writes. `MUTANT_INSERTS_IN_FLIGHT` /
    /// `--inserts-in-flight`; default 2.
    pub(crate) inserts_in_flight: usize,
    /// Seconds between compactions, which physically remove deleted datasets
    /// (with their analyses) and expired deleted records.
    /// `MUTANT_COMPACT_INTERVAL_S` / `--compact-interval-s`; default 3600.
    pub(crate) compact_interval_s: usize,
}

const SETTINGS: [(&str, &str); 14] = [
    ("MUTANT_LISTEN", "--listen"),
    ("MUTANT_CLICKHOUSE_URL", "--clickhouse-url"),
    ("MUTANT_CLICKHOUSE_USER", "--clickhouse-user"),
    ("MUTANT_CLICKHOUSE_PASSWORD", "--clickhouse-password"),
    ("MUTANT_DATABASE", "--database"),
    ("MUTANT_CACHE_BYTES", "--cache-bytes"),
    ("MUTANT_API_TOKEN", "--api-token"),
    ("MUTANT_MAX_BODY_BYTES", "--max-body-bytes"),
    ("MUTANT_KERNEL_THREADS", "--kernel-threads"),
    ("MUTANT_ANALYSIS_HEARTBEAT_MS", "--analysis-heartbeat-ms"),
    ("MUTANT_ANALYSIS_LEASE_MS", "--analysis-lease-ms"),
    ("MUTANT_CLICKHOUSE_TIMEOUT_MS", "--clickhouse-timeout-ms"),
    ("MUTANT_INSERTS_IN_FLIGHT", "--inserts-in-flight"),
    ("MUTANT_COMPACT_INTERVAL_S", "--compact-interval-s"),
];

impl Config {
    /// Reads the environment, then the flags (which win).
    pub(crate) fn load(
        env: impl Fn(&str) -> Option<String>,
        args: &[String],
    ) -> Result<Config, String> {
        let mut values: Vec<Option<String>> =
            SETTINGS.iter().map(|(variable, _)| env(variable)).collect();
        let mut arguments = args.iter();
        while let Some(flag) = arguments.next() {
            if flag == "--help" || flag == "-h" {
                return Err(usage());
            }
            let index = SETTINGS
                .iter()
                .position(|(_, name)| name == flag)
                .ok_or_else(|| format!("unknown flag {flag:?}\n{}", usage()))?;
            let value = arguments
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?;
            values[index] = Some(value.clone());
        }
        let take = |index: usize| values[index].clone().filter(|value| !value.is_empty());
        let parse_number = |index: usize, default: usize| -> Result<usize, String> {
            match take(index) {
                None => Ok(default),
                Some(text) => text
                    .parse::<usize>()
                    .ok()
                    .filter(|number| *number > 0)
                    .ok_or_else(|| {
                        format!(
                            "{} must be a positive whole number, got {text:?}",
                            SETTINGS[index].0
                        )
                    }),
            }
        };
        let listen_text = take(0).unwrap_or_else(|| "127.0.0.1:7311".into());
        let listen = listen_text.parse().map_err(|_| {
            format!("MUTANT_LISTEN must be an address like 127.0.0.1:7311, got {listen_text:?}")
        })?;
        let analysis_heartbeat_ms = parse_number(9, 1_000)?;
        let analysis_lease_ms = parse_number(10, 10_000)?;
        if analysis_lease_ms <= 2 * analysis_heartbeat_ms {
            return Err(format!(
                "MUTANT_ANALYSIS_LEASE_MS ({analysis_lease_ms}) must be over twice MUTANT_ANALYSIS_HEARTBEAT_MS ({analysis_heartbeat_ms}), or running analyses would be failed while their server is alive"
            ));
        }
        Ok(Config {
            listen,
            clickhouse_url: take(1).unwrap_or_else(|| "http://127.0.0.1:8123".into()),
            clickhouse_user: take(2).unwrap_or_default(),
            clickhouse_password: take(3).unwrap_or_default(),
            database: take(4).unwrap_or_else(|| "mutant".into()),
            cache_bytes: parse_number(5, 4 << 30)?,
            api_token: take(6),
            max_body_bytes: parse_number(7, 256 << 20)?,
            kernel_threads: parse_number(
                8,
                std::thread::available_parallelism().map_or(1, usize::from),
            )?,
            analysis_heartbeat_ms,
            analysis_lease_ms,
            clickhouse_timeout_ms: parse_number(11, 30_000)?,
            inserts_in_flight: parse_number(
                12,
                GroupCommitConfig::default().max_inserts_in_flight,
            )?,
            compact_interval_s: parse_number(13, 3_600)?,
        })
    }
}

fn usage() -> String {
    let mut text = String::from("usage: mutant-server [--flag value]...\n");
    for (variable, flag) in SETTINGS {
        text.push_str(&format!("  {flag:<24} or {variable}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_environment_and_bad_values_are_refused() {
        let env = |name: &str| (name == "MUTANT_DATABASE").then(|| "from_env".to_owned());
        let config = Config::load(env, &["--database".into(), "from_flag".into()]).unwrap();
        assert_eq!(config.database, "from_flag");
        assert_eq!(config.listen.to_string(), "127.0.0.1:7311");
        assert!(Config::load(|_| None, &["--cache-bytes".into(), "lots".into()]).is_err());
        assert!(Config::load(|_| None, &["--bogus".into(), "1".into()]).is_err());
        assert_eq!(config.analysis_lease_ms, 10_000);
        assert_eq!(config.clickhouse_timeout_ms, 30_000);
        let timeout = ["--clickhouse-timeout-ms".into(), "0".into()];
        assert!(Config::load(|_| None, &timeout).is_err());
        let short_lease = ["--analysis-lease-ms".into(), "1500".into()];
        assert!(Config::load(|_| None, &short_lease).is_err());
        assert!(
            Config::load(
                |name| (name == "MUTANT_LISTEN").then(|| "nowhere".into()),
                &[]
            )
            .is_err()
        );
        assert_eq!(config.inserts_in_flight, 2);
        assert_eq!(config.compact_interval_s, 3_600);
    }

    #[test]
    fn every_setting_is_documented_where_operators_look() {
        for (document, text) in [
            ("README.md", include_str!("../../README.md")),
            ("PROTOCOL.md", include_str!("../../PROTOCOL.md")),
        ] {
            for (variable, flag) in SETTINGS {
                assert!(
                    text.contains(&format!("| `{variable}` | `{flag}` |")),
                    "{document}'s settings table lacks {variable} / {flag}"
                );
            }
        }
    }
}
