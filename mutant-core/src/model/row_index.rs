//! `RowIndex`, record id to row of a [`LoadedDataset`](super::LoadedDataset),
//! and the seeded id hash it is built on.
//!
//! The index holds row numbers only: the ids stay in the dataset's `ids`, and
//! every lookup takes them to compare against. A cold load builds it while it
//! resolves versions, one entry per row and no copy of any id, and the cache
//! keeps that same index for its refreshes.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

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
    /// Open addressing with linear probing, a power of two long and at most
    /// half full. A slot packs a 32-bit tag of the id's hash (high half) and
    /// the row + 1 (low half); 0 is empty. The tag's low bits are the slot
    /// the id starts probing from, so growing and removing move slots
    /// without hashing any id again. One slot is 8 bytes: a lookup costs one
    /// cache line, where a map of hash to row (16-byte entries and a
    /// separate control array) costs two.
    slots: Vec<u64>,
    /// Slots in use.
    len: usize,
    /// Rows past what a slot holds (`u32::MAX - 1`): none in practice.
    far_rows: HashMap<String, usize>,
}

impl Default for RowIndex {
    fn default() -> Self {
        RowIndex::with_capacity(0)
    }
}

/// Where a probe for an id ended.
enum Probe {
    /// The slot that holds it.
    Found(usize),
    /// The empty slot that would take it.
    Vacant(usize),
}

