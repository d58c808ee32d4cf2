//! `projection`: PCA coordinates of a dataset in 2 or 3 dimensions, for
//! plotting.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par, Side};

use super::progress::Execution;
use super::view::DatasetView;
use crate::{Error, Result};

/// Rows per chunk when accumulating the covariance and projecting.
const CHUNK_ROWS: usize = 4096;

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

/// Projects `dataset` onto its first `n_components` (2 or 3) principal
/// components, centred on the mean.
///
/// Component signs are fixed (each component's largest loading is positive)
/// so the same data always plots the same way; components beyond the
/// dataset's dimension, or without variance, give coordinate 0.
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
    let n_chunks = n_rows.div_ceil(CHUNK_ROWS);
    let stage = execution.stage(0.0, 1.0, 2 * n_chunks + 1);

    let mut mean = vec![0.0f64; dimension];
    for row in dataset.vectors().chunks_exact(dimension) {
        for (sum, &value) in mean.iter_mut().zip(row) {
            *sum += f64::from(value);
        }
    }
    mean.iter_mut().for_each(|sum| *sum /= n_rows as f64);

    let mut covariance = Mat::<f64>::zeros(dimension, dimension);
    let mut chunk = Mat::<f64>::zeros(dimension, CHUNK_ROWS.min(n_rows));
    for chunk_start in (0..n_rows).step_by(CHUNK_ROWS) {
        let chunk_len = CHUNK_ROWS.min(n_rows - chunk_start);
        fill_centred(dataset, &mean, chunk_start, chunk_len, &mut chunk);
        let used = chunk.as_ref().subcols(0, chunk_len);
        matmul(
            covariance.as_mut(),
            Accum::Add,
            used,
            used.transpose(),
            1.0 / n_rows as f64,
            parallelism,
        );
        stage.advance(1)?;
    }
    let eigen = covariance.self_adjoint_eigen(Side::Lower).map_err(|error| Error::InvalidParameter {
        name: "dataset",
        reason: format!("the covariance eigendecomposition did not converge ({error:?}); check the vectors for extreme values"),
    })?;
    stage.advance(1)?;
    let eigenvalues = eigen.S().column_vector();
    let total_variance: f64 = (0..dimension)
        .map(|index| eigenvalues[index].max(0.0))
        .sum();
    // Eigenvalues come in nondecreasing order: the last ones are the largest.
    let mut components = Mat::<f64>::zeros(dimension, n_components);
    let mut explained_variance_ratio = vec![0.0f32; n_components];
    for component in 0..n_components.min(dimension) {
        let source = dimension - 1 - component;
        let variance = eigenvalues[source].max(0.0);
        if total_variance <= 0.0 || variance <= total_variance * 1e-12 {
            continue;
        }
        explained_variance_ratio[component] = (variance / total_variance) as f32;
        let vector = eigen.U().col(source);
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

    let mut coordinates = vec![0.0f32; n_rows * n_components];
    let mut projected = Mat::<f64>::zeros(n_components, CHUNK_ROWS.min(n_rows));
    for chunk_start in (0..n_rows).step_by(CHUNK_ROWS) {
        let chunk_len = CHUNK_ROWS.min(n_rows - chunk_start);
        fill_centred(dataset, &mean, chunk_start, chunk_len, &mut chunk);
        let mut target = projected.as_mut().subcols_mut(0, chunk_len);
        matmul(
            target.as_mut(),
            Accum::Replace,
            components.transpose(),
            chunk.as_ref().subcols(0, chunk_len),
            1.0,
            parallelism,
        );
        for column in 0..chunk_len {
            for component in 0..n_components {
                coordinates[(chunk_start + column) * n_components + component] =
                    target[(component, column)] as f32;
            }
        }
        stage.advance(1)?;
    }
    Ok(Projection {
        n_components,
        coordinates,
        explained_variance_ratio,
    })
}

/// Writes rows `start..start + len`, centred, as the columns of `chunk`.
fn fill_centred(
    dataset: &DatasetView<'_>,
    mean: &[f64],
    start: usize,
    len: usize,
    chunk: &mut Mat<f64>,
) {
    for column in 0..len {
        for (position, (&value, &centre)) in
            dataset.row(start + column).iter().zip(mean).enumerate()
        {
            chunk[(position, column)] = f64::from(value) - centre;
        }
    }
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
