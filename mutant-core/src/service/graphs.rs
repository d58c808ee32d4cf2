//! The neighbour graphs one analysis run needs, each built at most once and
//! shared by every score that reads it (`select` weighing several scores
//! included): the target's self-kNN graph, the target's neighbours in the
//! reference, and the reference's self-kNN graph, whole or, where a score
//! reads the neighbourhoods of fewer than half its rows, only theirs. Self
//! graphs kept from an earlier analysis of the same data
//! ([`DatasetCache::kept_graphs`](crate::cache::DatasetCache::kept_graphs))
//! are used instead of built; the ones built are handed back to be kept.

use std::sync::Arc;

use crate::Result;
use crate::kernels::{
    DatasetView, Execution, KnnOptions, Metric, NeighbourLists, knn, knn_graph, knn_graph_of_rows,
};

/// A graph built for one `k`, kept for the next reader asking that `k`.
type Slot = Option<(usize, Arc<NeighbourLists>)>;

/// Whole self-kNN graphs of the target and of the reference.
#[derive(Debug, Default, Clone)]
pub(crate) struct SelfGraphs {
    pub(crate) target: Vec<Arc<NeighbourLists>>,
    pub(crate) reference: Vec<Arc<NeighbourLists>>,
}

/// Lazily built neighbour graphs over one target and an optional reference.
pub(super) struct NeighbourGraphs<'a> {
    target: &'a DatasetView<'a>,
    reference: Option<&'a DatasetView<'a>>,
    metric: Metric,
    target_self: Slot,
    target_in_reference: Slot,
    reference_self: Slot,
    /// The reference's lists of some rows only, for one reader.
    reference_rows: Option<NeighbourLists>,
    /// Self graphs kept from earlier analyses of the same data.
    kept: SelfGraphs,
    /// Self graphs this run built.
    built: SelfGraphs,
}

impl<'a> NeighbourGraphs<'a> {
    pub(super) fn new(
        target: &'a DatasetView<'a>,
        reference: Option<&'a DatasetView<'a>>,
        metric: Metric,
    ) -> Self {
        NeighbourGraphs {
            target,
            reference,
            metric,
            target_self: None,
            target_in_reference: None,
            reference_self: None,
            reference_rows: None,
            kept: SelfGraphs::default(),
            built: SelfGraphs::default(),
        }
    }

    /// The same, using the self graphs in `kept` where one serves.
    pub(super) fn with_kept(mut self, kept: SelfGraphs) -> Self {
        self.kept = kept;
        self
    }

    /// The whole self graphs this run built, to be kept.
    pub(super) fn into_built(self) -> SelfGraphs {
        self.built
    }

    /// The target's self-kNN graph (k capped at the other records there are).
    pub(super) fn target_self(
        &mut self,
        k: usize,
        execution: &Execution<'_>,
    ) -> Result<&NeighbourLists> {
        let k = self_k(k, self.target.n_rows());
        let (target, metric) = (self.target, self.metric);
        self_graph(
            &mut self.target_self,
            (&self.kept.target, &mut self.built.target),
            metric,
            k,
            || knn_graph(target, metric, &KnnOptions::new(k), execution),
        )
    }

    /// Each target record's neighbours in the reference (k capped at the
    /// reference's size). Call only when there is a reference.
    pub(super) fn target_in_reference(
        &mut self,
        reference: &'a DatasetView<'a>,
        k: usize,
        execution: &Execution<'_>,
    ) -> Result<&NeighbourLists> {
        let k = k.min(reference.n_rows()).max(1);
        let (target, metric) = (self.target, self.metric);
        in_slot(&mut self.target_in_reference, k, || {
            Ok(Arc::new(knn(
                reference,
                target,
                metric,
                &KnnOptions::new(k),
                execution,
            )?))
        })
    }

    /// The reference's self-kNN graph.
    pub(super) fn reference_self(
        &mut self,
        reference: &'a DatasetView<'a>,
        k: usize,
        execution: &Execution<'_>,
    ) -> Result<&NeighbourLists> {
        let k = self_k(k, reference.n_rows());
        let metric = self.metric;
        self_graph(
            &mut self.reference_self,
            (&self.kept.reference, &mut self.built.reference),
            metric,
            k,
            || knn_graph(reference, metric, &KnnOptions::new(k), execution),
        )
    }

