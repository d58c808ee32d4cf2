//! The quality of the answers Mutant gives with default parameters, on
//! public data with faults planted on purpose (issue 11): near-duplicate
//! pairs found, mislabeled records flagged, records picked for labeling.
//!
//! Everything runs through the same [`Service`] the server runs, over the
//! in-memory store (the store does not change an analysis's answer), so the
//! figures measure the server's defaults. `tests/it/quality.rs` asserts the
//! targets; `tests/benches/quality.rs` prints every figure.

pub mod data;
pub mod duplicates;
pub mod mislabel;
pub mod select;

use std::sync::Arc;
use std::time::Duration;

use mutant_core::api::results::ResultsQuery;
use mutant_core::api::wire::{AnalysisStatus, CreateDatasetRequest, StartAnalysisRequest};
use mutant_core::model::Record;
use mutant_core::service::{Service, ServiceConfig};
use mutant_core::store::MemoryStore;
use serde_json::Value;

/// A service over a fresh in-memory store.
pub fn memory_service() -> Service {
    Service::new(Arc::new(MemoryStore::new()), ServiceConfig::default())
}

/// Creates an l2 dataset named `name` holding `records`.
pub async fn create_dataset(service: &Service, name: &str, dimension: usize, records: Vec<Record>) {
    service
        .create_dataset(CreateDatasetRequest {
            name: name.to_owned(),
            dimension,
            metric: Some("l2".to_owned()),
            metadata: None,
        })
        .await
        .unwrap_or_else(|error| panic!("creating {name}: {error}"));
    for batch in records.chunks(1_000) {
        service
            .upsert(name, batch.to_vec())
            .await
            .unwrap_or_else(|error| panic!("writing {name}: {error}"));
    }
}

/// Runs an analysis to its end and returns its final status and every
/// result row. Panics if it fails.
pub async fn analyze(
    service: &Service,
    kind: &str,
    target: &str,
    reference: Option<&str>,
    params: Value,
) -> (AnalysisStatus, Vec<Value>) {
    let started = service
        .start_analysis(StartAnalysisRequest {
            kind: kind.to_owned(),
            target: target.to_owned(),
            reference: reference.map(str::to_owned),
            params: params.as_object().cloned(),
        })
        .await
        .unwrap_or_else(|error| panic!("starting {kind}: {error}"));
    let status = loop {
        let status = service
            .analysis_status(started.id)
            .await
            .unwrap_or_else(|error| panic!("reading {kind}'s status: {error}"));
        match status.status.as_str() {
            "queued" | "running" => tokio::time::sleep(Duration::from_millis(20)).await,
            "done" => break status,
            other => panic!("{kind} ended {other}: {:?}", status.error),
        }
    };
    let mut rows = Vec::new();
    let mut pages = service
        .analysis_result_rows(started.id, &ResultsQuery::default())
        .await
        .unwrap_or_else(|error| panic!("reading {kind}'s results: {error}"));
    while let Some(page) = pages
        .next_page()
        .await
        .unwrap_or_else(|error| panic!("reading {kind}'s results: {error}"))
    {
        rows.extend(page);
    }
    (status, rows)
}

/// Precision and recall of a set of answers against the truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Share of the answers that are true.
    pub precision: f64,
    /// Share of the truth that was answered.
    pub recall: f64,
    /// How many answers.
    pub n_answers: usize,
}

impl Quality {
    /// From counts of answers, true answers and truths.
    pub fn from_counts(n_answers: usize, n_true_answers: usize, n_truths: usize) -> Self {
        Quality {
            precision: if n_answers == 0 {
                0.0
            } else {
                n_true_answers as f64 / n_answers as f64
            },
            recall: if n_truths == 0 {
                0.0
            } else {
                n_true_answers as f64 / n_truths as f64
            },
            n_answers,
        }
    }

    /// The harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        if self.precision + self.recall == 0.0 {
            0.0
        } else {
            2.0 * self.precision * self.recall / (self.precision + self.recall)
        }
    }
}
