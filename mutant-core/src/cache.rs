//! The dataset cache: recently used datasets in their in-memory form, LRU,
//! bounded in bytes. A cached dataset is refreshed before every use by
//! fetching only what changed since its watermark (with an overlap, so that
//! writes that became visible out of version order are not missed), and
//! concurrent requests for a dataset that is loading share one load. Beside
//! a dataset that has been searched, the cache keeps its [`SearchTerms`]
//! (norms, centring) and updates only the rows a refresh rewrote.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use lru::LruCache;
use uuid::Uuid;

use crate::kernels::{DatasetView, Execution, Metric, NeighbourLists, SearchTerms};
use crate::model::{Dataset, DatasetChanges, DatasetRef, LoadedDataset, RowIndex};
use crate::store::{CatalogueStamp, Resolved, Store};
use crate::{Error, Result};

/// How far before its previous refresh a cached dataset re-reads changes, in
/// nanoseconds: a write's version is handed out before its INSERT completes
/// (group commit, another server), so a row can become visible a little after
/// a refresh that already read past its version. Such a row is picked up by
/// the next refresh as long as it became visible within this overlap.
const REFRESH_OVERLAP_NANOS: u64 = 2_000_000_000;

/// A dataset in memory and its id index; once it has been searched, its
/// search terms.
struct Cached {
    loaded: Arc<LoadedDataset>,
    index: RowIndex,
    search_terms: Option<Arc<SearchTerms>>,
    /// Wall-clock nanoseconds when the last load or refresh started.
    checked_at: u64,
    /// The highest write version any load or refresh has read, including
    /// writes that changed nothing held here (metadata only, say), which
    /// leave `loaded.watermark` behind.
    read_to: u64,
    /// The version each id had when a refresh last read it, for the writes
    /// still inside the refresh overlap: a row the overlap shows again at
    /// the same version is not fetched again.
    recently_read: HashMap<String, u64>,
    /// The version of the oldest write whose slow INSERT had not landed at
    /// the last refresh (`FeedRead::unlanded_since`): the next refresh reads
    /// from before it, however far back that is.
    unlanded_since: Option<u64>,
    /// Bytes held by `loaded`, `index`, `search_terms` and `recently_read`,
    /// recomputed only when the dataset changes: measuring walks every id,
    /// too much for every query.
    size_bytes: usize,
}

impl Cached {
    fn measure(&mut self) {
        self.size_bytes = self.loaded.size_bytes()
            + self.index.size_bytes()
            + self
                .search_terms
                .as_ref()
                .map_or(0, |terms| terms.size_bytes())
            + self
                .recently_read
                .keys()
                .map(|id| id.capacity() + 2 * size_of::<(String, u64)>())
                .sum::<usize>();
    }

    /// Brings the search terms up to date with the rows a refresh rewrote,
    /// or drops them (to be rebuilt on the next search) when so much changed
    /// that a fresh pass is as cheap, or their centre may have drifted.
    fn update_search_terms(&mut self, rewritten: &[usize]) {
        let Some(terms) = &mut self.search_terms else {
            return;
        };
        let loaded = &self.loaded;
        let updated = rewritten.len() <= loaded.n_records() / REBUILD_FRACTION
            && DatasetView::new(&loaded.vectors, loaded.dataset.dimension)
                .and_then(|view| Arc::make_mut(terms).update_rows(&view, rewritten))
                .is_ok();
        if !updated {
            self.search_terms = None;
        }
    }
}

/// A refresh that rewrites more than 1/this of a dataset's rows rebuilds its
/// search terms rather than updating them.
const REBUILD_FRACTION: usize = 4;

/// A cached dataset and the search terms kept beside it, consistent with
/// each other.
#[derive(Debug, Clone)]
pub struct SearchableDataset {
    /// The dataset, fresh as of the call.
    pub loaded: Arc<LoadedDataset>,
    /// Its search terms under the metric asked for.
    pub terms: Arc<SearchTerms>,
}

/// A fresh dataset and its search terms, which a search must have.
fn searchable(
    loaded: Arc<LoadedDataset>,
    terms: Option<Arc<SearchTerms>>,
) -> Result<SearchableDataset> {
    let terms = terms.ok_or_else(|| Error::Internal {
        message: "the cache returned no search terms for a search".into(),
    })?;
    Ok(SearchableDataset { loaded, terms })
}

