//! Bounded candidate lists: for each query, at least the `capacity` smallest
//! `(key, row)` pairs seen so far, in a buffer of twice that, unordered.
//!
//! An offer appends; when a buffer fills, it is cut back to its `capacity`
//! smallest by selection and the query's threshold drops to the largest key
//! kept. Each offer costs O(1) amortised, where a sorted list would shift
//! half its entries; the lists are sorted once, by whoever merges them.

use std::cmp::Ordering;

/// The order of candidates: by key, ties by row.
pub(crate) fn by_key_then_row(left: &(f32, u32), right: &(f32, u32)) -> Ordering {
    left.0.total_cmp(&right.0).then(left.1.cmp(&right.1))
}

/// Candidate lists for a block of queries, stored flat: query `q` owns slots
/// `q * 2 * capacity .. (q + 1) * 2 * capacity`.
#[derive(Debug, Clone)]
pub(crate) struct CandidateLists {
    capacity: usize,
    entries: Vec<(f32, u32)>,
    lengths: Vec<usize>,
    thresholds: Vec<f32>,
}

impl CandidateLists {
    pub(crate) fn new(n_queries: usize, capacity: usize) -> Self {
        let mut lists = CandidateLists {
            capacity,
            entries: Vec::new(),
            lengths: Vec::new(),
            thresholds: Vec::new(),
        };
        lists.reset(n_queries);
        lists
    }

    /// Bytes one query's list holds at `capacity`.
    pub(crate) fn bytes_per_list(capacity: usize) -> u64 {
        (2 * capacity * size_of::<(f32, u32)>() + size_of::<usize>() + size_of::<f32>()) as u64
    }

    /// Empties every list, keeping the allocation, for `n_queries` queries.
    pub(crate) fn reset(&mut self, n_queries: usize) {
        self.entries.clear();
        self.entries
            .resize(n_queries * 2 * self.capacity, (f32::INFINITY, u32::MAX));
        self.lengths.clear();
        self.lengths.resize(n_queries, 0);
        self.thresholds.clear();
        self.thresholds.resize(n_queries, f32::INFINITY);
    }

    /// The key a new candidate of query `query_idx` must beat (strictly) to
    /// enter its list: the largest key kept at the last cut, or infinity
    /// before the first.
    #[inline]
    pub(crate) fn threshold(&self, query_idx: usize) -> f32 {
        self.thresholds[query_idx]
    }

    /// Offers `(key, row)` to query `query_idx`'s list; it enters if its key
    /// is below the threshold. NaN keys never enter.
    #[inline]
    pub(crate) fn offer(&mut self, query_idx: usize, key: f32, row: u32) {
        let below = |threshold: f32| key.partial_cmp(&threshold) == Some(Ordering::Less);
        if self.capacity == 0 || !below(self.thresholds[query_idx]) {
            return;
        }
        let slots = 2 * self.capacity;
        if self.lengths[query_idx] == slots {
            self.cut(query_idx);
            if !below(self.thresholds[query_idx]) {
                return;
            }
        }
        let length = self.lengths[query_idx];
        self.entries[query_idx * slots + length] = (key, row);
        self.lengths[query_idx] = length + 1;
    }

    /// Cuts a full buffer back to its `capacity` smallest entries.
    fn cut(&mut self, query_idx: usize) {
        let slots = 2 * self.capacity;
        let buffer = &mut self.entries[query_idx * slots..(query_idx + 1) * slots];
        let (_, largest_kept, _) =
            buffer.select_nth_unstable_by(self.capacity - 1, by_key_then_row);
        self.thresholds[query_idx] = largest_kept.0;
        self.lengths[query_idx] = self.capacity;
    }

    /// Query `query_idx`'s candidates, unordered: its `capacity` smallest
    /// offers (all of them, if fewer) and up to as many more.
    pub(crate) fn get(&self, query_idx: usize) -> &[(f32, u32)] {
        let start = query_idx * 2 * self.capacity;
        &self.entries[start..start + self.lengths[query_idx]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smallest(lists: &CandidateLists, query_idx: usize) -> Vec<(f32, u32)> {
        let mut entries = lists.get(query_idx).to_vec();
        entries.sort_by(by_key_then_row);
        entries.truncate(lists.capacity);
        entries
    }

    #[test]
    fn keeps_the_smallest_with_ties_by_row() {
        let mut lists = CandidateLists::new(1, 3);
        for (row, key) in [5.0f32, 1.0, 3.0, 1.0, 0.5, 3.0, f32::NAN, 7.0, 0.25, 2.0]
            .into_iter()
            .enumerate()
        {
            lists.offer(0, key, row as u32);
        }
        assert_eq!(smallest(&lists, 0), vec![(0.25, 8), (0.5, 4), (1.0, 1)]);
        assert!(lists.get(0).len() <= 6);
        // The first cut (after six offers) kept 0.5, 1.0, 1.0.
        assert_eq!(lists.threshold(0), 1.0);
    }

    #[test]
    fn many_offers_keep_exactly_the_smallest() {
        let mut lists = CandidateLists::new(2, 5);
        let keys: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 1000) as f32).collect();
        for (row, &key) in keys.iter().enumerate() {
            lists.offer(1, key, row as u32);
        }
        let kept: Vec<f32> = smallest(&lists, 1).iter().map(|entry| entry.0).collect();
        assert_eq!(kept, vec![0.0, 1.0, 2.0, 3.0, 4.0]);
        assert!(lists.get(0).is_empty());
    }

    #[test]
    fn reset_empties() {
        let mut lists = CandidateLists::new(2, 2);
        lists.offer(1, 1.0, 0);
        lists.reset(3);
        assert!(lists.get(1).is_empty());
        assert_eq!(lists.threshold(2), f32::INFINITY);
    }
}
