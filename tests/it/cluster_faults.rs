//! Faults on a cluster (issue 16), each on a 2 shards x 2 replicas cluster of
//! the test's own (`scripts/clickhouse.sh start-cluster` on other ports), so
//! that stopping its nodes disturbs no other test: a Mutant server SIGKILLed
//! mid-stream, every ClickHouse node stopped mid-stream, and one replica of
//! each shard stopped mid-stream. What the SDK acknowledges is stored exactly
//! once; with a replica of each shard down, reads go on.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mutant_client::wire::KnnRequest;
use mutant_client::{BatchWriterConfig, Client, NewDataset, RetryPolicy};

use crate::e2e_support::run;
use crate::faults::{
    StoppableClickHouse, a_killed_server_loses_nothing_acknowledged_on, assert_sample_stored,
    clickhouse_stopping_mid_stream_gives_503_then_recovers_on, patient, record, vector,
    wait_for_exit,
};
use mutant_tests::ServerProcess;

/// A cluster of this test's own: ZooKeeper on `base_port`, node N (1..4) on
/// `base_port + 10 N`; nodes 1 and 2 are shard 1, nodes 3 and 4 shard 2.
/// Stopped, ZooKeeper included, when dropped.
struct PrivateCluster {
    base_port: u16,
    /// Node 1's HTTP URL, the one Mutant talks to.
    url: String,
}

