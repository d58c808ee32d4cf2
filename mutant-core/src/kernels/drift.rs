//! `drift`: has the target distribution moved away from the reference? MMD
//! with an RBF kernel (median heuristic) on a sample, a permutation p-value
//! with a fixed seed, and per-class share changes.

use std::collections::BTreeMap;

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

use super::progress::Execution;
use super::random::SplitMix64;
use super::view::{DatasetView, Metric};
use crate::{Error, Result};

/// Parameters of [`drift`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftOptions {
    /// Records sampled from each side (uniformly, without replacement).
    pub sample_size: usize,
    /// Label permutations for the p-value.
    pub n_permutations: usize,
    /// Seed of the sampling and the permutations.
    pub seed: u64,
}

impl Default for DriftOptions {
    /// 1,000 records a side, 200 permutations, seed 0.
    fn default() -> Self {
        DriftOptions {
            sample_size: 1000,
            n_permutations: 200,
            seed: 0,
        }
    }
}

/// How one class's share of the records changed from reference to target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassShare {
    /// The class code (a record's label, else its prediction).
    pub class: u32,
    /// Its share of the reference's records, in `[0, 1]`.
    pub reference_share: f32,
    /// Its share of the target's records, in `[0, 1]`.
    pub target_share: f32,
    /// `target_share - reference_share`, in `[-1, 1]`.
    pub change: f32,
}

/// The drift between a reference and a target dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    /// The (biased) squared maximum mean discrepancy of the samples, in
    /// `[0, 2]`; 0 for identical distributions, higher for more drift.
    pub mmd_squared: f32,
    /// The permutation p-value, in `(0, 1]`: how often relabeling the pooled
    /// sample at random gives an MMD at least as large. Small = real drift.
    pub p_value: f32,
    /// The RBF bandwidth used (the median pairwise distance of the pooled sample).
    pub bandwidth: f32,
    /// Records sampled from the reference.
    pub n_reference_sampled: usize,
    /// Records sampled from the target.
    pub n_target_sampled: usize,
    /// Per class, largest absolute change first.
    pub class_shares: Vec<ClassShare>,
}

