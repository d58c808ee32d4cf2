//! The dataset cache: recently used datasets in their in-memory form, LRU,
//! bounded in bytes. A cached dataset is refreshed before every use by
//! fetching only what changed since its watermark (with an overlap, so that
//! writes that became visible out of version order are not missed), and
//! concurrent requests for a dataset that is loading share one load.

use std::sync::{Arc, Mutex};

use lru::LruCache;
use uuid::Uuid;

use crate::model::{Dataset, DatasetRef, LoadedDataset};
use crate::store::Store;
use crate::{Error, Result};

/// How far before its watermark a cached dataset re-reads changes, in
/// nanoseconds: writes whose versions were handed out earlier but reached
/// ClickHouse later (group commit, another server) are still picked up.
const REFRESH_OVERLAP_NANOS: u64 = 2_000_000_000;

type Slot = Arc<tokio::sync::Mutex<Option<Arc<LoadedDataset>>>>;

struct Entry {
    slot: Slot,
    size_bytes: usize,
}

/// Datasets in memory, shared by every request of a server.
pub struct DatasetCache {
    store: Arc<dyn Store>,
    max_bytes: usize,
    entries: Mutex<LruCache<Uuid, Entry>>,
}

impl std::fmt::Debug for DatasetCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DatasetCache")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl DatasetCache {
    /// A cache over `store` holding at most `max_bytes` of datasets.
    pub fn new(store: Arc<dyn Store>, max_bytes: usize) -> Self {
        DatasetCache {
            store,
            max_bytes,
            entries: Mutex::new(LruCache::unbounded()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, LruCache<Uuid, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The dataset in memory, fresh as of this call.
    pub async fn get(&self, dataset: &Dataset) -> Result<Arc<LoadedDataset>> {
        let slot = {
            let mut entries = self.entries();
            let entry = entries.get_or_insert_mut(dataset.id, || Entry {
                slot: Slot::default(),
                size_bytes: 0,
            });
            Arc::clone(&entry.slot)
        };
        let mut guard = slot.lock().await;
        let loaded = match guard.as_mut() {
            Some(loaded) => {
                let since = loaded.watermark.saturating_sub(REFRESH_OVERLAP_NANOS);
                let changes = self.store.load_changes(dataset.id, since).await?;
                if !changes.upserts.is_empty() || !changes.deleted_ids.is_empty() {
                    Arc::make_mut(loaded).apply_changes(&changes);
                }
                Arc::clone(loaded)
            }
            None => {
                let loaded = Arc::new(self.store.load(&DatasetRef::Id(dataset.id)).await?);
                *guard = Some(Arc::clone(&loaded));
                loaded
            }
        };
        drop(guard);
        self.account(dataset.id, loaded.size_bytes())?;
        Ok(loaded)
    }

    /// Records a dataset's size, evicts least recently used datasets until
    /// the bound holds, and refuses a dataset that alone is over it.
    fn account(&self, dataset_id: Uuid, size_bytes: usize) -> Result<()> {
        let mut entries = self.entries();
        if size_bytes > self.max_bytes {
            entries.pop(&dataset_id);
            return Err(Error::DatasetTooLarge {
                size_bytes,
                max_bytes: self.max_bytes,
            });
        }
        if let Some(entry) = entries.get_mut(&dataset_id) {
            entry.size_bytes = size_bytes;
        }
        let mut held: usize = entries.iter().map(|(_, entry)| entry.size_bytes).sum();
        // The dataset just used is the most recent, so it is evicted last.
        while held > self.max_bytes {
            let Some((evicted_id, evicted)) = entries.pop_lru() else {
                break;
            };
            if evicted_id == dataset_id {
                entries.put(evicted_id, evicted);
                break;
            }
            held -= evicted.size_bytes;
        }
        Ok(())
    }

    /// Bytes held by cached datasets.
    pub fn held_bytes(&self) -> usize {
        self.entries()
            .iter()
            .map(|(_, entry)| entry.size_bytes)
            .sum()
    }

    /// Forgets a dataset (after it is deleted).
    pub fn forget(&self, dataset_id: Uuid) {
        self.entries().pop(&dataset_id);
    }

    /// The bound, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}
