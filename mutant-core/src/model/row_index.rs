//! `RowIndex`, record id to row of a [`LoadedDataset`](super::LoadedDataset),
//! and the seeded id hash it is built on.
//!
//! The index holds row numbers only: the ids stay in the dataset's `ids`, and
//! every lookup takes them to compare against. A cold load builds it while it
//! resolves versions, one entry per row and no copy of any id, and the cache
//! keeps that same index for its refreshes.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::{BuildHasher, Hasher};

/// A seeded hash of byte strings (ids, class names), fast on the short
/// strings ids are: a folded 64 x 64 -> 128-bit multiply per 16 bytes. The
/// seeds are random per value, so no client can choose ids that collide in
/// every process; and a collision costs a second lookup, never a wrong row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdHasher {
    seeds: [u64; 3],
    /// Tests send every id to hash 0, to walk the collision paths.
    #[cfg(test)]
    collide_all: bool,
}

impl IdHasher {
    pub(crate) fn new() -> Self {
        let random = RandomState::new();
        IdHasher {
            seeds: [
                random.hash_one(0u64),
                random.hash_one(1u64),
                random.hash_one(2u64),
            ],
            #[cfg(test)]
            collide_all: false,
        }
    }

    /// The 64-bit hash of `bytes`.
    pub(crate) fn hash(&self, bytes: &[u8]) -> u64 {
        #[cfg(test)]
        if self.collide_all {
            return 0;
        }
        let [seed_state, seed_low, seed_high] = self.seeds;
        let mut state = seed_state ^ bytes.len() as u64;
        let mut blocks = bytes.chunks_exact(16);
        for block in &mut blocks {
            let (low, high) = block.split_at(8);
            state = folded_multiply(read_u64(low) ^ seed_low, read_u64(high) ^ seed_high ^ state);
        }
        let tail = blocks.remainder();
        if !tail.is_empty() {
            let mut padded = [0u8; 16];
            padded[..tail.len()].copy_from_slice(tail);
            let (low, high) = padded.split_at(8);
            state = folded_multiply(read_u64(low) ^ seed_low, read_u64(high) ^ seed_high ^ state);
        }
        folded_multiply(state ^ seed_low, seed_high | 1)
    }
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// The high and low halves of the 128-bit product, folded together.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Hashes a `u64` key that is already an [`IdHasher`] hash: passes it on.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HashedKey;

impl BuildHasher for HashedKey {
    type Hasher = HashedKeyHasher;

    fn build_hasher(&self) -> HashedKeyHasher {
        HashedKeyHasher(0)
    }
}

/// The hasher of [`HashedKey`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct HashedKeyHasher(u64);

impl Hasher for HashedKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Record id to row, for applying changes to a
/// [`LoadedDataset`](super::LoadedDataset) without rebuilding the map every
/// time. It holds row numbers, not ids: every method takes the dataset's
/// `ids`, which must be the ones the index was built over.
///
/// ```
/// # use mutant_core::model::RowIndex;
/// let ids = vec!["a".to_string(), "b".to_string()];
/// let mut index = RowIndex::default();
/// assert_eq!(index.get_or_insert(&ids, "a", 0), None);
/// assert_eq!(index.get_or_insert(&ids, "b", 1), None);
/// assert_eq!(index.get_or_insert(&ids, "a", 2), Some(0));
/// assert_eq!(index.get(&ids, "b"), Some(1));
/// assert_eq!(index.get(&ids, "c"), None);
/// ```
#[derive(Debug, Clone)]
pub struct RowIndex {
    hasher: IdHasher,
    /// The row of the first id indexed with each hash.
    by_hash: HashMap<u64, usize, HashedKey>,
    /// Ids whose hash another id held when they were indexed: almost always
    /// empty.
    collided: HashMap<String, usize>,
}

impl Default for RowIndex {
    fn default() -> Self {
        RowIndex::with_capacity(0)
    }
}

impl RowIndex {
    /// An empty index with room for `n_rows` ids.
    pub fn with_capacity(n_rows: usize) -> Self {
        RowIndex {
            hasher: IdHasher::new(),
            by_hash: HashMap::with_capacity_and_hasher(n_rows, HashedKey),
            collided: HashMap::new(),
        }
    }

    /// The index of `ids`, which must be distinct.
    pub fn build(ids: &[String]) -> Self {
        let mut index = RowIndex::with_capacity(ids.len());
        for (row_idx, id) in ids.iter().enumerate() {
            index.get_or_insert(ids, id, row_idx);
        }
        index
    }

    /// The row of `id`.
    pub fn get(&self, ids: &[String], id: &str) -> Option<usize> {
        let hash = self.hasher.hash(id.as_bytes());
        match self.by_hash.get(&hash) {
            Some(&row_idx) if is_at(ids, row_idx, id) => Some(row_idx),
            _ if self.collided.is_empty() => None,
            _ => self.collided.get(id).copied(),
        }
    }