/// Measures drift from `reference` to `target`.
///
/// The kernel is `exp(-|x - y|^2 / (2 sigma^2))` with `sigma` the median
/// pairwise distance of the pooled sample (vectors are normalised first for
/// the cosine metric). If every sampled vector is identical the MMD is 0 and
/// the p-value 1.
///
/// ```
/// use mutant_core::kernels::{drift, DatasetView, DriftOptions, Execution, Metric};
/// let reference: Vec<f32> = (0..50).map(|index| index as f32 / 50.0).collect();
/// let shifted: Vec<f32> = reference.iter().map(|value| value + 3.0).collect();
/// let reference = DatasetView::new(&reference, 1)?;
/// let target = DatasetView::new(&shifted, 1)?;
/// let report = drift(&reference, &target, Metric::L2, &DriftOptions::default(), &Execution::new())?;
/// assert!(report.p_value < 0.01);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn drift(
    reference: &DatasetView<'_>,
    target: &DatasetView<'_>,
    metric: Metric,
    options: &DriftOptions,
    execution: &Execution<'_>,
) -> Result<DriftReport> {
    target.require_same_dimension(reference, "the target")?;
    reference.require_rows("the reference dataset")?;
    target.require_rows("the target dataset")?;
    if options.sample_size == 0 {
        return Err(Error::InvalidParameter {
            name: "sample_size",
            reason: "sample at least 1 record per side".to_owned(),
        });
    }
    let dimension = reference.dimension();
    let mut generator = SplitMix64::new(options.seed);
    let reference_rows = generator.sample_indices(reference.n_rows(), options.sample_size);
    let target_rows = generator.sample_indices(target.n_rows(), options.sample_size);
    let n_reference = reference_rows.len();
    let n_pooled = n_reference + target_rows.len();
    let stage = execution.stage(0.0, 1.0, 3);

    let pooled = Mat::<f64>::from_fn(n_pooled, dimension, |index, position| {
        let row = if index < n_reference {
            reference.row(reference_rows[index])
        } else {
            target.row(target_rows[index - n_reference])
        };
        let value = f64::from(row[position]);
        if metric == Metric::Cosine {
            let norm = row
                .iter()
                .map(|&other| f64::from(other).powi(2))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 { value / norm } else { 0.0 }
        } else {
            value
        }
    });
    let parallelism = if execution.threads() > 1 {
        Par::rayon(execution.threads())
    } else {
        Par::Seq
    };
    let mut gram = Mat::<f64>::zeros(n_pooled, n_pooled);
    matmul(
        gram.as_mut(),
        Accum::Replace,
        pooled.as_ref(),
        pooled.transpose(),
        1.0,
        parallelism,
    );
    let squared_norms: Vec<f64> = (0..n_pooled).map(|index| gram[(index, index)]).collect();
    let mut kernel = Mat::<f64>::from_fn(n_pooled, n_pooled, |row, column| {
        (squared_norms[row] + squared_norms[column] - 2.0 * gram[(row, column)]).max(0.0)
    });
    drop(gram);
    stage.advance(1)?;

    let mut pairwise: Vec<f64> = (0..n_pooled)
        .flat_map(|row| (row + 1..n_pooled).map(move |column| (row, column)))
        .map(|(row, column)| kernel[(row, column)].sqrt())
        .collect();
    let bandwidth = median(&mut pairwise)
        .filter(|&median| median > 0.0)
        .or_else(|| {
            let positive: Vec<f64> = pairwise
                .iter()
                .copied()
                .filter(|&distance| distance > 0.0)
                .collect();
            (!positive.is_empty()).then(|| positive.iter().sum::<f64>() / positive.len() as f64)
        });
    drop(pairwise);
    let class_shares = class_shares(reference, target);
    let Some(bandwidth) = bandwidth else {
        return Ok(DriftReport {
            mmd_squared: 0.0,
            p_value: 1.0,
            bandwidth: 0.0,
            n_reference_sampled: n_reference,
            n_target_sampled: n_pooled - n_reference,
            class_shares,
        });
    };
    let inverse_width = 1.0 / (2.0 * bandwidth * bandwidth);
    for column in 0..n_pooled {
        for value in kernel.col_mut(column).iter_mut() {
            *value = (-*value * inverse_width).exp();
        }
    }

    // Column 0 of the assignments is the observed split; the others are
    // permutations. One GEMM gives, for every point and assignment, the
    // kernel mass towards the points assigned to the reference side.
    let n_assignments = options.n_permutations + 1;
    let mut order: Vec<usize> = (0..n_pooled).collect();
    let mut assignments = Mat::<f64>::zeros(n_pooled, n_assignments);
    for assignment in 0..n_assignments {
        if assignment > 0 {
            generator.shuffle(&mut order);
        }
        for &index in &order[..n_reference] {
            assignments[(index, assignment)] = 1.0;
        }
    }
    let mut towards_reference = Mat::<f64>::zeros(n_pooled, n_assignments);
    matmul(
        towards_reference.as_mut(),
        Accum::Replace,
        kernel.as_ref(),
        assignments.as_ref(),
        1.0,
        parallelism,
    );
    stage.advance(1)?;
    let total: f64 = (0..n_pooled)
        .map(|index| towards_reference_total(kernel.as_ref(), index))
        .sum();
    let statistic = |assignment: usize| {
        let (mut within_reference, mut reference_to_target) = (0.0, 0.0);
        for index in 0..n_pooled {
            if assignments[(index, assignment)] == 1.0 {
                within_reference += towards_reference[(index, assignment)];
            } else {
                reference_to_target += towards_reference[(index, assignment)];
            }
        }
        let within_target = total - within_reference - 2.0 * reference_to_target;
        let n_x = n_reference as f64;
        let n_y = (n_pooled - n_reference) as f64;
        within_reference / (n_x * n_x) + within_target / (n_y * n_y)
            - 2.0 * reference_to_target / (n_x * n_y)
    };
    let observed = statistic(0);
    let at_least_as_large = (1..n_assignments)
        .filter(|&assignment| statistic(assignment) >= observed - 1e-12)
        .count();
    stage.advance(1)?;
    Ok(DriftReport {
        mmd_squared: observed.max(0.0) as f32,
        p_value: ((1 + at_least_as_large) as f64 / n_assignments as f64) as f32,
        bandwidth: bandwidth as f32,
        n_reference_sampled: n_reference,
        n_target_sampled: n_pooled - n_reference,
        class_shares,
    })
}

