//! Mislabeled records: digits (and the breast cancer set) with a share of
//! labels flipped to another class on purpose, scored by `mislabel` with
//! default parameters; and, for the choice of those defaults, the methods
//! and neighbour counts a user could pick instead.

use mutant_core::kernels::{
    DatasetView, Execution, KnnOptions, Metric, MislabelMethod, knn_graph, mislabel,
};
use serde_json::json;

use super::data::{LabeledData, Random, record};
use super::{Quality, analyze, create_dataset, memory_service};

/// The share of labels flipped.
pub const FLIPPED_SHARE: f64 = 0.1;

/// The labels of `data` with `FLIPPED_SHARE` of them moved to a uniformly
/// random other class, and which were.
pub fn flip_labels(data: &LabeledData, seed: u64) -> (Vec<u32>, Vec<bool>) {
    let mut random = Random::new(seed);
    let n_classes = data.n_classes() as u32;
    let n_flips = (data.n_records() as f64 * FLIPPED_SHARE).round() as usize;
    let mut labels = data.labels.clone();
    let mut flipped = vec![false; data.n_records()];
    for row in random.sample(data.n_records(), n_flips) {
        let offset = 1 + random.below(n_classes as usize - 1) as u32;
        labels[row] = (labels[row] + offset) % n_classes;
        flipped[row] = true;
    }
    (labels, flipped)
}

/// What `mislabel` with no parameters found.
#[derive(Debug, Clone, Copy)]
pub struct MislabelFigures {
    /// Its verdict (`flagged`) against the flips.
    pub verdict: Quality,
    /// Area under the ROC curve of its ranking.
    pub auroc: f64,
    /// Average precision of its ranking.
    pub average_precision: f64,
}

/// Runs `mislabel` with default parameters through the service on `data`
/// with flipped labels.
pub async fn with_defaults(data: &LabeledData, seed: u64) -> MislabelFigures {
    let (labels, flipped) = flip_labels(data, seed);
    let service = memory_service();
    let records = (0..data.n_records())
        .map(|row| record(format!("r{row}"), data.row(row), Some(labels[row]), None))
        .collect();
    create_dataset(&service, "labeled", data.dimension, records).await;
    let (_, rows) = analyze(&service, "mislabel", "labeled", None, json!({})).await;
    let is_flip = |row: &serde_json::Value| {
        let id = row["id"].as_str().unwrap_or_default();
        id[1..].parse::<usize>().is_ok_and(|row| flipped[row])
    };
    let ranked_flips: Vec<bool> = rows.iter().map(is_flip).collect();
    let n_flagged = rows
        .iter()
        .filter(|row| row["flagged"] == json!(true))
        .count();
    let n_true_flags = rows
        .iter()
        .filter(|row| row["flagged"] == json!(true) && is_flip(row))
        .count();
    let n_flips = flipped.iter().filter(|&&flip| flip).count();
    MislabelFigures {
        verdict: Quality::from_counts(n_flagged, n_true_flags, n_flips),
        auroc: auroc(&ranked_flips),
        average_precision: average_precision(&ranked_flips),
    }
}

/// How a record's neighbours vote on its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Votes {
    /// The kernel's: weighted by distance (nearer neighbours count more).
    DistanceWeighted,
    /// The plain count, as a baseline (not a kernel option).
    Uniform,
}

/// One setting of the method comparison.
#[derive(Debug, Clone, Copy)]
pub struct MethodFigures {
    /// How the score is computed.
    pub method: MislabelMethod,
    /// How neighbours vote.
    pub votes: Votes,
    /// Neighbours voting.
    pub k: usize,
    /// Area under the ROC curve of the ranking.
    pub auroc: f64,
    /// Average precision of the ranking.
    pub average_precision: f64,
}

/// The kernel's ranking quality for each method and `k` in `ks`, on `data`
/// with flipped labels (distance-weighted votes, as the kernel has).
pub fn compare_methods(data: &LabeledData, seed: u64, ks: &[usize]) -> Vec<MethodFigures> {
    let (labels, flipped) = flip_labels(data, seed);
    let codes: Vec<Option<u32>> = labels.iter().map(|&label| Some(label)).collect();
    let view = DatasetView::new(&data.vectors, data.dimension)
        .and_then(|view| view.with_labels(&codes))
        .expect("the test data is well formed");
    let mut figures = Vec::new();
    for &k in ks {
        let graph = knn_graph(&view, Metric::L2, &KnnOptions::new(k), &Execution::new())
            .expect("a graph of the test data");
        for method in [
            MislabelMethod::SelfConfidence,
            MislabelMethod::NormalizedMargin,
        ] {
            let result = mislabel(&view, &graph, method).expect("mislabel on the test data");
            let ranked: Vec<bool> = result
                .scores
                .ranking()
                .iter()
                .map(|&row| flipped[row as usize])
                .collect();
            figures.push(MethodFigures {
                method,
                votes: Votes::DistanceWeighted,
                k,
                auroc: auroc(&ranked),
                average_precision: average_precision(&ranked),
            });
        }
        // The uniform-vote baseline: self-confidence from plain counts,
        // ties broken as the kernel does (nearest evidence first).
        let mut scored: Vec<(f32, f32, usize)> = (0..data.n_records())
            .map(|row| {
                let neighbours = graph.rows(row);
                let agreeing = neighbours
                    .iter()
                    .filter(|&&other| labels[other as usize] == labels[row])
                    .count();
                let mean_distance =
                    graph.distances(row).iter().sum::<f32>() / neighbours.len().max(1) as f32;
                let score = 1.0 - agreeing as f32 / neighbours.len().max(1) as f32;
                (score, -mean_distance, row)
            })
            .collect();
        scored.sort_by(|left, right| {
            right
                .0
                .total_cmp(&left.0)
                .then(right.1.total_cmp(&left.1))
                .then(left.2.cmp(&right.2))
        });
        let ranked: Vec<bool> = scored.iter().map(|&(_, _, row)| flipped[row]).collect();
        figures.push(MethodFigures {
            method: MislabelMethod::SelfConfidence,
            votes: Votes::Uniform,
            k,
            auroc: auroc(&ranked),
            average_precision: average_precision(&ranked),
        });
    }
    figures
}

/// The area under the ROC curve of a ranking (positives flagged in rank
/// order): the chance a random positive ranks above a random negative.
pub fn auroc(ranked_positives: &[bool]) -> f64 {
    let n_positives = ranked_positives
        .iter()
        .filter(|&&positive| positive)
        .count();
    let n_negatives = ranked_positives.len() - n_positives;
    if n_positives == 0 || n_negatives == 0 {
        return 0.5;
    }
    let mut negatives_below = n_negatives;
    let mut wins = 0usize;
    for &positive in ranked_positives {
        if positive {
            wins += negatives_below;
        } else {
            negatives_below -= 1;
        }
    }
    wins as f64 / (n_positives * n_negatives) as f64
}

/// The average precision of a ranking: the mean, over the positives, of the
/// precision at each one's rank.
pub fn average_precision(ranked_positives: &[bool]) -> f64 {
    let mut n_seen = 0usize;
    let mut sum = 0.0;
    for (rank, &positive) in ranked_positives.iter().enumerate() {
        if positive {
            n_seen += 1;
            sum += n_seen as f64 / (rank + 1) as f64;
        }
    }
    if n_seen == 0 {
        0.0
    } else {
        sum / n_seen as f64
    }
}
