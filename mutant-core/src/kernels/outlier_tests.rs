//! Tests of `outlier.rs`.

use super::*;

#[test]
fn matches_scikit_learn_ledoit_wolf_mahalanobis() {
    // sklearn.covariance.LedoitWolf().fit(reference): shrinkage 0.5213,
    // sqrt(mahalanobis(queries)) = [2.0164, 2.1241, 0.0].
    let reference_values = [
        1.0f32, 2.0, 3.0, 3.0, 4.0, 7.0, 0.0, 1.0, 2.0, 2.5, 5.0, 4.0,
    ];
    let labels = [Some(4); 6];
    let reference = DatasetView::new(&reference_values, 2)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let predictions = [Some(4); 3];
    let target = DatasetView::new(&[3.0f32, 0.0, 0.0, 5.0, 2.5, 3.25], 2)
        .unwrap()
        .with_predictions(&predictions)
        .unwrap();
    let result = class_outlier(&target, &reference, &Execution::new()).unwrap();
    for (got, expected) in result
        .scores
        .scores
        .iter()
        .zip([2.016_404_2f32, 2.124_068_7, 0.0])
    {
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    }
    assert!(
        result
            .percentile
            .iter()
            .all(|value| (0.0..=1.0).contains(value))
    );
    assert_eq!(result.percentile[2], 0.0);
}

