//! End-to-end tests over raw HTTP/1.1 against the real `mutant-server` and a
//! real ClickHouse: every route's status, every error code with its status
//! and its `{"error": {"code", "message"}}` body, and after every refused
//! write, stored data left exactly as it was.
//!
//! Not covered: `503 store_unavailable` (ClickHouse cannot be stopped from
//! here), `empty_dataset` (only inside a failed analysis's message) and
//! `500 store_error`/`internal` (no reliable trigger through the API).

use std::time::Duration;

use mutant_core::api::frame::{
    FRAME_CONTENT_TYPE, decode_knn_result, encode_knn_query, encode_record_batch,
};
use mutant_core::api::wire::KnnRequest;
use mutant_core::model::Record;
use mutant_tests::ServerProcess;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JSON: &str = "application/json";

/// How long a raw request waits for the whole answer before it fails the
/// test as a hang.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }

    /// Asserts a success status and returns the JSON body.
    pub(crate) fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        self.json()
    }
}

/// A tiny HTTP/1.1 client: one connection per request, `Connection: close`.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    address: String,
    token: Option<String>,
}

impl Http {
    pub(crate) fn new(server: &ServerProcess) -> Http {
        Http {
            address: server.url.trim_start_matches("http://").to_owned(),
            token: None,
        }
    }

    pub(crate) fn with_token(&self, token: &str) -> Http {
        Http {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Sends a request; `headers` may include `Transfer-Encoding: chunked`,
    /// in which case `body` is sent as is, without `Content-Length`.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut stream = tokio::net::TcpStream::connect(&self.address).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.address
        );
        let chunked = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("transfer-encoding"));
        if !chunked {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        // The server may answer (413) and close before reading the whole body.
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body).await;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 64 * 1024];
        let read_answer = async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) => break,
                    Ok(n) => answer.extend_from_slice(&buffer[..n]),
                    Err(error) if !answer.is_empty() => {
                        eprintln!("connection ended with {error} after the answer");
                        break;
                    }
                    Err(error) => panic!("{method} {path}: no answer: {error}"),
                }
            }
        };
        // A request the server never answers is a hang, and fails the test.
        if tokio::time::timeout(ANSWER_TIMEOUT, read_answer)
            .await
            .is_err()
        {
            panic!("{method} {path}: no answer within {ANSWER_TIMEOUT:?}, the server hangs");
        }
        let split = answer
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&answer)));
        let head = std::str::from_utf8(&answer[..split]).unwrap();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {head:?}"));
        let content_type = head.lines().skip(1).find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        });
        let chunked = head.lines().skip(1).any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("transfer-encoding") && value.trim() == "chunked"
            })
        });
        let body = &answer[split + 4..];
        Reply {
            status,
            content_type,
            body: if chunked {
                dechunk(body)
            } else {
                body.to_vec()
            },
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], b"").await
    }

    pub(crate) async fn json(&self, method: &str, path: &str, body: &Value) -> Reply {
        self.send(
            method,
            path,
            &[("Content-Type", JSON)],
            body.to_string().as_bytes(),
        )
        .await
    }

    async fn frame(&self, path: &str, frame: &[u8]) -> Reply {
        self.send("POST", path, &[("Content-Type", FRAME_CONTENT_TYPE)], frame)
            .await
    }

    /// Every record of a dataset with every field, in id order.
    async fn snapshot(&self, dataset: &str) -> Value {
        let path = format!("/v1/datasets/{dataset}/records/get");
        let body = json!({"limit": 10_000, "include": ["vector", "label", "prediction", "uri", "metadata"]});
        self.json("POST", &path, &body).await.ok(200)
    }

    async fn count(&self, dataset: &str) -> u64 {
        let path = format!("/v1/datasets/{dataset}/count");
        self.json("POST", &path, &json!({})).await.ok(200)["count"]
            .as_u64()
            .unwrap()
    }
}

/// The body of a chunked answer: each chunk is its size in hex, CRLF, the
/// bytes, CRLF; a zero size ends it.
fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = chunked
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("a chunk size line");
        let size_text = std::str::from_utf8(&chunked[..line_end]).expect("an ASCII chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("a hexadecimal chunk size");
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&chunked[start..start + size]);
        chunked = &chunked[start + size + 2..];
    }
}

/// Asserts an error answer: its status, a JSON body that is exactly
/// `{"error": {"code", "message"}}`, and its code.
#[track_caller]
pub(crate) fn assert_error(reply: &Reply, status: u16, code: &str) {
    if let Err(problem) = check_error(reply, status, code) {
        panic!("{problem}");
    }
}

/// What [`assert_error`] asserts, as a `Result` to collect several failures.
fn check_error(reply: &Reply, status: u16, code: &str) -> Result<(), String> {
    let wrong = |what: &str| {
        Err(format!(
            "expected {status} {code}, got {} {} ({what})",
            reply.status,
            reply.text().chars().take(300).collect::<String>()
        ))
    };
    if reply.status != status {
        return wrong("status");
    }
    if !reply
        .content_type
        .as_deref()
        .is_some_and(|content_type| content_type.starts_with(JSON))
    {
        return wrong("the Content-Type of an error is application/json");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&reply.body) else {
        return wrong("the body is not JSON");
    };
    let top: Option<Vec<&String>> = body.as_object().map(|object| object.keys().collect());
    if top != Some(vec![&"error".to_owned()]) {
        return wrong("the body is not {\"error\": ...}");
    }
    let mut keys: Vec<&String> = body["error"]
        .as_object()
        .map(|object| object.keys().collect())
        .unwrap_or_default();
    keys.sort();
    if keys != ["code", "message"] {
        return wrong("the error has not exactly code and message");
    }
    if body["error"]["code"] != code {
        return wrong("code");
    }
    if body["error"]["message"].as_str().is_none_or(str::is_empty) {
        return wrong("the message is empty");
    }
    Ok(())
}

