//! `projection`: PCA coordinates of a dataset in 2 or 3 dimensions, for
//! plotting. The principal components come from subspace iteration over
//! the rows, so the `dimension x dimension` covariance is never formed.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

use super::progress::Execution;
use super::subspace::{CentredRows, chunk_bytes, eigenpairs_bytes, leading_eigenpairs};
use super::view::DatasetView;
use crate::{Error, Result};

/// Passes over the data at most while the components converge; real
/// embeddings converge in a few dozen, well separated spectra in a handful.
const MAX_PASSES: usize = 100;

/// The PCA projection of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// 2 or 3.
    pub n_components: usize,
    /// Row-major, `n_rows x n_components`: each row's coordinates.
    pub coordinates: Vec<f32>,
    /// Per component, the share of the total variance it explains, in `[0, 1]`
    /// (all 0 when the data has no spread).
    pub explained_variance_ratio: Vec<f32>,
}

/// The peak working memory of [`projection`] in bytes, for `n_rows` rows
/// of `dimension`: the coordinates, the row order and mean, and the
/// subspace iteration's `dimension x (n_components + 8)` matrices; never
/// `dimension` squared.
pub fn projection_peak_bytes(n_rows: usize, dimension: usize, n_components: usize) -> u64 {
    let (n_rows, columns) = (n_rows as u64, n_components as u64);
    4 * n_rows * columns
        + 8 * n_rows
        + 8 * dimension as u64
        + eigenpairs_bytes(dimension, n_components)
        + chunk_bytes(dimension)
}

