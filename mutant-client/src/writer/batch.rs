//! The batch a [`BatchWriter`](crate::BatchWriter) is filling: records in
//! arrival order, at most one per id (a later write of an id replaces the
//! earlier one, as the server would), its approximate frame size and its age.

use std::collections::HashMap;

use tokio::time::{Duration, Instant};

use mutant_core::api::frame::{RECORD_BATCH_HEADER_BYTES, record_frame_bytes};
use mutant_core::model::Record;

/// Where [`PendingBatch::place`] put a record.
#[derive(Debug)]
pub(crate) enum Placed {
    /// At the end.
    Appended,
    /// Over the earlier record of the same id.
    Replaced,
    /// Nowhere: another id of the batch has the same hash. Send the batch,
    /// then place the record in the next one.
    HashTaken(Record),
}

/// A batch ready to send.
#[derive(Debug)]
pub(crate) struct SealedBatch {
    /// One record per id, in arrival order.
    pub(crate) records: Vec<Record>,
    /// Hashes of the ids in `records`, to find later writes of the same ids.
    pub(crate) id_hashes: HashMap<u64, usize>,
    /// Writes folded into the batch, replaced ones included.
    pub(crate) n_writes: u64,
    /// Writes replaced by a later write of the same id.
    pub(crate) n_superseded: u64,
}

/// The batch being filled.
#[derive(Debug, Default)]
pub(crate) struct PendingBatch {
    records: Vec<Record>,
    id_hashes: HashMap<u64, usize>,
    n_bytes: usize,
    n_writes: u64,
    n_superseded: u64,
    opened_at: Option<Instant>,
    /// The batch holds an id of a batch still in flight, so it must be sent
    /// only after that one is acknowledged, or the older version could land
    /// last.
    pub(crate) after_in_flight: bool,
}

impl PendingBatch {
    /// True before the first record.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records in the batch (one per id).
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The frame size of the batch so far.
    pub(crate) fn n_bytes(&self) -> usize {
        RECORD_BATCH_HEADER_BYTES + self.n_bytes
    }

    /// When the batch must be sent, given the longest age a batch may reach.
    pub(crate) fn deadline(&self, max_age: Duration) -> Option<Instant> {
        self.opened_at.map(|opened_at| opened_at + max_age)
    }

    /// Places `record`, of hash `id_hash` and frame size `record_bytes`;
    /// `now` starts the batch's clock if it is the first record.
    pub(crate) fn place(
        &mut self,
        id_hash: u64,
        record: Record,
        record_bytes: usize,
        now: Instant,
    ) -> Placed {
        if let Some(&index) = self.id_hashes.get(&id_hash) {
            let earlier = &mut self.records[index];
            if earlier.id != record.id {
                return Placed::HashTaken(record);
            }
            self.n_bytes = self.n_bytes - record_frame_bytes(earlier) + record_bytes;
            *earlier = record;
            self.n_writes += 1;
            self.n_superseded += 1;
            return Placed::Replaced;
        }
        self.opened_at.get_or_insert(now);
        self.id_hashes.insert(id_hash, self.records.len());
        self.records.push(record);
        self.n_bytes += record_bytes;
        self.n_writes += 1;
        Placed::Appended
    }

    /// Empties the batch into a [`SealedBatch`], keeping the buffer sizes.
    pub(crate) fn take(&mut self) -> SealedBatch {
        let capacity = self.records.len();
        let sealed = SealedBatch {
            records: std::mem::replace(&mut self.records, Vec::with_capacity(capacity)),
            id_hashes: std::mem::replace(&mut self.id_hashes, HashMap::with_capacity(capacity)),
            n_writes: self.n_writes,
            n_superseded: self.n_superseded,
        };
        self.n_bytes = 0;
        self.n_writes = 0;
        self.n_superseded = 0;
        self.opened_at = None;
        self.after_in_flight = false;
        sealed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_write_of_an_id_replaces_the_earlier_one() {
        let now = Instant::now();
        let mut batch = PendingBatch::default();
        let first = Record::new("a", vec![1.0]);
        let bytes = record_frame_bytes(&first);
        assert!(matches!(
            batch.place(1, first, bytes, now),
            Placed::Appended
        ));
        let other = Record::new("b", vec![2.0]);
        assert!(matches!(
            batch.place(2, other, bytes, now),
            Placed::Appended
        ));
        let newer = Record::new("a", vec![3.0]).with_label("cat");
        let newer_bytes = record_frame_bytes(&newer);
        assert!(matches!(
            batch.place(1, newer, newer_bytes, now),
            Placed::Replaced
        ));
        let colliding = Record::new("c", vec![4.0]);
        assert!(matches!(
            batch.place(1, colliding, bytes, now),
            Placed::HashTaken(_)
        ));
        assert_eq!(batch.len(), 2);
        assert_eq!(
            batch.n_bytes(),
            RECORD_BATCH_HEADER_BYTES + bytes + newer_bytes
        );
        assert_eq!(
            batch.deadline(Duration::from_millis(5)),
            Some(now + Duration::from_millis(5))
        );

        let sealed = batch.take();
        assert_eq!(
            sealed.records[0],
            Record::new("a", vec![3.0]).with_label("cat")
        );
        assert_eq!((sealed.n_writes, sealed.n_superseded), (3, 1));
        assert!(sealed.id_hashes.contains_key(&2));
        assert!(batch.is_empty());
        assert_eq!(batch.n_bytes(), RECORD_BATCH_HEADER_BYTES);
        assert_eq!(batch.deadline(Duration::from_millis(5)), None);
    }
}
