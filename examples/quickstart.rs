//! Quickstart: a training set and a production stream, then the questions a
//! team asks of them.
//!
//! It creates a `train` and a `production` dataset, streams 100,000 synthetic
//! 64-d embeddings (10 classes, with labels, model predictions and a few
//! deliberately wrong labels) through the SDK's `BatchWriter`, then runs kNN,
//! `mislabel` (which training labels are wrong?) and `select` (which
//! production inputs to label next?) and prints what it finds.
//!
//! ```text
//! scripts/demo.sh          # starts ClickHouse and the server, then runs this
//! MUTANT_URL=http://127.0.0.1:7311 cargo run --release -p mutant-examples --bin quickstart
//! ```
#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::time::Instant;

use mutant_client::results::{JoinedFields, ResultsQuery};
use mutant_client::wire::{Include, KnnRequest, StartAnalysisRequest};
use mutant_client::{BatchWriterConfig, Client, NewDataset, Record};
use serde_json::json;

const DIMENSION: usize = 64;
const N_CLASSES: usize = 10;
const N_TRAIN: usize = 80_000;
const N_PRODUCTION: usize = 20_000;
/// One training label in this many is flipped to another class.
const FLIP_EVERY: usize = 50;

/// A small seeded generator, so every run streams the same data.
struct Generator(u64);

impl Generator {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn normal(&mut self) -> f32 {
        let radius = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        radius * (std::f32::consts::TAU * self.uniform()).cos()
    }
}

fn class_name(class: usize) -> String {
    format!("class-{class}")
}

/// One embedding near its class centre; `shift` moves production data a little.
fn embedding(
    generator: &mut Generator,
    centres: &[Vec<f32>],
    class: usize,
    shift: f32,
) -> Vec<f32> {
    centres[class]
        .iter()
        .enumerate()
        .map(|(axis, centre)| {
            centre + 0.6 * generator.normal() + if axis == 0 { shift } else { 0.0 }
        })
        .collect()
}

/// The model's prediction: right 90% of the time.
fn predict(generator: &mut Generator, class: usize) -> usize {
    if generator.uniform() < 0.9 {
        class
    } else {
        (class + 1 + generator.next_u64() as usize % (N_CLASSES - 1)) % N_CLASSES
    }
}