    /// The target's neighbours in the reference and the reference's own
    /// lists of the rows `needed` picks from them, for the density-aware
    /// kinds: both with the same `k`, capped so the reference graph can have
    /// it. The reference's whole self graph is built (and kept) when half its
    /// rows or more are needed, or when it is held already; otherwise only
    /// the needed rows' lists, for their share of a search's cost.
    pub(super) fn density_pair(
        &mut self,
        k: usize,
        needed: impl FnOnce(&NeighbourLists) -> Vec<u32>,
        execution: &Execution<'_>,
    ) -> Result<(&NeighbourLists, &NeighbourLists)> {
        let reference = self.require_reference()?;
        let k = self_k(k, reference.n_rows());
        let holds_whole = matches!(&self.reference_self, Some((held_k, _)) if *held_k == k)
            || serving(&self.kept.reference, self.metric, k).is_some();
        let across = self.target_in_reference(reference, k, &execution.part(0.0, 0.5))?;
        let rows = if holds_whole {
            Vec::new()
        } else {
            needed(across)
        };
        if holds_whole || 2 * rows.len() >= reference.n_rows() {
            self.reference_self(reference, k, &execution.part(0.5, 1.0))?;
            self.reference_rows = None;
        } else {
            self.reference_rows = Some(knn_graph_of_rows(
                reference,
                &rows,
                self.metric,
                &KnnOptions::new(k),
                &execution.part(0.5, 1.0),
            )?);
        }
        let own = self.reference_rows.as_ref().or(self
            .reference_self
            .as_ref()
            .map(|(_, graph)| graph.as_ref()));
        match (&self.target_in_reference, own) {
            (Some((_, across)), Some(own)) => Ok((across.as_ref(), own)),
            _ => Err(crate::Error::Internal {
                message: "the density graphs were built but not kept".into(),
            }),
        }
    }

    /// Every reference row some list of `across` names, ascending: the
    /// neighbourhoods a density ratio reads.
    pub(super) fn named_rows(across: &NeighbourLists) -> Vec<u32> {
        let mut named = vec![false; across.n_dataset_rows()];
        for query in 0..across.n_queries() {
            for &row in across.rows(query) {
                named[row as usize] = true;
            }
        }
        (0..named.len() as u32)
            .filter(|&row| named[row as usize])
            .collect()
    }

    /// The reference, or the error a kind needing one gives without it.
    pub(super) fn require_reference(&self) -> Result<&'a DatasetView<'a>> {
        self.reference
            .ok_or_else(|| crate::Error::InvalidParameter {
                name: "reference",
                reason: "this analysis needs a reference dataset; name one in \"reference\"".into(),
            })
    }
}

/// `k` for a self graph of `n_rows`: at most the other records there are,
/// at least 1.
fn self_k(k: usize, n_rows: usize) -> usize {
    k.min(n_rows.saturating_sub(1)).max(1)
}

/// The graph in `slot` if it was built for `k`, else `build`'s, kept there.
fn in_slot(
    slot: &mut Slot,
    k: usize,
    build: impl FnOnce() -> Result<Arc<NeighbourLists>>,
) -> Result<&NeighbourLists> {
    if !matches!(slot, Some((held_k, _)) if *held_k == k) {
        *slot = Some((k, build()?));
    }
    slot.as_ref()
        .map(|(_, graph)| graph.as_ref())
        .ok_or_else(|| crate::Error::Internal {
            message: "a neighbour graph was built but not kept".into(),
        })
}

/// The self graph in `slot` if it is for `k`; else a kept one that serves
/// `k`, cut to it; else `build`'s, recorded among the built ones.
fn self_graph<'s>(
    slot: &'s mut Slot,
    (kept, built): (&[Arc<NeighbourLists>], &mut Vec<Arc<NeighbourLists>>),
    metric: Metric,
    k: usize,
    build: impl FnOnce() -> Result<NeighbourLists>,
) -> Result<&'s NeighbourLists> {
    in_slot(slot, k, || match serving(kept, metric, k) {
        Some(graph) => Ok(graph),
        None => {
            let graph = Arc::new(build()?);
            built.push(Arc::clone(&graph));
            Ok(graph)
        }
    })
}

