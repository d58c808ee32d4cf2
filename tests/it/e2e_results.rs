//! Issue 11 through the real server and ClickHouse: a finished analysis's
//! status carries its summary, and its results filter by verdict and score,
//! join the record fields as they were when it ran, and stream whole as
//! NDJSON; the SDK reads the same.

use mutant_client::results::{JoinedFields, ResultsQuery};
use mutant_tests::ServerProcess;
use mutant_tests::quality::data;
use mutant_tests::quality::mislabel::flip_labels;
use serde_json::{Value, json};

use crate::e2e_http::{Http, assert_error, wait_until_terminal};

#[test]
fn results_filter_join_and_stream() {
    crate::e2e_support::run(results_filter_join_and_stream_body);
}

/// 400 digits with 10% of labels flipped, each with a uri and metadata.
fn flipped_digits() -> Value {
    let digits = data::digits();
    let (labels, _) = flip_labels(&digits, 5);
    let records: Vec<Value> = (0..400)
        .map(|row| {
            json!({
                "id": format!("d{row}"),
                "vector": digits.row(row),
                "label": labels[row].to_string(),
                "uri": format!("s3://digits/{row}.png"),
                "metadata": {"row": row, "odd": row % 2 == 1},
            })
        })
        .collect();
    json!({ "records": records })
}

fn rows(page: &Value) -> &Vec<Value> {
    page["results"].as_array().expect("a results array")
}

