//! Coverage: picking records so that, together with what is already
//! labeled, they stand for as much of the data as possible. `select` with
//! only `n` uses it: with few labels, a model gains most from examples of
//! the regions nobody has labeled yet, and least from outliers, which greedy
//! k-center (farthest first) would pick.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::neighbours::NeighbourLists;
use super::progress::Execution;
use crate::{Error, Result};

/// What to cover.
#[derive(Debug, Clone, Copy)]
pub struct Coverage<'a> {
    /// The self-kNN graph of the records picked from: a record covers
    /// itself and its listed neighbours.
    pub graph: &'a NeighbourLists,
    /// How much covering each record is worth (>= 0), e.g. more where the
    /// model is uncertain.
    pub weights: &'a [f32],
    /// Records already covered (by labeled records nearby).
    pub covered: &'a [bool],
}

/// Picks up to `n` rows, greedily, each the one whose neighbourhood holds
/// the most weight not covered yet (weighted maximum coverage: within
/// `1 - 1/e` of the best possible pick). `eligible` limits the rows that
/// may be picked; the rest still count as covered by their neighbours.
/// Rows worth nothing more are never picked, so fewer than `n` may come
/// back; ties go to the lower row.
///
/// Lazy greedy: a row's gain only shrinks as rows get covered, so a stale
/// gain at the top of the heap is recomputed and put back; picking costs
/// `O(n_rows log n_rows)` plus `k` per recomputation.
///
/// ```
/// use mutant_core::kernels::{cover, knn_graph, Coverage, DatasetView, Execution, KnnOptions, Metric};
/// // Two groups; the left one is already covered by labeled records.
/// let dataset = DatasetView::new(&[0.0f32, 0.1, 0.2, 10.0, 10.1, 10.2], 1)?;
/// let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(2), &Execution::new())?;
/// let coverage = Coverage { graph: &graph, weights: &[1.0; 6], covered: &[true, true, true, false, false, false] };
/// // Any record of the right group covers all three; ties go to the lower row.
/// assert_eq!(cover(1, &coverage, None, &Execution::new())?, vec![3]);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn cover(
    n: usize,
    coverage: &Coverage<'_>,
    eligible: Option<&[bool]>,
    execution: &Execution<'_>,
) -> Result<Vec<u32>> {
    let n_rows = coverage.graph.n_queries();
    for (name, len) in [
        ("weights", coverage.weights.len()),
        ("covered", coverage.covered.len()),
        ("eligible", eligible.map_or(n_rows, <[bool]>::len)),
    ] {
        if len != n_rows {
            return Err(Error::InvalidParameter {
                name,
                reason: format!("{len} entries for a graph of {n_rows} rows"),
            });
        }
    }
    if let Some(weight) = coverage
        .weights
        .iter()
        .find(|weight| !(weight.is_finite() && **weight >= 0.0))
    {
        return Err(Error::InvalidParameter {
            name: "weights",
            reason: format!("coverage weights must be finite and >= 0, got {weight}"),
        });
    }
    let mut covered = coverage.covered.to_vec();
    let gain = |row: usize, covered: &[bool]| -> f32 {
        std::iter::once(row as u32)
            .chain(coverage.graph.rows(row).iter().copied())
            .filter(|&member| !covered[member as usize])
            .map(|member| coverage.weights[member as usize])
            .sum()
    };
    let mut heap: BinaryHeap<Candidate> = (0..n_rows)
        .filter(|&row| eligible.is_none_or(|eligible| eligible[row]))
        .map(|row| Candidate {
            gain: gain(row, &covered),
            row: row as u32,
        })
        .collect();
    let mut picked = Vec::with_capacity(n.min(n_rows));
    let stage = execution.stage(0.0, 1.0, n.max(1));
    while picked.len() < n {
        let Some(top) = heap.pop() else { break };
        let fresh = gain(top.row as usize, &covered);
        if fresh <= 0.0 {
            // Gains only shrink: nothing left is worth anything.
            if heap.peek().is_none_or(|next| next.gain <= 0.0) {
                break;
            }
            continue;
        }
        if heap.peek().is_some_and(|next| next.gain > fresh) {
            heap.push(Candidate {
                gain: fresh,
                row: top.row,
            });
            continue;
        }
        let row = top.row as usize;
        covered[row] = true;
        for &member in coverage.graph.rows(row) {
            covered[member as usize] = true;
        }
        picked.push(top.row);
        stage.advance(1)?;
    }
    Ok(picked)
}

/// A row and its gain when last computed; the heap's top is the largest
/// gain, the lowest row among equal gains.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    gain: f32,
    row: u32,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.gain
            .total_cmp(&other.gain)
            .then(other.row.cmp(&self.row))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DatasetView, KnnOptions, Metric, knn_graph};
    use super::*;

    fn graph_of(values: &[f32], k: usize) -> NeighbourLists {
        let dataset = DatasetView::new(values, 1).unwrap();
        knn_graph(&dataset, Metric::L2, &KnnOptions::new(k), &Execution::new()).unwrap()
    }

    /// The plain greedy: recompute every gain at every pick.
    fn naive(n: usize, coverage: &Coverage<'_>) -> Vec<u32> {
        let mut covered = coverage.covered.to_vec();
        let mut picked = Vec::new();
        for _ in 0..n {
            let best = (0..coverage.graph.n_queries())
                .map(|row| {
                    let gain: f32 = std::iter::once(row as u32)
                        .chain(coverage.graph.rows(row).iter().copied())
                        .filter(|&member| !covered[member as usize])
                        .map(|member| coverage.weights[member as usize])
                        .sum();
                    (gain, row)
                })
                .fold((0.0f32, usize::MAX), |best, candidate| {
                    if candidate.0 > best.0 {
                        candidate
                    } else {
                        best
                    }
                });
            if best.0 <= 0.0 {
                break;
            }
            covered[best.1] = true;
            for &member in coverage.graph.rows(best.1) {
                covered[member as usize] = true;
            }
            picked.push(best.1 as u32);
        }
        picked
    }

    #[test]
    fn lazy_greedy_equals_the_plain_greedy() {
        let values: Vec<f32> = (0..200)
            .map(|index| ((index * 7919) % 1000) as f32 / 10.0)
            .collect();
        let graph = graph_of(&values, 5);
        let weights: Vec<f32> = (0..200)
            .map(|index| 0.2 + (index % 7) as f32 / 7.0)
            .collect();
        let covered: Vec<bool> = (0..200).map(|index| index % 11 == 0).collect();
        let coverage = Coverage {
            graph: &graph,
            weights: &weights,
            covered: &covered,
        };
        assert_eq!(
            cover(30, &coverage, None, &Execution::new()).unwrap(),
            naive(30, &coverage)
        );
    }

    #[test]
    fn stops_when_nothing_is_left_and_respects_eligibility() {
        let graph = graph_of(&[0.0, 1.0, 2.0, 3.0], 1);
        let coverage = Coverage {
            graph: &graph,
            weights: &[1.0; 4],
            covered: &[false; 4],
        };
        let all = cover(10, &coverage, None, &Execution::new()).unwrap();
        assert!(all.len() <= 4 && !all.is_empty());
        let only_last = cover(
            10,
            &coverage,
            Some(&[false, false, false, true]),
            &Execution::new(),
        )
        .unwrap();
        assert_eq!(only_last, vec![3]);
        let bad = Coverage {
            weights: &[1.0, f32::NAN, 1.0, 1.0],
            ..coverage
        };
        assert!(cover(1, &bad, None, &Execution::new()).is_err());
    }
}