/// Wall-clock nanoseconds, the clock write versions come from.
fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// A cached copy checked longer ago than this is reloaded whole instead of
/// refreshed: compaction drops tombstones older than its grace period (10
/// minutes by default), and a refresh from an older check could miss deletes.
const MAX_REFRESH_GAP_NANOS: u64 = 5 * 60 * 1_000_000_000;

struct Entry {
    slot: Slot,
    size_bytes: usize,
    /// Self-kNN graphs analyses built on the dataset as `graphs_of` holds
    /// it, kept for the next analysis of the same data.
    graphs: Vec<Arc<NeighbourLists>>,
    /// The copy of the dataset the graphs were built on: a copy that
    /// changes is a new allocation while an analysis holds the old one, and
    /// any change clears the graphs.
    graphs_of: Weak<LoadedDataset>,
}

impl Entry {
    fn graph_bytes(&self) -> usize {
        self.graphs.iter().map(|graph| graph.size_bytes()).sum()
    }

    fn held_bytes(&self) -> usize {
        self.size_bytes + self.graph_bytes()
    }
}

/// Builds a freshly loaded dataset's id index on a blocking thread, as part
/// of the load, when the store did not hand over the one it built: built on
/// the first refresh that finds changes instead, it would cost that request
/// as much as a few warm queries.
async fn build_index(loaded: &Arc<LoadedDataset>) -> Result<RowIndex> {
    let loaded = Arc::clone(loaded);
    tokio::task::spawn_blocking(move || RowIndex::build(&loaded.ids))
        .await
        .map_err(|error| Error::Internal {
            message: format!("building the id index failed: {error}"),
        })
}

/// Computes a dataset's search terms on a blocking thread.
async fn build_terms(
    loaded: &Arc<LoadedDataset>,
    metric: Metric,
    threads: usize,
) -> Result<SearchTerms> {
    let loaded = Arc::clone(loaded);
    tokio::task::spawn_blocking(move || {
        let view = DatasetView::new(&loaded.vectors, loaded.dataset.dimension)?;
        SearchTerms::new(&view, metric, &Execution::new().with_threads(threads))
    })
    .await
    .map_err(|error| Error::Internal {
        message: format!("building search terms failed: {error}"),
    })?
}

/// Datasets in memory, shared by every request of a server.
pub struct DatasetCache {
    store: Arc<dyn Store>,
    max_bytes: usize,
    entries: Mutex<LruCache<Uuid, Entry>>,
    /// What references to the datasets held here resolved to, with the
    /// catalogue's stamp at the time: a request by reference uses it without
    /// asking the catalogue, and the refresh checks the stamp in the same
    /// statement.
    resolutions: Mutex<HashMap<DatasetRef, Resolved>>,
    counters: CacheCounters,
}

/// How [`DatasetCache::fresh`] is to trust the dataset it is given.
#[derive(Debug, Clone, Copy)]
enum Resolution {
    /// Just resolved by the catalogue.
    Fresh,
    /// Remembered, as of this stamp: good only while the catalogue's stamp
    /// for its name is the same.
    Remembered(CatalogueStamp),
}

/// What [`DatasetCache::fresh`] found.
enum Freshness {
    /// The dataset, up to date.
    Fresh(Arc<LoadedDataset>, Option<Arc<SearchTerms>>, u64),
    /// The catalogue changed since the remembered resolution: resolve again.
    CatalogueMoved,
}

