//! Datasets recently resolved by UUID for the write path.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::model::Dataset;

/// How long a dataset resolved by UUID is trusted for writes.
const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// Datasets recently resolved by UUID, for the write path: a streaming
/// writer sends many batches a second to one dataset, and a catalogue read
/// per batch would cost ClickHouse more than the INSERT. Only UUIDs are
/// kept: a UUID never changes meaning (a re-created dataset gets a new one)
/// and a dataset's dimension never changes, so the only staleness is a
/// delete through another server less than a second ago, and a write racing
/// a delete is acknowledged and then reclaimed with the dataset, as if it had
/// come just before the delete. Names are always resolved afresh, since a
/// name can move to a new dataset.
#[derive(Debug, Default)]
pub(super) struct WriteTargets(Mutex<HashMap<Uuid, (Dataset, Instant)>>);

impl WriteTargets {
    fn targets(&self) -> MutexGuard<'_, HashMap<Uuid, (Dataset, Instant)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The dataset with this id, if resolved less than a second ago.
    pub(super) fn recent(&self, dataset_id: Uuid) -> Option<Dataset> {
        self.targets()
            .get(&dataset_id)
            .filter(|(_, at)| at.elapsed() < TRUSTED_FOR)
            .map(|(dataset, _)| dataset.clone())
    }

    /// Keeps a dataset just resolved by UUID, and drops those kept too long.
    pub(super) fn remember(&self, dataset: &Dataset) {
        let mut targets = self.targets();
        targets.retain(|_, (_, at)| at.elapsed() < TRUSTED_FOR);
        targets.insert(dataset.id, (dataset.clone(), Instant::now()));
    }

    /// Forgets a dataset this server deleted.
    pub(super) fn forget(&self, dataset_id: Uuid) {
        self.targets().remove(&dataset_id);
    }
}
