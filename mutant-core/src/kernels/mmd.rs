//! The blocked sums behind `drift`'s MMD: the RBF kernel matrix of a pooled
//! sample is never held whole; its sums under the observed split and every
//! permutation are accumulated tile by tile over its upper triangle, and the
//! bandwidth's median heuristic reads a bounded number of pairs.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

use super::progress::Stage;
use super::random::SplitMix64;
use crate::Result;

/// Pooled points per tile of the blocked kernel sums: a tile of the
/// kernel matrix is `TILE_POINTS` squared, never the whole pooled sample
/// squared.
pub(super) const TILE_POINTS: usize = 512;

/// Points whose pairwise distances give the bandwidth (the median
/// heuristic). A pooled sample up to this size uses every pair, as the
/// heuristic is defined; a larger one uses a seeded uniform subsample of
/// this many points (about two million pairs), whose median is within a
/// fraction of a percent of the full one.
pub(super) const MEDIAN_POINTS: usize = 2_000;

/// Mixed into the seed of the bandwidth's subsample, so that drawing it
/// leaves the sampling and the permutations of the run unchanged.
const MEDIAN_SEED_MIX: u64 = 0x6d65_6469_616e_2121;

/// The pooled points cut into consecutive tiles of [`TILE_POINTS`].
pub(super) struct Tiles {
    n_points: usize,
    n_tiles: usize,
}

impl Tiles {
    pub(super) fn new(n_points: usize) -> Self {
        Tiles {
            n_points,
            n_tiles: n_points.div_ceil(TILE_POINTS),
        }
    }

    /// The tiles on and above the diagonal.
    pub(super) fn n_upper(&self) -> usize {
        self.n_tiles * (self.n_tiles + 1) / 2
    }

    /// The points of tile `tile`.
    fn range(&self, tile: usize) -> std::ops::Range<usize> {
        let start = tile * TILE_POINTS;
        start..(start + TILE_POINTS).min(self.n_points)
    }
}

/// Which side each pooled point is on, per assignment: one bit each.
pub(super) struct Assignments {
    n_assignments: usize,
    words_per_assignment: usize,
    bits: Vec<u64>,
}

impl Assignments {
    pub(super) fn new(n_points: usize, n_assignments: usize) -> Self {
        let words_per_assignment = n_points.div_ceil(64);
        Assignments {
            n_assignments,
            words_per_assignment,
            bits: vec![0; words_per_assignment * n_assignments],
        }
    }

    pub(super) fn set_reference(&mut self, point: usize, assignment: usize) {
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
pub(super) struct KernelSums {
    pub(super) within_reference: Vec<f64>,
    pub(super) reference_to_target: Vec<f64>,
    pub(super) total: f64,
}

/// Accumulates [`KernelSums`] over the tiles on and above the diagonal of
/// the RBF kernel matrix `exp(-|x - y|^2 * inverse_width)`. A tile `(I, J)`
/// above the diagonal stands for its mirror `(J, I)` too: with `Q = K_IJ
/// A_J` and the row sums `r = K_IJ 1`, the mirror adds `a_I' Q` again to
/// `a' K a` and `a_I' (r - Q)` to `b' K a`.
pub(super) fn kernel_sums(
    pooled: MatRef<'_, f64>,
    assignments: &Assignments,
    tiles: &Tiles,
    inverse_width: f64,
    parallelism: Par,
    stage: &Stage<'_>,
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
pub(super) fn bandwidth(pooled: MatRef<'_, f64>, seed: u64, parallelism: Par) -> Option<f64> {
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

pub(super) fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let middle = values.len() / 2;
    let (_, value, _) = values.select_nth_unstable_by(middle, f64::total_cmp);
    Some(*value)
}
