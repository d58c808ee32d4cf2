//! `novelty` and `uniqueness`: density-aware distances, judging a record's
//! distance to its neighbours against those neighbours' own spacing (local
//! outlier factor style), because real embeddings hold clusters of very
//! different density.

use super::neighbours::NeighbourLists;
use super::scores::{NeighbourEvidence, RecordScores};
use super::view::DatasetView;
use crate::{Error, Result};

/// Density-aware scores of every target record, with evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityScores {
    /// The ratios, in `[0, inf)`; refinement: the record's raw mean distance
    /// to its neighbours.
    pub scores: RecordScores,
    /// The neighbours each ratio was computed over.
    pub evidence: NeighbourEvidence,
}

/// How far each target record is from the reference, relative to the
/// reference's own local spacing.
///
/// `novelty(x) = mean_j d(x, r_j) / mean_j m(r_j)` over `x`'s k nearest
/// reference records `r_j`, where `m(r)` is `r`'s mean distance to its own k
/// nearest other reference records.
///
/// - Inputs: `target_graph`, the target's neighbours in the reference (from
///   [`knn`](super::knn)), and `reference_graph`, the reference's self-kNN
///   graph (from [`knn_graph`](super::knn_graph), or only the lists of the
///   rows `target_graph` names, from
///   [`knn_graph_of_rows`](super::knn_graph_of_rows)); l2 or cosine metric.
/// - Output: in `[0, inf)`; about 1 for a record as close to the reference as
///   reference records are to each other, above 1 for novel records. Invariant
///   to translation (l2) and to the overall scale. Where every distance
///   involved is zero (identical vectors) the ratio is 1.
///
/// ```
/// use mutant_core::kernels::{knn, knn_graph, novelty, DatasetView, Execution, KnnOptions, Metric};
/// let reference = DatasetView::new(&[0.0f32, 1.0, 2.0, 3.0], 1)?;
/// let target = DatasetView::new(&[1.5f32, 20.0], 1)?;
/// let options = KnnOptions::new(2);
/// let target_graph = knn(&reference, &target, Metric::L2, &options, &Execution::new())?;
/// let reference_graph = knn_graph(&reference, Metric::L2, &options, &Execution::new())?;
/// let result = novelty(&target, &reference, &target_graph, &reference_graph)?;
/// assert!(result.scores.scores[0] < 1.0 && result.scores.scores[1] > 10.0);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn novelty(
    target: &DatasetView<'_>,
    reference: &DatasetView<'_>,
    target_graph: &NeighbourLists,
    reference_graph: &NeighbourLists,
) -> Result<DensityScores> {
    target.require_same_dimension(reference, "the target")?;
    target_graph.require_shape(
        "the target's neighbour graph",
        target.n_rows(),
        reference.n_rows(),
    )?;
    require_self_graph(reference_graph, reference.n_rows())?;
    let scores = density_ratio(target_graph, reference_graph)?;
    Ok(DensityScores {
        scores,
        evidence: NeighbourEvidence::new(target_graph, reference),
    })
}

/// How isolated each record is within its own dataset: [`novelty`] with the
/// dataset as both target and reference, over its self-kNN graph (so a record
/// is never its own neighbour).
///
/// Output: in `[0, inf)`, about 1 for a typical record, higher for records
/// that stand apart from their neighbourhood. A record with no other record
/// to compare with scores 1.
///
/// ```
/// use mutant_core::kernels::{knn_graph, uniqueness, DatasetView, Execution, KnnOptions, Metric};
/// let dataset = DatasetView::new(&[0.0f32, 1.0, 2.0, 3.0, 30.0], 1)?;
/// let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(2), &Execution::new())?;
/// let result = uniqueness(&dataset, &graph)?;
/// assert_eq!(result.scores.ranking()[0], 4);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn uniqueness(dataset: &DatasetView<'_>, graph: &NeighbourLists) -> Result<DensityScores> {
    require_self_graph(graph, dataset.n_rows())?;
    let scores = density_ratio(graph, graph)?;
    Ok(DensityScores {
        scores,
        evidence: NeighbourEvidence::new(graph, dataset),
    })
}

fn require_self_graph(graph: &NeighbourLists, n_rows: usize) -> Result<()> {
    graph.require_shape("the reference's self-kNN graph", n_rows, n_rows)?;
    if !graph.excludes_self() {
        return Err(Error::InvalidParameter {
            name: "graph",
            reason: "the reference graph must be a self-kNN graph; build it with knn_graph"
                .to_owned(),
        });
    }
    Ok(())
}

fn mean(values: &[f32]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().map(|&value| f64::from(value)).sum::<f64>() / values.len() as f64
    }
}

