//! The borrowed, in-memory form of a dataset that every kernel reads, and the
//! distance metric.

use crate::{Error, Result};

/// How distances between vectors are measured; smaller is always nearer.
///
/// - `L2`: the Euclidean distance (not squared).
/// - `Cosine`: 1 - cosine similarity, in `[0, 2]`; a zero vector is at
///   distance 1 from everything (its similarity is taken as 0).
/// - `Dot`: the negated inner product, so that larger inner products are nearer;
///   it can be negative and is not a true distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Euclidean distance.
    L2,
    /// One minus the cosine similarity.
    Cosine,
    /// Negated inner product.
    Dot,
}

impl From<crate::model::Metric> for Metric {
    fn from(metric: crate::model::Metric) -> Self {
        match metric {
            crate::model::Metric::L2 => Metric::L2,
            crate::model::Metric::Cosine => Metric::Cosine,
            crate::model::Metric::Dot => Metric::Dot,
        }
    }
}

impl Metric {
    /// Whether distances under this metric are non-negative and zero for
    /// identical vectors, which density-aware scores and duplicate detection
    /// need (`Dot` is not).
    pub fn is_distance(self) -> bool {
        matches!(self, Metric::L2 | Metric::Cosine)
    }

    /// The distance between two vectors of equal length, computed directly in
    /// `f64` (the reference the fast paths are checked against and the way the
    /// final k neighbours are re-measured).
    ///
    /// ```
    /// use mutant_core::kernels::Metric;
    /// assert_eq!(Metric::L2.distance(&[0.0, 0.0], &[3.0, 4.0]), 5.0);
    /// assert_eq!(Metric::Dot.distance(&[1.0, 2.0], &[3.0, 4.0]), -11.0);
    /// assert!(Metric::Cosine.distance(&[1.0, 0.0], &[2.0, 0.0]).abs() < 1e-6);
    /// ```
    #[inline(always)]
    pub fn distance(self, left: &[f32], right: &[f32]) -> f32 {
        match self {
            Metric::L2 => {
                let sum = sum_over_pairs(left, right, |a, b| (a - b) * (a - b));
                sum.sqrt() as f32
            }
            Metric::Dot => (-sum_over_pairs(left, right, |a, b| a * b)) as f32,
            Metric::Cosine => {
                let left_norm = sum_over_pairs(left, left, |a, _| a * a).sqrt();
                let right_norm = sum_over_pairs(right, right, |b, _| b * b).sqrt();
                if left_norm == 0.0 || right_norm == 0.0 {
                    return 1.0;
                }
                // Half the squared distance between the unit vectors equals
                // 1 - cos, without the cancellation of computing 1 - cos.
                let squared = sum_over_pairs(left, right, |a, b| {
                    let difference = a / left_norm - b / right_norm;
                    difference * difference
                });
                (squared / 2.0) as f32
            }
        }
    }
}

/// Lanes summed independently by [`sum_over_pairs`]: enough to fill the
/// vector units, where one running sum would wait on every addition.
const SUM_LANES: usize = 8;

/// The sum of `term(a, b)` over the pairs of `left` and `right`, in `f64`,
/// kept in [`SUM_LANES`] partial sums (a fixed order: the same inputs give
/// the same bits on every machine).
#[inline(always)]
fn sum_over_pairs(left: &[f32], right: &[f32], term: impl Fn(f64, f64) -> f64) -> f64 {
    let mut lanes = [0.0f64; SUM_LANES];
    let left_chunks = left.chunks_exact(SUM_LANES);
    let right_chunks = right.chunks_exact(SUM_LANES);
    let (left_rest, right_rest) = (left_chunks.remainder(), right_chunks.remainder());
    for (left_chunk, right_chunk) in left_chunks.zip(right_chunks) {
        for lane in 0..SUM_LANES {
            lanes[lane] += term(f64::from(left_chunk[lane]), f64::from(right_chunk[lane]));
        }
    }
    for (lane, (&a, &b)) in left_rest.iter().zip(right_rest).enumerate() {
        lanes[lane] += term(f64::from(a), f64::from(b));
    }
    lanes.iter().sum()
}

/// A borrowed view of a dataset's in-memory form: one row-major `f32` matrix
/// and, optionally, interned class codes for labels and predictions.
///
/// Labels and predictions share one vocabulary: code 3 as a label is the same
/// class as code 3 as a prediction. An empty `labels` (or `predictions`) slice
/// means the dataset has none. Vectors must be finite (ingest rejects NaN and
/// infinities); rows are referred to by their index.
///
/// ```
/// use mutant_core::kernels::DatasetView;
/// let vectors = [0.0f32, 0.0, 1.0, 1.0, 5.0, 5.0];
/// let labels = [Some(0), Some(0), Some(1)];
/// let view = DatasetView::new(&vectors, 2)?.with_labels(&labels)?;
/// assert_eq!(view.n_rows(), 3);
/// assert_eq!(view.row(2), &[5.0, 5.0]);
/// assert_eq!(view.label(2), Some(1));
/// # Ok::<(), mutant_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DatasetView<'a> {
    vectors: &'a [f32],
    dimension: usize,
    labels: &'a [Option<u32>],
    predictions: &'a [Option<u32>],
}

