//! Property tests shared by every score: outputs stay in their documented
//! range and finite, and do not depend on row order (nor on translation,
//! where the definition says so), on random labeled data. The same for the
//! kernels that are not per-record scores: near-duplicate pairs, drift and
//! the projection.

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

    #[test]
    fn density_and_duplicates_ignore_row_order_and_translation((values, labels, predictions) in labeled_data(false), k in 1usize..6, offset in -50.0f32..50.0) {
        // Density scores and duplicate candidates read the neighbours'
        // neighbours: compare only data whose neighbour sets are unambiguous.
        prop_assume!(untied_rows(&values, k).len() == labels.len());
        let n_rows = labels.len();
        let (reversed_values, reversed_labels) = reversed(&values, &labels);
        let (_, reversed_predictions) = reversed(&values, &predictions);
        let forward = all_scores(&values, &labels, &predictions, k);
        let backward = all_scores(&reversed_values, &reversed_labels, &reversed_predictions, k);
        for score_idx in [2usize, 3] {
            for row in 0..n_rows {
                let (left, right) = (forward[score_idx][row], backward[score_idx][n_rows - 1 - row]);
                prop_assert!((left - right).abs() <= 1e-3 * left.abs().max(1.0), "score {score_idx} row {row}: {left} vs {right}");
            }
        }
        let pairs = |values: &[f32], flip: bool| -> Vec<(u32, u32)> {
            let dataset = DatasetView::new(values, 3).unwrap();
            let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(k), &Execution::single_threaded()).unwrap();
            let original = |row: u32| if flip { n_rows as u32 - 1 - row } else { row };
            let mut found: Vec<(u32, u32)> = near_duplicates(&dataset, &graph, DuplicateThreshold::Absolute(1.0))
                .unwrap()
                .iter()
                .map(|pair| {
                    let (a, b) = (original(pair.row), original(pair.other_row));
                    (a.min(b), a.max(b))
                })
                .collect();
            found.sort_unstable();
            found.dedup();
            found
        };
        let shifted: Vec<f32> = values.iter().map(|value| value + offset).collect();
        let expected = pairs(&values, false);
        prop_assert_eq!(&pairs(&reversed_values, true), &expected, "row order");
        // A pair at the threshold may round either way once shifted.
        let near_threshold = |values: &[f32]| {
            let dataset = DatasetView::new(values, 3).unwrap();
            (0..n_rows).any(|a| (0..n_rows).any(|b| {
                let distance = Metric::L2.distance(dataset.row(a), dataset.row(b));
                (distance - 1.0).abs() < 1e-3
            }))
        };
        if !near_threshold(&values) {
            prop_assert_eq!(&pairs(&shifted, false), &expected, "translation by {}", offset);
        }
    }

    #[test]
    fn drift_ignores_row_order_and_translation((values, _, _) in labeled_data(false), shift in 0.0f32..2.0, offset in -50.0f32..50.0) {
        let moved: Vec<f32> = values.iter().map(|value| value + shift).collect();
        let report = |reference: &[f32], target: &[f32]| {
            // A sample as large as the data takes every row, in any order.
            let options = DriftOptions { sample_size: 100, n_permutations: 50, seed: 7 };
            drift(
                &DatasetView::new(reference, 3).unwrap(),
                &DatasetView::new(target, 3).unwrap(),
                Metric::L2,
                &options,
                &Execution::single_threaded(),
            )
            .unwrap()
        };
        let base = report(&values, &moved);
        prop_assert!(base.mmd_squared.is_finite() && (0.0..=1.0).contains(&base.p_value), "{base:?}");
        let n_rows = values.len() / 3;
        let (reversed_values, _) = reversed(&values, &vec![(); n_rows]);
        let (reversed_moved, _) = reversed(&moved, &vec![(); n_rows]);
        let close = |left: f32, right: f32| (left - right).abs() <= 1e-3 + 1e-2 * left.abs();
        let backward = report(&reversed_values, &reversed_moved);
        prop_assert!(close(base.mmd_squared, backward.mmd_squared), "row order: {} vs {}", base.mmd_squared, backward.mmd_squared);
        let shifted = |values: &[f32]| values.iter().map(|value| value + offset).collect::<Vec<f32>>();
        let translated = report(&shifted(&values), &shifted(&moved));
        prop_assert!(close(base.mmd_squared, translated.mmd_squared), "translation: {} vs {}", base.mmd_squared, translated.mmd_squared);
        prop_assert!(close(base.bandwidth, translated.bandwidth), "bandwidth: {} vs {}", base.bandwidth, translated.bandwidth);
    }

    #[test]
    fn a_full_projection_keeps_distances_and_ignores_row_order((values, _, _) in labeled_data(false), offset in -50.0f32..50.0) {
        // Three components of 3-d data: a rotation about the mean, so every
        // pairwise distance survives, wherever the data sits.
        let n_rows = values.len() / 3;
        let shifted: Vec<f32> = values.iter().map(|value| value + offset).collect();
        let dataset = DatasetView::new(&shifted, 3).unwrap();
        let projected = projection(&dataset, 3, &Execution::single_threaded()).unwrap();
        let coordinates = DatasetView::new(&projected.coordinates, 3).unwrap();
        let original = DatasetView::new(&values, 3).unwrap();
        for a in 0..n_rows {
            for b in 0..n_rows {
                let before = Metric::L2.distance(original.row(a), original.row(b));
                let after = Metric::L2.distance(coordinates.row(a), coordinates.row(b));
                prop_assert!((before - after).abs() <= 1e-2 * before.max(1.0), "rows {a}, {b}: {before} vs {after}");
            }
        }
        let ratios = &projected.explained_variance_ratio;
        prop_assert!(ratios.iter().all(|ratio| (0.0..=1.0 + 1e-5).contains(ratio)), "{ratios:?}");
        let (reversed_values, _) = reversed(&values, &vec![(); n_rows]);
        let backward = projection(&DatasetView::new(&reversed_values, 3).unwrap(), 3, &Execution::single_threaded()).unwrap();
        for (left, right) in ratios.iter().zip(&backward.explained_variance_ratio) {
            prop_assert!((left - right).abs() <= 1e-3, "{ratios:?} vs {:?}", backward.explained_variance_ratio);
        }
    }
}