async fn results_filter_join_and_stream_body() {
    let server = ServerProcess::start("e2e_results").await;
    let http = Http::new(&server);
    http.json(
        "POST",
        "/v1/datasets",
        &json!({"name": "flips", "dimension": 64}),
    )
    .await
    .ok(201);
    http.json("POST", "/v1/datasets/flips/records", &flipped_digits())
        .await
        .ok(200);
    let started = http
        .json(
            "POST",
            "/v1/analyses",
            &json!({"kind": "mislabel", "target": "flips"}),
        )
        .await
        .ok(202);
    let analysis = format!("/v1/analyses/{}", started["id"].as_str().unwrap());
    let status = wait_until_terminal(&http, &analysis).await;
    assert_eq!(status["status"], "done", "{status}");

    // The summary: how many flagged, their share, and the rule.
    let summary = &status["summary"];
    let n_flagged = summary["n_flagged"]
        .as_u64()
        .expect("n_flagged is an integer");
    assert!(n_flagged > 10 && n_flagged < 100, "{summary}");
    let share = summary["share_flagged"].as_f64().unwrap();
    assert!((share - n_flagged as f64 / 400.0).abs() < 1e-6, "{summary}");
    assert_eq!(summary["rule"], "neighbours_prefer_another_label");

    // Every row has a verdict; flagged=true keeps exactly the flagged ones,
    // in rank order, and the total counts them.
    let everything = http
        .get(&format!("{analysis}/results?limit=400"))
        .await
        .ok(200);
    assert_eq!(everything["total"], 400);
    assert!(
        rows(&everything)
            .iter()
            .all(|row| row["flagged"].is_boolean())
    );
    let flagged = http
        .get(&format!("{analysis}/results?flagged=true&limit=1000"))
        .await
        .ok(200);
    assert_eq!(flagged["total"].as_u64(), Some(n_flagged));
    assert_eq!(rows(&flagged).len() as u64, n_flagged);
    assert!(rows(&flagged).iter().all(|row| row["flagged"] == true));
    let ranks: Vec<u64> = rows(&flagged)
        .iter()
        .map(|row| row["rank"].as_u64().unwrap())
        .collect();
    assert!(ranks.windows(2).all(|pair| pair[0] < pair[1]), "{ranks:?}");
    let not_flagged = http
        .get(&format!("{analysis}/results?flagged=false&limit=1"))
        .await
        .ok(200);
    assert_eq!(not_flagged["total"].as_u64(), Some(400 - n_flagged));
    let second_page = http
        .get(&format!("{analysis}/results?flagged=true&limit=5&offset=5"))
        .await
        .ok(200);
    assert_eq!(rows(&second_page)[..], rows(&flagged)[5..10]);

    // min_score keeps the rows scoring at least that much.
    let high = http
        .get(&format!("{analysis}/results?min_score=0.5&limit=1000"))
        .await
        .ok(200);
    assert!(
        rows(&high)
            .iter()
            .all(|row| row["score"].as_f64().unwrap() >= 0.5)
    );
    let expected_high = rows(&everything)
        .iter()
        .filter(|row| row["score"].as_f64().unwrap() >= 0.5)
        .count();
    assert_eq!(high["total"].as_u64(), Some(expected_high as u64));

    // include joins the record's fields; without it, none of them.
    assert!(rows(&everything)[0].get("uri").is_none());
    let joined = http
        .get(&format!(
            "{analysis}/results?include=label%2Curi,metadata&limit=400"
        ))
        .await
        .ok(200);
    for row in rows(&joined) {
        let id = row["id"].as_str().unwrap();
        let number: u64 = id[1..].parse().unwrap();
        assert_eq!(row["uri"], format!("s3://digits/{number}.png"), "{row}");
        assert_eq!(row["metadata"]["row"], number, "{row}");
        assert!(row["label"].is_string(), "{row}");
        assert!(row.get("prediction").is_none(), "{row}");
        assert!(row.get("_record").is_none(), "{row}");
    }

    // The join is a snapshot: a later write changes the record, not the
    // results (and makes the analysis stale).
    http.json(
        "POST",
        "/v1/datasets/flips/records",
        &json!({"records": [{"id": "d0", "vector": data::digits().row(0), "label": "0", "uri": "s3://moved"}]}),
    )
    .await
    .ok(200);
    let after = http
        .get(&format!("{analysis}/results?include=uri&limit=400"))
        .await
        .ok(200);
    let d0 = rows(&after).iter().find(|row| row["id"] == "d0").unwrap();
    assert_eq!(d0["uri"], "s3://digits/0.png");
    assert_eq!(http.get(&analysis).await.ok(200)["status"], "stale");

    // NDJSON: every matching row, one a line, no paging.
    let streamed = http
        .get(&format!(
            "{analysis}/results?format=ndjson&flagged=true&include=uri"
        ))
        .await;
    assert_eq!(streamed.status, 200);
    assert_eq!(
        streamed.content_type.as_deref(),
        Some("application/x-ndjson")
    );
    let lines: Vec<Value> = streamed
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let flagged_with_uri = http
        .get(&format!(
            "{analysis}/results?flagged=true&include=uri&limit=1000"
        ))
        .await
        .ok(200);
    assert_eq!(&lines, rows(&flagged_with_uri));
    let all_lines = http
        .get(&format!("{analysis}/results?format=ndjson"))
        .await
        .text()
        .lines()
        .count();
    assert_eq!(all_lines, 400);

    // Options are checked, never ignored.
    for (query, reason) in [
        ("flagged=yes", "true or false"),
        ("include=vector", "vector"),
        ("min_score=high", "min_score"),
        ("sort=score", "no parameter"),
        ("format=csv", "json or ndjson"),
        ("limit=20000", "ndjson"),
    ] {
        let reply = http.get(&format!("{analysis}/results?{query}")).await;
        assert_error(&reply, 400, "invalid_parameter");
        assert!(reply.text().contains(reason), "{query}: {}", reply.text());
    }

    // The SDK reads the same rows.
    let client = mutant_client::Client::new(&server.url).unwrap();
    let id = started["id"].as_str().unwrap().parse().unwrap();
    let query = ResultsQuery {
        flagged: Some(true),
        include: JoinedFields {
            uri: true,
            ..JoinedFields::default()
        },
        ..ResultsQuery::default()
    };
    let page = client
        .analysis_results_matching(
            id,
            &ResultsQuery {
                limit: Some(1000),
                ..query.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total as u64, n_flagged);
    assert_eq!(&page.results, rows(&flagged_with_uri));
    assert_eq!(
        page.summary.as_ref().unwrap()["n_flagged"].as_u64(),
        Some(n_flagged)
    );
    let all = client.all_analysis_results(id, &query).await.unwrap();
    assert_eq!(all, lines);
    let sdk_status = client.analysis_status(id).await.unwrap();
    assert_eq!(
        sdk_status.summary.unwrap()["n_flagged"].as_u64(),
        Some(n_flagged)
    );
}
