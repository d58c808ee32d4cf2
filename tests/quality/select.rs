//! Choosing what to label next: on digits, a few labeled records per class
//! (the reference), the rest a pool carrying a weak model's predictions; the
//! records `select` picks with only `n` are labeled and added, and a model
//! trained on them is scored on a held-out test split, against the same
//! model trained on records picked at random.

use serde_json::json;

use super::data::{LabeledData, Random, digits, l2, record};
use super::{analyze, create_dataset, memory_service};

/// Labeled records per class in the reference.
pub const LABELED_PER_CLASS: usize = 5;
/// The share of the data held out to score the models.
pub const TEST_SHARE: f64 = 0.3;
/// Random draws the picks are compared with.
pub const RANDOM_DRAWS: usize = 10;

/// How labeling `select`'s picks compared with labeling random picks.
#[derive(Debug, Clone)]
pub struct SelectFigures {
    /// Records picked.
    pub n: usize,
    /// Test accuracy with the reference alone.
    pub reference_only: f64,
    /// Test accuracy with `select`'s picks labeled.
    pub selected: f64,
    /// Test accuracy with random picks labeled, per draw.
    pub random: Vec<f64>,
    /// How `select` chose (its summary's strategy).
    pub strategy: String,
}

impl SelectFigures {
    /// The mean accuracy of the random draws.
    pub fn random_mean(&self) -> f64 {
        self.random.iter().sum::<f64>() / self.random.len().max(1) as f64
    }

    /// The sample standard deviation of the random draws.
    pub fn random_deviation(&self) -> f64 {
        let mean = self.random_mean();
        let n = self.random.len();
        if n < 2 {
            return 0.0;
        }
        (self
            .random
            .iter()
            .map(|value| (value - mean).powi(2))
            .sum::<f64>()
            / (n - 1) as f64)
            .sqrt()
    }

    /// By how many standard deviations of random `select` beat it.
    pub fn margin_in_deviations(&self) -> f64 {
        (self.selected - self.random_mean()) / self.random_deviation().max(f64::MIN_POSITIVE)
    }
}

/// The evaluation model: a 1-nearest-neighbour classifier on the labeled
/// records, the plainest model on embeddings. Its accuracy on `test`.
fn accuracy(data: &LabeledData, labeled: &[usize], test: &[usize]) -> f64 {
    let correct = test
        .iter()
        .filter(|&&row| {
            let nearest = labeled.iter().min_by(|&&left, &&right| {
                l2(data.row(row), data.row(left)).total_cmp(&l2(data.row(row), data.row(right)))
            });
            nearest.is_some_and(|&nearest| data.labels[nearest] == data.labels[row])
        })
        .count();
    correct as f64 / test.len().max(1) as f64
}

/// Splits digits for `seed`, runs `select` with only `n` (and a labeled
/// reference) through the service, and scores the picks against random ones.
pub async fn against_random(seed: u64, n: usize) -> SelectFigures {
    let data = digits();
    let mut random = Random::new(seed);
    let mut order: Vec<usize> = (0..data.n_records()).collect();
    random.shuffle(&mut order);
    let n_test = (data.n_records() as f64 * TEST_SHARE) as usize;
    let (test, rest) = order.split_at(n_test);
    let mut reference = Vec::new();
    for class in 0..data.n_classes() as u32 {
        let members: Vec<usize> = rest
            .iter()
            .copied()
            .filter(|&row| data.labels[row] == class)
            .collect();
        for pick in random.sample(members.len(), LABELED_PER_CLASS) {
            reference.push(members[pick]);
        }
    }
    let pool: Vec<usize> = rest
        .iter()
        .copied()
        .filter(|row| !reference.contains(row))
        .collect();
    // The weak model: 1-NN on the reference, its predictions on the pool.
    let predict = |row: usize| {
        reference
            .iter()
            .min_by(|&&left, &&right| {
                l2(data.row(row), data.row(left)).total_cmp(&l2(data.row(row), data.row(right)))
            })
            .map(|&nearest| data.labels[nearest])
    };
    let service = memory_service();
    let reference_records = reference
        .iter()
        .map(|&row| {
            record(
                format!("r{row}"),
                data.row(row),
                Some(data.labels[row]),
                None,
            )
        })
        .collect();
    let pool_records = pool
        .iter()
        .map(|&row| record(format!("r{row}"), data.row(row), None, predict(row)))
        .collect();
    create_dataset(&service, "reference", data.dimension, reference_records).await;
    create_dataset(&service, "pool", data.dimension, pool_records).await;
    let (status, rows) = analyze(
        &service,
        "select",
        "pool",
        Some("reference"),
        json!({"n": n}),
    )
    .await;
    let picked: Vec<usize> = rows
        .iter()
        .filter_map(|row| row["id"].as_str()?[1..].parse().ok())
        .collect();
    assert_eq!(picked.len(), n, "select picked {} of {n}", picked.len());
    let with = |picks: &[usize]| {
        let labeled: Vec<usize> = reference.iter().chain(picks).copied().collect();
        accuracy(&data, &labeled, test)
    };
    let random_accuracies = (0..RANDOM_DRAWS)
        .map(|draw| {
            let mut draws = Random::new(seed.wrapping_mul(1_000).wrapping_add(draw as u64));
            let picks: Vec<usize> = draws
                .sample(pool.len(), n)
                .into_iter()
                .map(|index| pool[index])
                .collect();
            with(&picks)
        })
        .collect();
    SelectFigures {
        n,
        reference_only: accuracy(&data, &reference, test),
        selected: with(&picked),
        random: random_accuracies,
        strategy: status
            .summary
            .as_ref()
            .and_then(|summary| summary["strategy"].as_str())
            .unwrap_or_default()
            .to_owned(),
    }
}
