//! Quickstart: create a dataset in ClickHouse, stream labelled embeddings
//! into it from concurrent writers, and read them back.
//!
//! ```text
//! scripts/clickhouse.sh start
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo run -p mutant-examples --bin quickstart
//! ```
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use mutant_core::model::{DatasetRef, Filter, NewDataset, Record};
use mutant_core::store::{ClickHouseConfig, ClickHouseStore, FetchQuery, Store};

const DIMENSION: usize = 64;
const N_WRITERS: usize = 4;
const BATCHES_PER_WRITER: usize = 50;
const BATCH_SIZE: usize = 100;

#[tokio::main]
async fn main() -> Result<(), mutant_core::Error> {
    let url =
        std::env::var("MUTANT_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into());
    let store = Arc::new(
        ClickHouseStore::connect(ClickHouseConfig::new(&url).with_database("mutant_quickstart"))
            .await?,
    );
    println!(
        "connected to ClickHouse {:?} at {url}",
        store.server_version()
    );

    let train = DatasetRef::parse("train");
    if store.get_dataset(&train).await.is_ok() {
        store.delete_dataset(&train).await?;
    }
    let dataset = store
        .create_dataset(NewDataset::new("train", DIMENSION))
        .await?;
    println!(
        "created dataset {} ({}), dimension {}",
        dataset.name, dataset.id, dataset.dimension
    );

    let started = Instant::now();
    let writers: Vec<_> = (0..N_WRITERS)
        .map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for batch in 0..BATCHES_PER_WRITER {
                    let records = (0..BATCH_SIZE)
                        .map(|row| {
                            let index = (writer * BATCHES_PER_WRITER + batch) * BATCH_SIZE + row;
                            let class = index % 3;
                            let mut vector = vec![0.0f32; DIMENSION];
                            vector[class] = 1.0;
                            vector[DIMENSION - 1] = (index % 97) as f32 / 97.0;
                            Record::new(format!("img-{index:06}"), vector)
                                .with_label(["cat", "dog", "bird"][class])
                                .with_prediction(["cat", "dog", "bird"][(index / 7) % 3])
                                .with_metadata(
                                    "camera",
                                    if index.is_multiple_of(2) { "front" } else { "rear" },
                                )
                        })
                        .collect();
                    store.upsert(&DatasetRef::parse("train"), records).await?;
                }
                Ok::<(), mutant_core::Error>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await.map_err(|error| mutant_core::Error::Store {
            message: error.to_string(),
        })??;
    }
    let n_written = N_WRITERS * BATCHES_PER_WRITER * BATCH_SIZE;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "streamed {n_written} records in {} batches of {BATCH_SIZE} from {N_WRITERS} writers: {:.0} records/s",
        n_written / BATCH_SIZE,
        n_written as f64 / elapsed
    );

    let disagreements = Filter::from_json(
        &serde_json::json!({"$and": [{"label": "cat"}, {"prediction": {"$ne": "cat"}}]}),
    )?;
    println!(
        "records: {}, labelled cat but predicted otherwise: {}",
        store.count(&train, &Filter::all()).await?,
        store.count(&train, &disagreements).await?
    );
    for record in store
        .fetch(
            &train,
            &FetchQuery {
                with_vectors: false,
                ..FetchQuery::new(disagreements, 3)
            },
        )
        .await?
    {
        println!(
            "  {} label={:?} prediction={:?} metadata={}",
            record.id,
            record.label,
            record.prediction,
            record.metadata.to_json_string()
        );
    }
    let loaded = store.load(&train).await?;
    println!(
        "loaded {} x {} into memory with {} classes",
        loaded.n_records(),
        loaded.dataset.dimension,
        loaded.classes.len()
    );
    Ok(())
}
