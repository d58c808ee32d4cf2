//! The leading eigenpairs of a covariance matrix: randomized subspace
//! iteration over centred rows, read a chunk at a time, so memory grows
//! with the dimension times the subspace's width, never with the dimension
//! squared; or, in dimensions up to [`DENSE_MAX_DIMENSION`] where that
//! costs fewer flops than the passes would, the covariance formed in one
//! pass and decomposed whole. `projection` (PCA) and `class_outlier` (the
//! low-rank part of each class's covariance) use it.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};

use super::progress::Execution;
use super::random::SplitMix64;
use super::view::DatasetView;
use crate::{Error, Result};

/// Bytes of centred rows (and of one column block of the covariance) held
/// at once while passing over the data.
const CHUNK_BYTES: usize = 8 << 20;

/// Directions iterated beside the wanted ones: the wanted ones converge at
/// the rate of the gap to the first direction left out, so a few spare
/// ones make a handful of passes enough.
pub(crate) const OVERSAMPLING: usize = 8;

/// The residual `|S v - theta v|`, relative to the largest eigenvalue, at
/// which every wanted eigenpair counts as converged.
const TOLERANCE: f64 = 1e-10;

/// Seed of the random start: fixed, so the same data gives the same answer.
const START_SEED: u64 = 0x7375_6273_7061_6365;

/// The largest dimension whose covariance may be formed whole: 8 MiB of
/// f64, three times over with the decomposition's vectors and workspace.
const DENSE_MAX_DIMENSION: usize = 1024;

/// Groups of rows of one dataset, each centred on its own mean (one class,
/// or every class with its own mean for a pooled within-class covariance).
pub(crate) struct CentredRows<'a> {
    dataset: &'a DatasetView<'a>,
    groups: Vec<(&'a [usize], &'a [f64])>,
    n_rows: usize,
}

/// The peak bytes of a pass over rows of `dimension` (one chunk of centred
/// rows, or one column block of the covariance).
pub(crate) fn chunk_bytes(dimension: usize) -> u64 {
    CHUNK_BYTES.max(8 * dimension) as u64
}

/// The peak bytes of [`leading_eigenpairs`] for `n_wanted` pairs in
/// `dimension`: the basis, its product with the covariance and the Ritz
/// vectors, each `dimension x width`, and a chunk of rows.
pub(crate) fn eigenpairs_bytes(dimension: usize, n_wanted: usize) -> u64 {
    let width = (n_wanted + OVERSAMPLING).min(dimension) as u64;
    let iterated = 4 * 8 * dimension as u64 * width;
    let dense = if dimension <= DENSE_MAX_DIMENSION {
        3 * 8 * (dimension * dimension) as u64
    } else {
        0
    };
    iterated.max(dense) + 2 * chunk_bytes(dimension)
}

/// Whether forming the covariance of `n_rows` rows whole and decomposing
/// it costs less than half the flops of `max_passes` passes of subspace
/// iteration `width` wide: a pass is two products with the rows, forming
/// is one product as wide as the dimension, and a dense decomposition
/// about ten times the dimension cubed. Iteration often stops before its
/// last pass, hence the half.
fn dense_is_cheaper(n_rows: usize, dimension: usize, width: usize, max_passes: usize) -> bool {
    let (n, d, w) = (n_rows as f64, dimension as f64, width as f64);
    let dense = 2.0 * n * d * d + 10.0 * d * d * d;
    let iterated = max_passes as f64 * 4.0 * n * d * w;
    dimension <= DENSE_MAX_DIMENSION && 2.0 * dense < iterated
}

impl<'a> CentredRows<'a> {
    /// The rows of each group, centred on the group's mean.
    pub(crate) fn new(dataset: &'a DatasetView<'a>, groups: Vec<(&'a [usize], &'a [f64])>) -> Self {
        let n_rows = groups.iter().map(|(rows, _)| rows.len()).sum();
        CentredRows {
            dataset,
            groups,
            n_rows,
        }
    }

    /// The dimension of the rows.
    pub(crate) fn dimension(&self) -> usize {
        self.dataset.dimension()
    }

    /// The rows of every group.
    pub(crate) fn n_rows(&self) -> usize {
        self.n_rows
    }

    fn chunk_rows(&self) -> usize {
        (CHUNK_BYTES / (8 * self.dimension())).clamp(1, self.n_rows.max(1))
    }

