//! One request cannot take a server down (issue 13), through the real
//! server: analyses wait `queued` in order behind a bounded number running,
//! a queued analysis and a running `select` stop when cancelled; kNN,
//! filters, `ids` lists and dataset metadata are bounded; a filter of tiny
//! numbers gets `query_too_large`, not a 500; half-open and idle connections
//! are closed by their timeouts and the connection limit holds; a server
//! exposed without a token says so.
//!
//! Timing targets (latency under load, how fast a cancel lands) are
//! measured in `benches/hardening.rs`, not asserted here.

use std::time::{Duration, Instant};

use mutant_client::Client;
use mutant_client::vocabulary::JobStatus;
use mutant_client::wire::AnalysisStatus;
use mutant_tests::ServerProcess;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::analysis_jobs::{fill, request};
use crate::e2e_http::Http;
use crate::e2e_support::{metric_value, metrics, run};

/// A heartbeat short enough that cancels land quickly in tests.
const QUICK_HEARTBEAT: [(&str, &str); 2] = [
    ("MUTANT_ANALYSIS_HEARTBEAT_MS", "200"),
    ("MUTANT_ANALYSIS_LEASE_MS", "3000"),
];

async fn wait_until_final(client: &Client, id: Uuid) -> AnalysisStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = client.analysis_status(id).await.unwrap();
        if status.status.is_final() {
            return status;
        }
        assert!(Instant::now() < deadline, "never finished: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_analyses_wait_queued_in_order_behind_the_bounded_running_ones() {
    let mut env = QUICK_HEARTBEAT.to_vec();
    env.push(("MUTANT_ANALYSES_IN_FLIGHT", "1"));
    let server = ServerProcess::start_with("harden_queue", &env).await;
    let client = Client::new(&server.url).unwrap();
    fill(&client, "points", 4_000, 16).await;

    let mut started = Vec::new();
    for _ in 0..4 {
        let status = client
            .start_analysis(&request("uniqueness", "points", json!({"k": 5})))
            .await
            .unwrap();
        assert_eq!(status.status, JobStatus::Queued);
        started.push(status.id);
    }
    // The third is cancelled while it waits: it leaves the queue at once.
    let cancelled = client.cancel_analysis(started[2]).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled, "{cancelled:?}");

    // Never more than one computing, whatever the moment: the server's own
    // gauge is one reading (statuses read one after another are not, a job
    // can end and the next start between two of them).
    let mut most_computing: f64 = 0.0;
    loop {
        let page = metrics(&server).await;
        let computing = metric_value(&page, "mutant_analyses_computing").unwrap();
        assert!(computing <= 1.0, "{page}");
        most_computing = most_computing.max(computing);
        let mut all_final = true;
        for id in &started {
            all_final &= client.analysis_status(*id).await.unwrap().status.is_final();
        }
        if all_final {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(most_computing, 1.0);

    let finished: Vec<AnalysisStatus> = {
        let mut finished = Vec::new();
        for id in &started {
            finished.push(wait_until_final(&client, *id).await);
        }
        finished
    };
    let cancelled = &finished[2];
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.started_at_ms, None, "{cancelled:?}");
    let ran: Vec<&AnalysisStatus> = [&finished[0], &finished[1], &finished[3]].into();
    for status in &ran {
        assert_eq!(status.status, JobStatus::Done, "{status:?}");
    }
    // In the order they were started, one after the other.
    for pair in ran.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        let finished_before = before.finished_at_ms.unwrap();
        let started_after = after.started_at_ms.unwrap();
        assert!(
            started_after >= finished_before,
            "{} started at {started_after} before {} finished at {finished_before}",
            after.id,
            before.id
        );
    }
    let page = metrics(&server).await;
    assert_eq!(metric_value(&page, "mutant_analyses_computing"), Some(0.0));
    assert_eq!(metric_value(&page, "mutant_analyses_waiting"), Some(0.0));
    assert_eq!(
        metric_value(&page, "mutant_analyses{status=\"cancelled\"}"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        metric_value(&page, "mutant_analyses{status=\"done\"}"),
        Some(3.0),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_a_running_select_stops_when_cancelled() {
    let server = ServerProcess::start_with("harden_select_cancel", &QUICK_HEARTBEAT).await;
    let client = Client::new(&server.url).unwrap();
    fill(&client, "pool", 30_000, 48).await;
    let started = client
        .start_analysis(&request(
            "select",
            "pool",
            json!({"n": 5_000, "weights": {"uniqueness": 1.0}, "diversity": true}),
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.analysis_status(started.id).await.unwrap();
        assert!(
            !status.status.is_final(),
            "ended before the cancel: {status:?}"
        );
        if status.status == JobStatus::Running {
            break;
        }
        assert!(Instant::now() < deadline, "never started: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    client.cancel_analysis(started.id).await.unwrap();
    let ended = wait_until_final(&client, started.id).await;
    eprintln!("select cancelled {:?} after the request", asked.elapsed());
    assert_eq!(ended.status, JobStatus::Cancelled, "{ended:?}");
    assert!(ended.progress < 1.0, "{ended:?}");
}

#[test]
fn issue_13_requests_are_bounded_with_typed_errors() {
    run(requests_are_bounded_with_typed_errors);
}

async fn requests_are_bounded_with_typed_errors() {
    let server = ServerProcess::start("harden_bounds").await;
    let http = Http::new(&server);
    http.json(
        "POST",
        "/v1/datasets",
        &json!({"name": "small", "dimension": 2}),
    )
    .await
    .ok(201);
    let records: Vec<Value> = (0..50)
        .map(|index| json!({"id": format!("r{index:03}"), "vector": [index as f32, 1.0], "label": if index % 2 == 0 { "even" } else { "odd" }, "metadata": {"x": index}}))
        .collect();
    http.json(
        "POST",
        "/v1/datasets/small/records",
        &json!({ "records": records }),
    )
    .await
    .ok(200);

    // queries x k over the limit: 413 naming the limit.
    let queries: Vec<[f32; 2]> = vec![[0.0, 0.0]; 200];
    let too_many = http
        .json(
            "POST",
            "/v1/datasets/small/knn",
            &json!({"queries": queries, "k": 10_000}),
        )
        .await;
    assert_eq!(too_many.status, 413, "{}", too_many.text());
    let body = too_many.json();
    assert_eq!(body["error"]["code"], "knn_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("1000000")),
        "{body}"
    );
    let within = http
        .json(
            "POST",
            "/v1/datasets/small/knn",
            &json!({"queries": queries, "k": 5_000}),
        )
        .await
        .ok(200);
    assert_eq!(within["results"][0].as_array().map(Vec::len), Some(50));

    // One filter bound on every route, the in-memory kNN filter included.
    let many_conditions: Vec<Value> = (0..300)
        .map(|index| json!({"label": format!("l{index}")}))
        .collect();
    let half: Vec<String> = (0..60_000).map(|index| format!("r{index:03}")).collect();
    for filter in [
        json!({"$or": many_conditions}),
        json!({"$or": [{"id": {"$in": half}}, {"label": {"$in": half}}]}),
    ] {
        for (path, body) in [
            (
                "knn",
                json!({"queries": [[0.0, 0.0]], "k": 3, "filter": filter}),
            ),
            ("count", json!({ "filter": filter })),
            ("records/get", json!({ "filter": filter })),
            ("records/delete", json!({ "filter": filter })),
        ] {
            let refused = http
                .json("POST", &format!("/v1/datasets/small/{path}"), &body)
                .await;
            assert_eq!(refused.status, 400, "{path}: {}", refused.text());
            assert_eq!(refused.json()["error"]["code"], "invalid_filter", "{path}");
        }
    }
    let in_memory = http
        .json(
            "POST",
            "/v1/datasets/small/knn",
            &json!({"queries": [[0.0, 0.0]], "k": 50, "filter": {"$or": [{"id": {"$in": half}}, {"label": "odd"}]}}),
        )
        .await
        .ok(200);
    assert_eq!(in_memory["results"][0].as_array().map(Vec::len), Some(50));

    // ids: counted once, capped like filters, a long list read to its limit.
    let doubled = http
        .json(
            "POST",
            "/v1/datasets/small/records/get",
            &json!({"ids": ["r001", "r001", "r002", "r001"], "include": []}),
        )
        .await
        .ok(200);
    assert_eq!(
        doubled,
        json!({"records": [{"id": "r001"}, {"id": "r002"}]})
    );
    let long_list: Vec<String> = (0..90_000)
        .rev()
        .map(|index| format!("r{index:03}"))
        .collect();
    let page = http
        .json(
            "POST",
            "/v1/datasets/small/records/get",
            &json!({"ids": long_list, "limit": 3, "offset": 2, "include": []}),
        )
        .await
        .ok(200);
    assert_eq!(
        page,
        json!({"records": [{"id": "r002"}, {"id": "r003"}, {"id": "r004"}]})
    );
    let over: Vec<String> = (0..100_001).map(|index| format!("x{index}")).collect();
    let refused = http
        .json(
            "POST",
            "/v1/datasets/small/records/get",
            &json!({ "ids": over }),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "invalid_parameter");
    let deleted = http
        .json(
            "POST",
            "/v1/datasets/small/records/delete",
            &json!({"ids": ["r049", "r049"]}),
        )
        .await
        .ok(200);
    assert_eq!(deleted, json!({"deleted": 1}));

    // Tiny numbers print long: the query is too large, not a server error.
    let tiny: Vec<f64> = vec![1e-300; 1_000];
    let counted = http
        .json(
            "POST",
            "/v1/datasets/small/count",
            &json!({"filter": {"metadata.x": {"$in": tiny}}}),
        )
        .await;
    assert_eq!(counted.status, 400, "{}", counted.text());
    assert_eq!(counted.json()["error"]["code"], "query_too_large");

    // Dataset metadata is capped on create and on patch.
    let large = "x".repeat(70_000);
    let refused = http
        .json(
            "POST",
            "/v1/datasets",
            &json!({"name": "heavy", "dimension": 2, "metadata": {"notes": large}}),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "field_too_long");
    let half_size = "x".repeat(40_000);
    http.json(
        "PATCH",
        "/v1/datasets/small",
        &json!({"metadata_patch": {"a": half_size}}),
    )
    .await
    .ok(200);
    let grown = http
        .json(
            "PATCH",
            "/v1/datasets/small",
            &json!({"metadata_patch": {"b": half_size}}),
        )
        .await;
    assert_eq!(grown.status, 422, "{}", grown.text());
    assert_eq!(grown.json()["error"]["code"], "field_too_long");
    let kept = http.get("/v1/datasets/small").await.ok(200);
    assert!(kept["metadata"].get("b").is_none(), "{kept}");
}

/// Opens a connection that sends `partial` and nothing more; returns how
/// long after the connection was asked for the server closed it (timed
/// from before the connect, so that a late poll of this task cannot make
/// the server's timeout look shorter than it was).
async fn held_open(address: String, partial: &'static [u8]) -> Duration {
    let asked = Instant::now();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream.write_all(partial).await.unwrap();
    let mut buffer = [0u8; 256];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return asked.elapsed(),
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_half_open_connections_are_closed_by_the_header_timeout() {
    let server = ServerProcess::start_with(
        "harden_half_open",
        &[
            ("MUTANT_HEADER_TIMEOUT_MS", "700"),
            ("MUTANT_IDLE_TIMEOUT_MS", "5000"),
        ],
    )
    .await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let holders: Vec<_> = (0..300)
        .map(|index| {
            let partial: &'static [u8] = match index % 3 {
                0 => b"",
                1 => b"GET /healthz HTTP/1.1\r\n",
                _ => b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Len",
            };
            tokio::spawn(held_open(address.clone(), partial))
        })
        .collect();
    // Others are still served meanwhile.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let healthy = Http::new(&server).get("/healthz").await;
    assert_eq!(healthy.status, 200);
    let mut latest = Duration::ZERO;
    for holder in holders {
        let closed_after = tokio::time::timeout(Duration::from_secs(10), holder)
            .await
            .expect("the server closes a half-open connection")
            .unwrap();
        assert!(
            closed_after >= Duration::from_millis(650),
            "closed {closed_after:?} after it opened, before the 700 ms header timeout"
        );
        // Generous, for a loaded machine: closed at its timeout, not left open.
        assert!(
            closed_after < Duration::from_secs(3),
            "still open {closed_after:?} after it opened, with a 700 ms header timeout"
        );
        latest = latest.max(closed_after);
    }
    eprintln!("300 half-open connections, header timeout 700 ms: the last closed after {latest:?}");
}

/// Sends a keep-alive `GET /healthz` and reads its answer.
async fn keep_alive_healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 512];
    while !answer.ends_with(b"ok\n") {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "closed mid-answer: {answer:?}");
        answer.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_idle_keep_alive_connections_get_their_own_timeout() {
    let server = ServerProcess::start_with(
        "harden_idle",
        &[
            ("MUTANT_HEADER_TIMEOUT_MS", "300"),
            ("MUTANT_IDLE_TIMEOUT_MS", "1500"),
        ],
    )
    .await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    assert!(
        keep_alive_healthz(&mut stream)
            .await
            .starts_with("HTTP/1.1 200")
    );
    // Idle longer than the header timeout: still open, and serves again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Timed from before the request, so that however late this task reads
    // the answer, the idle time measured is never shorter than the server's.
    let asked = Instant::now();
    assert!(
        keep_alive_healthz(&mut stream)
            .await
            .starts_with("HTTP/1.1 200")
    );
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("the idle connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let idle_for = asked.elapsed();
    assert!(
        idle_for >= Duration::from_millis(1_300),
        "closed after {idle_for:?} idle, before the 1500 ms idle timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_the_connection_limit_holds_clients_back_until_one_closes() {
    let server = ServerProcess::start_with(
        "harden_connection_limit",
        &[
            ("MUTANT_MAX_CONNECTIONS", "4"),
            ("MUTANT_HEADER_TIMEOUT_MS", "1500"),
        ],
    )
    .await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let holders: Vec<_> = (0..4)
        .map(|_| tokio::spawn(held_open(address.clone(), b"")))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = TcpStream::connect(&address).await.unwrap();
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let early = tokio::time::timeout(
        Duration::from_millis(600),
        fifth.read_to_string(&mut answer),
    )
    .await;
    assert!(early.is_err(), "answered over the limit: {answer:?}");
    tokio::time::timeout(Duration::from_secs(10), fifth.read_to_string(&mut answer))
        .await
        .expect("answered once a held connection closed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for holder in holders {
        holder.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_a_server_exposed_without_a_token_warns_at_start() {
    let exposed = ServerProcess::start_on_every_interface("harden_exposed", &[]).await;
    assert!(
        exposed.log().contains("EXPOSED WITHOUT A TOKEN"),
        "{}",
        exposed.log()
    );
    let guarded = ServerProcess::start_on_every_interface(
        "harden_exposed_token",
        &[("MUTANT_API_TOKEN", "secret")],
    )
    .await;
    let loopback = ServerProcess::start("harden_loopback").await;
    for quiet in [&guarded, &loopback] {
        assert!(
            !quiet.log().contains("EXPOSED WITHOUT A TOKEN"),
            "{}",
            quiet.log()
        );
    }
}
