//! `class_outlier`: Mahalanobis distance of a record to its class in the
//! reference, with Ledoit-Wolf shrinkage, each class's covariance held in a
//! low-rank-plus-diagonal form so memory grows with the dimension, never
//! with its square.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

use super::progress::Execution;
use super::scores::RecordScores;
use super::subspace::{CentredRows, chunk_bytes, eigenpairs_bytes, leading_eigenpairs};
use super::view::DatasetView;
use crate::Result;

/// The least shrinkage applied, whatever Ledoit-Wolf says.
const MIN_SHRINKAGE: f64 = 0.01;

/// Directions of a class's covariance kept exactly; the rest of its
/// spectrum is replaced by its mean. A class of at most `MAX_RANK + 1`
/// members (or data of at most `MAX_RANK` dimensions) is kept whole, so its
/// distances are the dense formula's; beyond, the leading directions carry
/// most of a real class's variance, and shrinkage already pulls the rest
/// towards its mean.
const MAX_RANK: usize = 64;

/// Passes of subspace iteration per class at most (each one pass over the
/// class's rows).
const MAX_PASSES: usize = 30;

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

/// The inverse of a shrunk covariance `V diag(e) V' + c (I - V V')`: `V`
/// holds its leading directions (orthonormal columns), `e` the shrunk
/// variances along them, `c` the shrunk mean variance of the rest. Then
/// `d(y)^2 = |y|^2 / c + sum_i (v_i . y)^2 (1 / e_i - 1 / c)`.
struct InverseShape {
    directions: Mat<f64>,
    /// `1 / e_i - 1 / c` per direction.
    gains: Vec<f64>,
    /// `1 / c`.
    rest: f64,
}

impl InverseShape {
    /// Euclidean distances: the shape of data without spread.
    fn identity(dimension: usize) -> Self {
        InverseShape {
            directions: Mat::zeros(dimension, 0),
            gains: Vec::new(),
            rest: 1.0,
        }
    }
}

/// The peak working memory of [`class_outlier`] in bytes, for `n_target`
/// records scored against `n_reference` records of `dimension`: per-record
/// arrays, and the shapes of one class and of the pooled classes (never
/// `dimension` squared: classes are handled one at a time, each in
/// `dimension x 64` numbers).
pub fn class_outlier_peak_bytes(n_target: usize, n_reference: usize, dimension: usize) -> u64 {
    let (n_target, n_reference, dimension) =
        (n_target as u64, n_reference as u64, dimension as u64);
    let per_record = 40 * n_target + 12 * n_reference;
    let shape = 8 * dimension * MAX_RANK as u64 + 8 * dimension;
    let building =
        eigenpairs_bytes(dimension as usize, MAX_RANK) + 2 * chunk_bytes(dimension as usize);
    per_record + 2 * shape + building
}

/// Mahalanobis distance of each target record to the mean of its reference
/// class: the class of its prediction, else of its label.
///
/// - Covariance: the class's sample covariance shrunk towards a scaled
///   identity by the Ledoit-Wolf formula (at least 1%), so it is well
///   conditioned even with fewer records than dimensions. It is held as its
///   64 leading directions (by subspace iteration) plus the mean of the
///   rest of its spectrum, which is exact for classes of up to 65 records
///   or data of up to 64 dimensions, and keeps memory at `64 x dimension`
///   numbers per class, one class at a time.
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
    let means: Vec<Vec<f64>> = groups
        .iter()
        .map(|(_, rows)| class_mean(reference, rows))
        .collect();
    let n_groups = groups.len();

    let n_rows = target.n_rows();
    let known_class = |class: Option<u32>| {
        class.is_some_and(|class| groups.iter().any(|(group, _)| *group == Some(class)))
    };
    let orphan_rows: Vec<usize> = (0..n_rows)
        .filter(|&row| !known_class(target.predicted_or_labeled_class(row)))
        .collect();
    let mut scores = RecordScores::with_len(n_rows);
    let mut percentile = vec![0.0f32; n_rows];
    let mut compared_class = vec![None; n_rows];
    let mut measured = vec![false; n_rows];
    // The pooled within-class shape, built the first time a class needs it.
    let mut pooled: Option<InverseShape> = None;
    for (group_idx, ((class, rows), mean)) in groups.iter().zip(&means).enumerate() {
        let part = execution.part(
            group_idx as f32 / n_groups as f32,
            (group_idx + 1) as f32 / n_groups as f32,
        );
        let own = CentredRows::new(reference, vec![(rows.as_slice(), mean.as_slice())]);
        let own_shape = shrunk_shape(&own, parallelism, &part)?.filter(|_| rows.len() >= 2);
        if own_shape.is_none() && pooled.is_none() {
            let all: Vec<(&[usize], &[f64])> = groups
                .iter()
                .zip(&means)
                .map(|((_, rows), mean)| (rows.as_slice(), mean.as_slice()))
                .collect();
            let within = CentredRows::new(reference, all);
            pooled = Some(
                shrunk_shape(&within, parallelism, &part)?
                    .unwrap_or_else(|| InverseShape::identity(dimension)),
            );
        }
        let identity;
        let shape = match (&own_shape, &pooled) {
            (Some(shape), _) | (None, Some(shape)) => shape,
            (None, None) => {
                identity = InverseShape::identity(dimension);
                &identity
            }
        };
        let mut member_distances = distances(reference, rows, mean, shape, parallelism)?;
        member_distances.sort_by(f32::total_cmp);
        let own_rows: Vec<usize> = (0..n_rows)
            .filter(|&row| class.is_some() && target.predicted_or_labeled_class(row) == *class)
            .collect();
        for rows in [&own_rows, &orphan_rows] {
            let row_distances = distances(target, rows, mean, shape, parallelism)?;
            for (&row, &distance) in rows.iter().zip(&row_distances) {
                if !measured[row] || distance < scores.scores[row] {
                    measured[row] = true;
                    scores.scores[row] = distance;
                    percentile[row] = percentile_among(&member_distances, distance);
                    compared_class[row] = *class;
                }
            }
        }
        part.check_cancelled()?;
    }
    scores.refinement.copy_from_slice(&percentile);
    Ok(OutlierScores {
        scores,
        percentile,
        compared_class,
    })
}

