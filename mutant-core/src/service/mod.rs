//! The operations the server exposes, in protocol terms: each takes wire
//! requests, works through the [`Store`], the [`DatasetCache`] and the
//! kernels, and returns wire responses. The server only adds HTTP.

mod admission;
mod analysis;
mod analysis_thread;
mod budget;
mod graphs;
mod jobs;
mod kernels_run;
mod knn;
mod params;
mod projection_run;
mod records_page;
mod rows;
mod scoring;
mod select_run;
mod views;
mod write_targets;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

pub use self::analysis::ResultRows;
pub use self::budget::estimate_analysis_bytes;
pub use self::jobs::Analyses;
pub use self::knn::{MAX_K, MAX_NEIGHBOURS, MAX_QUERIES};
pub use self::views::MAX_ANALYSES_LISTED;
use self::write_targets::WriteTargets;
pub use crate::api::kinds::{AnalysisKind, ReferenceUse};
use crate::api::wire::{
    CountRequest, CountResponse, CreateDatasetRequest, DatasetInfo, DatasetList,
    DeleteRecordsRequest, DeleteRecordsResponse, GetRecordsRequest, IncludeSet,
    PatchDatasetRequest, RecordsResponse, UpsertResponse, WireRecord, distinct_ids, request_filter,
};
use crate::cache::DatasetCache;
use crate::ingest::ValidBatch;
use crate::model::{
    Dataset, DatasetRef, DatasetUpdate, Filter, MetadataUpdate, Metric, NewDataset, Record,
    validate_dataset_metadata,
};
use crate::store::{FetchQuery, Store};
use crate::{Error, Result};

pub use crate::api::{DEFAULT_PAGE, MAX_PAGE};

/// How the service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Bytes of datasets kept in memory. Default 4 GiB.
    pub cache_bytes: usize,
    /// Threads each kernel may use. Default: the machine's cores.
    pub kernel_threads: usize,
    /// Working memory one analysis may need beyond the cached datasets it
    /// reads, in bytes: an analysis estimated over it is refused with
    /// `AnalysisTooLarge`. Default 2 GiB (the server derives its default
    /// from the machine's memory).
    pub analysis_bytes: usize,
    /// How often the server running an analysis rewrites its job (progress,
    /// heartbeat, and a look for cancel requests). Default 1 s.
    pub analysis_heartbeat: Duration,
    /// How long a queued or running job may go without a heartbeat before
    /// any server reading it marks it failed. Keep it several heartbeats
    /// long, and the same on every server. Default 10 s.
    pub analysis_lease: Duration,
    /// How this server names itself in the jobs it runs (its host and listen
    /// address, say); a random per-process id is added. Default empty.
    pub server_name: String,
    /// How many analyses this server computes at once; the others wait
    /// `queued`, in the order they were started. Every analysis already
    /// uses `kernel_threads` threads, so a second one at once mostly adds
    /// contention: default 1, or 2 from 8 cores up (so a short analysis
    /// need not wait behind a long one).
    pub analyses_in_flight: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            cache_bytes: 4 << 30,
            kernel_threads: std::thread::available_parallelism().map_or(1, usize::from),
            analysis_bytes: 2 << 30,
            analysis_heartbeat: Duration::from_secs(1),
            analysis_lease: Duration::from_secs(10),
            server_name: String::new(),
            analyses_in_flight: match std::thread::available_parallelism().map_or(1, usize::from) {
                cores if cores >= 8 => 2,
                _ => 1,
            },
        }
    }
}

/// Mutant's operations over one store.
#[derive(Debug, Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    cache: DatasetCache,
    write_targets: WriteTargets,
    analyses: Analyses,
    config: ServiceConfig,
    /// This process in the jobs it runs: a random id, then `server_name`.
    server_id: String,
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Store")
    }
}