/// Projects `dataset` onto its first `n_components` (2 or 3) principal
/// components, centred on the mean.
///
/// The components are the leading eigenvectors of the covariance, found by
/// randomized subspace iteration (seeded, so deterministic) until their
/// residuals are negligible; memory grows with the dimension, not its
/// square (see [`projection_peak_bytes`]). Component signs are fixed (each
/// component's largest loading is positive) so the same data always plots
/// the same way; components beyond the dataset's dimension, or without
/// variance, give coordinate 0.
///
/// ```
/// use mutant_core::kernels::{projection, DatasetView, Execution};
/// let dataset = DatasetView::new(&[0.0f32, 0.0, 0.0, 2.0, 2.0, 0.0, 4.0, 4.0, 0.0], 3)?;
/// let result = projection(&dataset, 2, &Execution::new())?;
/// assert!((result.explained_variance_ratio[0] - 1.0).abs() < 1e-6);
/// assert!((result.coordinates[0] + result.coordinates[4]).abs() < 1e-5); // symmetric ends
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn projection(
    dataset: &DatasetView<'_>,
    n_components: usize,
    execution: &Execution<'_>,
) -> Result<Projection> {
    if !(2..=3).contains(&n_components) {
        return Err(Error::InvalidParameter {
            name: "components",
            reason: format!("asked for {n_components} components; use 2 or 3"),
        });
    }
    dataset.require_rows("the dataset to project")?;
    let dimension = dataset.dimension();
    let n_rows = dataset.n_rows();
    let parallelism = if execution.threads() > 1 {
        Par::rayon(execution.threads())
    } else {
        Par::Seq
    };

    let mut mean = vec![0.0f64; dimension];
    for row in dataset.vectors().chunks_exact(dimension) {
        for (sum, &value) in mean.iter_mut().zip(row) {
            *sum += f64::from(value);
        }
    }
    mean.iter_mut().for_each(|sum| *sum /= n_rows as f64);
    let all_rows: Vec<usize> = (0..n_rows).collect();
    let rows = CentredRows::new(dataset, vec![(&all_rows, &mean)]);
    let (total_variance, _) = rows.trace_and_fourth_moment()?;
    let eigenpairs = leading_eigenpairs(
        &rows,
        n_components,
        MAX_PASSES,
        parallelism,
        &execution.part(0.0, 0.9),
    )?;

    let mut components = Mat::<f64>::zeros(dimension, n_components);
    let mut explained_variance_ratio = vec![0.0f32; n_components];
    for component in 0..n_components.min(dimension) {
        let variance = eigenpairs.values[component];
        if total_variance <= 0.0 || variance <= total_variance * 1e-12 {
            continue;
        }
        explained_variance_ratio[component] = (variance / total_variance).min(1.0) as f32;
        let vector = eigenpairs.vectors.col(component);
        let largest = (0..dimension)
            .max_by(|&left, &right| {
                vector[left]
                    .abs()
                    .total_cmp(&vector[right].abs())
                    .then(right.cmp(&left))
            })
            .unwrap_or(0);
        let sign = if vector[largest] < 0.0 { -1.0 } else { 1.0 };
        for position in 0..dimension {
            components[(position, component)] = sign * vector[position];
        }
    }

    let projecting = execution.part(0.9, 1.0);
    let stage = projecting.stage(0.0, 1.0, 1);
    let mut coordinates = Vec::with_capacity(n_rows * n_components);
    let mut projected = Mat::<f64>::zeros(0, n_components);
    rows.for_each_chunk(|chunk| {
        projected.resize_with(chunk.nrows(), n_components, |_, _| 0.0);
        matmul(
            projected.as_mut(),
            Accum::Replace,
            chunk,
            components.as_ref(),
            1.0,
            parallelism,
        );
        for row in 0..chunk.nrows() {
            coordinates
                .extend((0..n_components).map(|component| projected[(row, component)] as f32));
        }
        execution.check_cancelled()
    })?;
    stage.advance(1)?;
    Ok(Projection {
        n_components,
        coordinates,
        explained_variance_ratio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_main_axis_and_is_translation_invariant() {
        let mut values = Vec::new();
        for step in 0..50 {
            let t = step as f32 - 25.0;
            values.extend([t, 0.5 * t, (step % 3) as f32 * 0.1]);
        }
        let dataset = DatasetView::new(&values, 3).unwrap();
        let result = projection(&dataset, 2, &Execution::new()).unwrap();
        assert!(result.explained_variance_ratio[0] > 0.99);
        assert!(result.explained_variance_ratio.iter().sum::<f32>() <= 1.0 + 1e-6);
        let shifted: Vec<f32> = values.iter().map(|value| value + 100.0).collect();
        let shifted_result = projection(
            &DatasetView::new(&shifted, 3).unwrap(),
            2,
            &Execution::new(),
        )
        .unwrap();
        for (left, right) in result.coordinates.iter().zip(&shifted_result.coordinates) {
            assert!((left - right).abs() < 1e-3, "{left} vs {right}");
        }
    }

    /// The projection as it was computed before subspace iteration: the
    /// dense covariance's full eigendecomposition.
    fn dense_projection(dataset: &DatasetView<'_>, n_components: usize) -> (Vec<f32>, Vec<f32>) {
        use faer::Side;
        let (n_rows, dimension) = (dataset.n_rows(), dataset.dimension());
        let mut mean = vec![0.0f64; dimension];
        for row in 0..n_rows {
            for (sum, &value) in mean.iter_mut().zip(dataset.row(row)) {
                *sum += f64::from(value) / n_rows as f64;
            }
        }
        let centred = Mat::<f64>::from_fn(n_rows, dimension, |row, position| {
            f64::from(dataset.row(row)[position]) - mean[position]
        });
        let covariance = centred.transpose() * &centred * faer::Scale(1.0 / n_rows as f64);
        let eigen = covariance.self_adjoint_eigen(Side::Lower).unwrap();
        let total: f64 = (0..dimension)
            .map(|index| eigen.S().column_vector()[index].max(0.0))
            .sum();
        let mut coordinates = vec![0.0f32; n_rows * n_components];
        let mut ratios = vec![0.0f32; n_components];
        for component in 0..n_components {
            let source = dimension - 1 - component;
            ratios[component] = (eigen.S().column_vector()[source] / total) as f32;
            let vector = eigen.U().col(source);
            let largest = (0..dimension)
                .max_by(|&left, &right| vector[left].abs().total_cmp(&vector[right].abs()))
                .unwrap();
            let sign = vector[largest].signum();
            for row in 0..n_rows {
                let value: f64 = (0..dimension)
                    .map(|position| centred[(row, position)] * vector[position])
                    .sum();
                coordinates[row * n_components + component] = (sign * value) as f32;
            }
        }
        (coordinates, ratios)
    }

    #[test]
    fn agrees_with_the_dense_eigendecomposition() {
        let mut generator = crate::kernels::SplitMix64::new(9);
        for (n_rows, dimension, n_components) in [(500, 40, 3), (200, 3, 2), (60, 100, 2)] {
            let values: Vec<f32> = (0..n_rows * dimension)
                .map(|index| {
                    let scale = 1.0 + 3.0 / (1.0 + (index % dimension) as f64);
                    ((generator.next_f64() - 0.5) * scale + 2.0) as f32
                })
                .collect();
            let dataset = DatasetView::new(&values, dimension).unwrap();
            let result =
                projection(&dataset, n_components, &Execution::new().with_threads(2)).unwrap();
            let (coordinates, ratios) = dense_projection(&dataset, n_components);
            for (got, expected) in result.explained_variance_ratio.iter().zip(&ratios) {
                assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
            }
            let spread = coordinates
                .iter()
                .fold(0.0f32, |most, value| most.max(value.abs()));
            for (got, expected) in result.coordinates.iter().zip(&coordinates) {
                assert!(
                    (got - expected).abs() < 1e-4 * spread,
                    "{n_rows}x{dimension}: {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn memory_grows_with_the_dimension_not_its_square() {
        let wide = projection_peak_bytes(10_000, 65_536, 2);
        assert!(wide < 64 << 20, "{wide}");
        assert!(projection_peak_bytes(1_000_000, 768, 3) < 64 << 20);
    }

    #[test]
    fn degenerate_inputs_give_zeros_or_errors() {
        let identical = DatasetView::new(&[2.0f32; 12], 4).unwrap();
        let result = projection(&identical, 3, &Execution::new()).unwrap();
        assert!(result.coordinates.iter().all(|&value| value == 0.0));
        assert_eq!(result.explained_variance_ratio, vec![0.0; 3]);
        let one_dimension = DatasetView::new(&[1.0f32, 2.0, 4.0], 1).unwrap();
        let result = projection(&one_dimension, 2, &Execution::new()).unwrap();
        assert_eq!(result.coordinates.len(), 6);
        assert!(result.coordinates.iter().all(|value| value.is_finite()));
        assert!(projection(&one_dimension, 4, &Execution::new()).is_err());
        assert!(projection(&DatasetView::new(&[], 2).unwrap(), 2, &Execution::new()).is_err());
    }
}
