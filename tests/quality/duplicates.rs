//! Near duplicates found with default parameters: the digits data plus
//! copies of a few hundred records, each moved by noise scaled to its
//! source's own nearest-neighbour distance, plus a few exact copies; within
//! one dataset, and across two (a test set leaking training records).

use std::collections::HashSet;

use mutant_core::service::Service;
use serde_json::{Value, json};

use super::data::{LabeledData, Random, digits, nearest_distances, record};
use super::{Quality, analyze, create_dataset, memory_service};

/// Noisy copies planted.
pub const N_NOISY_COPIES: usize = 300;
/// Exact copies planted.
pub const N_EXACT_COPIES: usize = 20;
/// A noisy copy lies at `s x d1(source)` from its source, `s` uniform in
/// this range: at most half as far as the source's nearest neighbour, so a
/// copy is clearly closer to its source than anything else is, but the
/// noise is as large as half the local spacing.
pub const NOISE_SCALE: (f64, f64) = (0.05, 0.5);

/// How the default rule and the best single distance threshold did.
#[derive(Debug, Clone, Copy)]
pub struct DuplicateFigures {
    /// The default (automatic) rule.
    pub automatic: Quality,
    /// The best single distance threshold, chosen knowing the truth (best F1).
    pub best_threshold: Quality,
    /// That threshold.
    pub threshold: f32,
}

/// A data set with planted copies: vectors of the originals then the copies,
/// and the true pairs as (original id, copy id).
struct Planted {
    data: LabeledData,
    ids: Vec<String>,
    truth: HashSet<(String, String)>,
}

fn id(row: usize) -> String {
    format!("r{row}")
}

/// Copies of `N_NOISY_COPIES + N_EXACT_COPIES` distinct sources of `data`
/// appended to it; with `spread_half`, classes 0 to 4 are first spread three
/// times wider, so the data holds dense and sparse regions.
fn plant(data: &LabeledData, seed: u64, spread_half: bool) -> Planted {
    let mut data = data.clone();
    if spread_half {
        for row in 0..data.n_records() {
            if data.labels[row] < 5 {
                for value in &mut data.vectors[row * data.dimension..(row + 1) * data.dimension] {
                    *value *= 3.0;
                }
            }
        }
    }
    let nearest = nearest_distances(&data);
    let mut random = Random::new(seed);
    let candidates: Vec<usize> = (0..data.n_records())
        .filter(|&row| nearest[row] > 0.0)
        .collect();
    let picks = random.sample(candidates.len(), N_NOISY_COPIES + N_EXACT_COPIES);
    let n_originals = data.n_records();
    let mut ids: Vec<String> = (0..n_originals).map(id).collect();
    let mut truth = HashSet::new();
    for (copy_idx, &pick) in picks.iter().enumerate() {
        let source = candidates[pick];
        let mut copy = data.row(source).to_vec();
        if copy_idx < N_NOISY_COPIES {
            let scale = random.uniform(NOISE_SCALE.0, NOISE_SCALE.1) as f32 * nearest[source];
            for (value, direction) in copy.iter_mut().zip(random.direction(data.dimension)) {
                *value += scale * direction;
            }
        }
        let copy_id = id(n_originals + copy_idx);
        truth.insert(pair_key(&id(source), &copy_id));
        ids.push(copy_id);
        data.vectors.extend(copy);
        data.labels.push(data.labels[source]);
    }
    Planted { data, ids, truth }
}

fn pair_key(left: &str, right: &str) -> (String, String) {
    if left <= right {
        (left.to_owned(), right.to_owned())
    } else {
        (right.to_owned(), left.to_owned())
    }
}

fn pairs_of(rows: &[Value]) -> Vec<((String, String), f32)> {
    rows.iter()
        .map(|row| {
            let id = row["id"].as_str().unwrap_or_default();
            let other = row["other_id"].as_str().unwrap_or_default();
            (
                pair_key(id, other),
                row["distance"].as_f64().unwrap_or(0.0) as f32,
            )
        })
        .collect()
}

fn quality(pairs: &[(String, String)], truth: &HashSet<(String, String)>) -> Quality {
    let n_true = pairs.iter().filter(|pair| truth.contains(*pair)).count();
    Quality::from_counts(pairs.len(), n_true, truth.len())
}