/// What the cache has done since the server started.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Uses of a dataset already in memory.
    pub hits: AtomicU64,
    /// Uses that had to load the whole dataset.
    pub misses: AtomicU64,
    /// Refreshes that found changes and applied them.
    pub refreshes: AtomicU64,
    /// Records upserted or deleted by those refreshes.
    pub rows_refreshed: AtomicU64,
    /// Whole rows refreshes fetched from the store, applied or found
    /// unchanged.
    pub rows_fetched: AtomicU64,
    /// Datasets evicted to stay within the bound.
    pub evictions: AtomicU64,
    /// Analyses handed self-kNN graphs kept from an earlier analysis of the
    /// same data.
    pub graph_reuses: AtomicU64,
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
            resolutions: Mutex::new(HashMap::new()),
            counters: CacheCounters::default(),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, LruCache<Uuid, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The dataset in memory, fresh as of this call.
    pub async fn get(&self, dataset: &Dataset) -> Result<Arc<LoadedDataset>> {
        Ok(self.fresh_as_given(dataset, None).await?.0)
    }

    /// [`get`](Self::get), with the data version the dataset is fresh as of:
    /// the highest write version read, including writes that changed nothing
    /// held in memory (a record's uri or metadata), which leave the
    /// dataset's own `watermark` behind. An analysis records it, so that it
    /// turns stale only when newer writes arrive.
    pub async fn get_with_version(&self, dataset: &Dataset) -> Result<(Arc<LoadedDataset>, u64)> {
        let (loaded, _, read_to) = self.fresh_as_given(dataset, None).await?;
        Ok((loaded, read_to))
    }

    /// The dataset a reference names, in memory and fresh as of this call,
    /// with its search terms under its metric: built (on `threads` threads,
    /// off the async runtime) on the first search, then kept and updated
    /// with the dataset. A dataset in use is resolved once: later calls take
    /// the resolution remembered here, and the freshness read, one
    /// statement, also tells whether the catalogue has changed for its name
    /// since (a delete, rename, re-creation through any server), in which
    /// case the reference is resolved again.
    pub async fn search(
        &self,
        dataset: &DatasetRef,
        threads: usize,
    ) -> Result<(Dataset, SearchableDataset)> {
        if let Some(remembered) = self.remembered(dataset) {
            let resolution = Resolution::Remembered(remembered.stamp);
            let search = Some((remembered.dataset.metric.into(), threads));
            match self.fresh(&remembered.dataset, resolution, search).await {
                Ok(Freshness::Fresh(loaded, terms, _)) => {
                    return Ok((remembered.dataset, searchable(loaded, terms)?));
                }
                Ok(Freshness::CatalogueMoved) | Err(Error::UnknownDataset { .. }) => {
                    self.forget_resolution(dataset);
                }
                Err(error) => {
                    self.forget_resolution(dataset);
                    return Err(error);
                }
            }
        }
        let resolved = self.store.resolve(dataset).await?;
        let search = Some((resolved.dataset.metric.into(), threads));
        match self
            .fresh(&resolved.dataset, Resolution::Fresh, search)
            .await?
        {
            Freshness::Fresh(loaded, terms, _) => {
                let found = resolved.dataset.clone();
                self.remember(dataset, resolved);
                Ok((found, searchable(loaded, terms)?))
            }
            Freshness::CatalogueMoved => Err(Error::Internal {
                message: "a fresh resolution was taken for a remembered one".into(),
            }),
        }
    }

    /// The dataset in memory, fresh as of this call, with its search terms
    /// under `metric`, built on `threads` threads if need be.
    pub async fn get_for_search(
        &self,
        dataset: &Dataset,
        metric: Metric,
        threads: usize,
    ) -> Result<SearchableDataset> {
        let (loaded, terms, _) = self
            .fresh_as_given(dataset, Some((metric, threads)))
            .await?;
        searchable(loaded, terms)
    }

    fn resolutions(&self) -> std::sync::MutexGuard<'_, HashMap<DatasetRef, Resolved>> {
        self.resolutions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remembered(&self, dataset: &DatasetRef) -> Option<Resolved> {
        self.resolutions().get(dataset).cloned()
    }

    fn remember(&self, dataset: &DatasetRef, resolved: Resolved) {
        let held = self.entries().contains(&resolved.dataset.id);
        if held {
            self.resolutions().insert(dataset.clone(), resolved);
        }
    }

    fn forget_resolution(&self, dataset: &DatasetRef) {
        self.resolutions().remove(dataset);
    }

    /// Forgets what references to a dataset no longer held resolved to.
    fn forget_resolutions_of(&self, dataset_ids: &[Uuid]) {
        if !dataset_ids.is_empty() {
            self.resolutions()
                .retain(|_, resolved| !dataset_ids.contains(&resolved.dataset.id));
        }
    }

    /// [`fresh`](Self::fresh) for a dataset the caller has just resolved.
    async fn fresh_as_given(
        &self,
        dataset: &Dataset,
        search: Option<(Metric, usize)>,
    ) -> Result<(Arc<LoadedDataset>, Option<Arc<SearchTerms>>, u64)> {
        match self.fresh(dataset, Resolution::Fresh, search).await? {
            Freshness::Fresh(loaded, terms, read_to) => Ok((loaded, terms, read_to)),
            Freshness::CatalogueMoved => Err(Error::Internal {
                message: "the cache asked a fresh resolution to be made again".into(),
            }),
        }
    }

    /// The dataset in memory, refreshed, or loaded whole when not held.
    /// Under a remembered resolution, it is loaded only if the catalogue
    /// still agrees, so a dataset not held is never loaded under one.
    async fn fresh(
        &self,
        dataset: &Dataset,
        resolution: Resolution,
        search: Option<(Metric, usize)>,
    ) -> Result<Freshness> {
        let slot = {
            let mut entries = self.entries();
            let entry = entries.get_or_insert_mut(dataset.id, || Entry {
                slot: Slot::default(),
                size_bytes: 0,
                graphs: Vec::new(),
                graphs_of: Weak::new(),
            });
            Arc::clone(&entry.slot)
        };
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(|cached| {
            now_nanos().saturating_sub(cached.checked_at) > MAX_REFRESH_GAP_NANOS
        }) {
            *guard = None;
        }
        let mut data_changed = true;
        let cached = match guard.as_mut() {
            Some(cached) => {
                // Everything past the watermark, and whatever may have become
                // visible late since the last check; not the overlap before the
                // watermark itself, or a dataset whose writes stopped would
                // re-read its last burst of writes forever.
                let since = cached
                    .read_to
                    .min(cached.checked_at.saturating_sub(REFRESH_OVERLAP_NANOS))
                    .min(
                        cached
                            .unlanded_since
                            .map_or(u64::MAX, |version| version - 1),
                    );
                let checked_at = now_nanos();
                let (mut changes, stamp) = self.read_changes(cached, dataset, since).await?;
                cached.checked_at = checked_at;
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                cached.loaded.retain_effective(&mut changes, &cached.index);
                let n_changed = changes.upserts.len() + changes.deleted_ids.len();
                data_changed = n_changed > 0;
                if n_changed > 0 {
                    // Copies the dataset only if a request still holds the old version.
                    let rewritten = Arc::make_mut(&mut cached.loaded)
                        .apply_changes_indexed(&changes, &mut cached.index);
                    cached.update_search_terms(&rewritten);
                    self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .rows_refreshed
                        .fetch_add(n_changed as u64, Ordering::Relaxed);
                    cached.measure();
                }
                if let Resolution::Remembered(remembered) = resolution
                    && remembered != stamp
                {
                    let size_bytes = cached.size_bytes;
                    drop(guard);
                    self.account(dataset.id, size_bytes)?;
                    return Ok(Freshness::CatalogueMoved);
                }
                cached
            }
            None if matches!(resolution, Resolution::Remembered(_)) => {
                return Ok(Freshness::CatalogueMoved);
            }
            None => {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                let checked_at = now_nanos();
                // What the first refresh's overlap will show again.
                let load = self
                    .store
                    .load_for_cache(
                        dataset,
                        self.max_bytes,
                        checked_at.saturating_sub(REFRESH_OVERLAP_NANOS),
                    )
                    .await?;
                let loaded = Arc::new(load.loaded);
                let index = match load.index {
                    Some(index) => index,
                    None => build_index(&loaded).await?,
                };
                let mut cached = Cached {
                    read_to: loaded.watermark,
                    recently_read: load.read_after.into_iter().collect(),
                    unlanded_since: None,
                    loaded,
                    index,
                    search_terms: None,
                    checked_at,
                    size_bytes: 0,
                };
                cached.measure();
                guard.insert(cached)
            }
        };
        if let Some((metric, threads)) = search
            && cached
                .search_terms
                .as_ref()
                .is_none_or(|terms| terms.metric() != metric)
        {
            cached.search_terms = Some(Arc::new(
                build_terms(&cached.loaded, metric, threads).await?,
            ));
            cached.measure();
        }
        if data_changed {
            self.graphs_now_of(dataset.id, &cached.loaded);
        }
        let answer = Freshness::Fresh(
            Arc::clone(&cached.loaded),
            search.and(cached.search_terms.clone()),
            cached.read_to,
        );
        let size_bytes = cached.size_bytes;
        drop(guard);
        self.account(dataset.id, size_bytes)?;
        Ok(answer)
    }

    /// What changed since `since`, read in one statement that fetches whole
    /// rows only for writes this copy has not read: those past its
    /// watermark. The overlap's other rows cost an id and a version each;
    /// the few among them that became visible late (or that the full load
    /// read, the first time) are fetched by a second statement.
    async fn read_changes(
        &self,
        cached: &mut Cached,
        dataset: &Dataset,
        since: u64,
    ) -> Result<(DatasetChanges, CatalogueStamp)> {
        let read_to = cached.read_to;
        let feed = self.store.changes_since(dataset, since, read_to).await?;
        cached.unlanded_since = feed.unlanded_since;
        let rows = feed.rows;
        let versions: Vec<(String, u64)> = rows
            .iter()
            .map(|row| (row.id.clone(), row.version))
            .collect();
        let mut late: Vec<String> = versions
            .iter()
            .filter(|(id, version)| {
                *version <= read_to
                    && cached
                        .recently_read
                        .get(id)
                        .is_none_or(|read| read < version)
            })
            .map(|(id, _)| id.clone())
            .collect();
        late.sort_unstable();
        late.dedup();
        let mut changes = DatasetChanges::from_rows(read_to, rows);
        if !late.is_empty() {
            // These rows' latest state since `since` supersedes whatever the
            // rows past the watermark said of the same ids.
            let late_changes = self.store.changes_of(dataset, since, &late).await?;
            let superseded: HashSet<&str> = late.iter().map(String::as_str).collect();
            changes
                .upserts
                .retain(|record| !superseded.contains(record.id.as_str()));
            changes
                .deleted_ids
                .retain(|id| !superseded.contains(id.as_str()));
            changes.upserts.extend(late_changes.upserts);
            changes.deleted_ids.extend(late_changes.deleted_ids);
            changes.watermark = changes.watermark.max(late_changes.watermark);
        }
        for (id, version) in versions {
            let read = cached.recently_read.entry(id).or_insert(version);
            *read = (*read).max(version);
            cached.read_to = cached.read_to.max(version);
        }
        // The overlap only moves forward: what is older than this window
        // will not be shown again.
        cached.recently_read.retain(|_, version| *version > since);
        self.counters.rows_fetched.fetch_add(
            (changes.upserts.len() + changes.deleted_ids.len()) as u64,
            Ordering::Relaxed,
        );
        Ok((changes, feed.stamp))
    }

    /// Records a dataset's size, evicts least recently used datasets until
    /// the bound holds, and refuses a dataset that alone is over it.
    fn account(&self, dataset_id: Uuid, size_bytes: usize) -> Result<()> {
        let mut evicted_ids = Vec::new();
        let accounted = self.account_evicting(dataset_id, size_bytes, &mut evicted_ids);
        self.forget_resolutions_of(&evicted_ids);
        accounted
    }

    fn account_evicting(
        &self,
        dataset_id: Uuid,
        size_bytes: usize,
        evicted_ids: &mut Vec<Uuid>,
    ) -> Result<()> {
        let mut entries = self.entries();
        if size_bytes > self.max_bytes {
            entries.pop(&dataset_id);
            evicted_ids.push(dataset_id);
            return Err(Error::DatasetTooLarge {
                size_bytes,
                max_bytes: self.max_bytes,
            });
        }
        if let Some(entry) = entries.get_mut(&dataset_id) {
            entry.size_bytes = size_bytes;
        }
        self.evict_beyond_bound(&mut entries, dataset_id, evicted_ids);
        Ok(())
    }

    /// Evicts least recently used datasets, never `dataset_id`, until the
    /// bound holds.
    fn evict_beyond_bound(
        &self,
        entries: &mut LruCache<Uuid, Entry>,
        dataset_id: Uuid,
        evicted_ids: &mut Vec<Uuid>,
    ) {
        let mut held: usize = entries.iter().map(|(_, entry)| entry.held_bytes()).sum();
        // The dataset just used is the most recent, so it is evicted last.
        while held > self.max_bytes {
            let Some((evicted_id, evicted)) = entries.pop_lru() else {
                break;
            };
            if evicted_id == dataset_id {
                entries.put(evicted_id, evicted);
                break;
            }
            held -= evicted.held_bytes();
            evicted_ids.push(evicted_id);
            self.counters.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bytes held by cached datasets and their kept graphs.
    pub fn held_bytes(&self) -> usize {
        self.entries()
            .iter()
            .map(|(_, entry)| entry.held_bytes())
            .sum()
    }

    /// After `dataset_id` was loaded or changed, now held as `loaded`: its
    /// kept graphs go, and graphs are kept for `loaded` from now on. (A use
    /// that changed nothing keeps the same copy: a copy only changes when
    /// the data does.)
    fn graphs_now_of(&self, dataset_id: Uuid, loaded: &Arc<LoadedDataset>) {
        if let Some(entry) = self.entries().peek_mut(&dataset_id) {
            entry.graphs.clear();
            entry.graphs_of = Arc::downgrade(loaded);
        }
    }

    /// The self-kNN graphs kept for `loaded`, the copy of its dataset an
    /// analysis was handed; none if the cache has moved on from that copy.
    pub fn kept_graphs(&self, loaded: &Arc<LoadedDataset>) -> Vec<Arc<NeighbourLists>> {
        let graphs: Vec<_> = self
            .entries()
            .peek(&loaded.dataset.id)
            .filter(|entry| entry.graphs_of.as_ptr() == Arc::as_ptr(loaded))
            .map(|entry| entry.graphs.clone())
            .unwrap_or_default();
        if !graphs.is_empty() {
            self.counters.graph_reuses.fetch_add(1, Ordering::Relaxed);
        }
        graphs
    }

    /// Keeps `graph`, a self-kNN graph an analysis built on `loaded`, for
    /// later analyses of the same data: in place of a kept graph of its
    /// metric with fewer neighbours, counted in the cache's bytes (other
    /// datasets are evicted to make room). Dropped if the cache has moved on
    /// from `loaded`, if a kept graph already serves it, or if the dataset
    /// with its graphs would be over the bound.
    pub fn keep_graph(&self, loaded: &Arc<LoadedDataset>, graph: Arc<NeighbourLists>) {
        let dataset_id = loaded.dataset.id;
        let mut entries = self.entries();
        let Some(entry) = entries.peek_mut(&dataset_id) else {
            return;
        };
        let serves =
            |kept: &NeighbourLists| kept.metric() == graph.metric() && kept.k() >= graph.k();
        if entry.graphs_of.as_ptr() != Arc::as_ptr(loaded)
            || !graph.excludes_self()
            || entry.graphs.iter().any(|kept| serves(kept))
            || entry.held_bytes() + graph.size_bytes() > self.max_bytes
        {
            return;
        }
        entry.graphs.retain(|kept| kept.metric() != graph.metric());
        entry.graphs.push(graph);
        let mut evicted_ids = Vec::new();
        self.evict_beyond_bound(&mut entries, dataset_id, &mut evicted_ids);
        drop(entries);
        self.forget_resolutions_of(&evicted_ids);
    }

    /// Forgets a dataset (after it is deleted).
    pub fn forget(&self, dataset_id: Uuid) {
        self.entries().pop(&dataset_id);
        self.forget_resolutions_of(&[dataset_id]);
    }

    /// Hits, misses, refreshes and evictions so far.
    pub fn counters(&self) -> &CacheCounters {
        &self.counters
    }

    /// The bound, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NewDataset, Record};
    use crate::store::MemoryStore;

    async fn store_with(names: &[&str], n_records: usize) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        for name in names {
            store
                .create_dataset(NewDataset::new(*name, 4))
                .await
                .unwrap();
            let records = (0..n_records)
                .map(|index| Record::new(format!("r{index}"), vec![index as f32; 4]))
                .collect();
            upsert(&store, name, records).await;
        }
        store
    }

    async fn upsert(store: &Arc<dyn Store>, name: &str, records: Vec<Record>) {
        let dataset = store.get_dataset(&DatasetRef::parse(name)).await.unwrap();
        let batch = crate::ingest::ValidBatch::new(&dataset, records).unwrap();
        store.upsert(batch).await.unwrap();
    }

    /// A graph kept for one copy of a dataset is handed out for that copy
    /// only, counts in the cache's bytes, and goes when the data changes.
    #[tokio::test]
    async fn kept_graphs_follow_the_data_they_were_built_on() {
        use crate::kernels::{KnnOptions, knn_graph};
        let store = store_with(&["a"], 10).await;
        let cache = DatasetCache::new(Arc::clone(&store), 1 << 20);
        let dataset = store.get_dataset(&DatasetRef::parse("a")).await.unwrap();
        let loaded = cache.get(&dataset).await.unwrap();
        let view = DatasetView::new(&loaded.vectors, 4).unwrap();
        let graph =
            Arc::new(knn_graph(&view, Metric::L2, &KnnOptions::new(3), &Execution::new()).unwrap());
        let before = cache.held_bytes();
        cache.keep_graph(&loaded, Arc::clone(&graph));
        assert_eq!(cache.held_bytes(), before + graph.size_bytes());
        assert_eq!(
            cache.kept_graphs(&cache.get(&dataset).await.unwrap()),
            [Arc::clone(&graph)]
        );

        upsert(&store, "a", vec![Record::new("new", vec![0.5; 4])]).await;
        let changed = cache.get(&dataset).await.unwrap();
        assert!(cache.kept_graphs(&changed).is_empty());
        // Built on the copy before the change: not kept.
        cache.keep_graph(&loaded, graph);
        assert!(cache.kept_graphs(&changed).is_empty());
        assert_eq!(cache.held_bytes(), dataset_bytes(&cache));
        assert_eq!(cache.counters().graph_reuses.load(Ordering::Relaxed), 1);
    }

    fn dataset_bytes(cache: &DatasetCache) -> usize {
        cache
            .entries()
            .iter()
            .map(|(_, entry)| entry.size_bytes)
            .sum()
    }

    #[tokio::test]
    async fn a_cached_dataset_refreshes_with_only_what_changed() {
        let store = store_with(&["a"], 10).await;
        let cache = DatasetCache::new(Arc::clone(&store), 1 << 20);
        let dataset = store.get_dataset(&DatasetRef::parse("a")).await.unwrap();
        assert_eq!(cache.get(&dataset).await.unwrap().n_records(), 10);
        upsert(&store, "a", vec![Record::new("new", vec![1.0; 4])]).await;
        store
            .delete_records(&dataset, &crate::model::Filter::ids(["r0"]))
            .await
            .unwrap();
        let refreshed = cache.get(&dataset).await.unwrap();
        assert_eq!(refreshed.n_records(), 10);
        assert!(
            refreshed.ids.contains(&"new".to_owned()) && !refreshed.ids.contains(&"r0".to_owned())
        );
        let counters = cache.counters();
        assert_eq!(
            counters.misses.load(Ordering::Relaxed),
            1,
            "the second use must not reload"
        );
        assert_eq!(counters.hits.load(Ordering::Relaxed), 1);
        assert!(counters.rows_refreshed.load(Ordering::Relaxed) >= 2);
    }

    #[tokio::test]
    async fn search_terms_are_kept_and_updated_with_the_dataset() {
        use crate::kernels::{ExactIndex, KnnOptions};
        let store = store_with(&["a"], 100).await;
        let cache = DatasetCache::new(Arc::clone(&store), 1 << 20);
        let dataset = store.get_dataset(&DatasetRef::parse("a")).await.unwrap();
        let without_terms = {
            cache.get(&dataset).await.unwrap();
            cache.held_bytes()
        };
        let first = cache.get_for_search(&dataset, Metric::L2, 1).await.unwrap();
        assert!(
            cache.held_bytes() > without_terms,
            "the terms count against the bound"
        );
        let again = cache.get_for_search(&dataset, Metric::L2, 1).await.unwrap();
        assert!(
            Arc::ptr_eq(&first.terms, &again.terms),
            "an unchanged dataset keeps its terms"
        );
        drop((first, again));
        upsert(&store, "a", vec![Record::new("new", vec![-50.0; 4])]).await;
        let SearchableDataset { loaded, terms } =
            cache.get_for_search(&dataset, Metric::L2, 1).await.unwrap();
        assert_eq!(terms.n_rows(), 101);
        let view = DatasetView::new(&loaded.vectors, 4).unwrap();
        let query = DatasetView::new(&[-49.0f32; 4], 4).unwrap();
        let lists = ExactIndex::with_terms(view, &terms)
            .unwrap()
            .search(&query, &KnnOptions::new(1), &Execution::new())
            .unwrap();
        assert_eq!(loaded.ids[lists.rows(0)[0] as usize], "new");
        assert_eq!(cache.counters().misses.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_refresh_fetches_each_write_once() {
        let store = store_with(&["a"], 10).await;
        let cache = DatasetCache::new(Arc::clone(&store), 1 << 20);
        let dataset = store.get_dataset(&DatasetRef::parse("a")).await.unwrap();
        let fetched = || cache.counters().rows_fetched.load(Ordering::Relaxed);
        cache.get(&dataset).await.unwrap();
        // The first refresh reads the overlap before the load once, whole.
        cache.get(&dataset).await.unwrap();
        let after_first = fetched();
        cache.get(&dataset).await.unwrap();
        assert_eq!(fetched(), after_first, "nothing new, nothing fetched");
        upsert(&store, "a", vec![Record::new("new", vec![7.0; 4])]).await;
        upsert(&store, "a", vec![Record::new("r3", vec![7.0; 4])]).await;
        let refreshed = cache.get(&dataset).await.unwrap();
        assert_eq!(fetched(), after_first + 2, "only the two new writes");
        assert_eq!(refreshed.n_records(), 11);
        assert_eq!(
            refreshed.row(refreshed.ids.iter().position(|id| id == "r3").unwrap()),
            [7.0; 4]
        );
        cache.get(&dataset).await.unwrap();
        assert_eq!(
            fetched(),
            after_first + 2,
            "the overlap shows them again, unfetched"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_uses_share_one_load() {
        let store = store_with(&["a"], 100).await;
        let cache = Arc::new(DatasetCache::new(Arc::clone(&store), 1 << 20));
        let dataset = store.get_dataset(&DatasetRef::parse("a")).await.unwrap();
        let uses: Vec<_> = (0..8)
            .map(|_| {
                let cache = Arc::clone(&cache);
                let dataset = dataset.clone();
                tokio::spawn(async move { cache.get(&dataset).await.unwrap().n_records() })
            })
            .collect();
        for handle in uses {
            assert_eq!(handle.await.unwrap(), 100);
        }
        assert_eq!(cache.counters().misses.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn the_byte_bound_holds_and_an_oversized_dataset_is_refused() {
        let names = ["a", "b", "c", "d", "e"];
        let store = store_with(&names, 1000).await;
        let one_dataset = {
            let probe = DatasetCache::new(Arc::clone(&store), usize::MAX);
            let dataset = store.get_dataset(&DatasetRef::parse("a")).await.unwrap();
            probe.get(&dataset).await.unwrap().size_bytes()
        };
        let cache = DatasetCache::new(Arc::clone(&store), one_dataset * 2 + one_dataset / 2);
        for name in names.iter().cycle().take(12) {
            let dataset = store.get_dataset(&DatasetRef::parse(name)).await.unwrap();
            cache.get(&dataset).await.unwrap();
            assert!(
                cache.held_bytes() <= cache.max_bytes(),
                "{} > {}",
                cache.held_bytes(),
                cache.max_bytes()
            );
        }
        assert!(cache.counters().evictions.load(Ordering::Relaxed) >= 9);
        let tiny = DatasetCache::new(Arc::clone(&store), one_dataset / 2);
        let dataset = store.get_dataset(&DatasetRef::parse("a")).await.unwrap();
        match tiny.get(&dataset).await {
            Err(Error::DatasetTooLarge {
                size_bytes,
                max_bytes,
            }) => assert!(size_bytes > max_bytes),
            other => panic!("expected DatasetTooLarge, got {other:?}"),
        }
        assert_eq!(tiny.held_bytes(), 0);
    }
}
