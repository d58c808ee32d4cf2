//! Tests of `mislabel`: hand cases, invariants, and the digits data set with
//! injected label noise.

use super::super::{Execution, KnnOptions, Metric, SplitMix64, knn, knn_graph};
use super::*;

/// scikit-learn's digits (1,797 x 64, 10 classes); see
/// `scripts/make_testdata.sh`.
const DIGITS: &str = include_str!("../../testdata/digits.csv");

fn load_digits() -> (Vec<f32>, Vec<u32>) {
    let mut vectors = Vec::new();
    let mut labels = Vec::new();
    for line in DIGITS.lines() {
        let mut fields = line.split(',');
        labels.push(fields.next().unwrap().parse().unwrap());
        vectors.extend(fields.map(|field| field.parse::<f32>().unwrap()));
    }
    (vectors, labels)
}

/// Area under the ROC curve of `scores` for the positives in `is_positive`
/// (ties count half).
fn auroc(scores: &[f32], is_positive: &[bool]) -> f64 {
    let mut pairs = 0.0;
    let mut wins = 0.0;
    for (_, &positive_score) in scores
        .iter()
        .enumerate()
        .filter(|&(idx, _)| is_positive[idx])
    {
        for (_, &negative_score) in scores
            .iter()
            .enumerate()
            .filter(|&(idx, _)| !is_positive[idx])
        {
            pairs += 1.0;
            if positive_score > negative_score {
                wins += 1.0;
            } else if positive_score == negative_score {
                wins += 0.5;
            }
        }
    }
    wins / pairs
}

#[test]
fn digits_with_flipped_labels_ranks_the_flips_first() {
    let (vectors, true_labels) = load_digits();
    assert_eq!(true_labels.len(), 1797);
    let mut generator = SplitMix64::new(2024);
    let n_flips = true_labels.len() / 10;
    let flipped_rows = generator.sample_indices(true_labels.len(), n_flips);
    let mut is_flipped = vec![false; true_labels.len()];
    let mut labels: Vec<Option<u32>> = true_labels.iter().map(|&label| Some(label)).collect();
    for &row in &flipped_rows {
        is_flipped[row] = true;
        let offset = 1 + generator.below(9) as u32;
        labels[row] = Some((true_labels[row] + offset) % 10);
    }
    let dataset = DatasetView::new(&vectors, 64)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let graph = knn_graph(
        &dataset,
        Metric::L2,
        &KnnOptions::new(10),
        &Execution::new(),
    )
    .unwrap();
    for method in [
        MislabelMethod::SelfConfidence,
        MislabelMethod::NormalizedMargin,
    ] {
        let result = mislabel(&dataset, &graph, method).unwrap();
        // Rank-based AUROC over the full ranking (refinement breaks ties).
        let ranking = result.scores.ranking();
        let mut rank_scores = vec![0.0f32; ranking.len()];
        for (position, &row) in ranking.iter().enumerate() {
            rank_scores[row as usize] = (ranking.len() - position) as f32;
        }
        let area = auroc(&rank_scores, &is_flipped);
        let precision = ranking[..n_flips]
            .iter()
            .filter(|&&row| is_flipped[row as usize])
            .count() as f64
            / n_flips as f64;
        let flag_recall = (0..labels.len())
            .filter(|&row| is_flipped[row] && result.flagged[row])
            .count() as f64
            / n_flips as f64;
        eprintln!(
            "digits, 10% flipped (seed 2024), k = 10, {method:?}: AUROC {area:.4}, precision at {n_flips} {precision:.4}, flag recall {flag_recall:.4}"
        );
        assert!(area > 0.9, "{method:?}: AUROC {area}");
        assert!(precision > 0.7, "{method:?}: precision {precision}");
    }
}

