//! `class_outlier`: Mahalanobis distance of a record to its class in the
//! reference, with Ledoit-Wolf shrinkage and a Cholesky solve.

use faer::linalg::matmul::matmul;
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, Mat, Par, Side};

use super::progress::Execution;
use super::scores::RecordScores;
use super::view::DatasetView;
use crate::Result;

/// The least shrinkage applied, whatever Ledoit-Wolf says.
const MIN_SHRINKAGE: f64 = 0.01;

/// Rows per chunk when accumulating a class's scatter matrix.
const SCATTER_CHUNK: usize = 2048;

/// Class-outlier scores of every target record.
#[derive(Debug, Clone, PartialEq)]
pub struct OutlierScores {
    /// The Mahalanobis distances, in `[0, inf)`; refinement: the percentile.
    pub scores: RecordScores,
    /// In `[0, 1]`: the share of the class's own reference records that are
    /// closer to the class mean than this record (ties count half).
    pub percentile: Vec<f32>,
    /// The reference class each record was measured against.
    pub compared_class: Vec<Option<u32>>,
}

/// One reference class: its mean, the Cholesky factor of its shrunk
/// covariance, and its members' own distances (sorted), for percentiles.
struct ClassModel {
    class: Option<u32>,
    mean: Vec<f64>,
    factor: Mat<f64>,
    member_distances: Vec<f32>,
}