/// The best F1 over every single distance threshold, among the candidate
/// pairs of the same kNN graph (`candidates`, with their distances).
fn best_threshold(
    candidates: &[((String, String), f32)],
    truth: &HashSet<(String, String)>,
) -> (f32, Quality) {
    let mut sorted = candidates.to_vec();
    sorted.sort_by(|left, right| left.1.total_cmp(&right.1));
    let mut best = (0.0, Quality::from_counts(0, 0, truth.len()));
    let mut n_true = 0;
    for (count, (pair, distance)) in sorted.iter().enumerate() {
        if truth.contains(pair) {
            n_true += 1;
        }
        let quality = Quality::from_counts(count + 1, n_true, truth.len());
        let next_is_equal = sorted
            .get(count + 1)
            .is_some_and(|(_, next)| next == distance);
        if !next_is_equal && quality.f1() > best.1.f1() {
            best = (*distance, quality);
        }
    }
    best
}

/// Copies planted within digits (`spread_half`: in dense and sparse
/// regions), found by `near_duplicates` with no parameters, against the
/// best single distance threshold on the same candidates.
pub async fn within_one_dataset(seed: u64, spread_half: bool) -> DuplicateFigures {
    let planted = plant(&digits(), seed, spread_half);
    let service = memory_service();
    let records = planted
        .ids
        .iter()
        .enumerate()
        .map(|(row, id)| record(id.clone(), planted.data.row(row), None, None))
        .collect();
    create_dataset(&service, "planted", planted.data.dimension, records).await;
    figures_of(&service, "planted", None, &planted.truth).await
}

/// Leakage: digits split 70/30 into a reference and a target; copies of
/// reference records (noisy and exact) added to the target are found by
/// `near_duplicates` of the target against the reference.
pub async fn across_datasets(seed: u64) -> DuplicateFigures {
    let all = digits();
    let mut random = Random::new(seed ^ 0x1EA4);
    let mut order: Vec<usize> = (0..all.n_records()).collect();
    random.shuffle(&mut order);
    let n_reference = all.n_records() * 7 / 10;
    let reference_rows = &order[..n_reference];
    let target_rows = &order[n_reference..];
    let subset = |rows: &[usize]| LabeledData {
        dimension: all.dimension,
        vectors: rows.iter().flat_map(|&row| all.row(row).to_vec()).collect(),
        labels: rows.iter().map(|&row| all.labels[row]).collect(),
    };
    // Plant copies into the reference's own data, then move them to the
    // target: their sources stay in the reference.
    let planted = plant(&subset(reference_rows), seed, false);
    let target_originals = subset(target_rows);
    let service = memory_service();
    let reference_records = (0..n_reference)
        .map(|row| record(id(row), planted.data.row(row), None, None))
        .collect();
    let mut target_records: Vec<_> = (0..target_originals.n_records())
        .map(|row| record(format!("t{row}"), target_originals.row(row), None, None))
        .collect();
    target_records.extend(
        (n_reference..planted.data.n_records())
            .map(|row| record(id(row), planted.data.row(row), None, None)),
    );
    create_dataset(&service, "reference", all.dimension, reference_records).await;
    create_dataset(&service, "target", all.dimension, target_records).await;
    figures_of(&service, "target", Some("reference"), &planted.truth).await
}

/// `near_duplicates` of `target` (against `reference`) with no parameters,
/// and the best single threshold among every candidate pair it considers.
async fn figures_of(
    service: &Service,
    target: &str,
    reference: Option<&str>,
    truth: &HashSet<(String, String)>,
) -> DuplicateFigures {
    let (_, automatic) = analyze(service, "near_duplicates", target, reference, json!({})).await;
    let found: Vec<(String, String)> = pairs_of(&automatic)
        .into_iter()
        .map(|(pair, _)| pair)
        .collect();
    let (_, every_candidate) = analyze(
        service,
        "near_duplicates",
        target,
        reference,
        json!({"threshold": 1e30}),
    )
    .await;
    let (threshold, best) = best_threshold(&pairs_of(&every_candidate), truth);
    DuplicateFigures {
        automatic: quality(&found, truth),
        best_threshold: best,
        threshold,
    }
}

/// Pairs the default rule reports on digits as they are (no planted
/// copies; digits holds no exact duplicates).
pub async fn on_clean_digits() -> usize {
    let data = digits();
    let service = memory_service();
    let records = (0..data.n_records())
        .map(|row| record(id(row), data.row(row), None, None))
        .collect();
    create_dataset(&service, "clean", data.dimension, records).await;
    analyze(&service, "near_duplicates", "clean", None, json!({}))
        .await
        .1
        .len()
}