impl Service {
    /// The service over `store`.
    pub fn new(store: Arc<dyn Store>, config: ServiceConfig) -> Self {
        let cache = DatasetCache::new(Arc::clone(&store), config.cache_bytes);
        let process_id = uuid::Uuid::new_v4().simple().to_string();
        let server_id = match config.server_name.as_str() {
            "" => process_id,
            name => format!("{process_id}@{name}"),
        };
        Service {
            inner: Arc::new(Inner {
                store,
                cache,
                write_targets: WriteTargets::default(),
                analyses: Analyses::new(config.analyses_in_flight),
                config,
                server_id,
            }),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    /// The dataset cache.
    pub fn cache(&self) -> &DatasetCache {
        &self.inner.cache
    }

    /// `POST /v1/datasets`.
    pub async fn create_dataset(&self, request: CreateDatasetRequest) -> Result<DatasetInfo> {
        let metric = request
            .metric
            .as_deref()
            .map(str::parse::<Metric>)
            .transpose()?
            .unwrap_or_default();
        let new_dataset = NewDataset {
            name: request.name,
            dimension: request.dimension,
            metric,
            metadata: request.metadata.unwrap_or_default(),
        };
        let dataset = self.store().create_dataset(new_dataset).await?;
        Ok(DatasetInfo::from_dataset(&dataset, Some(0)))
    }

    /// `GET /v1/datasets`, optionally with a JSON metadata pattern.
    pub async fn list_datasets(&self, metadata_pattern: Option<&str>) -> Result<DatasetList> {
        let pattern = metadata_pattern.map(parse_pattern).transpose()?;
        let datasets = self.store().list_datasets(pattern.as_ref()).await?;
        Ok(DatasetList {
            datasets: datasets
                .iter()
                .map(|dataset| DatasetInfo::from_dataset(dataset, None))
                .collect(),
        })
    }

    /// `GET /v1/datasets/{ds}`, with its record count.
    pub async fn get_dataset(&self, dataset: &str) -> Result<DatasetInfo> {
        let found = self.resolve(dataset).await?;
        let count = self
            .store()
            .count(&found, &crate::model::Filter::all())
            .await?;
        Ok(DatasetInfo::from_dataset(&found, Some(count as u64)))
    }

    /// `PATCH /v1/datasets/{ds}`.
    pub async fn patch_dataset(
        &self,
        dataset: &str,
        request: PatchDatasetRequest,
    ) -> Result<DatasetInfo> {
        if request.metadata.is_some() && request.metadata_patch.is_some() {
            return Err(Error::InvalidParameter {
                name: "metadata",
                reason: "send either metadata (replace) or metadata_patch (merge), not both".into(),
            });
        }
        let update = DatasetUpdate {
            name: request.name,
            metadata: match (request.metadata, request.metadata_patch) {
                (Some(replacement), _) => Some(MetadataUpdate::Replace(replacement)),
                (None, Some(patch)) => Some(MetadataUpdate::Patch(patch)),
                (None, None) => None,
            },
        };
        update.validate()?;
        let resolved = self.store().resolve(&DatasetRef::parse(dataset)).await?;
        if let Some(change) = &update.metadata {
            let mut metadata = resolved.dataset.metadata.clone();
            change.clone().apply(&mut metadata);
            validate_dataset_metadata(&resolved.dataset.name, &metadata)?;
        }
        let updated = self.store().update_dataset(&resolved, update).await?;
        Ok(DatasetInfo::from_dataset(&updated, None))
    }

    /// `DELETE /v1/datasets/{ds}`.
    pub async fn delete_dataset(&self, dataset: &str) -> Result<()> {
        let resolved = self.store().resolve(&DatasetRef::parse(dataset)).await?;
        self.store().delete_dataset(&resolved).await?;
        self.inner.write_targets.forget(resolved.dataset.id);
        self.cache().forget(resolved.dataset.id);
        Ok(())
    }

    /// `POST /v1/datasets/{ds}/records`, from JSON records.
    pub async fn upsert_wire(
        &self,
        dataset: &str,
        records: Vec<WireRecord>,
    ) -> Result<UpsertResponse> {
        let records = records
            .into_iter()
            .map(WireRecord::into_record)
            .collect::<Result<Vec<_>>>()?;
        self.upsert(dataset, records).await
    }

    /// `POST /v1/datasets/{ds}/records`, answered once ClickHouse has the batch.
    pub async fn upsert(&self, dataset: &str, records: Vec<Record>) -> Result<UpsertResponse> {
        let dataset = self.resolve_for_write(dataset).await?;
        let written = self
            .store()
            .upsert(ValidBatch::new(&dataset, records)?)
            .await?;
        Ok(UpsertResponse { written })
    }

    /// `POST /v1/datasets/{ds}/records/get`.
    pub async fn get_records(
        &self,
        dataset: &str,
        request: GetRecordsRequest,
    ) -> Result<RecordsResponse> {
        // Every request filter is checked against the cost bound, ids included.
        let filter = request_filter(request.ids.as_deref(), request.filter.as_ref())?;
        let distinct = request.ids.as_deref().map(distinct_ids).transpose()?;
        // Asking for ids without a limit asks for all of them (up to a page).
        let default_limit = distinct
            .as_ref()
            .map_or(DEFAULT_PAGE, |ids| ids.len().clamp(1, MAX_PAGE));
        let limit = request.limit.unwrap_or(default_limit);
        if limit > MAX_PAGE {
            return Err(Error::InvalidParameter {
                name: "limit",
                reason: format!("{limit} is over the page limit of {MAX_PAGE}; page with offset"),
            });
        }
        let include =
            IncludeSet::from_list(request.include.as_deref(), IncludeSet::all_but_vectors());
        let offset = request.offset.unwrap_or(0);
        let found = self.resolve(dataset).await?;
        let records = match &distinct {
            Some(ids) => {
                let page = records_page::IdsPage {
                    ids,
                    filter: request.filter.as_ref().map(Filter::from_json).transpose()?,
                    limit,
                    offset,
                    with_vectors: include.vector,
                };
                self.fetch_ids_page(&found, page).await?
            }
            None => {
                let query = FetchQuery {
                    filter,
                    limit,
                    offset,
                    with_vectors: include.vector,
                };
                self.store().fetch(&found, &query).await?
            }
        };
        Ok(RecordsResponse {
            records: records
                .into_iter()
                .map(|record| WireRecord::from_record(record, &include))
                .collect(),
        })
    }

    /// `POST /v1/datasets/{ds}/records/delete`; one of ids or filter is required.
    pub async fn delete_records(
        &self,
        dataset: &str,
        request: DeleteRecordsRequest,
    ) -> Result<DeleteRecordsResponse> {
        if request.ids.is_none() && request.filter.is_none() {
            return Err(Error::InvalidParameter {
                name: "ids",
                reason: "name the records to delete with ids or a filter; use {\"filter\": {}} to delete every record".into(),
            });
        }
        let filter = request_filter(request.ids.as_deref(), request.filter.as_ref())?;
        let dataset = self.resolve(dataset).await?;
        let deleted = self.store().delete_records(&dataset, &filter).await?;
        Ok(DeleteRecordsResponse { deleted })
    }

    /// `POST /v1/datasets/{ds}/count`.
    pub async fn count(&self, dataset: &str, request: CountRequest) -> Result<CountResponse> {
        let filter = request_filter(None, request.filter.as_ref())?;
        let dataset = self.resolve(dataset).await?;
        let count = self.store().count(&dataset, &filter).await?;
        Ok(CountResponse { count })
    }

    /// The analyses this server runs.
    pub fn analyses(&self) -> &Analyses {
        &self.inner.analyses
    }

    /// The live dataset a reference names, asked of the catalogue.
    async fn resolve(&self, dataset: &str) -> Result<Dataset> {
        self.store().get_dataset(&DatasetRef::parse(dataset)).await
    }

    /// The dataset a write addresses: by UUID, as resolved within the last
    /// second (see [`WriteTargets`]); by name, asked of the catalogue.
    async fn resolve_for_write(&self, dataset: &str) -> Result<Dataset> {
        let dataset_ref = DatasetRef::parse(dataset);
        if let DatasetRef::Id(id) = dataset_ref
            && let Some(recent) = self.inner.write_targets.recent(id)
        {
            return Ok(recent);
        }
        let found = self.store().get_dataset(&dataset_ref).await?;
        if matches!(dataset_ref, DatasetRef::Id(_)) {
            self.inner.write_targets.remember(&found);
        }
        Ok(found)
    }

    fn kernel_threads(&self) -> usize {
        self.inner.config.kernel_threads
    }
}

fn parse_pattern(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) | Err(_) => Err(Error::InvalidParameter {
            name: "metadata",
            reason: format!("the metadata pattern {text:?} is not a JSON object"),
        }),
    }
}

impl Service {
    /// Compacts the store every `interval` (the first time one interval from
    /// now) for as long as it is polled: the rows of deleted datasets and
    /// their analyses, and records deleted longer ago than the tombstone
    /// grace, are removed. Failures are logged and tried again next time.
    /// Several servers may all run it; compaction is safe from any of them.
    pub async fn compact_every(&self, interval: Duration) {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let started = std::time::Instant::now();
            match self.store().compact().await {
                Ok(()) => tracing::info!(
                    millis = started.elapsed().as_millis() as u64,
                    "compaction requested"
                ),
                Err(error) => {
                    tracing::warn!(%error, "compaction failed; trying again next interval")
                }
            }
        }
    }
}

/// Runs a CPU-heavy closure off the async runtime.
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Internal {
            message: format!("a kernel task failed: {error}"),
        })?
}
