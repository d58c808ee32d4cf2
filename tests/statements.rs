//! How many ClickHouse statements a request costs, counted by ClickHouse
//! itself (its `Query` event). A test binary of its own: cargo runs test
//! binaries one at a time, so no other test's statements are counted.

#![allow(clippy::unwrap_used)]

use mutant_client::wire::KnnRequest;
use mutant_client::{Client, NewDataset, Record};
use mutant_tests::{ServerProcess, clickhouse_statements_so_far};

/// Requests per measurement.
const REQUESTS: u64 = 20;

fn vector(index: usize) -> Vec<f32> {
    vec![
        index as f32,
        (index % 7) as f32,
        1.0,
        -(index as f32) / 10.0,
    ]
}

async fn knn(client: &Client, dataset: &str, index: usize) -> String {
    let request = KnnRequest {
        queries: vec![vector(index)],
        k: 3,
        filter: None,
        include: None,
    };
    let neighbours = client.knn(dataset, &request).await.unwrap();
    neighbours[0][0].id.clone()
}

/// Statements per request over [`REQUESTS`] requests of `request`.
async fn statements_per_request<F: Future<Output = ()>>(request: impl Fn(usize) -> F) -> f64 {
    let before = clickhouse_statements_so_far().await;
    for index in 0..REQUESTS as usize {
        request(index).await;
    }
    let after = clickhouse_statements_so_far().await;
    // The second read counts itself.
    (after - before - 1) as f64 / REQUESTS as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_knn_costs_one_statement_by_name_or_by_id() {
    let server = ServerProcess::start("statements").await;
    let client = Client::new(&server.url).unwrap();
    let dataset = client
        .create_dataset(&NewDataset::new("warm", 4))
        .await
        .unwrap();
    let records: Vec<Record> = (0..500)
        .map(|index| Record::new(format!("r{index}"), vector(index)))
        .collect();
    client.upsert("warm", &records).await.unwrap();
    // Cold, then warm: the first uses load the dataset and read the
    // refresh overlap once.
    for index in 0..3 {
        assert_eq!(knn(&client, "warm", index).await, format!("r{index}"));
    }

    let by_name = statements_per_request(|index| {
        let client = &client;
        async move {
            assert_eq!(knn(client, "warm", index).await, format!("r{index}"));
        }
    })
    .await;
    assert_eq!(by_name, 1.0, "statements per warm kNN by name");

    let id = dataset.id.to_string();
    knn(&client, &id, 0).await;
    let by_id = statements_per_request(|index| {
        let (client, id) = (&client, &id);
        async move {
            assert_eq!(knn(client, id, index).await, format!("r{index}"));
        }
    })
    .await;
    assert_eq!(by_id, 1.0, "statements per warm kNN by id");
}