    /// The row of `id` if it is indexed; else indexes it at `new_row_idx`
    /// (where the caller puts it in `ids`) and returns `None`.
    pub fn get_or_insert(&mut self, ids: &[String], id: &str, new_row_idx: usize) -> Option<usize> {
        let hash = self.hasher.hash(id.as_bytes());
        match self.by_hash.entry(hash) {
            Entry::Occupied(entry) if is_at(ids, *entry.get(), id) => Some(*entry.get()),
            Entry::Occupied(_) => match self.collided.entry(id.to_owned()) {
                Entry::Occupied(entry) => Some(*entry.get()),
                Entry::Vacant(entry) => {
                    entry.insert(new_row_idx);
                    None
                }
            },
            Entry::Vacant(entry) => {
                // The id that held this hash may have been removed while a
                // colliding one stayed behind.
                if let Some(&row_idx) = self.collided.get(id) {
                    return Some(row_idx);
                }
                entry.insert(new_row_idx);
                None
            }
        }
    }

    /// Forgets `id`; returns the row it had.
    pub fn remove(&mut self, ids: &[String], id: &str) -> Option<usize> {
        let hash = self.hasher.hash(id.as_bytes());
        match self.by_hash.entry(hash) {
            Entry::Occupied(entry) if is_at(ids, *entry.get(), id) => Some(entry.remove()),
            _ => self.collided.remove(id),
        }
    }

    /// Records that `id`, indexed at `from_row_idx` (where it still is in
    /// `ids`), moves to `to_row_idx`.
    pub fn relocate(&mut self, ids: &[String], id: &str, from_row_idx: usize, to_row_idx: usize) {
        let hash = self.hasher.hash(id.as_bytes());
        match self.by_hash.get_mut(&hash) {
            Some(row_idx) if *row_idx == from_row_idx && is_at(ids, from_row_idx, id) => {
                *row_idx = to_row_idx;
            }
            _ => {
                if let Some(row_idx) = self.collided.get_mut(id) {
                    *row_idx = to_row_idx;
                }
            }
        }
    }

    /// Bytes it holds, roughly.
    pub fn size_bytes(&self) -> usize {
        let collided: usize = self
            .collided
            .keys()
            .map(|id| id.len() + size_of::<String>() + size_of::<usize>() + 1)
            .sum();
        self.by_hash.capacity() * (size_of::<u64>() + size_of::<usize>() + 1) + collided
    }
}

fn is_at(ids: &[String], row_idx: usize, id: &str) -> bool {
    ids.get(row_idx).is_some_and(|held| held == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index whose hash sends every id to one slot: every path through
    /// `collided` is taken.
    fn colliding(n_rows: usize) -> RowIndex {
        let mut index = RowIndex::with_capacity(n_rows);
        index.hasher.collide_all = true;
        index
    }

    #[test]
    fn ids_that_share_a_hash_keep_their_own_rows() {
        let ids: Vec<String> = (0..5).map(|n| format!("id-{n}")).collect();
        for mut index in [colliding(5), RowIndex::with_capacity(5)] {
            for (row_idx, id) in ids.iter().enumerate() {
                assert_eq!(index.get_or_insert(&ids, id, row_idx), None);
            }
            for (row_idx, id) in ids.iter().enumerate() {
                assert_eq!(index.get(&ids, id), Some(row_idx));
                assert_eq!(index.get_or_insert(&ids, id, 99), Some(row_idx));
            }
            assert_eq!(index.get(&ids, "absent"), None);
            // Remove the first id (the holder of the shared hash), then move
            // the last row into its place, as `apply_changes_indexed` does.
            let mut held = ids.clone();
            assert_eq!(index.remove(&held, "id-0"), Some(0));
            index.relocate(&held, "id-4", 4, 0);
            held.swap_remove(0);
            assert_eq!(index.get(&held, "id-0"), None);
            assert_eq!(index.get(&held, "id-4"), Some(0));
            for (row_idx, id) in held.iter().enumerate() {
                assert_eq!(index.get(&held, id), Some(row_idx), "{id}");
            }
            held.push("id-0".into());
            assert_eq!(index.get_or_insert(&held, "id-0", 4), None);
            assert_eq!(index.get(&held, "id-0"), Some(4));
        }
    }

    #[test]
    fn the_hash_separates_lengths_and_tails() {
        let hasher = IdHasher::new();
        let texts: [&[u8]; 6] = [
            b"",
            b"\0",
            b"a",
            b"record-0000001",
            b"record-0000002",
            b"record-0000001-with-a-long-tail",
        ];
        let mut hashes: Vec<u64> = texts.iter().map(|text| hasher.hash(text)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), texts.len());
    }
}
