//! `activation_uncertainty`: how small a record's vector norm is among the
//! reference records of its predicted class.

use std::collections::HashMap;

use super::scores::RecordScores;
use super::verdict::{OUTER_FENCE, lower_fence};
use super::view::DatasetView;
use crate::Result;

/// Activation uncertainty of every target record.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationScores {
    /// The scores, in `[0, 1]`; refinement: the norm's shortfall relative to
    /// the class median (`1 - norm / median`).
    pub scores: RecordScores,
    /// The vector norm of each target record.
    pub norms: Vec<f32>,
    /// The reference class each record was compared with (`None`: all
    /// reference records, because its class has no reference member).
    pub compared_class: Vec<Option<u32>>,
    /// The verdict: the norm is below Tukey's lower fence (`Q1 - 1.5 x
    /// IQR`) of the norms it was compared with, an activation weaker than
    /// the class's reference records show.
    pub flagged: Vec<bool>,
}

/// `1 - percentile` of a target record's vector norm among the reference
/// records labeled with the record's prediction (its label when it has no
/// prediction).
///
/// - Percentile: the share of those reference norms below the record's, ties
///   counting half (mid-rank), so the output is in `[0, 1]`.
/// - Higher means a weaker activation than usual for that class: the model
///   "sees" less of what makes the class.
/// - A record whose class has no labeled reference member, or that has neither
///   prediction nor label, is compared with all labeled reference records (all
///   reference records when none is labeled).
///
/// ```
/// use mutant_core::kernels::{activation_uncertainty, DatasetView};
/// let labels = [Some(0), Some(0), Some(0), Some(0)];
/// let reference = DatasetView::new(&[1.0f32, 2.0, 3.0, 4.0], 1)?.with_labels(&labels)?;
/// let predictions = [Some(0)];
/// let target = DatasetView::new(&[1.5f32], 1)?.with_predictions(&predictions)?;
/// let result = activation_uncertainty(&target, &reference)?;
/// assert_eq!(result.scores.scores, vec![0.75]); // one of four norms is below 1.5
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn activation_uncertainty(
    target: &DatasetView<'_>,
    reference: &DatasetView<'_>,
) -> Result<ActivationScores> {
    target.require_same_dimension(reference, "the target")?;
    reference.require_rows("the reference dataset")?;
    let mut class_norms: HashMap<u32, Vec<f32>> = HashMap::new();
    let mut labeled_norms = Vec::new();
    let mut all_norms = Vec::with_capacity(reference.n_rows());
    for row_idx in 0..reference.n_rows() {
        let norm = vector_norm(reference.row(row_idx));
        all_norms.push(norm);
        if let Some(label) = reference.label(row_idx) {
            class_norms.entry(label).or_default().push(norm);
            labeled_norms.push(norm);
        }
    }
    for norms in class_norms.values_mut() {
        norms.sort_by(f32::total_cmp);
    }
    labeled_norms.sort_by(f32::total_cmp);
    all_norms.sort_by(f32::total_cmp);
    let fallback = if labeled_norms.is_empty() {
        &all_norms
    } else {
        &labeled_norms
    };

    let mut scores = RecordScores::with_len(target.n_rows());
    let mut norms = Vec::with_capacity(target.n_rows());
    let mut compared_class = Vec::with_capacity(target.n_rows());
    let mut flagged = Vec::with_capacity(target.n_rows());
    let fences: HashMap<u32, f32> = class_norms
        .iter()
        .filter_map(|(&class, norms)| Some((class, lower_fence(norms, OUTER_FENCE)?)))
        .collect();
    let fallback_fence = lower_fence(fallback, OUTER_FENCE);
    for record_idx in 0..target.n_rows() {
        let norm = vector_norm(target.row(record_idx));
        let class = target
            .predicted_or_labeled_class(record_idx)
            .filter(|class| class_norms.contains_key(class));
        let sorted = class
            .and_then(|class| class_norms.get(&class))
            .unwrap_or(fallback);
        let below = sorted.partition_point(|&other| other < norm);
        let not_above = sorted.partition_point(|&other| other <= norm);
        let percentile = (below as f32 + 0.5 * (not_above - below) as f32) / sorted.len() as f32;
        let median = sorted[sorted.len() / 2];
        scores.scores[record_idx] = (1.0 - percentile).clamp(0.0, 1.0);
        scores.refinement[record_idx] = if median > 0.0 {
            1.0 - norm / median
        } else {
            -norm
        };
        let fence = match class {
            Some(class) => fences.get(&class).copied(),
            None => fallback_fence,
        };
        flagged.push(fence.is_some_and(|fence| norm < fence));
        norms.push(norm);
        compared_class.push(class);
    }
    Ok(ActivationScores {
        scores,
        norms,
        compared_class,
        flagged,
    })
}

fn vector_norm(vector: &[f32]) -> f32 {
    vector
        .iter()
        .map(|&value| f64::from(value) * f64::from(value))
        .sum::<f64>()
        .sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_the_predicted_class_and_falls_back_to_all_labeled() {
        let reference_vectors = [1.0f32, 2.0, 10.0, 20.0, 30.0];
        let labels = [Some(0), Some(0), Some(1), Some(1), None];
        let reference = DatasetView::new(&reference_vectors, 1)
            .unwrap()
            .with_labels(&labels)
            .unwrap();
        let predictions = [Some(1), Some(7), None];
        let target = DatasetView::new(&[15.0f32, 15.0, 2.0], 1)
            .unwrap()
            .with_predictions(&predictions)
            .unwrap();
        let result = activation_uncertainty(&target, &reference).unwrap();
        assert_eq!(result.scores.scores[0], 0.5);
        assert_eq!(result.compared_class, vec![Some(1), None, None]);
        // Against {1, 2, 10, 20}: 15 is above three of four.
        assert_eq!(result.scores.scores[1], 0.25);
        // 2 ties with one of four and is above one: (1 + 0.5) / 4.
        assert_eq!(result.scores.scores[2], 1.0 - 1.5 / 4.0);
    }

    #[test]
    fn empty_reference_is_an_error() {
        let reference = DatasetView::new(&[], 1).unwrap();
        let target = DatasetView::new(&[1.0f32], 1).unwrap();
        assert!(activation_uncertainty(&target, &reference).is_err());
    }
}