/// One request expected to be refused.
struct Refused {
    what: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn refused_json(
    what: &'static str,
    method: &'static str,
    path: &str,
    body: &Value,
    status: u16,
    code: &'static str,
) -> Refused {
    refused_raw(
        what,
        method,
        path,
        Some(JSON),
        body.to_string().into_bytes(),
        status,
        code,
    )
}

fn refused_raw(
    what: &'static str,
    method: &'static str,
    path: &str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
) -> Refused {
    Refused {
        what,
        method,
        path: path.to_owned(),
        content_type,
        body,
        status,
        code,
    }
}

fn sample_records() -> Value {
    json!({"records": [
        {"id": "a", "vector": [0.0, 0.0, 0.0], "label": "cat", "prediction": "cat",
         "uri": "s3://b/a.png", "metadata": {"camera": "front", "n": 1}},
        {"id": "b", "vector": [1.0, 0.0, 0.0], "label": "dog", "prediction": "cat"},
        {"id": "c", "vector": [0.0, 3.0, 4.0], "label": "cat", "metadata": {"night": true}},
    ]})
}

/// Every 4xx the default configuration can give, each on a request that would
/// otherwise have changed data, and the data checked unchanged after each.
#[test]
fn every_error_code_has_its_status_and_leaves_data_unchanged() {
    crate::e2e_support::run(every_error_code_has_its_status_and_leaves_data_unchanged_body);
}

async fn every_error_code_has_its_status_and_leaves_data_unchanged_body() {
    let server = ServerProcess::start("http_errors").await;
    let http = Http::new(&server);

    let created = http
        .json(
            "POST",
            "/v1/datasets",
            &json!({"name": "items", "dimension": 3, "metric": "l2", "metadata": {"team": "qa"}}),
        )
        .await
        .ok(201);
    assert_eq!(created["name"], "items");
    assert_eq!(created["record_count"], 0);
    let other = http
        .json(
            "POST",
            "/v1/datasets",
            &json!({"name": "other", "dimension": 3}),
        )
        .await
        .ok(201);
    assert_eq!(other["metric"], "l2");
    let written = http
        .json("POST", "/v1/datasets/items/records", &sample_records())
        .await
        .ok(200);
    assert_eq!(written, json!({"written": 3}));
    let before = http.snapshot("items").await;
    assert_eq!(before["records"].as_array().unwrap().len(), 3);
    let catalogue_before = http.get("/v1/datasets").await.ok(200);

    let records = "/v1/datasets/items/records";
    let knn = "/v1/datasets/items/knn";
    let count = "/v1/datasets/items/count";
    let get = "/v1/datasets/items/records/get";
    let delete = "/v1/datasets/items/records/delete";
    let missing_analysis = "/v1/analyses/3f0c4a1e-9b7d-4c2a-8e6f-1a2b3c4d5e6f";
    let deep_json = format!(
        r#"{{"name": "deep", "dimension": 3, "metadata": {{"a": {}1{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let mut deep_filter = json!({"label": "cat"});
    for _ in 0..40 {
        deep_filter = json!({"$and": [deep_filter]});
    }
    let nan_batch = encode_record_batch(&[
        Record::new("a", vec![9.0, 9.0, 9.0]),
        Record::new("new", vec![1.0, 1.0, 1.0]),
        Record::new("nan", vec![1.0, f32::NAN, 0.0]),
    ]);
    let infinite_batch = encode_record_batch(&[Record::new("inf", vec![f32::INFINITY, 0.0, 0.0])]);
    let nan_query = encode_knn_query(&KnnRequest {
        queries: vec![vec![0.0, f32::NAN, 0.0]],
        k: 1,
        ..KnnRequest::default()
    });
    let good_frame = encode_record_batch(&[Record::new("new", vec![1.0, 1.0, 1.0])]);
    let mut truncated_frame = good_frame.clone();
    truncated_frame.truncate(good_frame.len() - 2);
    let mut trailing_frame = good_frame.clone();
    trailing_frame.extend_from_slice(b"xx");
    let mut wrong_version = good_frame.clone();
    wrong_version[4] = 9;
    let mut over_count = good_frame[..8].to_vec();
    over_count.extend_from_slice(&100_001u32.to_le_bytes());
    let nested_metadata_frame = {
        // A frame record whose metadata JSON is nested: built by hand, since
        // the model cannot hold nested metadata.
        let mut frame = b"MUTF".to_vec();
        frame.extend_from_slice(&1u16.to_le_bytes());
        frame.extend_from_slice(&1u16.to_le_bytes());
        frame.extend_from_slice(&1u32.to_le_bytes());
        frame.extend_from_slice(&3u32.to_le_bytes());
        frame.extend_from_slice(b"new");
        frame.extend_from_slice(&3u32.to_le_bytes());
        for value in [1.0f32, 1.0, 1.0] {
            frame.extend_from_slice(&value.to_le_bytes());
        }
        frame.push(8);
        let metadata = br#"{"nested":{"a":1}}"#;
        frame.extend_from_slice(&u32::try_from(metadata.len()).unwrap().to_le_bytes());
        frame.extend_from_slice(metadata);
        frame
    };
    // A long `$in` inside a larger filter is not split into several queries.
    let long_in: Vec<String> = (0..20_000)
        .map(|index| format!("s3://bucket/object-{index:08}"))
        .collect();
    let huge_filter = json!({"$and": [{"label": "cat"}, {"uri": {"$in": long_in}}]});
    let too_many: Vec<Value> = (0..100_001)
        .map(|index| json!({"id": format!("r{index}"), "vector": [0.0, 0.0, 0.0]}))
        .collect();
    // A good record and a replacement of "a" ride along with the bad one in
    // every refused batch: a refused batch must write none of them.
    let batch_with = |bad: Value| {
        json!({"records": [
            {"id": "a", "vector": [9.0, 9.0, 9.0], "label": "changed"},
            {"id": "new", "vector": [1.0, 1.0, 1.0]},
            bad,
        ]})
    };

    let cases = vec![
        // 400 invalid_json
        refused_raw(
            "malformed JSON",
            "POST",
            records,
            Some(JSON),
            br#"{"records": [{"id": "x""#.to_vec(),
            400,
            "invalid_json",
        ),
        refused_raw(
            "malformed JSON on create",
            "POST",
            "/v1/datasets",
            Some(JSON),
            b"{name: x}".to_vec(),
            400,
            "invalid_json",
        ),
        refused_json(
            "unknown field on create",
            "POST",
            "/v1/datasets",
            &json!({"name": "x", "dimension": 3, "colour": "red"}),
            400,
            "invalid_json",
        ),
        refused_json(
            "unknown field in a record",
            "POST",
            records,
            &batch_with(json!({"id": "z", "vector": [0.0, 0.0, 0.0], "colour": "red"})),
            400,
            "invalid_json",
        ),
        refused_json(
            "unknown field on get",
            "POST",
            get,
            &json!({"limit": 1, "sort": "id"}),
            400,
            "invalid_json",
        ),
        refused_json(
            "unknown field on knn",
            "POST",
            knn,
            &json!({"queries": [[0.0, 0.0, 0.0]], "k": 1, "metric": "l2"}),
            400,
            "invalid_json",
        ),
        refused_json(
            "unknown field on delete",
            "POST",
            delete,
            &json!({"ids": ["a"], "everything": true}),
            400,
            "invalid_json",
        ),
        refused_json(
            "unknown field on patch",
            "PATCH",
            "/v1/datasets/items",
            &json!({"name": "renamed", "dimension": 4}),
            400,
            "invalid_json",
        ),
        refused_json(
            "unknown include",
            "POST",
            get,
            &json!({"include": ["colour"]}),
            400,
            "invalid_json",
        ),
        refused_json(
            "negative dimension",
            "POST",
            "/v1/datasets",
            &json!({"name": "neg", "dimension": -3}),
            400,
            "invalid_json",
        ),
        refused_json(
            "missing dimension",
            "POST",
            "/v1/datasets",
            &json!({"name": "nodim"}),
            400,
            "invalid_json",
        ),
        refused_json(
            "vector of strings",
            "POST",
            records,
            &batch_with(json!({"id": "z", "vector": ["0", "0", "0"]})),
            400,
            "invalid_json",
        ),
        refused_raw(
            "deeply nested JSON",
            "POST",
            "/v1/datasets",
            Some(JSON),
            deep_json.into_bytes(),
            400,
            "invalid_json",
        ),
        // 400 invalid_filter
        refused_json(
            "unknown filter field",
            "POST",
            count,
            &json!({"filter": {"colour": "red"}}),
            400,
            "invalid_filter",
        ),
        refused_json(
            "unknown filter operator",
            "POST",
            get,
            &json!({"filter": {"label": {"$regex": "c.*"}}}),
            400,
            "invalid_filter",
        ),
        refused_json(
            "$in without a list",
            "POST",
            count,
            &json!({"filter": {"label": {"$in": "cat"}}}),
            400,
            "invalid_filter",
        ),
        refused_json(
            "filter nested too deep",
            "POST",
            count,
            &json!({"filter": deep_filter}),
            400,
            "invalid_filter",
        ),
        refused_json(
            "invalid filter on delete",
            "POST",
            delete,
            &json!({"filter": {"colour": "red"}}),
            400,
            "invalid_filter",
        ),
        refused_json(
            "invalid filter on knn",
            "POST",
            knn,
            &json!({"queries": [[0.0, 0.0, 0.0]], "k": 1, "filter": {"$nor": []}}),
            400,
            "invalid_filter",
        ),
        // 400 query_too_large
        refused_json(
            "filter over ClickHouse's query size",
            "POST",
            count,
            &json!({"filter": huge_filter}),
            400,
            "query_too_large",
        ),
        refused_json(
            "delete with a filter over ClickHouse's query size",
            "POST",
            delete,
            &json!({"filter": huge_filter}),
            400,
            "query_too_large",
        ),
        // 400 malformed_frame
        refused_raw(
            "garbage frame upsert",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            b"certainly not a frame".to_vec(),
            400,
            "malformed_frame",
        ),
        refused_raw(
            "garbage frame knn",
            "POST",
            knn,
            Some(FRAME_CONTENT_TYPE),
            b"MUTF\x01\x00\x02\x00\xff".to_vec(),
            400,
            "malformed_frame",
        ),
        refused_raw(
            "truncated frame",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            truncated_frame,
            400,
            "malformed_frame",
        ),
        refused_raw(
            "trailing bytes after a frame",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            trailing_frame,
            400,
            "malformed_frame",
        ),
        refused_raw(
            "unknown frame version",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            wrong_version,
            400,
            "malformed_frame",
        ),
        refused_raw(
            "record-batch frame to knn",
            "POST",
            knn,
            Some(FRAME_CONTENT_TYPE),
            good_frame.clone(),
            400,
            "malformed_frame",
        ),
        refused_raw(
            "empty frame body",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            Vec::new(),
            400,
            "malformed_frame",
        ),
        // 400 invalid_parameter
        refused_json(
            "k = 0",
            "POST",
            knn,
            &json!({"queries": [[0.0, 0.0, 0.0]], "k": 0}),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "k over 10,000",
            "POST",
            knn,
            &json!({"queries": [[0.0, 0.0, 0.0]], "k": 10_001}),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "no queries",
            "POST",
            knn,
            &json!({"queries": [], "k": 1}),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "bad analysis kind",
            "POST",
            "/v1/analyses",
            &json!({"kind": "astrology", "target": "items"}),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "unknown analysis param",
            "POST",
            "/v1/analyses",
            &json!({"kind": "mislabel", "target": "items", "params": {"kk": 3}}),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "analysis k = 0",
            "POST",
            "/v1/analyses",
            &json!({"kind": "uniqueness", "target": "items", "params": {"k": 0}}),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "select without n",
            "POST",
            "/v1/analyses",
            &json!({"kind": "select", "target": "items"}),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "drift without a reference",
            "POST",
            "/v1/analyses",
            &json!({"kind": "drift", "target": "items"}),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "mislabel with a reference",
            "POST",
            "/v1/analyses",
            &json!({"kind": "mislabel", "target": "items", "reference": "other"}),
            400,
            "invalid_parameter",
        ),
        refused_raw(
            "results limit not a number",
            "GET",
            &format!("{missing_analysis}/results?limit=ten"),
            None,
            Vec::new(),
            400,
            "invalid_parameter",
        ),
        refused_raw(
            "results offset negative",
            "GET",
            &format!("{missing_analysis}/results?offset=-1"),
            None,
            Vec::new(),
            400,
            "invalid_parameter",
        ),
        refused_raw(
            "analysis id not a UUID",
            "GET",
            "/v1/analyses/not-a-uuid",
            None,
            Vec::new(),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "get limit over 10,000",
            "POST",
            get,
            &json!({"limit": 10_001}),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "delete without ids or filter",
            "POST",
            delete,
            &json!({}),
            400,
            "invalid_parameter",
        ),
        refused_raw(
            "delete with an empty body",
            "POST",
            delete,
            Some(JSON),
            Vec::new(),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "patch with metadata and metadata_patch",
            "PATCH",
            "/v1/datasets/items",
            &json!({"metadata": {}, "metadata_patch": {}}),
            400,
            "invalid_parameter",
        ),
        refused_json(
            "record without vector",
            "POST",
            records,
            &batch_with(json!({"id": "z"})),
            400,
            "invalid_parameter",
        ),
        refused_raw(
            "metadata pattern not an object",
            "GET",
            "/v1/datasets?metadata=%5B1%5D",
            None,
            Vec::new(),
            400,
            "invalid_parameter",
        ),
        refused_raw(
            "metadata pattern not JSON",
            "GET",
            "/v1/datasets?metadata=team",
            None,
            Vec::new(),
            400,
            "invalid_parameter",
        ),
        refused_raw(
            "bad percent escape",
            "GET",
            "/v1/datasets?metadata=%zz",
            None,
            Vec::new(),
            400,
            "invalid_parameter",
        ),
        // 400 invalid_dataset_name, invalid_dimension, unknown_metric
        refused_json(
            "name starting with a digit",
            "POST",
            "/v1/datasets",
            &json!({"name": "1st", "dimension": 3}),
            400,
            "invalid_dataset_name",
        ),
        refused_json(
            "name with a space",
            "POST",
            "/v1/datasets",
            &json!({"name": "my set", "dimension": 3}),
            400,
            "invalid_dataset_name",
        ),
        refused_json(
            "empty name",
            "POST",
            "/v1/datasets",
            &json!({"name": "", "dimension": 3}),
            400,
            "invalid_dataset_name",
        ),
        refused_json(
            "UUID-shaped name",
            "POST",
            "/v1/datasets",
            &json!({"name": "3f0c4a1e-9b7d-4c2a-8e6f-1a2b3c4d5e6f", "dimension": 3}),
            400,
            "invalid_dataset_name",
        ),
        refused_json(
            "rename to a bad name",
            "PATCH",
            "/v1/datasets/items",
            &json!({"name": "bad/name"}),
            400,
            "invalid_dataset_name",
        ),
        refused_json(
            "dimension 0",
            "POST",
            "/v1/datasets",
            &json!({"name": "zero", "dimension": 0}),
            400,
            "invalid_dimension",
        ),
        refused_json(
            "dimension over 65,536",
            "POST",
            "/v1/datasets",
            &json!({"name": "huge", "dimension": 65_537}),
            400,
            "invalid_dimension",
        ),
        refused_json(
            "unknown metric",
            "POST",
            "/v1/datasets",
            &json!({"name": "manhattan", "dimension": 3, "metric": "manhattan"}),
            400,
            "unknown_metric",
        ),
        // 404
        refused_raw(
            "unknown route",
            "GET",
            "/v1/nothing-here",
            None,
            Vec::new(),
            404,
            "not_found",
        ),
        refused_raw(
            "unknown dataset sub-route",
            "POST",
            "/v1/datasets/items/vacuum",
            Some(JSON),
            b"{}".to_vec(),
            404,
            "not_found",
        ),
        refused_raw(
            "unversioned path",
            "GET",
            "/datasets",
            None,
            Vec::new(),
            404,
            "not_found",
        ),
        refused_raw(
            "unknown dataset get",
            "GET",
            "/v1/datasets/ghost",
            None,
            Vec::new(),
            404,
            "unknown_dataset",
        ),
        refused_raw(
            "unknown dataset by UUID",
            "GET",
            "/v1/datasets/3f0c4a1e-9b7d-4c2a-8e6f-1a2b3c4d5e6f",
            None,
            Vec::new(),
            404,
            "unknown_dataset",
        ),
        refused_json(
            "unknown dataset patch",
            "PATCH",
            "/v1/datasets/ghost",
            &json!({"name": "ghost2"}),
            404,
            "unknown_dataset",
        ),
        refused_raw(
            "unknown dataset delete",
            "DELETE",
            "/v1/datasets/ghost",
            None,
            Vec::new(),
            404,
            "unknown_dataset",
        ),
        refused_json(
            "unknown dataset upsert",
            "POST",
            "/v1/datasets/ghost/records",
            &sample_records(),
            404,
            "unknown_dataset",
        ),
        refused_json(
            "unknown dataset get records",
            "POST",
            "/v1/datasets/ghost/records/get",
            &json!({}),
            404,
            "unknown_dataset",
        ),
        refused_json(
            "unknown dataset delete records",
            "POST",
            "/v1/datasets/ghost/records/delete",
            &json!({"ids": ["a"]}),
            404,
            "unknown_dataset",
        ),
        refused_json(
            "unknown dataset count",
            "POST",
            "/v1/datasets/ghost/count",
            &json!({}),
            404,
            "unknown_dataset",
        ),
        refused_json(
            "unknown dataset knn",
            "POST",
            "/v1/datasets/ghost/knn",
            &json!({"queries": [[0.0, 0.0, 0.0]], "k": 1}),
            404,
            "unknown_dataset",
        ),
        refused_json(
            "unknown analysis target",
            "POST",
            "/v1/analyses",
            &json!({"kind": "mislabel", "target": "ghost"}),
            404,
            "unknown_dataset",
        ),
        refused_json(
            "unknown analysis reference",
            "POST",
            "/v1/analyses",
            &json!({"kind": "novelty", "target": "items", "reference": "ghost"}),
            404,
            "unknown_dataset",
        ),
        refused_raw(
            "unknown analysis status",
            "GET",
            missing_analysis,
            None,
            Vec::new(),
            404,
            "unknown_analysis",
        ),
        refused_raw(
            "unknown analysis results",
            "GET",
            &format!("{missing_analysis}/results"),
            None,
            Vec::new(),
            404,
            "unknown_analysis",
        ),
        refused_raw(
            "unknown analysis cancel",
            "DELETE",
            missing_analysis,
            None,
            Vec::new(),
            404,
            "unknown_analysis",
        ),
        // 405
        refused_raw(
            "PUT on datasets",
            "PUT",
            "/v1/datasets",
            Some(JSON),
            b"{}".to_vec(),
            405,
            "method_not_allowed",
        ),
        refused_raw(
            "GET on records",
            "GET",
            records,
            None,
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        refused_raw(
            "DELETE on records/delete",
            "DELETE",
            delete,
            None,
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        refused_raw(
            "POST on a dataset",
            "POST",
            "/v1/datasets/items",
            Some(JSON),
            b"{}".to_vec(),
            405,
            "method_not_allowed",
        ),
        refused_raw(
            "POST on heartbeat",
            "POST",
            "/v1/heartbeat",
            None,
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        refused_raw(
            "DELETE on version",
            "DELETE",
            "/v1/version",
            None,
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        refused_raw(
            "POST on metrics",
            "POST",
            "/metrics",
            None,
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        refused_raw(
            "PUT on analyses",
            "PUT",
            "/v1/analyses",
            None,
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        refused_raw(
            "POST on analysis results",
            "POST",
            &format!("{missing_analysis}/results"),
            None,
            Vec::new(),
            405,
            "method_not_allowed",
        ),
        // 409
        refused_json(
            "create an existing name",
            "POST",
            "/v1/datasets",
            &json!({"name": "items", "dimension": 5}),
            409,
            "dataset_exists",
        ),
        refused_json(
            "rename onto an existing name",
            "PATCH",
            "/v1/datasets/other",
            &json!({"name": "items"}),
            409,
            "dataset_exists",
        ),
        // 413
        refused_json(
            "JSON batch over 100,000 records",
            "POST",
            records,
            &json!({"records": too_many}),
            413,
            "batch_too_large",
        ),
        refused_raw(
            "frame over 100,000 records",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            over_count,
            413,
            "batch_too_large",
        ),
        // 415
        refused_raw(
            "text/plain create",
            "POST",
            "/v1/datasets",
            Some("text/plain"),
            br#"{"name": "t", "dimension": 3}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        refused_raw(
            "form-encoded upsert (curl -d)",
            "POST",
            records,
            Some("application/x-www-form-urlencoded"),
            sample_records().to_string().into_bytes(),
            415,
            "unsupported_media_type",
        ),
        refused_raw(
            "frame to count",
            "POST",
            count,
            Some(FRAME_CONTENT_TYPE),
            good_frame.clone(),
            415,
            "unsupported_media_type",
        ),
        refused_raw(
            "frame to delete",
            "POST",
            delete,
            Some(FRAME_CONTENT_TYPE),
            good_frame.clone(),
            415,
            "unsupported_media_type",
        ),
        refused_raw(
            "frame to analyses",
            "POST",
            "/v1/analyses",
            Some(FRAME_CONTENT_TYPE),
            good_frame.clone(),
            415,
            "unsupported_media_type",
        ),
        // 422
        refused_json(
            "record of the wrong dimension",
            "POST",
            records,
            &batch_with(json!({"id": "z", "vector": [0.0, 0.0]})),
            422,
            "dimension_mismatch",
        ),
        refused_raw(
            "frame record of the wrong dimension",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            encode_record_batch(&[Record::new("new", vec![1.0; 4])]),
            422,
            "dimension_mismatch",
        ),
        refused_json(
            "knn query of the wrong dimension",
            "POST",
            knn,
            &json!({"queries": [[0.0, 0.0, 0.0], [0.0, 0.0]], "k": 1}),
            422,
            "dimension_mismatch",
        ),
        refused_raw(
            "NaN in a frame batch",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            nan_batch,
            422,
            "non_finite_value",
        ),
        refused_raw(
            "infinity in a frame batch",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            infinite_batch,
            422,
            "non_finite_value",
        ),
        refused_raw(
            "NaN in a frame knn query",
            "POST",
            knn,
            Some(FRAME_CONTENT_TYPE),
            nan_query,
            422,
            "non_finite_value",
        ),
        refused_json(
            "JSON number too large for f32",
            "POST",
            records,
            &batch_with(json!({"id": "z", "vector": [1e39, 0.0, 0.0]})),
            400,
            "invalid_json",
        ),
        refused_json(
            "duplicate id in a batch",
            "POST",
            records,
            &batch_with(json!({"id": "new", "vector": [2.0, 2.0, 2.0]})),
            422,
            "duplicate_record_id",
        ),
        refused_json(
            "empty batch",
            "POST",
            records,
            &json!({"records": []}),
            422,
            "empty_batch",
        ),
        refused_raw(
            "empty frame batch",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            encode_record_batch(&[]),
            422,
            "empty_batch",
        ),
        refused_json(
            "empty id",
            "POST",
            records,
            &batch_with(json!({"id": "", "vector": [0.0, 0.0, 0.0]})),
            422,
            "empty_record_id",
        ),
        refused_json(
            "nested record metadata",
            "POST",
            records,
            &batch_with(
                json!({"id": "z", "vector": [0.0, 0.0, 0.0], "metadata": {"box": {"x": 1}}}),
            ),
            422,
            "invalid_metadata",
        ),
        refused_json(
            "null record metadata value",
            "POST",
            records,
            &batch_with(json!({"id": "z", "vector": [0.0, 0.0, 0.0], "metadata": {"x": null}})),
            422,
            "invalid_metadata",
        ),
        refused_json(
            "bad metadata key",
            "POST",
            records,
            &batch_with(json!({"id": "z", "vector": [0.0, 0.0, 0.0], "metadata": {"a key": 1}})),
            422,
            "invalid_metadata",
        ),
        refused_raw(
            "nested metadata in a frame",
            "POST",
            records,
            Some(FRAME_CONTENT_TYPE),
            nested_metadata_frame,
            422,
            "invalid_metadata",
        ),
        refused_json(
            "empty label",
            "POST",
            records,
            &batch_with(json!({"id": "z", "vector": [0.0, 0.0, 0.0], "label": ""})),
            422,
            "empty_field",
        ),
        refused_json(
            "id over 512 bytes",
            "POST",
            records,
            &batch_with(json!({"id": "x".repeat(513), "vector": [0.0, 0.0, 0.0]})),
            422,
            "field_too_long",
        ),
    ];

    let mut failures = Vec::new();
    for case in &cases {
        let headers: Vec<(&str, &str)> = case
            .content_type
            .map(|content_type| ("Content-Type", content_type))
            .into_iter()
            .collect();
        let reply = http
            .send(case.method, &case.path, &headers, &case.body)
            .await;
        if let Err(problem) = check_error(&reply, case.status, case.code) {
            failures.push(format!(
                "{} ({} {}): {problem}",
                case.what,
                case.method,
                case.path.chars().take(80).collect::<String>(),
            ));
        }
        let after = http.snapshot("items").await;
        if after != before {
            failures.push(format!(
                "{}: stored records changed: {after} instead of {before}",
                case.what
            ));
        }
    }
    let catalogue_after = http.get("/v1/datasets").await.ok(200);
    assert_eq!(catalogue_after, catalogue_before, "the catalogue changed");
    assert_eq!(http.count("items").await, 3);
    assert!(
        failures.is_empty(),
        "{} of {} refusals went wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The server survived all of it.
    assert_eq!(http.get("/healthz").await.status, 200);
}

/// The successful answers of every route, in JSON and frames, their statuses
/// and shapes, and `/metrics`.
#[test]
fn every_route_answers_with_its_status_and_shape() {
    crate::e2e_support::run(every_route_answers_with_its_status_and_shape_body);
}

async fn every_route_answers_with_its_status_and_shape_body() {
    let server = ServerProcess::start("http_routes").await;
    let http = Http::new(&server);

    let health = http.get("/healthz").await;
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    let heartbeat = http.get("/v1/heartbeat").await.ok(200);
    assert!(heartbeat["nanos"].as_u64().unwrap() > 1_600_000_000_000_000_000);
    let version = http.get("/v1/version").await.ok(200);
    assert_eq!(version["protocol"], mutant_client::PROTOCOL_VERSION);
    assert!(!version["mutant"].as_str().unwrap().is_empty());
    assert!(!version["clickhouse"].as_str().unwrap().is_empty());
    // Trailing slashes are trimmed.
    assert_eq!(http.get("/v1/heartbeat/").await.status, 200);

    // Datasets: create 201, get with record_count, list, find, patch, delete 204.
    let created = http
        .json(
            "POST",
            "/v1/datasets",
            &json!({"name": "shapes", "dimension": 3, "metric": "l2", "metadata": {"team": "qa", "split": "train"}}),
        )
        .await
        .ok(201);
    let id = created["id"].as_str().unwrap().to_owned();
    // No Content-Type at all reads as JSON, and an empty body as `{}`.
    let plain = http
        .send(
            "POST",
            "/v1/datasets",
            &[],
            br#"{"name": "plain", "dimension": 2, "metric": "cosine"}"#,
        )
        .await
        .ok(201);
    assert_eq!(plain["metric"], "cosine");
    assert_eq!(plain["metadata"], json!({}));
    let written = http
        .json("POST", "/v1/datasets/shapes/records", &sample_records())
        .await
        .ok(200);
    assert_eq!(written["written"], 3);
    let got = http.get("/v1/datasets/shapes").await.ok(200);
    assert_eq!(got["record_count"], 3);
    assert_eq!(got["id"], id.as_str());
    assert_eq!(
        http.get(&format!("/v1/datasets/{id}")).await.ok(200)["name"],
        "shapes"
    );
    let listed = http.get("/v1/datasets").await.ok(200);
    let names: Vec<&str> = listed["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dataset| dataset["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["plain", "shapes"]);
    let found = http
        .get("/v1/datasets?metadata=%7B%22team%22%3A%22qa%22%7D")
        .await
        .ok(200);
    assert_eq!(found["datasets"].as_array().unwrap().len(), 1);
    assert_eq!(found["datasets"][0]["name"], "shapes");
    let patched = http
        .json(
            "PATCH",
            "/v1/datasets/shapes",
            &json!({"metadata_patch": {"split": null, "stage": "prod"}}),
        )
        .await
        .ok(200);
    assert_eq!(patched["metadata"], json!({"team": "qa", "stage": "prod"}));

    // Records: get, count, delete.
    let page = http
        .json(
            "POST",
            "/v1/datasets/shapes/records/get",
            &json!({"ids": ["c", "a"], "include": ["label", "vector"]}),
        )
        .await
        .ok(200);
    assert_eq!(
        page,
        json!({"records": [
            {"id": "a", "vector": [0.0, 0.0, 0.0], "label": "cat"},
            {"id": "c", "vector": [0.0, 3.0, 4.0], "label": "cat"},
        ]})
    );
    let counted = http
        .json(
            "POST",
            "/v1/datasets/shapes/count",
            &json!({"filter": {"label": "cat"}}),
        )
        .await
        .ok(200);
    assert_eq!(counted, json!({"count": 2}));

    // kNN in JSON: `{"results": [[{"id", "distance", ...}]]}`, nearest first.
    let answer = http
        .json(
            "POST",
            "/v1/datasets/shapes/knn",
            &json!({"queries": [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], "k": 2, "include": ["label"]}),
        )
        .await;
    assert!(answer.content_type.as_deref().unwrap().starts_with(JSON));
    let answer = answer.ok(200);
    assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[0],
        json!([
            {"id": "a", "distance": 0.0, "label": "cat"},
            {"id": "b", "distance": 1.0, "label": "dog"},
        ])
    );
    assert_eq!(results[1][0]["id"], "b");
    assert_eq!(results[1][1]["id"], "a");
    // Without include: only id and distance.
    let bare = http
        .json(
            "POST",
            "/v1/datasets/shapes/knn",
            &json!({"queries": [[0.0, 3.0, 4.0]], "k": 1}),
        )
        .await
        .ok(200);
    assert_eq!(bare, json!({"results": [[{"id": "c", "distance": 0.0}]]}));

    // kNN in frames both ways.
    let query = encode_knn_query(&KnnRequest {
        queries: vec![vec![0.0, 3.0, 4.0]],
        k: 3,
        ..KnnRequest::default()
    });
    let reply = http
        .send(
            "POST",
            "/v1/datasets/shapes/knn",
            &[
                ("Content-Type", FRAME_CONTENT_TYPE),
                ("Accept", FRAME_CONTENT_TYPE),
            ],
            &query,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type.as_deref(), Some(FRAME_CONTENT_TYPE));
    let decoded = decode_knn_result(&reply.body).unwrap();
    let ids: Vec<&str> = decoded.results[0].iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["c", "a", "b"]);
    assert_eq!(decoded.results[0][1].distance, 5.0);
    assert!((decoded.results[0][2].distance - 26.0f32.sqrt()).abs() < 1e-5);
    // A frame query without Accept gets JSON.
    let reply = http.frame("/v1/datasets/shapes/knn", &query).await.ok(200);
    assert_eq!(reply["results"][0][0]["id"], "c");
    // Frame upserts answer JSON `{written}`.
    let batch = encode_record_batch(&[Record::new("d", vec![0.5, 0.5, 0.5]).with_label("owl")]);
    assert_eq!(
        http.frame("/v1/datasets/shapes/records", &batch)
            .await
            .ok(200),
        json!({"written": 1})
    );
    let deleted = http
        .json(
            "POST",
            "/v1/datasets/shapes/records/delete",
            &json!({"ids": ["d", "zzz"]}),
        )
        .await
        .ok(200);
    assert_eq!(deleted, json!({"deleted": 1}));
    let deleted = http
        .json(
            "POST",
            "/v1/datasets/shapes/records/delete",
            &json!({"filter": {"label": "dog"}}),
        )
        .await
        .ok(200);
    assert_eq!(deleted, json!({"deleted": 1}));
    assert_eq!(http.count("shapes").await, 2);

    // Analyses: 202 on start, status, results, 200 on cancel.
    let started = http
        .json(
            "POST",
            "/v1/analyses",
            &json!({"kind": "projection", "target": "shapes", "params": {"dimensions": 2}}),
        )
        .await
        .ok(202);
    assert_eq!(started["status"], "queued");
    assert_eq!(started["kind"], "projection");
    assert_eq!(started["target"], id.as_str());
    let analysis = format!("/v1/analyses/{}", started["id"].as_str().unwrap());
    let status = wait_until_terminal(&http, &analysis).await;
    assert_eq!(status["status"], "done", "{status}");
    assert_eq!(status["progress"], 1.0);
    let results = http
        .get(&format!("{analysis}/results?limit=1&offset=1"))
        .await
        .ok(200);
    assert_eq!(results["total"], 2);
    assert_eq!(results["results"].as_array().unwrap().len(), 1);
    assert_eq!(
        results["results"][0]["coordinates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let cancelled = http.send("DELETE", &analysis, &[], b"").await.ok(200);
    assert_eq!(
        cancelled["status"], "done",
        "cancelling a done analysis leaves it done"
    );

    // Delete the dataset: 204, empty body; then it is gone.
    let reply = http.send("DELETE", "/v1/datasets/shapes", &[], b"").await;
    assert_eq!((reply.status, reply.body.len()), (204, 0));
    assert_error(
        &http.get("/v1/datasets/shapes").await,
        404,
        "unknown_dataset",
    );

    // Metrics, in the Prometheus text format, count what was answered.
    let metrics = http.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .content_type
            .as_deref()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text();
    assert!(
        text.contains("# TYPE mutant_requests_total counter"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("mutant_requests_total{")
                && line.contains("route=\"/v1/datasets/{ds}/knn\"")
                && line.contains("status=\"200\"")),
        "{text}"
    );
}

pub(crate) async fn wait_until_terminal(http: &Http, analysis: &str) -> Value {
    for _ in 0..1200 {
        let status = http.get(analysis).await.ok(200);
        if ["done", "failed", "cancelled"].contains(&status["status"].as_str().unwrap()) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{analysis} did not end within 60 s");
}

/// `409 analysis_not_finished` on a slow analysis, which is then cancelled.
#[test]
fn results_of_an_unfinished_analysis_are_refused() {
    crate::e2e_support::run(results_of_an_unfinished_analysis_are_refused_body);
}

async fn results_of_an_unfinished_analysis_are_refused_body() {
    let server = ServerProcess::start("http_unfinished").await;
    let http = Http::new(&server);
    http.json(
        "POST",
        "/v1/datasets",
        &json!({"name": "big", "dimension": 16}),
    )
    .await
    .ok(201);
    // 20,000 records in one frame, as the SDK would send them.
    let records: Vec<Record> = (0..20_000u32)
        .map(|index| {
            let vector = (0..16u32)
                .map(|axis| ((index * 31 + axis * 17) % 997) as f32 / 997.0)
                .collect();
            Record::new(format!("r{index:05}"), vector)
        })
        .collect();
    let written = http
        .frame("/v1/datasets/big/records", &encode_record_batch(&records))
        .await
        .ok(200);
    assert_eq!(written["written"], 20_000);

    let started = http
        .json(
            "POST",
            "/v1/analyses",
            &json!({"kind": "uniqueness", "target": "big", "params": {"k": 50}}),
        )
        .await
        .ok(202);
    let analysis = format!("/v1/analyses/{}", started["id"].as_str().unwrap());
    // Loading 20,000 records and a 20,000 x 20,000 kNN graph take far longer
    // than this round trip.
    assert_error(
        &http.get(&format!("{analysis}/results")).await,
        409,
        "analysis_not_finished",
    );
    let cancelled = http.send("DELETE", &analysis, &[], b"").await.ok(200);
    assert!(
        ["queued", "running", "cancelled", "done"].contains(&cancelled["status"].as_str().unwrap()),
        "{cancelled}"
    );
    let status = wait_until_terminal(&http, &analysis).await;
    eprintln!("the cancelled analysis ended {}", status["status"]);
    match status["status"].as_str().unwrap() {
        "cancelled" => {
            assert!(status["finished_at_ms"].as_u64().is_some(), "{status}");
            let refused = http.get(&format!("{analysis}/results")).await;
            assert_error(&refused, 409, "analysis_not_finished");
            assert!(refused.text().contains("cancelled"), "{}", refused.text());
        }
        "done" => {
            let results = http.get(&format!("{analysis}/results")).await.ok(200);
            assert_eq!(results["total"], 20_000);
        }
        other => panic!("a cancelled analysis ended {other}: {status}"),
    }
}

/// With `MUTANT_API_TOKEN`: 401 without or with a wrong token, everywhere but
/// `/healthz`; the SDK maps it to `Error::Unauthorized`.
#[test]
fn a_token_is_required_everywhere_but_healthz() {
    crate::e2e_support::run(a_token_is_required_everywhere_but_healthz_body);
}

async fn a_token_is_required_everywhere_but_healthz_body() {
    let server =
        ServerProcess::start_with("http_token", &[("MUTANT_API_TOKEN", "s3cret-token")]).await;
    let anonymous = Http::new(&server);
    let wrong = anonymous.with_token("s3cret-tokeN");
    let right = anonymous.with_token("s3cret-token");

    assert_eq!(anonymous.get("/healthz").await.status, 200);
    assert_eq!(wrong.get("/healthz").await.status, 200);
    for (method, path) in [
        ("GET", "/v1/heartbeat"),
        ("GET", "/v1/version"),
        ("GET", "/v1/datasets"),
        ("POST", "/v1/datasets"),
        ("GET", "/metrics"),
        ("GET", "/v1/no-such-route"),
        ("POST", "/v1/datasets/x/records"),
        ("GET", "/v1/analyses/3f0c4a1e-9b7d-4c2a-8e6f-1a2b3c4d5e6f"),
    ] {
        for client in [&anonymous, &wrong] {
            let body = json!({"name": "sneaky", "dimension": 2});
            let reply = client.json(method, path, &body).await;
            assert_error(&reply, 401, "unauthorized");
        }
    }
    // Other schemes and a bare token are refused too.
    for header in [
        "Basic czNjcmV0LXRva2Vu",
        "s3cret-token",
        "Bearer  s3cret-token",
        "Bearer ",
    ] {
        let reply = anonymous
            .send("GET", "/v1/datasets", &[("Authorization", header)], b"")
            .await;
        assert_error(&reply, 401, "unauthorized");
    }
    // Nothing was created by the refused requests.
    assert_eq!(
        right.get("/v1/datasets").await.ok(200),
        json!({"datasets": []})
    );
    right
        .json(
            "POST",
            "/v1/datasets",
            &json!({"name": "ok", "dimension": 2}),
        )
        .await
        .ok(201);
    assert_eq!(right.get("/metrics").await.status, 200);

    let client = mutant_client::Client::new(&server.url).unwrap();
    assert!(client.health().await.is_ok());
    let error = client.list_datasets().await.unwrap_err();
    assert!(
        matches!(error, mutant_client::Error::Unauthorized { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), Some("unauthorized"));
    let error = client
        .clone()
        .with_token("nope")
        .heartbeat()
        .await
        .unwrap_err();
    assert!(
        matches!(error, mutant_client::Error::Unauthorized { .. }),
        "{error:?}"
    );
    let datasets = client
        .with_token("s3cret-token")
        .list_datasets()
        .await
        .unwrap();
    assert_eq!(datasets.len(), 1);
}

/// With a small `MUTANT_MAX_BODY_BYTES`: 413 on a declared length over it and
/// on a chunked body that passes it, and nothing written.
#[test]
fn bodies_over_the_limit_are_refused() {
    crate::e2e_support::run(bodies_over_the_limit_are_refused_body);
}

async fn bodies_over_the_limit_are_refused_body() {
    let server = ServerProcess::start_with(
        "http_body_limit",
        &[
            ("MUTANT_MAX_BODY_BYTES", "1000"),
            ("MUTANT_CACHE_BYTES", "8"),
        ],
    )
    .await;
    let http = Http::new(&server);
    http.json(
        "POST",
        "/v1/datasets",
        &json!({"name": "small", "dimension": 2}),
    )
    .await
    .ok(201);
    let fits = json!({"records": [{"id": "a", "vector": [1.0, 2.0]}]});
    assert_eq!(
        http.json("POST", "/v1/datasets/small/records", &fits)
            .await
            .ok(200),
        json!({"written": 1})
    );
    let before = http.snapshot("small").await;

    let big: Vec<Value> = (0..100)
        .map(|index| json!({"id": format!("r{index}"), "vector": [0.5, 0.5]}))
        .collect();
    let big = json!({"records": big}).to_string();
    assert!(big.len() > 1000);
    let reply = http
        .send(
            "POST",
            "/v1/datasets/small/records",
            &[("Content-Type", JSON)],
            big.as_bytes(),
        )
        .await;
    assert_error(&reply, 413, "payload_too_large");
    let frame: Vec<Record> = (0..100)
        .map(|index| Record::new(format!("r{index}"), vec![0.5, 0.5]))
        .collect();
    let reply = http
        .frame("/v1/datasets/small/records", &encode_record_batch(&frame))
        .await;
    assert_error(&reply, 413, "payload_too_large");
    // A chunked body declares no length: it is cut off at the limit.
    let mut chunked = Vec::new();
    for piece in big.as_bytes().chunks(200) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let reply = http
        .send(
            "POST",
            "/v1/datasets/small/records",
            &[("Content-Type", JSON), ("Transfer-Encoding", "chunked")],
            &chunked,
        )
        .await;
    assert_error(&reply, 413, "payload_too_large");
    let reply = http
        .json(
            "POST",
            "/v1/datasets",
            &json!({"name": "meta", "dimension": 2, "metadata": {"blob": "x".repeat(2000)}}),
        )
        .await;
    assert_error(&reply, 413, "payload_too_large");
    assert_eq!(http.snapshot("small").await, before);
    assert_eq!(http.count("small").await, 1);
    assert_error(&http.get("/v1/datasets/meta").await, 404, "unknown_dataset");

    // The SDK maps it to `Error::PayloadTooLarge`.
    let client = mutant_client::Client::new(&server.url).unwrap();
    let error = client.upsert("small", &frame).await.unwrap_err();
    assert!(
        matches!(error, mutant_client::Error::PayloadTooLarge { .. }),
        "{error:?}"
    );
    assert_eq!(client.count("small", None).await.unwrap(), 1);

    // A dataset bigger than the whole cache: kNN answers 507
    // dataset_too_large, an analysis fails with it.
    let reply = http
        .json(
            "POST",
            "/v1/datasets/small/knn",
            &json!({"queries": [[1.0, 2.0]], "k": 1}),
        )
        .await;
    assert_error(&reply, 507, "dataset_too_large");
    let started = http
        .json(
            "POST",
            "/v1/analyses",
            &json!({"kind": "projection", "target": "small"}),
        )
        .await
        .ok(202);
    let id: uuid::Uuid = started["id"].as_str().unwrap().parse().unwrap();
    let error = client.wait_for_analysis(id, |_| {}).await.unwrap_err();
    let mutant_client::Error::AnalysisFailed { message, kind, .. } = &error else {
        panic!("expected a failed analysis, got {error:?}");
    };
    assert_eq!(kind, "projection");
    assert!(message.contains("MUTANT_CACHE_BYTES"), "{message}");
    let status = http.get(&format!("/v1/analyses/{id}")).await.ok(200);
    assert_eq!(status["status"], "failed");
    assert!(status["error"].as_str().is_some(), "{status}");
    let refused = http.get(&format!("/v1/analyses/{id}/results")).await;
    assert_error(&refused, 409, "analysis_not_finished");
    assert!(refused.text().contains("failed"), "{}", refused.text());
    assert_eq!(http.snapshot("small").await, before);
}
