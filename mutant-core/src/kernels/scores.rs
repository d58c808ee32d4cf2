//! What per-record scores have in common: the score vector with its tie
//! refinement and ranking, the kNN evidence a score keeps, and the
//! distance weights of neighbour votes.

use super::neighbours::NeighbourLists;
use super::view::DatasetView;

/// One score per record (higher = more worth a human's attention), with a
/// continuous refinement that orders records whose scores tie.
///
/// Scores counted over k neighbours take only k + 1 values, so whole groups
/// tie; [`RecordScores::ranking`] orders them by `refinement` (same
/// direction: higher first), and only an exact tie of both falls back to row
/// order.
///
/// ```
/// use mutant_core::kernels::RecordScores;
/// let scores = RecordScores { scores: vec![0.5, 1.0, 0.5], refinement: vec![0.1, 0.0, 0.3] };
/// assert_eq!(scores.ranking(), vec![1, 2, 0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RecordScores {
    /// The score of each row, as the kernel's documentation defines it.
    pub scores: Vec<f32>,
    /// The tie-breaker of each row; higher ranks first among equal scores.
    pub refinement: Vec<f32>,
}

impl RecordScores {
    /// Rows ordered from the highest score to the lowest.
    pub fn ranking(&self) -> Vec<u32> {
        let mut rows: Vec<u32> = (0..self.scores.len() as u32).collect();
        rows.sort_by(|&left, &right| {
            let (left, right) = (left as usize, right as usize);
            self.scores[right]
                .total_cmp(&self.scores[left])
                .then(self.refinement[right].total_cmp(&self.refinement[left]))
                .then(left.cmp(&right))
        });
        rows
    }

    pub(crate) fn with_len(n_rows: usize) -> Self {
        RecordScores {
            scores: vec![0.0; n_rows],
            refinement: vec![0.0; n_rows],
        }
    }
}

/// The neighbours that produced a kNN-based score: per record, the neighbour
/// rows (in the dataset searched), their labels and their distances.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighbourEvidence {
    lists: NeighbourLists,
    labels: Vec<Option<u32>>,
}

/// The evidence of one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordEvidence<'a> {
    /// Neighbour rows, nearest first.
    pub rows: &'a [u32],
    /// Their labels (`None`: unlabeled).
    pub labels: &'a [Option<u32>],
    /// Their distances.
    pub distances: &'a [f32],
}

impl NeighbourEvidence {
    /// Keeps `lists` and the labels of the rows they point to in `searched`.
    pub(crate) fn new(lists: &NeighbourLists, searched: &DatasetView<'_>) -> Self {
        let mut labels = Vec::with_capacity(lists.n_queries() * lists.k());
        for query_idx in 0..lists.n_queries() {
            let rows = lists.rows(query_idx);
            labels.extend(rows.iter().map(|&row| searched.label(row as usize)));
            labels.extend(std::iter::repeat_n(None, lists.k() - rows.len()));
        }
        NeighbourEvidence {
            lists: lists.clone(),
            labels,
        }
    }

    /// The number of records with evidence.
    pub fn n_records(&self) -> usize {
        self.lists.n_queries()
    }

    /// Record `record_idx`'s neighbours, their labels and distances.
    pub fn record(&self, record_idx: usize) -> RecordEvidence<'_> {
        let rows = self.lists.rows(record_idx);
        let start = record_idx * self.lists.k();
        RecordEvidence {
            rows,
            labels: &self.labels[start..start + rows.len()],
            distances: self.lists.distances(record_idx),
        }
    }
}

/// Distance weights for a neighbour vote, written into `weights`:
/// `exp(-(d_j - d_1) / s)` with `d_1` the nearest distance and `s` the mean
/// gap `mean(d_j - d_1)`. Independent of the distance scale and of shifts
/// (so it also serves the dot metric, whose distances can be negative); all
/// ones when every neighbour is equally far.
pub(crate) fn neighbour_weights(distances: &[f32], weights: &mut [f32]) {
    let Some(&nearest) = distances.first() else {
        return;
    };
    let mean_gap = distances
        .iter()
        .map(|&distance| f64::from(distance - nearest))
        .sum::<f64>()
        / distances.len() as f64;
    for (weight, &distance) in weights.iter_mut().zip(distances) {
        *weight = if mean_gap > 0.0 && mean_gap.is_finite() {
            (-(f64::from(distance - nearest) / mean_gap)).exp() as f32
        } else {
            1.0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_scale_and_shift_free() {
        let mut first = [0.0f32; 3];
        let mut second = [0.0f32; 3];
        neighbour_weights(&[1.0, 2.0, 3.0], &mut first);
        neighbour_weights(&[-10.0, 0.0, 10.0], &mut second);
        for (left, right) in first.iter().zip(&second) {
            assert!((left - right).abs() < 1e-6);
        }
        assert_eq!(first[0], 1.0);
        let mut flat = [0.0f32; 2];
        neighbour_weights(&[2.0, 2.0], &mut flat);
        assert_eq!(flat, [1.0, 1.0]);
    }

    #[test]
    fn ranking_breaks_ties_by_refinement() {
        let scores = RecordScores {
            scores: vec![1.0, 1.0, 2.0],
            refinement: vec![0.0, 5.0, 0.0],
        };
        assert_eq!(scores.ranking(), vec![2, 1, 0]);
    }
}