#[test]
fn scores_are_in_range_and_invariant_to_translation_and_row_order() {
    let vectors = [
        0.0f32, 0.0, 0.1, 0.2, 0.3, 0.1, 4.0, 4.0, 4.2, 4.1, 3.9, 4.3, 0.2, 0.0,
    ];
    let labels = [
        Some(0),
        Some(0),
        Some(1),
        Some(1),
        Some(1),
        Some(0),
        Some(1),
    ];
    let dataset = DatasetView::new(&vectors, 2)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(3), &Execution::new()).unwrap();
    let result = mislabel(&dataset, &graph, MislabelMethod::SelfConfidence).unwrap();
    assert!(
        result
            .scores
            .scores
            .iter()
            .all(|score| (0.0..=1.0).contains(score))
    );

    let shifted: Vec<f32> = vectors.iter().map(|value| value + 100.0).collect();
    let shifted_dataset = DatasetView::new(&shifted, 2)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let shifted_graph = knn_graph(
        &shifted_dataset,
        Metric::L2,
        &KnnOptions::new(3),
        &Execution::new(),
    )
    .unwrap();
    let shifted_result = mislabel(
        &shifted_dataset,
        &shifted_graph,
        MislabelMethod::SelfConfidence,
    )
    .unwrap();
    for (left, right) in result
        .scores
        .scores
        .iter()
        .zip(&shifted_result.scores.scores)
    {
        assert!((left - right).abs() < 1e-4);
    }

    // Reverse the row order: every record keeps its score.
    let n_rows = labels.len();
    let reversed: Vec<f32> = (0..n_rows)
        .rev()
        .flat_map(|row| vectors[row * 2..row * 2 + 2].to_vec())
        .collect();
    let reversed_labels: Vec<Option<u32>> = labels.iter().rev().copied().collect();
    let reversed_dataset = DatasetView::new(&reversed, 2)
        .unwrap()
        .with_labels(&reversed_labels)
        .unwrap();
    let reversed_graph = knn_graph(
        &reversed_dataset,
        Metric::L2,
        &KnnOptions::new(3),
        &Execution::new(),
    )
    .unwrap();
    let reversed_result = mislabel(
        &reversed_dataset,
        &reversed_graph,
        MislabelMethod::SelfConfidence,
    )
    .unwrap();
    for row in 0..n_rows {
        assert!(
            (result.scores.scores[row] - reversed_result.scores.scores[n_rows - 1 - row]).abs()
                < 1e-6
        );
    }
}

#[test]
fn hand_case_probabilities_and_flag() {
    // Row 2 (label 1) sits between two rows labeled 0 at equal distance.
    let vectors = [0.0f32, 2.0, 1.0];
    let labels = [Some(0), Some(0), Some(1)];
    let dataset = DatasetView::new(&vectors, 1)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(2), &Execution::new()).unwrap();
    let result = mislabel(&dataset, &graph, MislabelMethod::SelfConfidence).unwrap();
    assert_eq!(result.given_probability[2], 0.0);
    assert_eq!(result.scores.scores[2], 1.0);
    assert_eq!(result.suggested_label[2], Some(0));
    let margin = mislabel(&dataset, &graph, MislabelMethod::NormalizedMargin).unwrap();
    assert_eq!(margin.scores.scores[2], 1.0);
    assert!(
        result
            .evidence
            .record(2)
            .labels
            .iter()
            .all(|&label| label == Some(0))
    );
}

#[test]
fn unlabeled_records_and_lonely_classes_have_defined_scores() {
    let vectors = [0.0f32, 0.1, 9.0];
    let labels = [Some(0), None, Some(5)];
    let dataset = DatasetView::new(&vectors, 1)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(1), &Execution::new()).unwrap();
    let result = mislabel(&dataset, &graph, MislabelMethod::SelfConfidence).unwrap();
    // Row 0's only neighbour is unlabeled: no evidence, score 0.
    assert_eq!(result.scores.scores[0], 0.0);
    assert_eq!(result.scores.scores[1], 0.0);
    assert!(!result.flagged[1]);
    assert!(result.scores.scores.iter().all(|score| score.is_finite()));
}

#[test]
fn a_graph_that_is_not_leave_one_out_is_an_error() {
    let labels = [Some(0), Some(1)];
    let dataset = DatasetView::new(&[0.0f32, 1.0], 1)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let graph = knn(
        &dataset,
        &dataset,
        Metric::L2,
        &KnnOptions::new(1),
        &Execution::new(),
    )
    .unwrap();
    assert!(matches!(
        mislabel(&dataset, &graph, MislabelMethod::SelfConfidence),
        Err(Error::InvalidParameter { .. })
    ));
}