/// Mahalanobis distance of each target record to the mean of its reference
/// class: the class of its prediction, else of its label.
///
/// - Covariance: the class's sample covariance shrunk towards a scaled
///   identity by the Ledoit-Wolf formula (at least 1%), so it is well conditioned even with
///   fewer records than dimensions; distances are solved through its
///   Cholesky factor, never an explicit inverse.
/// - Degenerate classes: a class with one member (or no spread) borrows the
///   pooled within-class covariance; if the whole reference has no spread
///   the identity is used (the distance becomes Euclidean).
/// - Records with neither prediction nor label, or whose class has no
///   reference member, are measured against the nearest class (smallest
///   distance). A reference without labels is one class.
/// - Output: distance in `[0, inf)`, higher = further outside its class;
///   invariant to translation of both datasets.
///
/// ```
/// use mutant_core::kernels::{class_outlier, DatasetView, Execution};
/// let reference_vectors = [0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
/// let labels = [Some(0); 4];
/// let reference = DatasetView::new(&reference_vectors, 2)?.with_labels(&labels)?;
/// let predictions = [Some(0), Some(0)];
/// let target = DatasetView::new(&[0.5f32, 0.5, 5.0, 5.0], 2)?.with_predictions(&predictions)?;
/// let result = class_outlier(&target, &reference, &Execution::new())?;
/// assert!(result.scores.scores[0] < 0.01 && result.scores.scores[1] > 5.0);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn class_outlier(
    target: &DatasetView<'_>,
    reference: &DatasetView<'_>,
    execution: &Execution<'_>,
) -> Result<OutlierScores> {
    target.require_same_dimension(reference, "the target")?;
    reference.require_rows("the reference dataset")?;
    let dimension = reference.dimension();
    let parallelism = if execution.threads() > 1 {
        Par::rayon(execution.threads())
    } else {
        Par::Seq
    };

    let mut groups: Vec<(Option<u32>, Vec<usize>)> = Vec::new();
    if reference.has_labels() {
        let mut by_class: std::collections::BTreeMap<u32, Vec<usize>> =
            std::collections::BTreeMap::new();
        for row in 0..reference.n_rows() {
            if let Some(label) = reference.label(row) {
                by_class.entry(label).or_default().push(row);
            }
        }
        groups.extend(
            by_class
                .into_iter()
                .map(|(class, rows)| (Some(class), rows)),
        );
    } else {
        groups.push((None, (0..reference.n_rows()).collect()));
    }
    let stage = execution.stage(0.0, 1.0, 2 * groups.len() + 1);

    // Per class: mean and scatter; their sum is the pooled scatter.
    let mut pooled_scatter = Mat::<f64>::zeros(dimension, dimension);
    let mut pooled_fourth_moment = 0.0;
    let mut statistics = Vec::with_capacity(groups.len());
    for (_, rows) in &groups {
        let mean = class_mean(reference, rows);
        let (scatter, fourth_moment) = scatter(reference, rows, &mean, parallelism);
        pooled_scatter += &scatter;
        pooled_fourth_moment += fourth_moment;
        statistics.push((mean, scatter, fourth_moment));
        stage.advance(1)?;
    }
    let n_labeled: usize = groups.iter().map(|(_, rows)| rows.len()).sum();
    let pooled = shrunk_covariance(&pooled_scatter, pooled_fourth_moment, n_labeled);
    let pooled_factor = match &pooled {
        Some(covariance) => cholesky(covariance),
        None => Mat::identity(dimension, dimension),
    };
    stage.advance(1)?;

    let mut models = Vec::with_capacity(groups.len());
    for ((class, rows), (mean, scatter, fourth_moment)) in groups.iter().zip(statistics) {
        let factor = match shrunk_covariance(&scatter, fourth_moment, rows.len()) {
            Some(covariance) if rows.len() >= 2 => cholesky(&covariance),
            _ => pooled_factor.clone(),
        };
        let mut model = ClassModel {
            class: *class,
            mean,
            factor,
            member_distances: Vec::new(),
        };
        let mut member_distances = distances(reference, rows, &model, parallelism);
        member_distances.sort_by(f32::total_cmp);
        model.member_distances = member_distances;
        models.push(model);
        stage.advance(1)?;
    }

    let n_rows = target.n_rows();
    let mut scores = RecordScores::with_len(n_rows);
    let mut percentile = vec![0.0f32; n_rows];
    let mut compared_class = vec![None; n_rows];
    let mut best_model: Vec<Option<usize>> = vec![None; n_rows];
    for (model_idx, model) in models.iter().enumerate() {
        let own_rows: Vec<usize> = (0..n_rows)
            .filter(|&row| {
                model.class.is_some() && target.predicted_or_labeled_class(row) == model.class
            })
            .collect();
        let orphan_rows: Vec<usize> = (0..n_rows)
            .filter(|&row| {
                target
                    .predicted_or_labeled_class(row)
                    .is_none_or(|class| !models.iter().any(|model| model.class == Some(class)))
            })
            .collect();
        for rows in [own_rows, orphan_rows] {
            let row_distances = distances(target, &rows, model, parallelism);
            for (&row, &distance) in rows.iter().zip(&row_distances) {
                if best_model[row].is_none() || distance < scores.scores[row] {
                    best_model[row] = Some(model_idx);
                    scores.scores[row] = distance;
                }
            }
        }
    }
    for row in 0..n_rows {
        if let Some(model_idx) = best_model[row] {
            let model = &models[model_idx];
            let sorted = &model.member_distances;
            let below = sorted.partition_point(|&other| other < scores.scores[row]);
            let not_above = sorted.partition_point(|&other| other <= scores.scores[row]);
            percentile[row] =
                (below as f32 + 0.5 * (not_above - below) as f32) / sorted.len().max(1) as f32;
            compared_class[row] = model.class;
        }
    }
    scores.refinement.copy_from_slice(&percentile);
    Ok(OutlierScores {
        scores,
        percentile,
        compared_class,
    })
}

fn class_mean(dataset: &DatasetView<'_>, rows: &[usize]) -> Vec<f64> {
    let mut mean = vec![0.0f64; dataset.dimension()];
    for &row in rows {
        for (sum, &value) in mean.iter_mut().zip(dataset.row(row)) {
            *sum += f64::from(value);
        }
    }
    let count = rows.len().max(1) as f64;
    mean.iter_mut().for_each(|sum| *sum /= count);
    mean
}

/// The scatter matrix `sum (x - mean)(x - mean)^T` and `sum |x - mean|^4`,
/// accumulated a chunk of rows at a time by GEMM.
fn scatter(
    dataset: &DatasetView<'_>,
    rows: &[usize],
    mean: &[f64],
    parallelism: Par,
) -> (Mat<f64>, f64) {
    let dimension = dataset.dimension();
    let mut scatter = Mat::<f64>::zeros(dimension, dimension);
    let mut fourth_moment = 0.0;
    let mut chunk = Mat::<f64>::zeros(dimension, SCATTER_CHUNK.min(rows.len()).max(1));
    for row_chunk in rows.chunks(SCATTER_CHUNK) {
        for (column, &row) in row_chunk.iter().enumerate() {
            let mut squared_norm = 0.0;
            for (position, (&value, &centre)) in dataset.row(row).iter().zip(mean).enumerate() {
                let centred = f64::from(value) - centre;
                chunk[(position, column)] = centred;
                squared_norm += centred * centred;
            }
            fourth_moment += squared_norm * squared_norm;
        }
        let used = chunk.as_ref().subcols(0, row_chunk.len());
        matmul(
            scatter.as_mut(),
            Accum::Add,
            used,
            used.transpose(),
            1.0,
            parallelism,
        );
    }
    (scatter, fourth_moment)
}