/// The share of `sorted` below `distance`, ties counting half.
fn percentile_among(sorted: &[f32], distance: f32) -> f32 {
    let below = sorted.partition_point(|&other| other < distance);
    let not_above = sorted.partition_point(|&other| other <= distance);
    (below as f32 + 0.5 * (not_above - below) as f32) / sorted.len().max(1) as f32
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

/// The inverse of the Ledoit-Wolf shrunk covariance `(1 - s) S + s mu I`
/// of `rows` (the formula of scikit-learn's `ledoit_wolf`, with `S`'s
/// trace, squared Frobenius norm and fourth moment computed without
/// forming `S`), in the low-rank-plus-diagonal form of [`InverseShape`];
/// `None` when there is no spread at all.
fn shrunk_shape(
    rows: &CentredRows<'_>,
    parallelism: Par,
    execution: &Execution<'_>,
) -> Result<Option<InverseShape>> {
    let n = rows.n_rows();
    if n == 0 {
        return Ok(None);
    }
    let (trace, fourth_moment) = rows.trace_and_fourth_moment()?;
    let dimension = rows.dimension();
    let p = dimension as f64;
    let mu = trace / p;
    if !(mu > 0.0 && mu.is_finite()) {
        return Ok(None);
    }
    let squared_frobenius = rows.covariance_squared_frobenius(parallelism, execution)?;
    let n_float = n as f64;
    let delta = (squared_frobenius - 2.0 * mu * trace + p * mu * mu) / p;
    let beta = ((fourth_moment / n_float - squared_frobenius) / (p * n_float)).min(delta);
    let shrinkage = if beta <= 0.0 || delta <= 0.0 {
        0.0
    } else {
        (beta / delta).clamp(0.0, 1.0)
    };
    // Ledoit-Wolf gives no shrinkage at all for two points (or any sample
    // whose spread it cannot tell from noise), leaving a singular matrix; a
    // small floor keeps tiny classes well conditioned.
    let shrinkage = shrinkage.max(MIN_SHRINKAGE);
    let (kept, identity_part) = (1.0 - shrinkage, shrinkage * mu);
    let rank = MAX_RANK.min(n.saturating_sub(1)).clamp(1, dimension);
    let pairs = leading_eigenpairs(rows, rank, MAX_PASSES, parallelism, execution)?;
    let kept_trace: f64 = pairs.values.iter().sum();
    let rest_dimensions = dimension - rank;
    let rest_variance = if rest_dimensions > 0 {
        identity_part + kept * (trace - kept_trace).max(0.0) / rest_dimensions as f64
    } else {
        identity_part
    };
    let gains = pairs
        .values
        .iter()
        .map(|&value| 1.0 / (kept * value + identity_part) - 1.0 / rest_variance)
        .collect();
    Ok(Some(InverseShape {
        directions: pairs.vectors,
        gains,
        rest: 1.0 / rest_variance,
    }))
}

/// Mahalanobis distances of `rows` of `dataset` to `mean` under `shape`, a
/// chunk of rows at a time.
fn distances(
    dataset: &DatasetView<'_>,
    rows: &[usize],
    mean: &[f64],
    shape: &InverseShape,
    parallelism: Par,
) -> Result<Vec<f32>> {
    let mut result = Vec::with_capacity(rows.len());
    let centred = CentredRows::new(dataset, vec![(rows, mean)]);
    let n_directions = shape.gains.len();
    let mut projected = Mat::<f64>::zeros(0, n_directions);
    centred.for_each_chunk(|chunk| {
        projected.resize_with(chunk.nrows(), n_directions, |_, _| 0.0);
        matmul(
            projected.as_mut(),
            Accum::Replace,
            chunk,
            shape.directions.as_ref(),
            1.0,
            parallelism,
        );
        for row in 0..chunk.nrows() {
            let squared_norm: f64 = chunk.row(row).iter().map(|value| value * value).sum();
            let along: f64 = (0..n_directions)
                .map(|direction| projected[(row, direction)].powi(2) * shape.gains[direction])
                .sum();
            result.push((squared_norm * shape.rest + along).max(0.0).sqrt() as f32);
        }
        Ok(())
    })?;
    Ok(result)
}

#[cfg(test)]
#[path = "outlier_tests.rs"]
mod tests;
