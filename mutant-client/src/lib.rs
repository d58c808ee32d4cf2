//! The typed async Rust SDK for Mutant, the embedding store and analysis
//! server.
//!
//! A [`Client`] speaks protocol version [`PROTOCOL_VERSION`] to one Mutant
//! server over HTTP: the dataset catalogue (create, find by metadata, rename,
//! delete), records (upsert, get, delete, count), exact kNN, and analyses
//! (start, follow the progress, page through ranked results, cancel). Record
//! batches and kNN traffic travel as binary frames, so vectors never
//! round-trip through text. Requests that are safe to repeat are retried with
//! exponential backoff when the server answers 503 or the connection fails
//! ([`RetryPolicy`]).
//!
//! Ingest is a stream: a [`BatchWriter`] takes records one at a time and sends
//! them in batches by count, bytes and age, with a bounded number of batches
//! in flight. There is nothing to flush: [`BatchWriter::finish`] returns once
//! every record it accepted is stored in ClickHouse.
//!
//! Every failure is an [`Error`] whose variants map the server's stable error
//! codes, with messages that say what to change.
//!
//! ```no_run
//! use mutant_client::wire::{Include, KnnRequest, StartAnalysisRequest};
//! use mutant_client::{BatchWriterConfig, Client, Metric, NewDataset, Record};
//!
//! # async fn run() -> mutant_client::Result<()> {
//! let client = Client::new("http://127.0.0.1:7311")?;
//! client
//!     .get_or_create_dataset(&NewDataset::new("train", 3).with_metric(Metric::Cosine))
//!     .await?;
//!
//! // Stream records; `finish` returns once ClickHouse has all of them.
//! let mut writer = client.batch_writer("train", BatchWriterConfig::default())?;
//! for index in 0..1_000 {
//!     let vector = vec![index as f32, 1.0, (index % 7) as f32];
//!     let label = if index % 2 == 0 { "cat" } else { "dog" };
//!     let record = Record::new(format!("img-{index}"), vector)
//!         .with_label(label)
//!         .with_prediction("cat")
//!         .with_uri(format!("s3://images/{index}.jpg"));
//!     writer.write(record).await?;
//! }
//! let summary = writer.finish().await?;
//! assert_eq!(summary.n_records_written, 1_000);
//!
//! // The records nearest to a query, with their labels.
//! let neighbours = client
//!     .knn(
//!         "train",
//!         &KnnRequest {
//!             queries: vec![vec![10.0, 1.0, 3.0]],
//!             k: 5,
//!             filter: Some(serde_json::json!({"label": "cat"})),
//!             include: Some(vec![Include::Label]),
//!         },
//!     )
//!     .await?;
//! for neighbour in &neighbours[0] {
//!     println!("{} at {:.3}", neighbour.id, neighbour.distance);
//! }
//!
//! // Which training labels are probably wrong, most suspicious first.
//! let analysis = client
//!     .run_analysis(
//!         &StartAnalysisRequest {
//!             kind: "mislabel".into(),
//!             target: "train".into(),
//!             reference: None,
//!             params: serde_json::json!({"k": 10}).as_object().cloned(),
//!         },
//!         |status| eprintln!("mislabel: {:.0}%", status.progress * 100.0),
//!     )
//!     .await?;
//! let suspects = client.analysis_results(analysis.id, 20, 0).await?;
//! println!("{} suspects, top 20: {:?}", suspects.total, suspects.results);
//! # Ok(())
//! # }
//! ```
//!
//! The crate depends on `mutant-core` without its default features: the
//! data model, the wire types and the frame codec, never ClickHouse or faer.

#![warn(missing_docs)]

mod analyses;
mod client;
mod endpoint;
mod error;
#[cfg(test)]
mod fake_server;
mod records;
mod transport;
mod writer;

pub use client::Client;
pub use error::{Error, Result};
pub use transport::RetryPolicy;
pub use writer::{BatchWriter, BatchWriterConfig, WriteSummary};

pub use mutant_core::api::PROTOCOL_VERSION;
/// The JSON wire types of the protocol: requests and answers the client's
/// methods take and return.
pub use mutant_core::api::wire;

/// The options of an analysis's results: page, joined record fields,
/// filters on the verdict and the score.
pub use mutant_core::api::results;
/// The protocol's vocabulary: error codes, analysis statuses and kinds,
/// metrics.
pub use mutant_core::api::vocabulary;
/// The data model: records, datasets, metrics, filters.
pub use mutant_core::model;
pub use mutant_core::model::{Filter, Metric, NewDataset, Record, RecordMetadata};