impl RowIndex {
    /// An empty index with room for `n_rows` ids.
    pub fn with_capacity(n_rows: usize) -> Self {
        RowIndex {
            hasher: IdHasher::new(),
            slots: vec![0; slots_for(n_rows)],
            len: 0,
            far_rows: HashMap::new(),
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

    fn tag(&self, id: &str) -> u32 {
        let hash = self.hasher.hash(id.as_bytes());
        (hash ^ (hash >> 32)) as u32
    }

    fn probe(&self, ids: &[String], id: &str, tag: u32) -> Probe {
        let mask = self.slots.len() - 1;
        let mut slot = tag as usize & mask;
        loop {
            let entry = self.slots[slot];
            if entry == 0 {
                return Probe::Vacant(slot);
            }
            if (entry >> 32) as u32 == tag && is_at(ids, slot_row(entry), id) {
                return Probe::Found(slot);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The row of `id`.
    pub fn get(&self, ids: &[String], id: &str) -> Option<usize> {
        match self.probe(ids, id, self.tag(id)) {
            Probe::Found(slot) => Some(slot_row(self.slots[slot])),
            Probe::Vacant(_) if self.far_rows.is_empty() => None,
            Probe::Vacant(_) => self.far_rows.get(id).copied(),
        }
    }

    /// The row of `id` if it is indexed; else indexes it at `new_row_idx`
    /// (where the caller puts it in `ids`) and returns `None`.
    pub fn get_or_insert(&mut self, ids: &[String], id: &str, new_row_idx: usize) -> Option<usize> {
        let tag = self.tag(id);
        let mut slot = match self.probe(ids, id, tag) {
            Probe::Found(slot) => return Some(slot_row(self.slots[slot])),
            Probe::Vacant(slot) => slot,
        };
        if !self.far_rows.is_empty()
            && let Some(&row_idx) = self.far_rows.get(id)
        {
            return Some(row_idx);
        }
        let Some(entry) = pack(tag, new_row_idx) else {
            self.far_rows.insert(id.to_owned(), new_row_idx);
            return None;
        };
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
            slot = self.vacant_from(tag);
        }
        self.slots[slot] = entry;
        self.len += 1;
        None
    }

    /// Forgets `id`; returns the row it had.
    pub fn remove(&mut self, ids: &[String], id: &str) -> Option<usize> {
        match self.probe(ids, id, self.tag(id)) {
            Probe::Found(slot) => {
                let row_idx = slot_row(self.slots[slot]);
                self.clear(slot);
                Some(row_idx)
            }
            Probe::Vacant(_) => self.far_rows.remove(id),
        }
    }

    /// Records that `id`, indexed at `from_row_idx` (where it still is in
    /// `ids`), moves to `to_row_idx`.
    pub fn relocate(&mut self, ids: &[String], id: &str, from_row_idx: usize, to_row_idx: usize) {
        let tag = self.tag(id);
        match self.probe(ids, id, tag) {
            Probe::Found(slot) if slot_row(self.slots[slot]) == from_row_idx => {
                match pack(tag, to_row_idx) {
                    Some(entry) => self.slots[slot] = entry,
                    None => {
                        self.clear(slot);
                        self.far_rows.insert(id.to_owned(), to_row_idx);
                    }
                }
            }
            Probe::Found(_) | Probe::Vacant(_) => {
                if let Some(row_idx) = self.far_rows.get_mut(id) {
                    *row_idx = to_row_idx;
                }
            }
        }
    }

    /// The first empty slot probing from `tag`'s.
    fn vacant_from(&self, tag: u32) -> usize {
        let mask = self.slots.len() - 1;
        let mut slot = tag as usize & mask;
        while self.slots[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        slot
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, vec![0; slots_for(self.len + 1) * 2]);
        for entry in old.into_iter().filter(|&entry| entry != 0) {
            let slot = self.vacant_from((entry >> 32) as u32);
            self.slots[slot] = entry;
        }
    }

    /// Empties `slot`, shifting back the entries after it that probed past
    /// it, so that no probe stops early at the hole.
    fn clear(&mut self, slot: usize) {
        let mask = self.slots.len() - 1;
        let mut hole = slot;
        let mut next = (hole + 1) & mask;
        loop {
            let entry = self.slots[next];
            if entry == 0 {
                break;
            }
            let home = (entry >> 32) as usize & mask;
            // The entry may fill the hole when the hole lies between its
            // home slot and where it sits.
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.slots[hole] = entry;
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[hole] = 0;
        self.len -= 1;
    }

    /// Bytes it holds, roughly.
    pub fn size_bytes(&self) -> usize {
        let far_rows: usize = self
            .far_rows
            .keys()
            .map(|id| id.len() + size_of::<String>() + size_of::<usize>() + 1)
            .sum();
        self.slots.len() * size_of::<u64>() + far_rows
    }
}

/// Slots for `n_rows` ids at most half full: a power of two, at least 8.
fn slots_for(n_rows: usize) -> usize {
    n_rows.saturating_mul(2).next_power_of_two().max(8)
}

/// A slot of `tag` and `row_idx`, when the row fits in one.
fn pack(tag: u32, row_idx: usize) -> Option<u64> {
    let stored = u32::try_from(row_idx.checked_add(1)?).ok()?;
    Some((u64::from(tag) << 32) | u64::from(stored))
}

fn slot_row(entry: u64) -> usize {
    (entry as u32 as usize) - 1
}

fn is_at(ids: &[String], row_idx: usize, id: &str) -> bool {
    ids.get(row_idx).is_some_and(|held| held == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index whose hash sends every id to one slot: every probe walks the
    /// chain, and removal shifts it back.
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

    /// Random inserts, removals and relocations, as `apply_changes_indexed`
    /// makes them, against a `HashMap`, with a hash that sends ids to few
    /// slots (long chains that wrap around) and with the real one.
    #[test]
    fn the_index_matches_a_map_through_random_changes() {
        for few_slots in [true, false] {
            let mut random = 0x2545_f491_4f6c_dd1du64;
            let mut next = move |below: u64| {
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                random % below
            };
            let mut index = RowIndex::with_capacity(0);
            if few_slots {
                index.hasher.collide_all = true;
            }
            let mut ids: Vec<String> = Vec::new();
            let mut model: HashMap<String, usize> = HashMap::new();
            for _ in 0..3_000 {
                let id = format!("id-{}", next(400));
                if next(3) == 0 {
                    // Delete, moving the last row into the hole.
                    if let Some(row_idx) = index.remove(&ids, &id) {
                        assert_eq!(model.remove(&id), Some(row_idx));
                        let last = ids.len() - 1;
                        if row_idx != last {
                            let moved = ids[last].clone();
                            index.relocate(&ids, &moved, last, row_idx);
                            model.insert(moved, row_idx);
                        }
                        ids.swap_remove(row_idx);
                    } else {
                        assert!(!model.contains_key(&id));
                    }
                } else {
                    let new_row_idx = ids.len();
                    match index.get_or_insert(&ids, &id, new_row_idx) {
                        Some(row_idx) => assert_eq!(model.get(&id), Some(&row_idx)),
                        None => {
                            assert!(model.insert(id.clone(), new_row_idx).is_none());
                            ids.push(id);
                        }
                    }
                }
                if few_slots {
                    for (id, &row_idx) in &model {
                        assert_eq!(index.get(&ids, id), Some(row_idx));
                    }
                }
            }
            for (row_idx, id) in ids.iter().enumerate() {
                assert_eq!(index.get(&ids, id), Some(row_idx));
            }
            assert_eq!(index.len, model.len());
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
