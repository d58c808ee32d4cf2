//! `boundary_uncertainty`: how many of a record's nearest labeled reference
//! records disagree with the model's prediction for it.

use super::neighbours::NeighbourLists;
use super::scores::{NeighbourEvidence, RecordScores, neighbour_weights};
use super::view::DatasetView;
use crate::{Error, Result};

/// Boundary uncertainty of every target record, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundaryScores {
    /// The scores, in `[0, 1]`, and their distance-weighted refinement.
    pub scores: RecordScores,
    /// The reference neighbours each score was counted over.
    pub evidence: NeighbourEvidence,
}

/// The fraction of a target record's k nearest labeled reference records whose
/// label differs from the target's prediction (its label when it has no
/// prediction).
///
/// - Inputs: the target, a labeled reference, and `graph`: the target's
///   neighbours in the reference (from [`knn`](super::knn) with the target as
///   queries, or [`knn_graph`](super::knn_graph) when target and reference are
///   one dataset). Unlabeled neighbours are skipped.
/// - Output: in `[0, 1]`; 0 when every labeled neighbour agrees, 1 when none
///   does. Higher means the record sits on (or across) a class boundary. A
///   record with neither prediction nor label scores the disagreement among
///   its neighbours (1 - the largest class share); one with no labeled
///   neighbour scores 0.
/// - Refinement: the same fraction with distance-weighted votes.
///
/// ```
/// use mutant_core::kernels::{boundary_uncertainty, knn, DatasetView, Execution, KnnOptions, Metric};
/// let reference_vectors = [0.0f32, 1.0, 2.0, 10.0];
/// let labels = [Some(0), Some(0), Some(1), Some(1)];
/// let reference = DatasetView::new(&reference_vectors, 1)?.with_labels(&labels)?;
/// let predictions = [Some(0)];
/// let target = DatasetView::new(&[1.5f32], 1)?.with_predictions(&predictions)?;
/// let graph = knn(&reference, &target, Metric::L2, &KnnOptions::new(2), &Execution::new())?;
/// let result = boundary_uncertainty(&target, &reference, &graph)?;
/// assert_eq!(result.scores.scores, vec![0.5]); // neighbours labeled 0 and 1
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn boundary_uncertainty(
    target: &DatasetView<'_>,
    reference: &DatasetView<'_>,
    graph: &NeighbourLists,
) -> Result<BoundaryScores> {
    target.require_same_dimension(reference, "the target")?;
    graph.require_shape(
        "the target's neighbour graph",
        target.n_rows(),
        reference.n_rows(),
    )?;
    if !reference.has_labels() {
        return Err(Error::InvalidParameter {
            name: "reference",
            reason: "the reference dataset has no labels; boundary uncertainty needs labeled reference records".to_owned(),
        });
    }
    let mut result = RecordScores::with_len(target.n_rows());
    let mut weights = vec![0.0f32; graph.k()];
    let mut class_weights: Vec<(u32, f32, f32)> = Vec::with_capacity(graph.k());
    for record_idx in 0..target.n_rows() {
        let rows = graph.rows(record_idx);
        let distances = graph.distances(record_idx);
        neighbour_weights(distances, &mut weights);
        class_weights.clear();
        for (&row, &weight) in rows.iter().zip(&weights) {
            if let Some(label) = reference.label(row as usize) {
                match class_weights.iter_mut().find(|entry| entry.0 == label) {
                    Some(entry) => {
                        entry.1 += 1.0;
                        entry.2 += weight;
                    }
                    None => class_weights.push((label, 1.0, weight)),
                }
            }
        }
        let total_count: f32 = class_weights.iter().map(|entry| entry.1).sum();
        let total_weight: f32 = class_weights.iter().map(|entry| entry.2).sum();
        if total_count == 0.0 {
            continue;
        }
        let (agreeing_count, agreeing_weight) = match target.predicted_or_labeled_class(record_idx)
        {
            Some(class) => class_weights
                .iter()
                .find(|entry| entry.0 == class)
                .map_or((0.0, 0.0), |entry| (entry.1, entry.2)),
            None => (
                class_weights
                    .iter()
                    .map(|entry| entry.1)
                    .fold(0.0, f32::max),
                class_weights
                    .iter()
                    .map(|entry| entry.2)
                    .fold(0.0, f32::max),
            ),
        };
        result.scores[record_idx] = 1.0 - agreeing_count / total_count;
        result.refinement[record_idx] = if total_weight > 0.0 {
            1.0 - agreeing_weight / total_weight
        } else {
            0.0
        };
    }
    Ok(BoundaryScores {
        scores: result,
        evidence: NeighbourEvidence::new(graph, reference),
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Execution, KnnOptions, Metric, knn};
    use super::*;

    #[test]
    fn counts_disagreeing_neighbours_and_skips_unlabeled() {
        let reference_vectors = [0.0f32, 1.0, 2.0, 3.0];
        let labels = [Some(0), None, Some(1), Some(1)];
        let reference = DatasetView::new(&reference_vectors, 1)
            .unwrap()
            .with_labels(&labels)
            .unwrap();
        let predictions = [Some(0), None];
        let target_labels = [None, Some(1)];
        let target = DatasetView::new(&[0.9f32, 2.5], 1)
            .unwrap()
            .with_predictions(&predictions)
            .unwrap()
            .with_labels(&target_labels)
            .unwrap();
        let graph = knn(
            &reference,
            &target,
            Metric::L2,
            &KnnOptions::new(3),
            &Execution::new(),
        )
        .unwrap();
        let result = boundary_uncertainty(&target, &reference, &graph).unwrap();
        // Record 0: neighbours 1 (unlabeled), 0 (label 0), 2 (label 1).
        assert_eq!(result.scores.scores[0], 0.5);
        // Record 1 falls back to its label 1: neighbours 2, 3, 1 -> all agree.
        assert_eq!(result.scores.scores[1], 0.0);
        let evidence = result.evidence.record(0);
        assert_eq!(evidence.rows, &[1, 0, 2]);
        assert_eq!(evidence.labels, &[None, Some(0), Some(1)]);
        for (&score, &refinement) in result.scores.scores.iter().zip(&result.scores.refinement) {
            assert!((0.0..=1.0).contains(&score) && (0.0..=1.0).contains(&refinement));
        }
    }

    #[test]
    fn unlabeled_reference_is_an_error() {
        let reference = DatasetView::new(&[0.0f32, 1.0], 1).unwrap();
        let target = DatasetView::new(&[0.0f32], 1).unwrap();
        let graph = knn(
            &reference,
            &target,
            Metric::L2,
            &KnnOptions::new(1),
            &Execution::new(),
        )
        .unwrap();
        assert!(matches!(
            boundary_uncertainty(&target, &reference, &graph),
            Err(Error::InvalidParameter { .. })
        ));
    }
}
