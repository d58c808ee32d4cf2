//! Hostile input against a real server: arbitrary JSON to every route that
//! takes a body, arbitrary bytes as frames, and arbitrary paths. Whatever
//! arrives, the server answers (no hang), never with a 5xx, always with the
//! error shape on a 4xx, and stays up.

use mutant_client::{Client, NewDataset, Record};
use mutant_core::api::frame::FRAME_CONTENT_TYPE;
use mutant_tests::ServerProcess;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};

use crate::e2e_http::{Http, Reply};

/// Field names the routes know, mixed with others, so that generated bodies
/// reach past the first "unknown field" check.
const KEYS: [&str; 16] = [
    "name",
    "dimension",
    "metric",
    "metadata",
    "records",
    "id",
    "vector",
    "label",
    "filter",
    "ids",
    "queries",
    "k",
    "include",
    "kind",
    "target",
    "params",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |value| value.is_finite())
            .prop_map(Value::from),
        "[a-z$.]{0,12}".prop_map(Value::String),
        // Quotes, backslashes, SQL and control characters, any script.
        "\\PC{0,16}".prop_map(Value::String),
        "['\";\\\\%_*\\-]{1,6}".prop_map(Value::String),
        prop_oneof![
            Just("$in"),
            Just("$gte"),
            Just("cat"),
            Just("l2"),
            Just("mislabel"),
            Just("label")
        ]
        .prop_map(|text| Value::String(text.to_owned())),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        proptest::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
                        "[a-z$.]{1,8}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

fn check(reply: &Reply, what: &str) {
    assert!(
        reply.status < 500,
        "{what} got {}: {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    if reply.status >= 400 {
        let body: Value = serde_json::from_slice(&reply.body)
            .unwrap_or_else(|_| panic!("{what}: error body is not JSON"));
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{what}: {body}"
        );
    }
}

/// Sends `text` as a JSON body to each of `routes` and checks the answer.
async fn json_to_every_route(http: &Http, routes: &[(&str, &str)], text: &str) {
    for (method, route) in routes {
        let reply = http
            .send(
                method,
                route,
                &[("Content-Type", "application/json")],
                text.as_bytes(),
            )
            .await;
        check(&reply, &format!("{method} {route} {text}"));
    }
}

#[test]
fn arbitrary_json_bytes_and_paths_get_an_answer_never_a_server_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(ServerProcess::start("hostile"));
    let http = Http::new(&server);
    runtime.block_on(async {
        let client = Client::new(&server.url).unwrap();
        client
            .create_dataset(&NewDataset::new("h", 3))
            .await
            .unwrap();
        let records: Vec<Record> = (0..50)
            .map(|index| {
                Record::new(format!("r{index}"), vec![index as f32, 1.0, -1.0]).with_label("cat")
            })
            .collect();
        client.upsert("h", &records).await.unwrap();
    });
    let routes = [
        ("POST", "/v1/datasets"),
        ("PATCH", "/v1/datasets/h"),
        ("POST", "/v1/datasets/h/records"),
        ("POST", "/v1/datasets/h/records/get"),
        ("POST", "/v1/datasets/h/records/delete"),
        ("POST", "/v1/datasets/h/count"),
        ("POST", "/v1/datasets/h/knn"),
        ("POST", "/v1/analyses"),
    ];
    // Cases random search once found (`[[]]` read as `{"ids": []}` and sent
    // `IN ()` to ClickHouse), kept so they are tried on every run.
    let known_cases = [
        "[[]]",
        "[]",
        "null",
        "\"text\"",
        "7",
        r#"{"ids": []}"#,
        r#"{"filter": {"id": {"$in": []}}}"#,
        r#"{"filter": {"label": {"$nin": []}}}"#,
        r#"{"filter": {"$or": []}}"#,
        r#"{"filter": {"$and": []}}"#,
        r#"{"queries": [], "k": 1}"#,
        r#"{"records": []}"#,
    ];
    runtime.block_on(async {
        for text in known_cases {
            json_to_every_route(&http, &routes, text).await;
        }
        let reply = http
            .send(
                "POST",
                "/v1/datasets/h/records/get",
                &[("Content-Type", "application/json")],
                br#"{"ids": []}"#,
            )
            .await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"records": []}),
            "no ids, no records"
        );
        let reply = http
            .send(
                "POST",
                "/v1/datasets/h/count",
                &[("Content-Type", "application/json")],
                b"[]",
            )
            .await;
        assert_eq!(reply.status, 400, "a JSON array is not a request");
    });
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(
                json_value(),
                proptest::collection::vec(any::<u8>(), 0..200),
                "[a-zA-Z0-9/%._=?&-]{0,40}",
            ),
            |(body, bytes, path)| {
                runtime.block_on(async {
                    json_to_every_route(&http, &routes, &body.to_string()).await;
                    // Each route's own frame kind (1 a record batch, 2 a kNN
                    // query), so the random bytes reach its body decoder.
                    for (route, kind) in
                        [("/v1/datasets/h/records", 1u8), ("/v1/datasets/h/knn", 2)]
                    {
                        let reply = http
                            .send(
                                "POST",
                                route,
                                &[("Content-Type", FRAME_CONTENT_TYPE)],
                                &bytes,
                            )
                            .await;
                        check(&reply, &format!("frame to {route}"));
                        let mut framed = b"MUTF\x01\x00".to_vec();
                        framed.extend_from_slice(&[kind, 0]);
                        framed.extend_from_slice(&bytes);
                        let reply = http
                            .send(
                                "POST",
                                route,
                                &[("Content-Type", FRAME_CONTENT_TYPE)],
                                &framed,
                            )
                            .await;
                        check(&reply, &format!("framed bytes to {route}"));
                    }
                    let invalid_utf8 =
                        [b"{\"name\": \"".as_slice(), &[0xff, 0xfe], b"\"}"].concat();
                    check(
                        &http
                            .send(
                                "POST",
                                "/v1/datasets",
                                &[("Content-Type", "application/json")],
                                &invalid_utf8,
                            )
                            .await,
                        "invalid UTF-8",
                    );
                    let reply = http.send("GET", &format!("/{path}"), &[], b"").await;
                    check(&reply, &format!("GET /{path}"));
                    // The routes that read a query string, given random ones.
                    for route in [
                        "/v1/datasets",
                        "/v1/analyses/00000000-0000-4000-8000-000000000000/results",
                    ] {
                        let reply = http.send("GET", &format!("{route}?{path}"), &[], b"").await;
                        check(&reply, &format!("GET {route}?{path}"));
                    }
                });
                Ok(())
            },
        )
        .unwrap();
    let health = runtime.block_on(http.send("GET", "/healthz", &[], b""));
    assert_eq!(health.status, 200, "the server is still up");
}
