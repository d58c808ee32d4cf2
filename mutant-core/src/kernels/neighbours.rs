//! The result of every kNN search: per query, its nearest rows and their
//! distances, nearest first, in one flat allocation.

use super::view::Metric;
use crate::{Error, Result};

/// Per query, its neighbours: dataset rows and distances, nearest first, ties
/// by row order; at most `k` per query.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighbourLists {
    k: usize,
    metric: Metric,
    n_dataset_rows: usize,
    excludes_self: bool,
    lengths: Vec<u32>,
    rows: Vec<u32>,
    distances: Vec<f32>,
}

impl NeighbourLists {
    pub(crate) fn with_capacity(
        n_queries: usize,
        k: usize,
        metric: Metric,
        n_dataset_rows: usize,
    ) -> Self {
        NeighbourLists {
            k,
            metric,
            n_dataset_rows,
            excludes_self: false,
            lengths: Vec::with_capacity(n_queries),
            rows: Vec::with_capacity(n_queries * k),
            distances: Vec::with_capacity(n_queries * k),
        }
    }

    /// Appends one query's list (`(row, distance)`, at most `k`), padding the
    /// stride with row `u32::MAX` and an infinite distance.
    pub(crate) fn push_list(&mut self, neighbours: impl Iterator<Item = (u32, f32)>) {
        let mut length = 0;
        for (row, distance) in neighbours.take(self.k) {
            self.rows.push(row);
            self.distances.push(distance);
            length += 1;
        }
        for _ in length..self.k {
            self.rows.push(u32::MAX);
            self.distances.push(f32::INFINITY);
        }
        self.lengths.push(length as u32);
    }

    /// Puts `neighbours` (`(row, distance)`, at most `k`) in place of query
    /// `query_idx`'s list.
    pub(crate) fn replace_list(
        &mut self,
        query_idx: usize,
        neighbours: impl Iterator<Item = (u32, f32)>,
    ) {
        let slots = query_idx * self.k..(query_idx + 1) * self.k;
        let mut length = 0;
        for ((row, distance), (row_slot, distance_slot)) in neighbours.zip(
            self.rows[slots.clone()]
                .iter_mut()
                .zip(&mut self.distances[slots.clone()]),
        ) {
            *row_slot = row;
            *distance_slot = distance;
            length += 1;
        }
        for slot in slots.start + length..slots.end {
            self.rows[slot] = u32::MAX;
            self.distances[slot] = f32::INFINITY;
        }
        self.lengths[query_idx] = length as u32;
    }

    /// Marks the lists as a self-kNN graph (query `i` is dataset row `i`).
    pub(crate) fn mark_self_graph(&mut self) {
        self.excludes_self = true;
    }

    /// The number of queries.
    pub fn n_queries(&self) -> usize {
        self.lengths.len()
    }

    /// The most neighbours any list may hold.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The metric the distances are in.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The number of rows of the dataset that was searched.
    pub fn n_dataset_rows(&self) -> usize {
        self.n_dataset_rows
    }

    /// Whether this is a self-kNN graph (query `i` is dataset row `i`, never
    /// its own neighbour).
    pub fn excludes_self(&self) -> bool {
        self.excludes_self
    }

    /// The neighbour rows of query `query_idx`, nearest first.
    pub fn rows(&self, query_idx: usize) -> &[u32] {
        let start = query_idx * self.k;
        &self.rows[start..start + self.lengths[query_idx] as usize]
    }

    /// The distances of query `query_idx`'s neighbours, ascending.
    pub fn distances(&self, query_idx: usize) -> &[f32] {
        let start = query_idx * self.k;
        &self.distances[start..start + self.lengths[query_idx] as usize]
    }

    /// The same lists cut to their `k` nearest: lists are nearest first, so a
    /// graph built for a larger `k` serves every smaller one.
    pub fn truncated(&self, k: usize) -> NeighbourLists {
        let mut lists =
            NeighbourLists::with_capacity(self.n_queries(), k, self.metric, self.n_dataset_rows);
        for query_idx in 0..self.n_queries() {
            lists.push_list(
                self.rows(query_idx)
                    .iter()
                    .copied()
                    .zip(self.distances(query_idx).iter().copied()),
            );
        }
        lists.excludes_self = self.excludes_self;
        lists
    }

    /// Bytes the lists hold.
    pub fn size_bytes(&self) -> usize {
        self.lengths.capacity() * size_of::<u32>()
            + self.rows.capacity() * size_of::<u32>()
            + self.distances.capacity() * size_of::<f32>()
    }

    /// An error unless these lists have one entry per row of a dataset of
    /// `n_queries` rows, searched in a dataset of `n_dataset_rows` rows.
    pub(crate) fn require_shape(
        &self,
        what: &'static str,
        n_queries: usize,
        n_dataset_rows: usize,
    ) -> Result<()> {
        if self.n_queries() != n_queries || self.n_dataset_rows != n_dataset_rows {
            return Err(Error::InvalidParameter {
                name: "graph",
                reason: format!(
                    "{what} has {} lists over {} rows, expected {n_queries} lists over {n_dataset_rows} rows; build it from the same datasets",
                    self.n_queries(),
                    self.n_dataset_rows
                ),
            });
        }
        Ok(())
    }
}
