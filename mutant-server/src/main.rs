//! `mutant-server`: configuration, the ClickHouse store, the service, and an
//! HTTP/1.1 listener that drains in-flight requests on SIGTERM or SIGINT.

mod config;
mod connections;
mod error;
mod http;
mod metrics;
mod routes;
mod stream;
mod ui;
mod views;

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use mutant_core::service::{Service, ServiceConfig};
use mutant_core::store::{ClickHouseConfig, ClickHouseStore};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, ConfigError};
use crate::connections::{AcceptBackoff, ConnectionState, GuardedStream, Timeouts, TrackedBody};
use crate::metrics::Metrics;
use crate::routes::{AppState, handle};

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match Config::load(|name| std::env::var(name).ok(), &args) {
        Ok(config) => config,
        Err(ConfigError::Help { usage }) => {
            tracing::info!("{usage}");
            std::process::exit(0);
        }
        Err(error) => {
            tracing::error!("{error}");
            std::process::exit(2);
        }
    };
    if let Err(message) = serve(config).await {
        tracing::error!("{message}");
        std::process::exit(1);
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let mut clickhouse = ClickHouseConfig::new(&config.clickhouse_url)
        .with_database(&config.database)
        .with_timeout(config.clickhouse_timeout);
    clickhouse.user = config.clickhouse_user.clone();
    clickhouse.password = config.clickhouse_password.clone();
    clickhouse.cluster = config.clickhouse_cluster.clone();
    clickhouse.group_commit.max_inserts_in_flight = config.inserts_in_flight;
    let store = ClickHouseStore::connect(clickhouse)
        .await
        .map_err(|error| error.to_string())?;
    let version = store.server_version();
    let service = Service::new(
        Arc::new(store),
        ServiceConfig {
            cache_bytes: config.cache_bytes,
            kernel_threads: config.kernel_threads,
            analysis_bytes: config.analysis_bytes,
            analysis_heartbeat: config.analysis_heartbeat,
            analysis_lease: config.analysis_lease,
            server_name: server_name(&config),
            analyses_in_flight: config.analyses_in_flight,
        },
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", config.listen))?;
    if config.exposed_without_token() {
        tracing::warn!(
            listen = %config.listen,
            "EXPOSED WITHOUT A TOKEN: this server listens beyond loopback and MUTANT_API_TOKEN is not set, so anyone who can reach {} can read, change and delete every dataset; set MUTANT_API_TOKEN (or --api-token), or listen on 127.0.0.1",
            config.listen
        );
    }
    tracing::info!(listen = %config.listen, clickhouse = %config.clickhouse_url, database = %config.database, "mutant-server ready");
    let state = Arc::new(AppState {
        service,
        metrics: Metrics::default(),
        clickhouse_version: format!("{}.{}", version.major, version.minor),
        config,
    });

    let compaction = {
        let state = Arc::clone(&state);
        let interval = state.config.compact_interval;
        tokio::spawn(async move { state.service.compact_every(interval).await })
    };

    let graceful = GracefulShutdown::new();
    let builder = hyper::server::conn::http1::Builder::new();
    let timeouts = Timeouts {
        header: state.config.header_timeout,
        idle: state.config.idle_timeout,
    };
    let connection_slots = Arc::new(Semaphore::new(state.config.max_connections));
    let mut backoff = AcceptBackoff::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        // At the connection limit, the next clients wait in the listen
        // backlog until a connection closes.
        let slot = tokio::select! {
            slot = Arc::clone(&connection_slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                Err(error) => {
                    // Out of file descriptors, say: pause, or the loop spins.
                    let pause = backoff.failed();
                    tracing::warn!(%error, pause_ms = pause.as_millis() as u64, "accept failed; pausing");
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection_state = ConnectionState::new();
        let io = TokioIo::new(GuardedStream::new(
            stream,
            Arc::clone(&connection_state),
            timeouts,
        ));
        let state = Arc::clone(&state);
        let service = service_fn(move |request| {
            let in_flight = connection_state.request_started();
            let state = Arc::clone(&state);
            async move {
                let answer = handle(state, request).await?;
                Ok::<_, std::convert::Infallible>(
                    answer.map(|body| TrackedBody::new(body, in_flight)),
                )
            }
        });
        let connection = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    compaction.abort();
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("drained"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => tracing::warn!("drain deadline passed; closing remaining connections"),
    }
    Ok(())
}

/// How this server names itself in the analysis jobs it runs: its host name
/// (where the system tells it) and its listen address.
fn server_name(config: &Config) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    match host.trim() {
        "" => config.listen.to_string(),
        host => format!("{host}/{}", config.listen),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