/// Distances by the dense definition: the Ledoit-Wolf shrunk
/// covariance formed whole, and a Cholesky solve.
fn dense_distances(reference: &DatasetView<'_>, target: &DatasetView<'_>) -> Vec<f64> {
    use faer::Side;
    use faer::linalg::solvers::Solve;
    let (n, dimension) = (reference.n_rows(), reference.dimension());
    let all: Vec<usize> = (0..n).collect();
    let mean = class_mean(reference, &all);
    let centred = Mat::<f64>::from_fn(n, dimension, |row, position| {
        f64::from(reference.row(row)[position]) - mean[position]
    });
    let covariance = centred.transpose() * &centred * faer::Scale(1.0 / n as f64);
    let p = dimension as f64;
    let trace: f64 = (0..dimension).map(|index| covariance[(index, index)]).sum();
    let mu = trace / p;
    let frobenius: f64 = (0..dimension)
        .flat_map(|row| (0..dimension).map(move |column| (row, column)))
        .map(|(row, column)| covariance[(row, column)].powi(2))
        .sum();
    let fourth: f64 = (0..n)
        .map(|row| centred.row(row).squared_norm_l2().powi(2))
        .sum();
    let delta = (frobenius - 2.0 * mu * trace + p * mu * mu) / p;
    let beta = ((fourth / n as f64 - frobenius) / (p * n as f64)).min(delta);
    let shrinkage = (beta / delta).clamp(0.0, 1.0).max(MIN_SHRINKAGE);
    let mut shrunk = &covariance * faer::Scale(1.0 - shrinkage);
    for index in 0..dimension {
        shrunk[(index, index)] += shrinkage * mu;
    }
    let factor = shrunk.llt(Side::Lower).unwrap();
    (0..target.n_rows())
        .map(|row| {
            let centred = Mat::<f64>::from_fn(dimension, 1, |position, _| {
                f64::from(target.row(row)[position]) - mean[position]
            });
            let solved = factor.solve(&centred);
            (0..dimension)
                .map(|position| centred[(position, 0)] * solved[(position, 0)])
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

fn correlated(seed: u64, n_rows: usize, dimension: usize) -> Vec<f32> {
    let mut generator = crate::kernels::SplitMix64::new(seed);
    (0..n_rows * dimension)
        .map(|index| {
            // Variances falling as 1 / i^2, as real embeddings' spectra do.
            let scale = 4.0 / (1.0 + (index % dimension) as f64);
            ((generator.next_f64() - 0.5) * scale) as f32
        })
        .collect()
}

#[test]
fn the_low_rank_form_agrees_with_the_dense_covariance() {
    // Kept whole (rank under 64): the dense formula's distances.
    let reference_values = correlated(1, 50, 80);
    let target_values = correlated(2, 30, 80);
    let reference = DatasetView::new(&reference_values, 80).unwrap();
    let target = DatasetView::new(&target_values, 80).unwrap();
    let result = class_outlier(&target, &reference, &Execution::new()).unwrap();
    for (got, expected) in result
        .scores
        .scores
        .iter()
        .zip(dense_distances(&reference, &target))
    {
        assert!(
            (f64::from(*got) - expected).abs() < 1e-4 * expected.max(1.0),
            "{got} vs {expected}"
        );
    }
    // Truncated (400 records in 120 dimensions keep 64 directions): the
    // ranking of the dense distances, within a few percent.
    let reference_values = correlated(3, 400, 120);
    let target_values = correlated(4, 200, 120);
    let reference = DatasetView::new(&reference_values, 120).unwrap();
    let target = DatasetView::new(&target_values, 120).unwrap();
    let result = class_outlier(&target, &reference, &Execution::new().with_threads(2)).unwrap();
    let dense = dense_distances(&reference, &target);
    let mut relative_errors: Vec<f64> = result
        .scores
        .scores
        .iter()
        .zip(&dense)
        .map(|(&got, &expected)| (f64::from(got) - expected).abs() / expected)
        .collect();
    relative_errors.sort_by(f64::total_cmp);
    assert!(
        relative_errors[relative_errors.len() / 2] < 0.05,
        "{relative_errors:?}"
    );
    let ranks = |values: Vec<f64>| {
        let mut rows: Vec<usize> = (0..values.len()).collect();
        rows.sort_by(|&left, &right| values[left].total_cmp(&values[right]));
        let mut ranks = vec![0.0f64; values.len()];
        for (rank, row) in rows.into_iter().enumerate() {
            ranks[row] = rank as f64;
        }
        ranks
    };
    let low_rank_ranks = ranks(
        result
            .scores
            .scores
            .iter()
            .map(|&score| f64::from(score))
            .collect(),
    );
    let dense_ranks = ranks(dense);
    let n = low_rank_ranks.len() as f64;
    let squared_differences: f64 = low_rank_ranks
        .iter()
        .zip(&dense_ranks)
        .map(|(left, right)| (left - right).powi(2))
        .sum();
    let spearman = 1.0 - 6.0 * squared_differences / (n * (n * n - 1.0));
    assert!(spearman > 0.98, "rank correlation {spearman}");
}

#[test]
fn memory_grows_with_the_dimension_not_its_square() {
    let wide = class_outlier_peak_bytes(10_000, 10_000, 65_536);
    assert!(wide < 256 << 20, "{wide}");
    assert!(wide > 8 * 65_536 * MAX_RANK as u64);
}

#[test]
fn singular_and_single_member_classes_have_finite_scores() {
    // Class 0: all identical; class 1: one member; 5 dims, 3 rows.
    let values = [
        1.0f32, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0,
    ];
    let labels = [Some(0), Some(0), Some(1)];
    let reference = DatasetView::new(&values, 5)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let predictions = [Some(0), Some(1), None, Some(9)];
    let target_values = [
        1.0f32, 1.0, 1.0, 1.0, 2.0, 2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0,
        1.0, 1.0, 1.0,
    ];
    let target = DatasetView::new(&target_values, 5)
        .unwrap()
        .with_predictions(&predictions)
        .unwrap();
    let result = class_outlier(&target, &reference, &Execution::new()).unwrap();
    assert!(
        result
            .scores
            .scores
            .iter()
            .all(|score| score.is_finite() && *score >= 0.0),
        "{:?}",
        result.scores.scores
    );
    assert_eq!(result.scores.scores[3], 0.0);
    assert_eq!(result.compared_class[3], Some(0));
}

#[test]
fn translation_does_not_change_distances() {
    let values: Vec<f32> = (0..60)
        .map(|index| ((index * 37) % 11) as f32 * 0.3 + (index % 3) as f32)
        .collect();
    let labels: Vec<Option<u32>> = (0..20).map(|row| Some(row % 2)).collect();
    let shifted: Vec<f32> = values.iter().map(|value| value + 50.0).collect();
    let first = DatasetView::new(&values, 3)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let second = DatasetView::new(&shifted, 3)
        .unwrap()
        .with_labels(&labels)
        .unwrap();
    let first_scores = class_outlier(&first, &first, &Execution::new()).unwrap();
    let second_scores = class_outlier(&second, &second, &Execution::new()).unwrap();
    for (left, right) in first_scores
        .scores
        .scores
        .iter()
        .zip(&second_scores.scores.scores)
    {
        assert!(
            (left - right).abs() < 1e-3 * left.max(1.0),
            "{left} vs {right}"
        );
    }
}