impl<'a> DatasetView<'a> {
    /// A view of `vectors`, `dimension` values per row, without labels or
    /// predictions.
    pub fn new(vectors: &'a [f32], dimension: usize) -> Result<Self> {
        if dimension == 0 {
            return Err(Error::InvalidParameter {
                name: "dimension",
                reason: "a dataset's dimension must be at least 1".to_owned(),
            });
        }
        if !vectors.len().is_multiple_of(dimension) {
            return Err(Error::InvalidParameter {
                name: "vectors",
                reason: format!(
                    "{} values is not a whole number of rows of dimension {dimension}; pass n_rows x dimension values",
                    vectors.len()
                ),
            });
        }
        Ok(DatasetView {
            vectors,
            dimension,
            labels: &[],
            predictions: &[],
        })
    }

    /// The same view with one label (class code) per row, or an empty slice.
    pub fn with_labels(self, labels: &'a [Option<u32>]) -> Result<Self> {
        self.check_per_row("labels", labels.len())?;
        Ok(DatasetView { labels, ..self })
    }

    /// The same view with one prediction (class code) per row, or an empty slice.
    pub fn with_predictions(self, predictions: &'a [Option<u32>]) -> Result<Self> {
        self.check_per_row("predictions", predictions.len())?;
        Ok(DatasetView {
            predictions,
            ..self
        })
    }

    fn check_per_row(&self, name: &'static str, len: usize) -> Result<()> {
        if len != 0 && len != self.n_rows() {
            return Err(Error::InvalidParameter {
                name,
                reason: format!(
                    "got {len} values for {} rows; give one per row or none",
                    self.n_rows()
                ),
            });
        }
        Ok(())
    }

    /// The number of rows.
    pub fn n_rows(&self) -> usize {
        self.vectors.len() / self.dimension
    }

    /// The number of values per row.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The whole row-major matrix.
    pub fn vectors(&self) -> &'a [f32] {
        self.vectors
    }

    /// Row `row_idx` of the matrix.
    pub fn row(&self, row_idx: usize) -> &'a [f32] {
        &self.vectors[row_idx * self.dimension..(row_idx + 1) * self.dimension]
    }

    /// The label of a row, if the dataset has labels and this row has one.
    pub fn label(&self, row_idx: usize) -> Option<u32> {
        self.labels.get(row_idx).copied().flatten()
    }

    /// The prediction of a row, if any.
    pub fn prediction(&self, row_idx: usize) -> Option<u32> {
        self.predictions.get(row_idx).copied().flatten()
    }

    /// The class a row is judged by: its prediction, else its label.
    pub fn predicted_or_labeled_class(&self, row_idx: usize) -> Option<u32> {
        self.prediction(row_idx).or_else(|| self.label(row_idx))
    }

    /// The class a row belongs to for class statistics: its label, else its
    /// prediction.
    pub fn labeled_or_predicted_class(&self, row_idx: usize) -> Option<u32> {
        self.label(row_idx).or_else(|| self.prediction(row_idx))
    }

    /// Whether the dataset carries any label at all.
    pub fn has_labels(&self) -> bool {
        self.labels.iter().any(Option::is_some)
    }

    /// An error unless the view has at least one row; `what` names it in the
    /// message ("the reference dataset").
    pub fn require_rows(&self, what: &'static str) -> Result<()> {
        if self.n_rows() == 0 {
            Err(Error::EmptyDataset { what })
        } else {
            Ok(())
        }
    }

    /// An error unless `other` has the same dimension as this view.
    pub fn require_same_dimension(
        &self,
        other: &DatasetView<'_>,
        what: &'static str,
    ) -> Result<()> {
        check_dimension(what, self.dimension, other.dimension)
    }
}

/// An error unless `got` equals `expected`; `what` names the mismatched input.
pub(crate) fn check_dimension(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::KernelDimensionMismatch {
            what,
            expected,
            got,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_ragged_vectors_and_mismatched_labels() {
        assert!(matches!(
            DatasetView::new(&[1.0, 2.0, 3.0], 2),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            DatasetView::new(&[1.0], 0),
            Err(Error::InvalidParameter { .. })
        ));
        let view = DatasetView::new(&[1.0, 2.0], 1).unwrap();
        assert!(view.with_labels(&[Some(1)]).is_err());
        assert!(view.with_labels(&[]).is_ok());
    }

    #[test]
    fn cosine_of_zero_vector_is_one() {
        assert_eq!(Metric::Cosine.distance(&[0.0, 0.0], &[1.0, 2.0]), 1.0);
        assert!((Metric::Cosine.distance(&[1.0, 0.0], &[-1.0, 0.0]) - 2.0).abs() < 1e-6);
    }
}
