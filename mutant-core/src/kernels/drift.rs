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

/// Pooled points per tile of the blocked kernel sums: a tile of the
/// kernel matrix is `TILE_POINTS` squared, never the whole pooled sample
/// squared.
const TILE_POINTS: usize = 512;

/// Points whose pairwise distances give the bandwidth (the median
/// heuristic). A pooled sample up to this size uses every pair, as the
/// heuristic is defined; a larger one uses a seeded uniform subsample of
/// this many points (about two million pairs), whose median is within a
/// fraction of a percent of the full one.
const MEDIAN_POINTS: usize = 2_000;

/// Mixed into the seed of the bandwidth's subsample, so that drawing it
/// leaves the sampling and the permutations of the run unchanged.
const MEDIAN_SEED_MIX: u64 = 0x6d65_6469_616e_2121;

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

/// The pooled points cut into consecutive tiles of [`TILE_POINTS`].
struct Tiles {
    n_points: usize,
    n_tiles: usize,
}

impl Tiles {
    fn new(n_points: usize) -> Self {
        Tiles {
            n_points,
            n_tiles: n_points.div_ceil(TILE_POINTS),
        }
    }

    /// The tiles on and above the diagonal.
    fn n_upper(&self) -> usize {
        self.n_tiles * (self.n_tiles + 1) / 2
    }

    /// The points of tile `tile`.
    fn range(&self, tile: usize) -> std::ops::Range<usize> {
        let start = tile * TILE_POINTS;
        start..(start + TILE_POINTS).min(self.n_points)
    }
}

/// Which side each pooled point is on, per assignment: one bit each.
struct Assignments {
    n_assignments: usize,
    words_per_assignment: usize,
    bits: Vec<u64>,
}

impl Assignments {
    fn new(n_points: usize, n_assignments: usize) -> Self {
        let words_per_assignment = n_points.div_ceil(64);
        Assignments {
            n_assignments,
            words_per_assignment,
            bits: vec![0; words_per_assignment * n_assignments],
        }
    }

    fn set_reference(&mut self, point: usize, assignment: usize) {
        self.bits[assignment * self.words_per_assignment + point / 64] |= 1 << (point % 64);
    }

    fn is_reference(&self, point: usize, assignment: usize) -> bool {
        self.bits[assignment * self.words_per_assignment + point / 64] >> (point % 64) & 1 == 1
    }

    /// The assignments of `points` as a 0/1 matrix, a row per point.
    fn expand(&self, points: std::ops::Range<usize>, into: &mut Mat<f64>) {
        for (row, point) in points.enumerate() {
            for assignment in 0..self.n_assignments {
                into[(row, assignment)] = if self.is_reference(point, assignment) {
                    1.0
                } else {
                    0.0
                };
            }
        }
    }
}

/// The kernel matrix's sums: `a' K a` (within the reference side) and
/// `b' K a` (between the sides) per assignment `a` (with `b = 1 - a`), and
/// the sum of all its entries.
struct KernelSums {
    within_reference: Vec<f64>,
    reference_to_target: Vec<f64>,
    total: f64,
}

/// Accumulates [`KernelSums`] over the tiles on and above the diagonal of
/// the RBF kernel matrix `exp(-|x - y|^2 * inverse_width)`. A tile `(I, J)`
/// above the diagonal stands for its mirror `(J, I)` too: with `Q = K_IJ
/// A_J` and the row sums `r = K_IJ 1`, the mirror adds `a_I' Q` again to
/// `a' K a` and `a_I' (r - Q)` to `b' K a`.
fn kernel_sums(
    pooled: MatRef<'_, f64>,
    assignments: &Assignments,
    tiles: &Tiles,
    inverse_width: f64,
    parallelism: Par,
    stage: &super::progress::Stage<'_>,
) -> Result<KernelSums> {
    let n_assignments = assignments.n_assignments;
    let squared_norms = squared_norms(pooled);
    let mut sums = KernelSums {
        within_reference: vec![0.0; n_assignments],
        reference_to_target: vec![0.0; n_assignments],
        total: 0.0,
    };
    let mut kernel = Mat::<f64>::zeros(TILE_POINTS, TILE_POINTS);
    let mut columns = Mat::<f64>::zeros(TILE_POINTS, n_assignments);
    let mut towards = Mat::<f64>::zeros(TILE_POINTS, n_assignments);
    let mut row_sums = vec![0.0f64; TILE_POINTS];
    for column_tile in 0..tiles.n_tiles {
        let column_points = tiles.range(column_tile);
        let n_columns = column_points.len();
        assignments.expand(column_points.clone(), &mut columns);
        for row_tile in 0..=column_tile {
            let row_points = tiles.range(row_tile);
            let n_rows = row_points.len();
            let mut tile = kernel.as_mut().submatrix_mut(0, 0, n_rows, n_columns);
            squared_distances(
                pooled,
                &squared_norms,
                row_points.clone(),
                column_points.clone(),
                tile.as_mut(),
                parallelism,
            );
            row_sums.iter_mut().for_each(|sum| *sum = 0.0);
            let mut tile_sum = 0.0;
            for column in 0..n_columns {
                for (row, value) in tile.as_mut().col_mut(column).iter_mut().enumerate() {
                    *value = (-*value * inverse_width).exp();
                    row_sums[row] += *value;
                    tile_sum += *value;
                }
            }
            let mut product = towards.as_mut().subrows_mut(0, n_rows);
            matmul(
                product.as_mut(),
                Accum::Replace,
                tile.as_ref(),
                columns.as_ref().subrows(0, n_columns),
                1.0,
                parallelism,
            );
            let mirrored = row_tile != column_tile;
            sums.total += if mirrored { 2.0 * tile_sum } else { tile_sum };
            for assignment in 0..n_assignments {
                let (mut within, mut across) = (0.0, 0.0);
                for (row, point) in row_points.clone().enumerate() {
                    let mass = product[(row, assignment)];
                    if assignments.is_reference(point, assignment) {
                        within += mass;
                        if mirrored {
                            within += mass;
                            across += row_sums[row] - mass;
                        }
                    } else {
                        across += mass;
                    }
                }
                sums.within_reference[assignment] += within;
                sums.reference_to_target[assignment] += across;
            }
            stage.advance(1)?;
        }
    }
    Ok(sums)
}