fn density_ratio(
    target_graph: &NeighbourLists,
    reference_graph: &NeighbourLists,
) -> Result<RecordScores> {
    if !target_graph.metric().is_distance() || !reference_graph.metric().is_distance() {
        return Err(Error::InvalidParameter {
            name: "metric",
            reason: "density-aware scores need non-negative distances; build the graphs with the l2 or cosine metric, not dot".to_owned(),
        });
    }
    let reference_spacing: Vec<f64> = (0..reference_graph.n_queries())
        .map(|row| mean(reference_graph.distances(row)))
        .collect();
    // Over the rows that have lists: a graph built for only the rows the
    // target's lists name leaves the others empty.
    let n_listed = (0..reference_graph.n_queries())
        .filter(|&row| !reference_graph.rows(row).is_empty())
        .count();
    let global_spacing = reference_spacing.iter().sum::<f64>() / n_listed.max(1) as f64;
    // A floor far below any real spacing keeps ratios of all-zero distances
    // (identical vectors) at 1 instead of 0 / 0.
    let floor = (global_spacing * 1e-6).max(1e-30);
    let mut scores = RecordScores::with_len(target_graph.n_queries());
    for record_idx in 0..target_graph.n_queries() {
        let rows = target_graph.rows(record_idx);
        if rows.is_empty() {
            scores.scores[record_idx] = 1.0;
            continue;
        }
        let own_distance = mean(target_graph.distances(record_idx));
        let neighbour_spacing = rows
            .iter()
            .map(|&row| reference_spacing[row as usize])
            .sum::<f64>()
            / rows.len() as f64;
        scores.scores[record_idx] = ((own_distance + floor) / (neighbour_spacing + floor)) as f32;
        scores.refinement[record_idx] = own_distance as f32;
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::super::{Execution, KnnOptions, Metric, knn, knn_graph};
    use super::*;

    #[test]
    fn judges_each_record_against_its_own_neighbourhood() {
        // A tight cluster (spacing 0.01) and a loose one (spacing 1): a point
        // 0.05 from the tight cluster is more novel than one 0.5 inside the
        // loose cluster, although it is closer in absolute terms.
        let reference: Vec<f32> = (0..10)
            .map(|step| step as f32 * 0.01)
            .chain((0..10).map(|step| 100.0 + step as f32))
            .collect();
        let reference = DatasetView::new(&reference, 1).unwrap();
        let target = DatasetView::new(&[0.14f32, 104.5], 1).unwrap();
        let options = KnnOptions::new(3);
        let target_graph =
            knn(&reference, &target, Metric::L2, &options, &Execution::new()).unwrap();
        let reference_graph =
            knn_graph(&reference, Metric::L2, &options, &Execution::new()).unwrap();
        let result = novelty(&target, &reference, &target_graph, &reference_graph).unwrap();
        assert!(result.scores.scores[0] > result.scores.scores[1]);
        assert!(result.scores.scores[1] < 1.0);
    }

    #[test]
    fn identical_vectors_score_one_and_scale_does_not_matter() {
        let dataset = DatasetView::new(&[3.0f32; 6], 2).unwrap();
        let graph =
            knn_graph(&dataset, Metric::L2, &KnnOptions::new(2), &Execution::new()).unwrap();
        assert_eq!(
            uniqueness(&dataset, &graph).unwrap().scores.scores,
            vec![1.0; 3]
        );

        let values = [0.0f32, 1.0, 3.0, 7.0, 20.0];
        let scaled: Vec<f32> = values.iter().map(|value| value * 1000.0 + 5.0).collect();
        let first = DatasetView::new(&values, 1).unwrap();
        let second = DatasetView::new(&scaled, 1).unwrap();
        let first_graph =
            knn_graph(&first, Metric::L2, &KnnOptions::new(2), &Execution::new()).unwrap();
        let second_graph =
            knn_graph(&second, Metric::L2, &KnnOptions::new(2), &Execution::new()).unwrap();
        let first_scores = uniqueness(&first, &first_graph).unwrap().scores.scores;
        let second_scores = uniqueness(&second, &second_graph).unwrap().scores.scores;
        for (left, right) in first_scores.iter().zip(&second_scores) {
            assert!((left - right).abs() < 1e-4);
            assert!(*left >= 0.0);
        }
    }

    #[test]
    fn dot_metric_and_non_self_graph_are_errors() {
        let dataset = DatasetView::new(&[0.0f32, 1.0, 2.0], 1).unwrap();
        let graph = knn_graph(
            &dataset,
            Metric::Dot,
            &KnnOptions::new(1),
            &Execution::new(),
        )
        .unwrap();
        assert!(matches!(
            uniqueness(&dataset, &graph),
            Err(Error::InvalidParameter { name: "metric", .. })
        ));
        let not_self = knn(
            &dataset,
            &dataset,
            Metric::L2,
            &KnnOptions::new(1),
            &Execution::new(),
        )
        .unwrap();
        assert!(matches!(
            uniqueness(&dataset, &not_self),
            Err(Error::InvalidParameter { name: "graph", .. })
        ));
    }

    #[test]
    fn single_record_scores_one() {
        let dataset = DatasetView::new(&[1.0f32, 2.0], 2).unwrap();
        let graph =
            knn_graph(&dataset, Metric::L2, &KnnOptions::new(3), &Execution::new()).unwrap();
        assert_eq!(
            uniqueness(&dataset, &graph).unwrap().scores.scores,
            vec![1.0]
        );
    }
}
