//! Property tests shared by every score: outputs stay in their documented
//! range and finite, and do not depend on row order (nor on translation,
//! where the definition says so), on random labeled data.

use proptest::prelude::*;

use super::*;

/// Random rows of dimension 3 with labels and predictions from 3 classes;
/// on a grid (`on_grid`: ties and duplicates are common) or continuous.
fn labeled_data(
    on_grid: bool,
) -> impl Strategy<Value = (Vec<f32>, Vec<Option<u32>>, Vec<Option<u32>>)> {
    (4usize..40).prop_flat_map(move |n_rows| {
        let coordinate = if on_grid {
            (-4i32..5).prop_map(|value| value as f32 * 0.5).boxed()
        } else {
            (-4.0f32..4.0).boxed()
        };
        (
            proptest::collection::vec(coordinate, n_rows * 3),
            proptest::collection::vec(proptest::option::weighted(0.9, 0u32..3), n_rows),
            proptest::collection::vec(proptest::option::weighted(0.9, 0u32..3), n_rows),
        )
    })
}

/// The rows of `values` (dimension 3) and of `per_row` in reverse order.
fn reversed<T: Clone>(values: &[f32], per_row: &[T]) -> (Vec<f32>, Vec<T>) {
    let n_rows = per_row.len();
    let rows = (0..n_rows)
        .rev()
        .flat_map(|row| values[row * 3..row * 3 + 3].to_vec())
        .collect();
    (rows, per_row.iter().rev().cloned().collect())
}

/// Rows whose k-th and (k+1)-th neighbour distances differ by more than a
/// rounding error: their k nearest neighbours are the same set whatever the
/// row order or the rounding.
fn untied_rows(values: &[f32], k: usize) -> Vec<usize> {
    let dataset = DatasetView::new(values, 3).unwrap();
    let graph = knn_graph(
        &dataset,
        Metric::L2,
        &KnnOptions::new(k + 1),
        &Execution::single_threaded(),
    )
    .unwrap();
    (0..dataset.n_rows())
        .filter(|&row| {
            let distances = graph.distances(row);
            distances.len() <= k || distances[k] - distances[k - 1] > 1e-3 * distances[k].max(1.0)
        })
        .collect()
}

fn all_scores(
    values: &[f32],
    labels: &[Option<u32>],
    predictions: &[Option<u32>],
    k: usize,
) -> Vec<Vec<f32>> {
    let execution = Execution::single_threaded();
    let dataset = DatasetView::new(values, 3)
        .unwrap()
        .with_labels(labels)
        .unwrap()
        .with_predictions(predictions)
        .unwrap();
    let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(k), &execution).unwrap();
    let mut scores = vec![
        mislabel(&dataset, &graph, MislabelMethod::SelfConfidence)
            .unwrap()
            .scores
            .scores,
        mislabel(&dataset, &graph, MislabelMethod::NormalizedMargin)
            .unwrap()
            .scores
            .scores,
        uniqueness(&dataset, &graph).unwrap().scores.scores,
        novelty(&dataset, &dataset, &graph, &graph)
            .unwrap()
            .scores
            .scores,
        activation_uncertainty(&dataset, &dataset)
            .unwrap()
            .scores
            .scores,
        class_outlier(&dataset, &dataset, &execution)
            .unwrap()
            .scores
            .scores,
    ];
    if dataset.has_labels() {
        scores.push(
            boundary_uncertainty(&dataset, &dataset, &graph)
                .unwrap()
                .scores
                .scores,
        );
    }
    scores
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn scores_are_finite_in_range_and_ignore_row_order((values, labels, predictions) in labeled_data(true), k in 1usize..6) {
        let forward = all_scores(&values, &labels, &predictions, k);
        for (score_idx, scores) in forward.iter().enumerate() {
            prop_assert!(scores.iter().all(|score| score.is_finite() && *score >= 0.0), "score {score_idx}: {scores:?}");
        }
        // mislabel (both), activation and boundary are fractions in [0, 1].
        for score_idx in [0usize, 1, 4, 6] {
            if let Some(scores) = forward.get(score_idx) {
                prop_assert!(scores.iter().all(|score| *score <= 1.0), "score {score_idx}: {scores:?}");
            }
        }
        // Row order: the neighbour sets of a row may change only among exact
        // distance ties (broken by row order), which the grid makes common;
        // so compare only rows without a tie at their k-th distance.
        let untied = untied_rows(&values, k);
        let (reversed_values, reversed_labels) = reversed(&values, &labels);
        let (_, reversed_predictions) = reversed(&values, &predictions);
        let backward = all_scores(&reversed_values, &reversed_labels, &reversed_predictions, k);
        let n_rows = labels.len();
        // activation and class_outlier do not use the graph: every row must match.
        for score_idx in [4usize, 5] {
            for row in 0..n_rows {
                let (left, right) = (forward[score_idx][row], backward[score_idx][n_rows - 1 - row]);
                prop_assert!((left - right).abs() <= 1e-3 * left.abs().max(1.0), "score {score_idx} row {row}: {left} vs {right}");
            }
        }
        for score_idx in [0usize, 1, 6] {
            if score_idx >= forward.len() { continue; }
            for &row in &untied {
                let (left, right) = (forward[score_idx][row], backward[score_idx][n_rows - 1 - row]);
                prop_assert!((left - right).abs() <= 1e-4, "score {score_idx} row {row}: {left} vs {right}");
            }
        }
    }

    #[test]
    fn translation_leaves_l2_scores_unchanged((values, labels, predictions) in labeled_data(false), k in 1usize..6, offset in -50.0f32..50.0) {
        let shifted: Vec<f32> = values.iter().map(|value| value + offset).collect();
        let before = all_scores(&values, &labels, &predictions, k);
        let after = all_scores(&shifted, &labels, &predictions, k);
        // Rounding of the shift can reorder near-ties; compare the graph-based
        // scores on rows clear of them (density scores also look at the
        // neighbours' neighbours, so only when every row is clear).
        let untied = untied_rows(&values, k);
        let all_untied = untied.len() == labels.len();
        let compare = |score_idx: usize, row: usize| (before[score_idx][row], after[score_idx][row]);
        for row in 0..labels.len() {
            let (left, right) = compare(5, row);
            prop_assert!((left - right).abs() <= 2e-3 * left.abs().max(1.0), "class_outlier row {row}: {left} vs {right}");
        }
        for score_idx in [0usize, 1, 2, 3, 6] {
            if score_idx >= before.len() || (matches!(score_idx, 2 | 3) && !all_untied) { continue; }
            for &row in &untied {
                let (left, right) = compare(score_idx, row);
                prop_assert!((left - right).abs() <= 2e-3 * left.abs().max(1.0), "score {score_idx} row {row}: {left} vs {right}");
            }
        }
    }
}