    /// Hands `visit` the centred rows, in group order, as consecutive chunks
    /// (a row of the chunk per row of the data).
    pub(crate) fn for_each_chunk(
        &self,
        mut visit: impl FnMut(MatRef<'_, f64>) -> Result<()>,
    ) -> Result<()> {
        let chunk_rows = self.chunk_rows();
        let mut chunk = Mat::<f64>::zeros(chunk_rows, self.dimension());
        let mut filled = 0;
        for (rows, mean) in &self.groups {
            for &row in rows.iter() {
                for (position, (&value, &centre)) in
                    self.dataset.row(row).iter().zip(mean.iter()).enumerate()
                {
                    chunk[(filled, position)] = f64::from(value) - centre;
                }
                filled += 1;
                if filled == chunk_rows {
                    visit(chunk.as_ref())?;
                    filled = 0;
                }
            }
        }
        if filled > 0 {
            visit(chunk.as_ref().subrows(0, filled))?;
        }
        Ok(())
    }

    /// The covariance `S = (1/n) sum (x - m)(x - m)'`, whole.
    fn covariance(&self, parallelism: Par, execution: &Execution<'_>) -> Result<Mat<f64>> {
        let dimension = self.dimension();
        let mut covariance = Mat::<f64>::zeros(dimension, dimension);
        let scale = 1.0 / self.n_rows.max(1) as f64;
        self.for_each_chunk(|chunk| {
            execution.check_cancelled()?;
            matmul(
                covariance.as_mut(),
                Accum::Add,
                chunk.transpose(),
                chunk,
                scale,
                parallelism,
            );
            Ok(())
        })?;
        Ok(covariance)
    }

    /// `S basis`, with `S` the covariance `(1/n) sum (x - m)(x - m)'`.
    fn covariance_times(&self, basis: MatRef<'_, f64>, parallelism: Par) -> Result<Mat<f64>> {
        let width = basis.ncols();
        let mut product = Mat::<f64>::zeros(self.dimension(), width);
        let mut projected = Mat::<f64>::zeros(self.chunk_rows(), width);
        let scale = 1.0 / self.n_rows.max(1) as f64;
        self.for_each_chunk(|chunk| {
            let mut projected = projected.as_mut().subrows_mut(0, chunk.nrows());
            matmul(
                projected.as_mut(),
                Accum::Replace,
                chunk,
                basis,
                1.0,
                parallelism,
            );
            matmul(
                product.as_mut(),
                Accum::Add,
                chunk.transpose(),
                projected.as_ref(),
                scale,
                parallelism,
            );
            Ok(())
        })?;
        Ok(product)
    }

    /// The covariance's trace and `sum |x - m|^4`, in one pass.
    pub(crate) fn trace_and_fourth_moment(&self) -> Result<(f64, f64)> {
        let (mut sum_squares, mut fourth_moment) = (0.0, 0.0);
        self.for_each_chunk(|chunk| {
            for row in 0..chunk.nrows() {
                let squared: f64 = chunk.row(row).iter().map(|value| value * value).sum();
                sum_squares += squared;
                fourth_moment += squared * squared;
            }
            Ok(())
        })?;
        Ok((sum_squares / self.n_rows.max(1) as f64, fourth_moment))
    }

    /// `|S|_F^2`, the covariance's squared Frobenius norm, computed a block
    /// of its columns at a time (one pass over the rows per block), so the
    /// covariance is never held whole.
    pub(crate) fn covariance_squared_frobenius(
        &self,
        parallelism: Par,
        execution: &Execution<'_>,
    ) -> Result<f64> {
        let dimension = self.dimension();
        let block_width = (CHUNK_BYTES / (8 * dimension)).clamp(1, dimension);
        let scale = 1.0 / self.n_rows.max(1) as f64;
        let mut block = Mat::<f64>::zeros(dimension, block_width);
        let mut squared_frobenius = 0.0;
        for start in (0..dimension).step_by(block_width) {
            execution.check_cancelled()?;
            let width = block_width.min(dimension - start);
            let mut columns = block.as_mut().subcols_mut(0, width);
            columns.fill(0.0);
            self.for_each_chunk(|chunk| {
                matmul(
                    columns.as_mut(),
                    Accum::Add,
                    chunk.transpose(),
                    chunk.subcols(start, width),
                    scale,
                    parallelism,
                );
                Ok(())
            })?;
            squared_frobenius += (0..width)
                .map(|column| columns.as_ref().col(column).squared_norm_l2())
                .sum::<f64>();
        }
        Ok(squared_frobenius)
    }
}

/// The leading eigenpairs of a covariance: eigenvalues, largest first, and
/// their unit eigenvectors as the columns of a `dimension x n` matrix.
pub(crate) struct Eigenpairs {
    pub(crate) values: Vec<f64>,
    pub(crate) vectors: Mat<f64>,
}

/// The `n_wanted` leading eigenpairs of the covariance of `rows`, by
/// subspace iteration from a seeded random start with [`OVERSAMPLING`]
/// spare directions and a Rayleigh-Ritz step per pass, until every wanted
/// pair's residual is below [`TOLERANCE`] (relative to the largest
/// eigenvalue) or `max_passes` passes over the rows were made. Exact (up to
/// rounding) after two passes when the covariance's rank is under the
/// subspace's width, and after one when the width is the whole dimension.
/// Where the covariance is small and the passes would cost more (see
/// [`dense_is_cheaper`]), it is formed and decomposed whole instead: the
/// same pairs, exact, whatever the spectrum's gaps.
pub(crate) fn leading_eigenpairs(
    rows: &CentredRows<'_>,
    n_wanted: usize,
    max_passes: usize,
    parallelism: Par,
    execution: &Execution<'_>,
) -> Result<Eigenpairs> {
    let dimension = rows.dimension();
    let n_wanted = n_wanted.min(dimension);
    let width = (n_wanted + OVERSAMPLING).min(dimension);
    if dense_is_cheaper(rows.n_rows(), dimension, width, max_passes) {
        dense_leading_eigenpairs(rows, n_wanted, parallelism, execution)
    } else {
        iterated_leading_eigenpairs(rows, n_wanted, max_passes, parallelism, execution)
    }
}

/// [`leading_eigenpairs`] by subspace iteration.
fn iterated_leading_eigenpairs(
    rows: &CentredRows<'_>,
    n_wanted: usize,
    max_passes: usize,
    parallelism: Par,
    execution: &Execution<'_>,
) -> Result<Eigenpairs> {
    let dimension = rows.dimension();
    let n_wanted = n_wanted.min(dimension);
    let width = (n_wanted + OVERSAMPLING).min(dimension);
    let mut generator = SplitMix64::new(START_SEED);
    let mut basis = Mat::<f64>::from_fn(dimension, width, |_, _| generator.next_f64() - 0.5);
    orthonormalize(&mut basis, &mut generator);
    let stage = execution.stage(0.0, 1.0, max_passes.max(1));
    let mut pass = 0;
    loop {
        pass += 1;
        let product = rows.covariance_times(basis.as_ref(), parallelism)?;
        let mut small = Mat::<f64>::zeros(width, width);
        matmul(
            small.as_mut(),
            Accum::Replace,
            basis.transpose(),
            product.as_ref(),
            1.0,
            parallelism,
        );
        let symmetric = Mat::<f64>::from_fn(width, width, |row, column| {
            0.5 * (small[(row, column)] + small[(column, row)])
        });
        let eigen = symmetric
            .self_adjoint_eigen(Side::Lower)
            .map_err(not_converged)?;
        // Eigenvalues come in nondecreasing order: the last are the largest.
        let order: Vec<usize> = (0..n_wanted).map(|index| width - 1 - index).collect();
        let ritz = Mat::<f64>::from_fn(width, n_wanted, |row, column| {
            eigen.U()[(row, order[column])]
        });
        let values: Vec<f64> = order
            .iter()
            .map(|&index| eigen.S().column_vector()[index])
            .collect();
        let mut vectors = Mat::<f64>::zeros(dimension, n_wanted);
        matmul(
            vectors.as_mut(),
            Accum::Replace,
            basis.as_ref(),
            ritz.as_ref(),
            1.0,
            parallelism,
        );
        let mut images = Mat::<f64>::zeros(dimension, n_wanted);
        matmul(
            images.as_mut(),
            Accum::Replace,
            product.as_ref(),
            ritz.as_ref(),
            1.0,
            parallelism,
        );
        let largest = values
            .first()
            .copied()
            .unwrap_or(0.0)
            .max(f64::MIN_POSITIVE);
        let residual = (0..n_wanted)
            .map(|column| {
                (0..dimension)
                    .map(|position| {
                        (images[(position, column)] - values[column] * vectors[(position, column)])
                            .powi(2)
                    })
                    .sum::<f64>()
                    .sqrt()
            })
            .fold(0.0, f64::max);
        stage.advance(1)?;
        if residual <= TOLERANCE * largest || pass >= max_passes {
            return Ok(Eigenpairs {
                values: values.into_iter().map(|value| value.max(0.0)).collect(),
                vectors,
            });
        }
        basis = product;
        orthonormalize(&mut basis, &mut generator);
    }
}

/// The `n_wanted` leading eigenpairs of the covariance of `rows`, formed
/// whole in one pass and decomposed.
fn dense_leading_eigenpairs(
    rows: &CentredRows<'_>,
    n_wanted: usize,
    parallelism: Par,
    execution: &Execution<'_>,
) -> Result<Eigenpairs> {
    let dimension = rows.dimension();
    let stage = execution.stage(0.0, 1.0, 2);
    let covariance = rows.covariance(parallelism, execution)?;
    stage.advance(1)?;
    let eigen = covariance
        .self_adjoint_eigen(Side::Lower)
        .map_err(not_converged)?;
    stage.advance(1)?;
    // Eigenvalues come in nondecreasing order: the last are the largest.
    let values = (0..n_wanted)
        .map(|index| eigen.S().column_vector()[dimension - 1 - index].max(0.0))
        .collect();
    let vectors = Mat::<f64>::from_fn(dimension, n_wanted, |row, column| {
        eigen.U()[(row, dimension - 1 - column)]
    });
    Ok(Eigenpairs { values, vectors })
}

/// The error of an eigendecomposition that did not converge.
fn not_converged(error: impl std::fmt::Debug) -> Error {
    Error::InvalidParameter {
        name: "dataset",
        reason: format!(
            "the covariance eigendecomposition did not converge ({error:?}); check the vectors for extreme values"
        ),
    }
}

/// Makes the columns of `basis` orthonormal (Gram-Schmidt, twice for
/// accuracy); a column that lies in the span of the previous ones (rank
/// below the width: data of low rank) is replaced by a random direction.
fn orthonormalize(basis: &mut Mat<f64>, generator: &mut SplitMix64) {
    let (dimension, width) = (basis.nrows(), basis.ncols());
    for column in 0..width {
        for attempt in 0..4 {
            let original = basis.col(column).norm_l2();
            for _ in 0..2 {
                for previous in 0..column {
                    let overlap: f64 = (0..dimension)
                        .map(|position| basis[(position, previous)] * basis[(position, column)])
                        .sum();
                    for position in 0..dimension {
                        let step = overlap * basis[(position, previous)];
                        basis[(position, column)] -= step;
                    }
                }
            }
            let norm = basis.col(column).norm_l2();
            if norm > 1e-9 * original && norm > 0.0 && norm.is_finite() {
                for position in 0..dimension {
                    basis[(position, column)] /= norm;
                }
                break;
            }
            let fresh_direction = attempt < 3;
            for position in 0..dimension {
                basis[(position, column)] = if fresh_direction {
                    generator.next_f64() - 0.5
                } else {
                    0.0
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The covariance formed whole, for comparison.
    fn dense_covariance(dataset: &DatasetView<'_>, mean: &[f64]) -> Mat<f64> {
        let dimension = dataset.dimension();
        let mut covariance = Mat::<f64>::zeros(dimension, dimension);
        for row in 0..dataset.n_rows() {
            let centred: Vec<f64> = dataset
                .row(row)
                .iter()
                .zip(mean)
                .map(|(&value, centre)| f64::from(value) - centre)
                .collect();
            for left in 0..dimension {
                for right in 0..dimension {
                    covariance[(left, right)] +=
                        centred[left] * centred[right] / dataset.n_rows() as f64;
                }
            }
        }
        covariance
    }

    #[test]
    fn matches_the_dense_eigendecomposition_and_frobenius_norm() {
        let mut generator = SplitMix64::new(3);
        let dimension = 12;
        // Decaying scales give distinct eigenvalues.
        let values: Vec<f32> = (0..300 * dimension)
            .map(|index| ((generator.next_f64() - 0.5) * (1.0 + (index % dimension) as f64)) as f32)
            .collect();
        let dataset = DatasetView::new(&values, dimension).unwrap();
        let mean = vec![0.1f64; dimension];
        let all: Vec<usize> = (0..300).collect();
        let rows = CentredRows::new(&dataset, vec![(&all, &mean)]);
        let covariance = dense_covariance(&dataset, &mean);
        let eigen = covariance.self_adjoint_eigen(Side::Lower).unwrap();
        // Both routes: the dispatcher picks the dense one at this size.
        assert!(dense_is_cheaper(300, dimension, 3 + OVERSAMPLING, 200));
        let iterated =
            iterated_leading_eigenpairs(&rows, 3, 200, Par::Seq, &Execution::new()).unwrap();
        let dense = leading_eigenpairs(&rows, 3, 200, Par::Seq, &Execution::new()).unwrap();
        for (pairs, index) in [&iterated, &dense]
            .into_iter()
            .flat_map(|pairs| (0..3).map(move |index| (pairs, index)))
        {
            let expected = eigen.S().column_vector()[dimension - 1 - index];
            assert!(
                (pairs.values[index] - expected).abs() < 1e-8 * expected,
                "{index}: {} vs {expected}",
                pairs.values[index]
            );
            let overlap: f64 = (0..dimension)
                .map(|position| {
                    pairs.vectors[(position, index)] * eigen.U()[(position, dimension - 1 - index)]
                })
                .sum();
            assert!((overlap.abs() - 1.0).abs() < 1e-6, "{index}: {overlap}");
        }
        let frobenius = rows
            .covariance_squared_frobenius(Par::Seq, &Execution::new())
            .unwrap();
        let expected: f64 = (0..dimension)
            .flat_map(|row| (0..dimension).map(move |column| (row, column)))
            .map(|(row, column)| covariance[(row, column)].powi(2))
            .sum();
        assert!((frobenius - expected).abs() < 1e-9 * expected);
    }

    /// The dense route with the iterated one's signature.
    fn dense_leading_eigenpairs_of(
        rows: &CentredRows<'_>,
        n_wanted: usize,
        _max_passes: usize,
        parallelism: Par,
        execution: &Execution<'_>,
    ) -> Result<Eigenpairs> {
        dense_leading_eigenpairs(rows, n_wanted, parallelism, execution)
    }

    #[test]
    fn low_rank_and_constant_data_give_finite_pairs() {
        // Rank one in 6 dimensions: one positive eigenvalue, the rest 0.
        let values: Vec<f32> = (0..40)
            .flat_map(|row| (0..6).map(move |position| (row * (position + 1)) as f32))
            .collect();
        let dataset = DatasetView::new(&values, 6).unwrap();
        let all: Vec<usize> = (0..40).collect();
        let mean = {
            let mut sums = vec![0.0f64; 6];
            for row in 0..40 {
                for (sum, &value) in sums.iter_mut().zip(dataset.row(row)) {
                    *sum += f64::from(value) / 40.0;
                }
            }
            sums
        };
        let rows = CentredRows::new(&dataset, vec![(&all, &mean)]);
        let constant = DatasetView::new(&[2.0f32; 12], 3).unwrap();
        let four: Vec<usize> = (0..4).collect();
        let centre = [2.0f64; 3];
        let constant_rows = CentredRows::new(&constant, vec![(&four, &centre)]);
        type Route = fn(&CentredRows<'_>, usize, usize, Par, &Execution<'_>) -> Result<Eigenpairs>;
        let routes: [Route; 2] = [iterated_leading_eigenpairs, dense_leading_eigenpairs_of];
        for route in routes {
            let pairs = route(&rows, 3, 50, Par::Seq, &Execution::new()).unwrap();
            assert!(pairs.values[0] > 0.0);
            assert!(pairs.values[1] < 1e-9 * pairs.values[0]);
            let pairs = route(&constant_rows, 2, 50, Par::Seq, &Execution::new()).unwrap();
            assert_eq!(pairs.values, vec![0.0, 0.0]);
            assert!(pairs.vectors.col(0).iter().all(|value| value.is_finite()));
        }
    }
}