impl PrivateCluster {
    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn script(base_port: u16, action: &str) -> String {
        let output = std::process::Command::new("bash")
            .arg(Self::root().join("scripts/clickhouse.sh"))
            .arg(action)
            .env("MUTANT_CLICKHOUSE_CLUSTER_BASE_PORT", base_port.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "scripts/clickhouse.sh {action} on ports {base_port}.. failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Starts it on empty data: what an earlier run left (replicated tables,
    /// the DDL queue) must not decide how this one starts.
    async fn start(base_port: u16) -> PrivateCluster {
        let url = tokio::task::spawn_blocking(move || {
            Self::script(base_port, "stop-cluster");
            let data = Self::root().join(format!(".build/clickhouse-cluster-{base_port}"));
            let _ = std::fs::remove_dir_all(data);
            Self::script(base_port, "start-cluster")
        })
        .await
        .unwrap();
        assert_eq!(url, format!("http://127.0.0.1:{}", base_port + 10));
        PrivateCluster { base_port, url }
    }

    /// Stops `nodes` at once (SIGTERM, SIGKILL after `grace`); returns once
    /// they are gone, and whether any had to be killed.
    async fn stop_nodes(&self, nodes: &[u16], grace: Duration) -> bool {
        let mut pids = Vec::new();
        for node in nodes {
            let pid_file = Self::root().join(format!(
                ".build/clickhouse-cluster-{}/node{node}/pid",
                self.base_port
            ));
            let pid = std::fs::read_to_string(&pid_file)
                .unwrap()
                .trim()
                .to_owned();
            let sent = std::process::Command::new("kill")
                .arg(&pid)
                .status()
                .unwrap();
            assert!(sent.success(), "node {node} (pid {pid}) was running");
            pids.push(pid);
        }
        let mut killed = false;
        for pid in &pids {
            killed |= wait_for_exit(pid, grace).await;
        }
        killed
    }
}

impl StoppableClickHouse for PrivateCluster {
    /// Stops every ClickHouse node; ZooKeeper keeps running.
    async fn stop(&self, grace: Duration) -> bool {
        self.stop_nodes(&[1, 2, 3, 4], grace).await
    }

    /// Starts the nodes that are not running.
    async fn restart(&self) {
        let base_port = self.base_port;
        tokio::task::spawn_blocking(move || Self::script(base_port, "start-cluster"))
            .await
            .unwrap();
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Self::root().join("scripts/clickhouse.sh"))
            .arg("stop-cluster")
            .env(
                "MUTANT_CLICKHOUSE_CLUSTER_BASE_PORT",
                self.base_port.to_string(),
            )
            .output();
    }
}

#[test]
fn on_a_cluster_a_killed_server_loses_nothing_acknowledged() {
    run(|| async {
        let doomed = ServerProcess::start_on_cluster("cluster_faults_server_kill", &[]).await;
        a_killed_server_loses_nothing_acknowledged_on(doomed).await;
    });
}

#[test]
fn on_a_cluster_clickhouse_stopping_mid_stream_gives_503_then_recovers() {
    run(|| async {
        let cluster = PrivateCluster::start(18_650).await;
        let server =
            ServerProcess::start_on_cluster_at("cluster_faults_stop", &cluster.url, &[]).await;
        clickhouse_stopping_mid_stream_gives_503_then_recovers_on(&cluster, &server).await;
    });
}

#[test]
fn one_replica_of_each_shard_stopping_mid_stream_loses_nothing_and_reads_go_on() {
    run(|| async {
        /// Records written after the replicas are back, before the stream ends.
        const N_AFTER_RETURN: u64 = 3_000;
        let cluster = PrivateCluster::start(18_750).await;
        // A short ClickHouse timeout: an INSERT waiting for a quorum that a
        // stopped replica cannot join fails (503, retried by the SDK) within
        // 5 s instead of 30.
        let server = ServerProcess::start_on_cluster_at(
            "cluster_faults_replicas",
            &cluster.url,
            &[("MUTANT_CLICKHOUSE_TIMEOUT_MS", "5000")],
        )
        .await;
        let client = Client::new(&server.url).unwrap().with_retry(patient());
        client
            .create_dataset(&NewDataset::new("stream", crate::faults::DIMENSION))
            .await
            .unwrap();

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
                for _ in 0..12_000 {
                    if n_written.load(Ordering::Acquire) >= target {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("the stream did not reach {target} writes within 120 s");
            }
        };
        wait_for_writes(5_000).await;

        // Node 2 is shard 1's second replica, node 4 shard 2's; the server
        // talks to node 1.
        cluster.stop_nodes(&[2, 4], Duration::from_secs(1)).await;
        let stopped_at = Instant::now();
        // Reads go on, not retried, from the replica left in each shard.
        let impatient = Client::new(&server.url)
            .unwrap()
            .with_retry(RetryPolicy::none());
        let mut n_reads = 0;
        while stopped_at.elapsed() < Duration::from_secs(4) {
            let count = impatient.count("stream", None).await.unwrap();
            assert!(count > 0, "the records written before the stop are read");
            let knn = KnnRequest {
                queries: vec![vector(7)],
                k: 1,
                filter: None,
                include: None,
            };
            let neighbours = impatient.knn("stream", &knn).await.unwrap();
            // r7's vector repeats every 10,007 records: any of them is at 0.
            assert_eq!(neighbours[0][0].distance, 0.0, "{:?}", neighbours[0][0]);
            n_reads += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            !stream.is_finished(),
            "the stream runs on through the outage"
        );
        let n_written_while_down = n_written.load(Ordering::Acquire);
        cluster.restart().await;
        let restarted_after = stopped_at.elapsed();
        wait_for_writes(n_written.load(Ordering::Acquire) + N_AFTER_RETURN).await;
        end_stream.store(true, Ordering::Release);
        let (n_records, finished) = stream.await.unwrap();
        let summary = finished.unwrap();
        eprintln!(
            "replicas stop: {n_reads} counts and kNN queries answered while one replica of each shard was down; \
             {n_written_while_down} records handed to the writer by the restart {:.2} s after the stop; \
             {n_records} records stored {:.2} s after the stop",
            restarted_after.as_secs_f64(),
            stopped_at.elapsed().as_secs_f64(),
        );
        assert_eq!(summary.n_records_written, n_records as u64);
        // Exactly once: the count is the number of distinct live ids.
        assert_eq!(client.count("stream", None).await.unwrap(), n_records);
        assert_sample_stored(&client, "stream", n_records, 41).await;
    });
}