/// A kept self graph in `metric` with `k` neighbours per row, cut from one
/// with more if need be.
fn serving(kept: &[Arc<NeighbourLists>], metric: Metric, k: usize) -> Option<Arc<NeighbourLists>> {
    let graph = kept
        .iter()
        .find(|graph| graph.metric() == metric && graph.excludes_self() && graph.k() >= k)?;
    Some(if graph.k() == k {
        Arc::clone(graph)
    } else {
        Arc::new(graph.truncated(k))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graph_is_built_once_per_k() {
        let values: Vec<f32> = (0..40).map(|value| value as f32).collect();
        let dataset = DatasetView::new(&values, 2).unwrap();
        let mut built = 0;
        let mut slot = None;
        let mut build = |k: usize| {
            built += 1;
            knn_graph(&dataset, Metric::L2, &KnnOptions::new(k), &Execution::new()).map(Arc::new)
        };
        assert_eq!(in_slot(&mut slot, 3, || build(3)).unwrap().k(), 3);
        assert_eq!(in_slot(&mut slot, 3, || build(3)).unwrap().k(), 3);
        assert_eq!(in_slot(&mut slot, 2, || build(2)).unwrap().k(), 2);
        drop(slot);
        assert_eq!(built, 2);
    }

    /// A kept self graph with more neighbours serves a smaller `k`, cut to
    /// it, and is not handed back as built; one of another metric does not.
    #[test]
    fn kept_self_graphs_are_used_instead_of_built() {
        let values: Vec<f32> = (0..60).map(|value| (value * value % 17) as f32).collect();
        let dataset = DatasetView::new(&values, 2).unwrap();
        let execution = Execution::new();
        let whole = |metric, k| {
            Arc::new(knn_graph(&dataset, metric, &KnnOptions::new(k), &execution).unwrap())
        };
        let kept = SelfGraphs {
            target: vec![whole(Metric::Cosine, 8), whole(Metric::L2, 8)],
            reference: Vec::new(),
        };
        let mut graphs = NeighbourGraphs::new(&dataset, None, Metric::L2).with_kept(kept);
        let used = graphs.target_self(5, &execution).unwrap().clone();
        assert_eq!(used, *whole(Metric::L2, 5));
        assert!(graphs.into_built().target.is_empty());

        let mut graphs = NeighbourGraphs::new(&dataset, None, Metric::Dot).with_kept(SelfGraphs {
            target: vec![whole(Metric::L2, 8)],
            reference: Vec::new(),
        });
        assert_eq!(
            graphs.target_self(5, &execution).unwrap().metric(),
            Metric::Dot
        );
        assert_eq!(graphs.into_built().target.len(), 1);
    }

    /// Novelty reuses boundary's cross graph; with the two targets naming a
    /// quarter of the reference, only those rows get lists of their own.
    #[test]
    fn density_graphs_share_the_cross_graph_with_boundary() {
        let reference_values: Vec<f32> = (0..40).map(|value| value as f32).collect();
        let target_values = [0.5f32, 7.5];
        let reference = DatasetView::new(&reference_values, 1).unwrap();
        let target = DatasetView::new(&target_values, 1).unwrap();
        let mut graphs = NeighbourGraphs::new(&target, Some(&reference), Metric::L2);
        let execution = Execution::new();
        let first = graphs
            .target_in_reference(&reference, 5, &execution)
            .unwrap()
            .clone();
        let (across, own) = graphs
            .density_pair(5, NeighbourGraphs::named_rows, &execution)
            .unwrap();
        assert_eq!(*across, first);
        assert_eq!((own.n_queries(), own.k()), (40, 5));
        assert_eq!(own.rows(0), [1, 2, 3, 4, 5]);
        assert!(own.rows(39).is_empty());
    }
}
