//! Bounded top-k candidate lists: for each query, the `capacity` smallest
//! `(key, row)` pairs seen so far, kept sorted, with ties broken by row.

/// Candidate lists for a block of queries, stored flat: query `q` owns slots
/// `q * capacity .. (q + 1) * capacity`, sorted ascending by `(key, row)`.
#[derive(Debug, Clone)]
pub(crate) struct CandidateLists {
    capacity: usize,
    keys: Vec<f32>,
    rows: Vec<u32>,
    lengths: Vec<usize>,
}

impl CandidateLists {
    pub(crate) fn new(n_queries: usize, capacity: usize) -> Self {
        CandidateLists {
            capacity,
            keys: vec![f32::INFINITY; n_queries * capacity],
            rows: vec![u32::MAX; n_queries * capacity],
            lengths: vec![0; n_queries],
        }
    }

    /// Empties every list, keeping the allocation, for `n_queries` queries.
    pub(crate) fn reset(&mut self, n_queries: usize) {
        self.keys.clear();
        self.keys.resize(n_queries * self.capacity, f32::INFINITY);
        self.rows.clear();
        self.rows.resize(n_queries * self.capacity, u32::MAX);
        self.lengths.clear();
        self.lengths.resize(n_queries, 0);
    }

    /// The key a new candidate of query `query_idx` must beat (strictly, since
    /// rows arrive in increasing order) to enter its list.
    #[inline]
    pub(crate) fn threshold(&self, query_idx: usize) -> f32 {
        if self.lengths[query_idx] < self.capacity {
            f32::INFINITY
        } else {
            self.keys[query_idx * self.capacity + self.capacity - 1]
        }
    }

    /// Offers `(key, row)` to query `query_idx`'s list; it enters if it is
    /// among the `capacity` smallest by `(key, row)`. NaN keys never enter.
    #[inline]
    pub(crate) fn offer(&mut self, query_idx: usize, key: f32, row: u32) {
        if self.capacity == 0 || key.is_nan() {
            return;
        }
        let base = query_idx * self.capacity;
        let length = self.lengths[query_idx];
        let keys = &mut self.keys[base..base + self.capacity];
        let rows = &mut self.rows[base..base + self.capacity];
        let is_before = |slot: usize| (key, row) < (keys[slot], rows[slot]);
        if length == self.capacity && !is_before(length - 1) {
            return;
        }
        // Insertion: shift the larger entries up one slot while looking for
        // the new one's place (a full list drops its last entry).
        let mut position = if length == self.capacity {
            length - 1
        } else {
            length
        };
        while position > 0 && (key, row) < (keys[position - 1], rows[position - 1]) {
            keys[position] = keys[position - 1];
            rows[position] = rows[position - 1];
            position -= 1;
        }
        keys[position] = key;
        rows[position] = row;
        self.lengths[query_idx] = (length + 1).min(self.capacity);
    }

    /// Query `query_idx`'s candidates: keys and rows, sorted.
    pub(crate) fn get(&self, query_idx: usize) -> (&[f32], &[u32]) {
        let base = query_idx * self.capacity;
        let length = self.lengths[query_idx];
        (
            &self.keys[base..base + length],
            &self.rows[base..base + length],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_smallest_with_ties_by_row() {
        let mut lists = CandidateLists::new(1, 3);
        for (row, key) in [5.0f32, 1.0, 3.0, 1.0, 0.5, 3.0, f32::NAN]
            .into_iter()
            .enumerate()
        {
            lists.offer(0, key, row as u32);
        }
        let (keys, rows) = lists.get(0);
        assert_eq!(keys, &[0.5, 1.0, 1.0]);
        assert_eq!(rows, &[4, 1, 3]);
        assert_eq!(lists.threshold(0), 1.0);
    }

    #[test]
    fn reset_empties() {
        let mut lists = CandidateLists::new(2, 2);
        lists.offer(1, 1.0, 0);
        lists.reset(3);
        assert!(lists.get(1).0.is_empty());
        assert_eq!(lists.threshold(2), f32::INFINITY);
    }
}
