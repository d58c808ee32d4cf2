//! Two stateless servers on one ClickHouse (a single node, and the test
//! cluster): whatever is written, deleted or re-created through one is what
//! the other answers on its very next request, kNN (served from its cache)
//! included.

use mutant_client::wire::{DeleteRecordsRequest, GetRecordsRequest, KnnRequest};
use mutant_client::{Client, NewDataset, Record};
use mutant_tests::ServerProcess;

fn vector(index: usize) -> Vec<f32> {
    vec![
        index as f32,
        (index % 7) as f32,
        1.0,
        -(index as f32) / 10.0,
    ]
}

async fn nearest(client: &Client, dataset: &str, query: Vec<f32>) -> (String, f32) {
    let request = KnnRequest {
        queries: vec![query],
        k: 1,
        filter: None,
        include: None,
    };
    let neighbours = client.knn(dataset, &request).await.unwrap();
    (neighbours[0][0].id.clone(), neighbours[0][0].distance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_one_server_are_read_through_the_other_at_once() {
    writes_through_one_are_read_through_the_other(ServerProcess::start("two_servers").await).await;
}

/// The same on the test cluster, where the rows of one dataset are spread
/// over two shards of two replicas (issue 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_writes_through_one_server_are_read_through_the_other_at_once() {
    let first = ServerProcess::start_on_cluster("two_servers_cluster", &[]).await;
    writes_through_one_are_read_through_the_other(first).await;
}

/// Starts a second server beside `first` and checks that what one writes
/// the other answers at once.
async fn writes_through_one_are_read_through_the_other(first: ServerProcess) {
    let second = ServerProcess::start_beside(&first).await;
    let writer = Client::new(&first.url).unwrap();
    let reader = Client::new(&second.url).unwrap();

    writer
        .create_dataset(&NewDataset::new("shared", 4))
        .await
        .unwrap();
    let records: Vec<Record> = (0..1_000)
        .map(|index| Record::new(format!("r{index}"), vector(index)))
        .collect();
    writer.upsert("shared", &records).await.unwrap();
    // The reader loads the dataset into its cache.
    assert_eq!(
        nearest(&reader, "shared", vector(10)).await,
        ("r10".into(), 0.0)
    );

    // A new record far from the rest, written through the first server.
    let fresh = vec![500.0, 500.0, 500.0, 500.0];
    writer
        .upsert("shared", &[Record::new("fresh", fresh.clone())])
        .await
        .unwrap();
    assert_eq!(
        nearest(&reader, "shared", fresh.clone()).await,
        ("fresh".into(), 0.0),
        "kNN on the other server sees the write"
    );
    assert_eq!(reader.count("shared", None).await.unwrap(), 1_001);
    let request = GetRecordsRequest {
        ids: Some(vec!["fresh".into()]),
        ..GetRecordsRequest::default()
    };
    assert_eq!(
        reader.get_records("shared", &request).await.unwrap().len(),
        1
    );

    // A delete through the first server is honoured by the second.
    let delete = DeleteRecordsRequest {
        ids: Some(vec!["fresh".into(), "r10".into()]),
        filter: None,
    };
    assert_eq!(writer.delete_records("shared", &delete).await.unwrap(), 2);
    let (id, _) = nearest(&reader, "shared", fresh).await;
    assert_ne!(id, "fresh");
    let (id, distance) = nearest(&reader, "shared", vector(10)).await;
    assert!(
        id != "r10" && distance > 0.0,
        "a deleted record is never a neighbour"
    );
    assert_eq!(reader.count("shared", None).await.unwrap(), 999);

    // Deleted and re-created under the same name: no stale rows on the reader.
    writer.delete_dataset("shared").await.unwrap();
    writer
        .create_dataset(&NewDataset::new("shared", 4))
        .await
        .unwrap();
    writer
        .upsert("shared", &[Record::new("only", vec![0.0, 0.0, 0.0, 0.0])])
        .await
        .unwrap();
    assert_eq!(nearest(&reader, "shared", vector(10)).await.0, "only");
    assert_eq!(reader.count("shared", None).await.unwrap(), 1);

    // Renamed, then deleted: the reader's remembered resolution of the name
    // gives way at once.
    writer.rename_dataset("shared", "moved").await.unwrap();
    assert_unknown(&reader, "shared").await;
    assert_eq!(nearest(&reader, "moved", vector(10)).await.0, "only");
    writer.delete_dataset("moved").await.unwrap();
    assert_unknown(&reader, "moved").await;
}

async fn assert_unknown(client: &Client, dataset: &str) {
    let request = KnnRequest {
        queries: vec![vector(0)],
        k: 1,
        filter: None,
        include: None,
    };
    match client.knn(dataset, &request).await {
        Err(mutant_client::Error::UnknownDataset { .. }) => {}
        other => panic!("expected unknown_dataset for {dataset}, got {other:?}"),
    }
}