/// Each pooled point's squared norm.
fn squared_norms(pooled: MatRef<'_, f64>) -> Vec<f64> {
    (0..pooled.nrows())
        .map(|point| {
            (0..pooled.ncols())
                .map(|position| pooled[(point, position)].powi(2))
                .sum()
        })
        .collect()
}

/// Writes the squared distances between the points `rows` and `columns`
/// into `into` (one GEMM: `|x|^2 + |y|^2 - 2 x.y`, clamped at 0).
fn squared_distances(
    pooled: MatRef<'_, f64>,
    squared_norms: &[f64],
    rows: std::ops::Range<usize>,
    columns: std::ops::Range<usize>,
    mut into: faer::MatMut<'_, f64>,
    parallelism: Par,
) {
    let left = pooled.subrows(rows.start, rows.len());
    let right = pooled.subrows(columns.start, columns.len());
    matmul(
        into.as_mut(),
        Accum::Replace,
        left,
        right.transpose(),
        1.0,
        parallelism,
    );
    for (column, column_point) in columns.enumerate() {
        for (row, value) in into.as_mut().col_mut(column).iter_mut().enumerate() {
            let row_point = rows.start + row;
            *value =
                (squared_norms[row_point] + squared_norms[column_point] - 2.0 * *value).max(0.0);
        }
    }
}

