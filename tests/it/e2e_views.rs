//! End-to-end tests of what the web page reads (issue 15): the embedded page
//! under `/ui/` and its token rule, a dataset's summary, the list of
//! analyses, and an analysis's points frame (kind 4), against the real
//! server and ClickHouse.

use std::time::Duration;

use mutant_core::api::frame::FRAME_CONTENT_TYPE;
use mutant_core::api::points::decode_points;
use mutant_tests::ServerProcess;
use serde_json::{Value, json};

use crate::e2e_http::{Http, Reply};

async fn get(http: &Http, path: &str) -> Reply {
    http.send("GET", path, &[], b"").await
}

async fn post(http: &Http, path: &str, body: &Value) -> Value {
    let reply = http
        .send(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
        .await;
    assert!(
        reply.status < 300,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    serde_json::from_slice(&reply.body).unwrap()
}

fn json_of(reply: &Reply) -> Value {
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    serde_json::from_slice(&reply.body).unwrap()
}

async fn finished(http: &Http, id: &str) -> Value {
    for _ in 0..600 {
        let status = json_of(&get(http, &format!("/v1/analyses/{id}")).await);
        match status["status"].as_str() {
            Some("done") => return status,
            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("analysis {id} ended {other:?}: {status}"),
        }
    }
    panic!("analysis {id} did not finish in a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_summary_analyses_list_and_points_frame() {
    let server = ServerProcess::start("issue_15_views").await;
    let http = Http::new(&server);
    // Boxed steps in functions of their own: one function holding every
    // json! of this test overflows the test thread's stack in a debug build.
    Box::pin(seed_and_summarise(&http)).await;
    let (layout_id, mislabel_id, pairs_id) = Box::pin(run_analyses(&http)).await;
    Box::pin(list_analyses(&http)).await;
    Box::pin(read_points(&http, &layout_id, &mislabel_id, &pairs_id)).await;
}

fn record(index: usize) -> Value {
    let class = index % 2;
    let name = if class == 0 { "a" } else { "b" };
    let vector = [
        class as f32 * 10.0 + (index as f32 * 0.37).sin(),
        (index as f32 * 0.71).cos(),
    ];
    let mut record = json!({"id": format!("r{index}"), "vector": vector, "prediction": name});
    if index < 30 {
        record["label"] = json!(name);
    }
    record
}

async fn seed_and_summarise(http: &Http) {
    post(
        http,
        "/v1/datasets",
        &json!({"name": "views", "dimension": 2}),
    )
    .await;
    let records: Vec<Value> = (0..40).map(record).collect();
    post(
        http,
        "/v1/datasets/views/records",
        &json!({"records": records}),
    )
    .await;
    let summary = json_of(&get(http, "/v1/datasets/views/summary").await);
    assert_eq!(summary["name"], "views");
    assert_eq!(summary["record_count"], 40);
    assert_eq!(summary["n_labelled"], 30);
    assert_eq!(summary["n_predicted"], 40);
    let classes = json!([
        {"name": "a", "labels": 15, "predictions": 20},
        {"name": "b", "labels": 15, "predictions": 20}
    ]);
    assert_eq!(summary["classes"], classes);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let last_write = summary["last_write_ms"].as_u64().unwrap();
    assert!(
        now_ms.abs_diff(last_write) < 60_000,
        "{last_write} vs {now_ms}"
    );
    assert_eq!(get(http, "/v1/datasets/nope/summary").await.status, 404);
}

async fn start(http: &Http, request: Value) -> String {
    let started = post(http, "/v1/analyses", &request).await;
    let id = started["id"].as_str().unwrap().to_owned();
    finished(http, &id).await;
    id
}

async fn run_analyses(http: &Http) -> (String, String, String) {
    let layout =
        json!({"kind": "projection", "target": "views", "params": {"method": "layout", "seed": 3}});
    let layout_id = start(http, layout).await;
    let mislabel_id = start(http, json!({"kind": "mislabel", "target": "views"})).await;
    let pairs_id = start(http, json!({"kind": "near_duplicates", "target": "views"})).await;
    let results = json_of(&get(http, &format!("/v1/analyses/{layout_id}/results?limit=1")).await);
    assert_eq!(results["summary"]["method"], "layout");
    let status = json_of(&get(http, &format!("/v1/analyses/{layout_id}")).await);
    assert_eq!(status["params"], json!({"method": "layout", "seed": 3}));
    (layout_id, mislabel_id, pairs_id)
}

async fn list_analyses(http: &Http) {
    // Newest first, in their final state, and only the target's.
    let listed = json_of(&get(http, "/v1/analyses?target=views").await);
    let analyses = listed["analyses"].as_array().unwrap();
    let kinds: Vec<&str> = analyses
        .iter()
        .map(|status| status["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["near_duplicates", "mislabel", "projection"]);
    assert!(analyses.iter().all(|status| status["status"] == "done"));
    let limited = json_of(&get(http, "/v1/analyses?limit=1").await);
    assert_eq!(limited["analyses"].as_array().unwrap().len(), 1);
    assert_eq!(get(http, "/v1/analyses?target=nope").await.status, 404);
}

async fn read_points(http: &Http, layout_id: &str, mislabel_id: &str, pairs_id: &str) {
    let reply = get(http, &format!("/v1/analyses/{layout_id}/points")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type.as_deref(), Some(FRAME_CONTENT_TYPE));
    let points = decode_points(&reply.body).unwrap();
    assert_eq!((points.ids.len(), points.n_components), (40, 2));
    assert!(points.coordinates.iter().all(|value| value.is_finite()));
    assert!(points.scores.iter().all(|score| score.is_nan()));
    let name = |code: Option<u32>| code.map(|code| points.classes[code as usize].as_str());
    let row = points.ids.iter().position(|id| id == "r3").unwrap();
    assert_eq!(name(points.labels[row]), Some("b"));
    assert_eq!(name(points.predictions[row]), Some("b"));
    let unlabelled = points.ids.iter().position(|id| id == "r35").unwrap();
    assert_eq!(points.labels[unlabelled], None);

    let reply = get(http, &format!("/v1/analyses/{mislabel_id}/points")).await;
    let scored = decode_points(&reply.body).unwrap();
    assert_eq!((scored.ids.len(), scored.n_components), (40, 0));
    assert!(scored.scores.iter().all(|score| score.is_finite()));
    assert!(scored.flagged.iter().all(Option::is_some));

    let pairs = get(http, &format!("/v1/analyses/{pairs_id}/points")).await;
    assert_eq!(
        pairs.status,
        400,
        "{}",
        String::from_utf8_lossy(&pairs.body)
    );
    let unknown = format!("/v1/analyses/{}/points", uuid::Uuid::new_v4());
    assert_eq!(get(http, &unknown).await.status, 404);
    assert_eq!(
        get(http, "/v1/analyses/not-a-uuid/points").await.status,
        400
    );
    let points_path = format!("/v1/analyses/{layout_id}/points");
    assert_eq!(http.send("POST", &points_path, &[], b"").await.status, 405);
    let summary_path = "/v1/datasets/views/summary";
    assert_eq!(
        http.send("DELETE", summary_path, &[], b"").await.status,
        405
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_15_the_page_is_embedded_and_loads_without_the_token() {
    let server =
        ServerProcess::start_with("issue_15_page", &[("MUTANT_API_TOKEN", "secret")]).await;
    let http = Http::new(&server);
    for path in [
        "/ui/",
        "/ui",
        "/ui/datasets/train",
        "/ui/analyses/0d7f3f8e-5c2b-4a8e-9b61-3f2d1c0e9a77",
    ] {
        let reply = get(&http, path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            reply.content_type.as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert!(String::from_utf8_lossy(&reply.body).contains("/ui/assets/regl-scatterplot.js"));
    }
    for (asset, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("points.js", "text/javascript; charset=utf-8"),
        ("regl-scatterplot.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("LICENSES.txt", "text/plain; charset=utf-8"),
    ] {
        let reply = get(&http, &format!("/ui/assets/{asset}")).await;
        assert_eq!(
            (reply.status, reply.content_type.as_deref()),
            (200, Some(content_type)),
            "{asset}"
        );
        assert!(!reply.body.is_empty());
    }
    assert_eq!(get(&http, "/ui/assets/missing.js").await.status, 404);
    assert_eq!(get(&http, "/ui/other/page").await.status, 404);
    assert_eq!(http.send("POST", "/ui/", &[], b"").await.status, 405);
    // The API behind the page keeps its token.
    assert_eq!(get(&http, "/v1/analyses").await.status, 401);
    assert_eq!(get(&http, "/v1/datasets").await.status, 401);
    assert_eq!(
        get(&http.with_token("secret"), "/v1/analyses").await.status,
        200
    );
}
