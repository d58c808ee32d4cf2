//! Mutant embedded in a Rust program: no server, the same service the server
//! runs, in-process.
//!
//! It keeps its data in memory (`MemoryStore`), or in ClickHouse
//! (`ClickHouseStore`, database `mutant_embedded`) when
//! `MUTANT_CLICKHOUSE_URL` is set; streams 4,000 synthetic 32-d embeddings
//! of 8 classes with a few wrong labels in batches; asks for the nearest
//! neighbours of a record; and runs `mislabel`, reading back only the
//! flagged rows with their uri. It exits with an error if it finds none of
//! the wrong labels.
//!
//! ```text
//! cargo run -p mutant-examples --bin embedded
//! MUTANT_CLICKHOUSE_URL=http://127.0.0.1:18123 cargo run -p mutant-examples --bin embedded
//! ```
#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use mutant_core::api::results::{JoinedFields, ResultsQuery};
use mutant_core::api::wire::{CreateDatasetRequest, KnnQuery, StartAnalysisRequest};
use mutant_core::model::Record;
use mutant_core::service::{Service, ServiceConfig};
use mutant_core::store::{ClickHouseConfig, ClickHouseStore, MemoryStore, Store};

const DATASET: &str = "embedded-demo";
const DIMENSION: usize = 32;
const N_CLASSES: u64 = 8;
const N_RECORDS: u64 = 4_000;
/// One label in this many is wrong on purpose.
const FLIP_EVERY: u64 = 40;

/// A seeded splitmix64, so every run writes the same data.
struct Generator(u64);

impl Generator {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// Roughly normal: the sum of four uniforms, centred.
    fn noise(&mut self) -> f32 {
        (0..4)
            .map(|_| (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
            .sum::<f32>()
            - 2.0
    }
}

/// Record `index`: a point near its class's centre; every `FLIP_EVERY`-th
/// one carries the next class's label.
fn record(index: u64, generator: &mut Generator) -> Record {
    let class = index % N_CLASSES;
    let vector = (0..DIMENSION)
        .map(|axis| {
            let centre = if axis as u64 % N_CLASSES == class {
                4.0
            } else {
                0.0
            };
            centre + generator.noise()
        })
        .collect();
    let label = if index.is_multiple_of(FLIP_EVERY) {
        (class + 1) % N_CLASSES
    } else {
        class
    };
    Record::new(format!("item-{index}"), vector)
        .with_label(format!("class-{label}"))
        .with_uri(format!("file:///data/items/{index}.png"))
}

async fn store() -> Result<Arc<dyn Store>, mutant_core::Error> {
    Ok(match std::env::var("MUTANT_CLICKHOUSE_URL") {
        Ok(url) => {
            println!("store: ClickHouse at {url}, database mutant_embedded");
            let config = ClickHouseConfig::new(url).with_database("mutant_embedded");
            Arc::new(ClickHouseStore::connect(config).await?)
        }
        Err(_) => {
            println!("store: in memory (set MUTANT_CLICKHOUSE_URL to use ClickHouse)");
            Arc::new(MemoryStore::new())
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = Service::new(store().await?, ServiceConfig::default());
    // A fresh dataset each run (a ClickHouse database keeps the last one).
    if service.get_dataset(DATASET).await.is_ok() {
        service.delete_dataset(DATASET).await?;
    }
    service
        .create_dataset(CreateDatasetRequest {
            name: DATASET.into(),
            dimension: DIMENSION,
            metric: Some("l2".into()),
            metadata: None,
        })
        .await?;

    // Stream the records in small batches, as a producer would.
    let mut generator = Generator(7);
    let records: Vec<Record> = (0..N_RECORDS)
        .map(|index| record(index, &mut generator))
        .collect();
    let query = records[1].vector.clone();
    for batch in records.chunks(250) {
        service.upsert(DATASET, batch.to_vec()).await?;
    }
    println!("wrote {N_RECORDS} records of dimension {DIMENSION}");

    // The five nearest neighbours of item-1, with their labels.
    let mut request = KnnQuery::from_matrix(query, 1, DIMENSION, 5)?;
    request.include.label = true;
    let answer = service.knn(DATASET, request).await?;
    println!("nearest to item-1:");
    for neighbour in &answer.results[0] {
        println!(
            "  {:<10} {:<8} distance {:.3}",
            neighbour.id,
            neighbour.fields.label.as_deref().unwrap_or("-"),
            neighbour.distance
        );
    }

    // Which labels are wrong? Run mislabel with its defaults and read back
    // the flagged rows with the uri of each record.
    let started = service
        .start_analysis(StartAnalysisRequest {
            kind: "mislabel".into(),
            target: DATASET.into(),
            reference: None,
            params: None,
        })
        .await?;
    let status = loop {
        let status = service.analysis_status(started.id).await?;
        match status.status.as_str() {
            "queued" | "running" => tokio::time::sleep(Duration::from_millis(50)).await,
            "done" => break status,
            other => return Err(format!("mislabel ended {other}: {:?}", status.error).into()),
        }
    };
    let flagged = service
        .analysis_results(
            started.id,
            &ResultsQuery {
                flagged: Some(true),
                limit: Some(10),
                include: JoinedFields {
                    uri: true,
                    ..JoinedFields::default()
                },
                ..ResultsQuery::default()
            },
        )
        .await?;
    println!(
        "mislabel flagged {} records ({})",
        flagged.total,
        status.summary.unwrap_or_default()
    );
    let planted: HashSet<String> = (0..N_RECORDS)
        .filter(|index| index.is_multiple_of(FLIP_EVERY))
        .map(|index| format!("item-{index}"))
        .collect();
    let mut n_planted_found = 0;
    for row in &flagged.results {
        let id = row["id"].as_str().unwrap_or_default();
        let planted_here = planted.contains(id);
        n_planted_found += usize::from(planted_here);
        println!(
            "  {id:<10} labelled {:<8} neighbours say {:<8} {} {}",
            row["label"].as_str().unwrap_or("-"),
            row["suggested_label"].as_str().unwrap_or("-"),
            row["uri"].as_str().unwrap_or("-"),
            if planted_here { "(planted)" } else { "" }
        );
    }
    if n_planted_found == 0 {
        return Err("mislabel found none of the planted wrong labels".into());
    }
    Ok(())
}