fn towards_reference_total(kernel: MatRef<'_, f64>, index: usize) -> f64 {
    kernel.col(index).iter().sum()
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let middle = values.len() / 2;
    let (_, value, _) = values.select_nth_unstable_by(middle, f64::total_cmp);
    Some(*value)
}

fn class_shares(reference: &DatasetView<'_>, target: &DatasetView<'_>) -> Vec<ClassShare> {
    let mut counts: BTreeMap<u32, (usize, usize)> = BTreeMap::new();
    for row in 0..reference.n_rows() {
        if let Some(class) = reference.labeled_or_predicted_class(row) {
            counts.entry(class).or_default().0 += 1;
        }
    }
    for row in 0..target.n_rows() {
        if let Some(class) = target.labeled_or_predicted_class(row) {
            counts.entry(class).or_default().1 += 1;
        }
    }
    let mut shares: Vec<ClassShare> = counts
        .into_iter()
        .map(|(class, (in_reference, in_target))| {
            let reference_share = in_reference as f32 / reference.n_rows() as f32;
            let target_share = in_target as f32 / target.n_rows() as f32;
            ClassShare {
                class,
                reference_share,
                target_share,
                change: target_share - reference_share,
            }
        })
        .collect();
    shares.sort_by(|left, right| {
        right
            .change
            .abs()
            .total_cmp(&left.change.abs())
            .then(left.class.cmp(&right.class))
    });
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(seed: u64, n_values: usize, offset: f32) -> Vec<f32> {
        let mut generator = SplitMix64::new(seed);
        (0..n_values)
            .map(|_| generator.next_f64() as f32 + offset)
            .collect()
    }

    #[test]
    fn same_distribution_is_not_drift_and_a_shift_is() {
        let reference_values = uniform(1, 400, 0.0);
        let same_values = uniform(2, 400, 0.0);
        let shifted_values = uniform(3, 400, 0.5);
        let reference = DatasetView::new(&reference_values, 2).unwrap();
        let same = DatasetView::new(&same_values, 2).unwrap();
        let shifted = DatasetView::new(&shifted_values, 2).unwrap();
        let options = DriftOptions {
            sample_size: 200,
            n_permutations: 100,
            seed: 7,
        };
        let quiet = drift(&reference, &same, Metric::L2, &options, &Execution::new()).unwrap();
        let moved = drift(
            &reference,
            &shifted,
            Metric::L2,
            &options,
            &Execution::new(),
        )
        .unwrap();
        assert!(quiet.p_value > 0.05, "{quiet:?}");
        assert!(moved.p_value < 0.02, "{moved:?}");
        assert!(moved.mmd_squared > quiet.mmd_squared);
        assert!((0.0..=2.0).contains(&moved.mmd_squared));
        // Fixed seed: the same answer twice.
        assert_eq!(
            moved,
            drift(
                &reference,
                &shifted,
                Metric::L2,
                &options,
                &Execution::new()
            )
            .unwrap()
        );
    }

    #[test]
    fn identical_vectors_give_no_drift_and_class_shares_add_up() {
        let labels = [Some(0), Some(0), Some(1), Some(1)];
        let predictions = [Some(1), Some(1), Some(1), None];
        let reference = DatasetView::new(&[1.0f32; 8], 2)
            .unwrap()
            .with_labels(&labels)
            .unwrap();
        let target = DatasetView::new(&[1.0f32; 8], 2)
            .unwrap()
            .with_predictions(&predictions)
            .unwrap();
        let report = drift(
            &reference,
            &target,
            Metric::L2,
            &DriftOptions::default(),
            &Execution::new(),
        )
        .unwrap();
        assert_eq!((report.mmd_squared, report.p_value), (0.0, 1.0));
        assert_eq!(report.class_shares.len(), 2);
        assert_eq!(report.class_shares[0].class, 0);
        assert_eq!(report.class_shares[0].change, -0.5);
        assert_eq!(report.class_shares[1].change, 0.25);
    }

    #[test]
    fn empty_sides_are_errors() {
        let reference = DatasetView::new(&[1.0f32], 1).unwrap();
        let empty = DatasetView::new(&[], 1).unwrap();
        assert!(matches!(
            drift(
                &reference,
                &empty,
                Metric::L2,
                &DriftOptions::default(),
                &Execution::new()
            ),
            Err(Error::EmptyDataset { .. })
        ));
    }
}