/// The RBF bandwidth: the median pairwise distance of the pooled points
/// (of a seeded subsample of [`MEDIAN_POINTS`] when there are more), or,
/// when over half the pairs are identical, the mean of the positive
/// distances; `None` when every point is the same.
fn bandwidth(pooled: MatRef<'_, f64>, seed: u64, parallelism: Par) -> Option<f64> {
    let n_pooled = pooled.nrows();
    let subsample;
    let points = if n_pooled > MEDIAN_POINTS {
        let chosen =
            SplitMix64::new(seed ^ MEDIAN_SEED_MIX).sample_indices(n_pooled, MEDIAN_POINTS);
        subsample = Mat::<f64>::from_fn(MEDIAN_POINTS, pooled.ncols(), |index, position| {
            pooled[(chosen[index], position)]
        });
        subsample.as_ref()
    } else {
        pooled
    };
    let squared_norms = squared_norms(points);
    let tiles = Tiles::new(points.nrows());
    let n_points = points.nrows();
    let mut pairwise: Vec<f64> = Vec::with_capacity(n_points * n_points.saturating_sub(1) / 2);
    let mut tile = Mat::<f64>::zeros(TILE_POINTS, TILE_POINTS);
    for column_tile in 0..tiles.n_tiles {
        let columns = tiles.range(column_tile);
        for row_tile in 0..=column_tile {
            let rows = tiles.range(row_tile);
            let mut distances = tile.as_mut().submatrix_mut(0, 0, rows.len(), columns.len());
            squared_distances(
                points,
                &squared_norms,
                rows.clone(),
                columns.clone(),
                distances.as_mut(),
                parallelism,
            );
            for (column, column_point) in columns.clone().enumerate() {
                for (row, row_point) in rows.clone().enumerate() {
                    if row_point < column_point {
                        pairwise.push(distances[(row, column)].sqrt());
                    }
                }
            }
        }
    }
    median(&mut pairwise)
        .filter(|&median| median > 0.0)
        .or_else(|| {
            let positive: Vec<f64> = pairwise
                .iter()
                .copied()
                .filter(|&distance| distance > 0.0)
                .collect();
            (!positive.is_empty()).then(|| positive.iter().sum::<f64>() / positive.len() as f64)
        })
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

    /// The definition, unblocked: the whole pooled kernel matrix, every
    /// pair's distance for the median, and each assignment's MMD summed
    /// entry by entry, with the kernel's draws in the kernel's order.
    fn drift_by_definition(
        reference: &DatasetView<'_>,
        target: &DatasetView<'_>,
        options: &DriftOptions,
    ) -> (f64, f64, f64) {
        let mut generator = SplitMix64::new(options.seed);
        let reference_rows = generator.sample_indices(reference.n_rows(), options.sample_size);
        let target_rows = generator.sample_indices(target.n_rows(), options.sample_size);
        let points: Vec<Vec<f64>> = reference_rows
            .iter()
            .map(|&row| reference.row(row))
            .chain(target_rows.iter().map(|&row| target.row(row)))
            .map(|row| row.iter().map(|&value| f64::from(value)).collect())
            .collect();
        let n_pooled = points.len();
        let n_reference = reference_rows.len();
        let distance = |left: &[f64], right: &[f64]| {
            left.iter()
                .zip(right)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let mut pairwise = Vec::new();
        for row in 0..n_pooled {
            for column in row + 1..n_pooled {
                pairwise.push(distance(&points[row], &points[column]));
            }
        }
        let bandwidth = median(&mut pairwise).unwrap();
        let kernel: Vec<Vec<f64>> = points
            .iter()
            .map(|left| {
                points
                    .iter()
                    .map(|right| (-distance(left, right).powi(2) / (2.0 * bandwidth.powi(2))).exp())
                    .collect()
            })
            .collect();
        let mmd = |is_reference: &[bool]| {
            let (mut xx, mut yy, mut xy) = (0.0, 0.0, 0.0);
            for row in 0..n_pooled {
                for column in 0..n_pooled {
                    match (is_reference[row], is_reference[column]) {
                        (true, true) => xx += kernel[row][column],
                        (false, false) => yy += kernel[row][column],
                        _ => xy += kernel[row][column],
                    }
                }
            }
            let n_x = n_reference as f64;
            let n_y = (n_pooled - n_reference) as f64;
            xx / (n_x * n_x) + yy / (n_y * n_y) - xy / (n_x * n_y)
        };
        let mut order: Vec<usize> = (0..n_pooled).collect();
        let mut observed = 0.0;
        let mut at_least_as_large = 0;
        for assignment in 0..=options.n_permutations {
            if assignment > 0 {
                generator.shuffle(&mut order);
            }
            let mut is_reference = vec![false; n_pooled];
            for &index in &order[..n_reference] {
                is_reference[index] = true;
            }
            let statistic = mmd(&is_reference);
            if assignment == 0 {
                observed = statistic;
            } else if statistic >= observed - 1e-12 {
                at_least_as_large += 1;
            }
        }
        let p_value = (1 + at_least_as_large) as f64 / (options.n_permutations + 1) as f64;
        (observed, p_value, bandwidth)
    }

    #[test]
    fn the_blocked_sums_agree_with_the_definition_across_several_tiles() {
        // 700 points a side: the pooled 1,400 span three tiles, so the
        // mirrored off-diagonal tiles and the ragged last one are used.
        let reference_values = uniform(11, 700 * 3, 0.0);
        let target_values = uniform(12, 650 * 3, 0.1);
        let reference = DatasetView::new(&reference_values, 3).unwrap();
        let target = DatasetView::new(&target_values, 3).unwrap();
        for options in [
            DriftOptions {
                sample_size: 700,
                n_permutations: 20,
                seed: 5,
            },
            DriftOptions {
                sample_size: 300,
                n_permutations: 20,
                seed: 6,
            },
        ] {
            let blocked = drift(
                &reference,
                &target,
                Metric::L2,
                &options,
                &Execution::new().with_threads(2),
            )
            .unwrap();
            let (mmd_squared, p_value, bandwidth) =
                drift_by_definition(&reference, &target, &options);
            assert!(
                (f64::from(blocked.mmd_squared) - mmd_squared).abs() < 1e-6,
                "{blocked:?} vs {mmd_squared}"
            );
            assert!((f64::from(blocked.bandwidth) - bandwidth).abs() < 1e-5 * bandwidth);
            assert_eq!(f64::from(blocked.p_value), p_value as f32 as f64);
        }
    }

    #[test]
    fn memory_grows_with_the_sample_not_its_square() {
        let options = |sample_size| DriftOptions {
            sample_size,
            n_permutations: 200,
            seed: 0,
        };
        // The issue-13 case: 40,000 a side of 1-d data took 51 GB pooled.
        let large = drift_peak_bytes(40_000, 40_000, 1, &options(40_000));
        assert!(large < 64 << 20, "{large}");
        let double = drift_peak_bytes(80_000, 80_000, 1, &options(80_000));
        assert!(double < 2 * large, "{double} vs {large}");
        // The dimension counts once per sampled point.
        let wide = drift_peak_bytes(1_000, 1_000, 4_096, &options(1_000));
        assert!(wide > 2_000 * 4_096 * 8 && wide < 2 * 2_000 * 4_096 * 8 + (64 << 20));
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