/// The Ledoit-Wolf shrunk covariance `(1 - s) S + s mu I` from a scatter
/// matrix of `n` centred rows (the formula of scikit-learn's `ledoit_wolf`);
/// `None` when there is no spread at all.
fn shrunk_covariance(scatter: &Mat<f64>, fourth_moment: f64, n: usize) -> Option<Mat<f64>> {
    let dimension = scatter.nrows();
    if n == 0 {
        return None;
    }
    let n = n as f64;
    let p = dimension as f64;
    let covariance = scatter * faer::Scale(1.0 / n);
    let trace: f64 = (0..dimension).map(|index| covariance[(index, index)]).sum();
    let mu = trace / p;
    if !(mu > 0.0 && mu.is_finite()) {
        return None;
    }
    let squared_frobenius: f64 = (0..dimension)
        .flat_map(|column| (0..dimension).map(move |row| (row, column)))
        .map(|(row, column)| covariance[(row, column)].powi(2))
        .sum();
    let delta = (squared_frobenius - 2.0 * mu * trace + p * mu * mu) / p;
    let beta = ((fourth_moment / n - squared_frobenius) / (p * n)).min(delta);
    let shrinkage = if beta <= 0.0 || delta <= 0.0 {
        0.0
    } else {
        (beta / delta).clamp(0.0, 1.0)
    };
    // Ledoit-Wolf gives no shrinkage at all for two points (or any sample
    // whose spread it cannot tell from noise), leaving a singular matrix; a
    // small floor keeps tiny classes well conditioned.
    let shrinkage = shrinkage.max(MIN_SHRINKAGE);
    let mut shrunk = covariance * faer::Scale(1.0 - shrinkage);
    for index in 0..dimension {
        shrunk[(index, index)] += shrinkage * mu;
    }
    Some(shrunk)
}

/// The lower Cholesky factor of `covariance`, adding a growing ridge if
/// rounding leaves it not quite positive definite.
fn cholesky(covariance: &Mat<f64>) -> Mat<f64> {
    let dimension = covariance.nrows();
    let scale = (0..dimension)
        .map(|index| covariance[(index, index)])
        .sum::<f64>()
        / dimension.max(1) as f64;
    let mut ridge = 0.0;
    for _ in 0..12 {
        let mut attempt = covariance.clone();
        for index in 0..dimension {
            attempt[(index, index)] += ridge;
        }
        if let Ok(factor) = attempt.llt(Side::Lower) {
            return factor.L().to_owned();
        }
        ridge = if ridge == 0.0 {
            scale.max(f64::MIN_POSITIVE) * 1e-10
        } else {
            ridge * 100.0
        };
    }
    // A ridge of the covariance's own scale makes it positive definite unless
    // it holds non-finite values; fall back to Euclidean distances then.
    Mat::identity(dimension, dimension)
}

/// Mahalanobis distances of `rows` of `dataset` to `model`: solve `L y = x - mean`.
fn distances(
    dataset: &DatasetView<'_>,
    rows: &[usize],
    model: &ClassModel,
    parallelism: Par,
) -> Vec<f32> {
    let dimension = dataset.dimension();
    let mut result = Vec::with_capacity(rows.len());
    for row_chunk in rows.chunks(SCATTER_CHUNK) {
        let mut centred = Mat::<f64>::from_fn(dimension, row_chunk.len(), |position, column| {
            f64::from(dataset.row(row_chunk[column])[position]) - model.mean[position]
        });
        solve_lower_triangular_in_place(model.factor.as_ref(), centred.as_mut(), parallelism);
        result.extend((0..row_chunk.len()).map(|column| centred.col(column).norm_l2() as f32));
    }
    result
}

#[cfg(test)]
mod tests {
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
}
