//! `drift`: has the target distribution moved away from the reference? MMD
//! with an RBF kernel (median heuristic) on a sample, a permutation p-value
//! with a fixed seed, and per-class share changes.

use std::collections::BTreeMap;

use faer::{Mat, Par};

use super::mmd::{Assignments, MEDIAN_POINTS, TILE_POINTS, Tiles, bandwidth, kernel_sums};
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

/// The peak working memory of [`drift`], in bytes, for datasets of
/// `n_reference` and `n_target` rows of `dimension`: the pooled sample,
/// the permutations (one bit per point and permutation), the bandwidth's
/// pairwise distances and one tile of each blocked product. It grows with
/// the sample and the permutations, never with their product squared.
pub fn drift_peak_bytes(
    n_reference: usize,
    n_target: usize,
    dimension: usize,
    options: &DriftOptions,
) -> u64 {
    let n_sampled = [n_reference, n_target].map(|n_rows| n_rows.min(options.sample_size) as u64);
    let n_pooled = n_sampled[0] + n_sampled[1];
    let dimension = dimension as u64;
    let n_assignments = options.n_permutations as u64 + 1;
    let tile = TILE_POINTS as u64;
    let median_points = n_pooled.min(MEDIAN_POINTS as u64);
    // Sampling draws from an index vector over the larger dataset.
    let sampling = 8 * n_reference.max(n_target) as u64 + 8 * n_pooled;
    let pooled = 8 * n_pooled * dimension + 8 * n_pooled;
    let median_copy = if n_pooled > MEDIAN_POINTS as u64 {
        8 * median_points * dimension
    } else {
        0
    };
    let pairwise = 8 * median_points * median_points.saturating_sub(1) / 2;
    let assignments = 8 * n_assignments * n_pooled.div_ceil(64) + 8 * n_pooled;
    // Per tile: the distances, the expanded assignments of its columns,
    // their product, and the sums per assignment.
    let tiles = 8 * tile * tile + 2 * 8 * tile * n_assignments + 8 * 3 * n_assignments;
    sampling + pooled + median_copy.max(pairwise + median_copy) + assignments + tiles
}

/// Measures drift from `reference` to `target`.
///
/// The kernel is `exp(-|x - y|^2 / (2 sigma^2))` with `sigma` the median
/// pairwise distance of the pooled sample (vectors are normalised first for
/// the cosine metric; above 2,000 pooled points, the median of a seeded
/// subsample of 2,000). If every sampled vector is identical the MMD is 0
/// and the p-value 1.
///
/// The kernel matrix is never held whole: its sums under the observed split
/// and every permutation are accumulated tile by tile over the upper
/// triangle (it is symmetric), so memory grows with the sample, not its
/// square (see [`drift_peak_bytes`]).
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
    drop((reference_rows, target_rows));
    let parallelism = if execution.threads() > 1 {
        Par::rayon(execution.threads())
    } else {
        Par::Seq
    };
    let tiles = Tiles::new(n_pooled);
    let stage = execution.stage(0.0, 1.0, tiles.n_upper() + 1);

    let bandwidth = bandwidth(pooled.as_ref(), options.seed, parallelism);
    stage.advance(1)?;
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

    // Assignment 0 is the observed split; the others are permutations.
    let n_assignments = options.n_permutations + 1;
    let mut assignments = Assignments::new(n_pooled, n_assignments);
    let mut order: Vec<usize> = (0..n_pooled).collect();
    for assignment in 0..n_assignments {
        if assignment > 0 {
            generator.shuffle(&mut order);
        }
        for &index in &order[..n_reference] {
            assignments.set_reference(index, assignment);
        }
    }
    drop(order);
    let sums = kernel_sums(
        pooled.as_ref(),
        &assignments,
        &tiles,
        1.0 / (2.0 * bandwidth * bandwidth),
        parallelism,
        &stage,
    )?;
    let statistic = |assignment: usize| {
        let within_reference = sums.within_reference[assignment];
        let reference_to_target = sums.reference_to_target[assignment];
        let within_target = sums.total - within_reference - 2.0 * reference_to_target;
        let n_x = n_reference as f64;
        let n_y = (n_pooled - n_reference) as f64;
        within_reference / (n_x * n_x) + within_target / (n_y * n_y)
            - 2.0 * reference_to_target / (n_x * n_y)
    };
    let observed = statistic(0);
    let at_least_as_large = (1..n_assignments)
        .filter(|&assignment| statistic(assignment) >= observed - 1e-12)
        .count();
    Ok(DriftReport {
        mmd_squared: observed.max(0.0) as f32,
        p_value: ((1 + at_least_as_large) as f64 / n_assignments as f64) as f32,
        bandwidth: bandwidth as f32,
        n_reference_sampled: n_reference,
        n_target_sampled: n_pooled - n_reference,
        class_shares,
    })
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
#[path = "drift_tests.rs"]
mod tests;