#[tokio::main]
async fn main() -> Result<(), mutant_client::Error> {
    let url = std::env::var("MUTANT_URL").unwrap_or_else(|_| "http://127.0.0.1:7311".into());
    let mut client = Client::new(&url)?;
    if let Ok(token) = std::env::var("MUTANT_API_TOKEN") {
        client = client.with_token(token);
    }
    let version = client.version().await?;
    println!(
        "Mutant {} (protocol {}) on ClickHouse {} at {url}\n",
        version.mutant, version.protocol, version.clickhouse
    );

    for name in ["train", "production"] {
        if client.get_dataset(name).await.is_ok() {
            client.delete_dataset(name).await?;
        }
    }
    client
        .create_dataset(&NewDataset::new("train", DIMENSION))
        .await?;
    client
        .create_dataset(&NewDataset::new("production", DIMENSION))
        .await?;

    let mut generator = Generator(7);
    let centres: Vec<Vec<f32>> = (0..N_CLASSES)
        .map(|_| (0..DIMENSION).map(|_| 2.0 * generator.normal()).collect())
        .collect();

    let started = Instant::now();
    let mut flipped = HashSet::new();
    let mut writer = client.batch_writer("train", BatchWriterConfig::default())?;
    for index in 0..N_TRAIN {
        let class = index % N_CLASSES;
        let id = format!("train-{index:06}");
        let label = if index % FLIP_EVERY == 7 {
            flipped.insert(id.clone());
            (class + 3) % N_CLASSES
        } else {
            class
        };
        let vector = embedding(&mut generator, &centres, class, 0.0);
        let prediction = predict(&mut generator, class);
        let record = Record::new(id, vector)
            .with_label(class_name(label))
            .with_prediction(class_name(prediction))
            .with_uri(format!("s3://images/train/{index:06}.png"));
        writer.write(record).await?;
    }
    let train_summary = writer.finish().await?;
    let mut writer = client.batch_writer("production", BatchWriterConfig::default())?;
    for index in 0..N_PRODUCTION {
        let class = index % N_CLASSES;
        let vector = embedding(
            &mut generator,
            &centres,
            class,
            if index % 4 == 0 { 3.0 } else { 0.0 },
        );
        let record = Record::new(format!("prod-{index:06}"), vector)
            .with_prediction(class_name(predict(&mut generator, class)));
        writer.write(record).await?;
    }
    let production_summary = writer.finish().await?;
    let elapsed = started.elapsed().as_secs_f64();
    let n_streamed = train_summary.n_records_written + production_summary.n_records_written;
    println!(
        "streamed {n_streamed} embeddings through BatchWriter in {elapsed:.1} s ({:.0} records/s)",
        n_streamed as f64 / elapsed
    );
    println!(
        "train: {} records ({} with a deliberately wrong label), production: {} records\n",
        client.count("train", None).await?,
        flipped.len(),
        client.count("production", None).await?
    );

    let request = mutant_client::wire::GetRecordsRequest {
        ids: Some(vec!["prod-000001".into()]),
        include: Some(vec![Include::Vector, Include::Prediction]),
        ..Default::default()
    };
    let query = client.get_records("production", &request).await?.remove(0);
    let neighbours = client
        .knn(
            "train",
            &KnnRequest {
                queries: vec![query.vector.clone().unwrap_or_default()],
                k: 5,
                filter: None,
                include: Some(vec![Include::Label, Include::Uri]),
            },
        )
        .await?;
    println!(
        "the 5 training records nearest to {} (predicted {:?}):",
        query.id,
        query.prediction.unwrap_or_default()
    );
    for neighbour in &neighbours[0] {
        println!(
            "  {:<14} distance {:>6.3}  label {:<8} {}",
            neighbour.id,
            neighbour.distance,
            neighbour.fields.label.as_deref().unwrap_or("-"),
            neighbour.fields.uri.as_deref().unwrap_or("")
        );
    }

    let report = |label: &'static str| {
        move |status: &mutant_client::wire::AnalysisStatus| {
            println!(
                "  {label}: {} {:>3.0}%",
                status.status,
                status.progress * 100.0
            )
        }
    };
    println!("\nwhich training labels are probably wrong? (mislabel, no parameters)");
    let mislabel = client
        .run_analysis(
            &StartAnalysisRequest {
                kind: "mislabel".into(),
                target: "train".into(),
                reference: None,
                params: None,
            },
            report("mislabel"),
        )
        .await?;
    // Only the rows the verdict flags, with each record's uri joined on.
    let flagged = client
        .all_analysis_results(
            mislabel.id,
            &ResultsQuery {
                flagged: Some(true),
                include: JoinedFields {
                    uri: true,
                    ..JoinedFields::default()
                },
                ..ResultsQuery::default()
            },
        )
        .await?;
    let hits = flagged
        .iter()
        .filter(|row| row["id"].as_str().is_some_and(|id| flipped.contains(id)))
        .count();
    println!(
        "  flagged {} labels: {hits} of them are ones we flipped ({:.0}% precision), {:.0}% of the {} flips found",
        flagged.len(),
        100.0 * hits as f64 / flagged.len().max(1) as f64,
        100.0 * hits as f64 / flipped.len().max(1) as f64,
        flipped.len()
    );
    for row in flagged.iter().take(5) {
        println!(
            "  #{:<3} {:<14} score {:.3}  labelled {:<8} neighbours say {:<8} {}",
            row["rank"],
            row["id"].as_str().unwrap_or("-"),
            row["score"].as_f64().unwrap_or(0.0),
            row["label"].as_str().unwrap_or("-"),
            row["suggested_label"].as_str().unwrap_or("-"),
            row["uri"].as_str().unwrap_or("")
        );
    }

    println!("\nwhich production inputs should be labelled next? (select 10, no other parameters)");
    let selection = client
        .run_analysis(
            &StartAnalysisRequest {
                kind: "select".into(),
                target: "production".into(),
                reference: Some("train".into()),
                params: json!({"n": 10}).as_object().cloned(),
            },
            report("select"),
        )
        .await?;
    let strategy = selection
        .summary
        .as_ref()
        .and_then(|summary| summary["strategy"].as_str())
        .unwrap_or("-")
        .to_owned();
    println!("  strategy: {strategy}");
    for row in client.analysis_results(selection.id, 10, 0).await?.results {
        println!(
            "  #{:<3} {:<14} chosen for {}",
            row["rank"],
            row["id"].as_str().unwrap_or("-"),
            row["reason"].as_str().unwrap_or("-")
        );
    }
    Ok(())
}
