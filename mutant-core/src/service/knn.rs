//! kNN queries against a cached dataset.

use std::collections::{HashMap, HashSet};

use super::{Service, run_blocking};
use crate::api::wire::{
    IncludeSet, KnnQuery, KnnResponse, Neighbour, WireRecord, WireRecordFields,
};
use crate::cache::SearchableDataset;
use crate::kernels::{DatasetView, ExactIndex, Execution, KnnOptions};
use crate::model::{Dataset, DatasetRef, Filter, LoadedDataset, TextFilter};
use crate::store::FetchQuery;
use crate::{Error, Result};

/// The most neighbours one query may ask for.
pub const MAX_K: usize = 10_000;
/// The most queries one request may carry.
pub const MAX_QUERIES: usize = 10_000;
/// The most neighbours one request may ask for: queries x k.
pub const MAX_NEIGHBOURS: usize = 1_000_000;

impl Service {
    /// `POST /v1/datasets/{ds}/knn`: exact neighbours, nearest first.
    pub async fn knn(&self, dataset: &str, request: KnnQuery) -> Result<KnnResponse> {
        validate_shape(&request)?;
        let filter = request.filter.as_ref().map(Filter::from_json).transpose()?;
        let include = request.include;
        let threads = self.kernel_threads();
        let (dataset, SearchableDataset { loaded, terms }) = self
            .cache()
            .search(&DatasetRef::parse(dataset), threads)
            .await?;
        validate_values(&request, &dataset.name, dataset.dimension)?;
        if loaded.n_records() == 0 {
            return Ok(KnnResponse {
                results: vec![Vec::new(); request.n_queries()],
            });
        }
        // A filter on id, label and prediction is applied to the snapshot in
        // hand, on the kernel's thread; any other asks the store.
        let (memory_filter, store_filter) = match filter {
            Some(filter) if filter.reads_only_id_label_prediction() => (Some(filter), None),
            other => (None, other),
        };
        let store_allowed = match store_filter {
            Some(filter) => Some(self.allowed_rows(&dataset, &loaded.ids, filter).await?),
            None => None,
        };
        let k = request.k.min(loaded.n_records());
        let queries = request.into_values();
        let kernel_input = std::sync::Arc::clone(&loaded);
        let in_memory = !include.uri && !include.metadata;
        let row_include = include;
        // The search and the answer's neighbours (ids copied, fields read)
        // are built on a blocking thread: up to MAX_NEIGHBOURS of them.
        let mut results = run_blocking(move || {
            let view = DatasetView::new(&kernel_input.vectors, kernel_input.dataset.dimension)?;
            let query_view = DatasetView::new(&queries, kernel_input.dataset.dimension)?;
            let allowed: Option<Vec<bool>> = match memory_filter.as_ref().and_then(TextFilter::new)
            {
                Some(filter) => Some(
                    (0..kernel_input.n_records())
                        .map(|row_idx| {
                            filter.matches(|field| kernel_input.filter_text(row_idx, field))
                        })
                        .collect(),
                ),
                None => store_allowed,
            };
            let mut options = KnnOptions::new(k);
            if let Some(allowed) = allowed.as_deref() {
                options = options.with_filter(allowed);
            }
            let neighbours = ExactIndex::with_terms(view, &terms)?.search(
                &query_view,
                &options,
                &Execution::new().with_threads(threads),
            )?;
            let include = row_include;
            Ok((0..neighbours.n_queries())
                .map(|query_idx| {
                    neighbours
                        .rows(query_idx)
                        .iter()
                        .zip(neighbours.distances(query_idx))
                        .map(|(&row, &distance)| {
                            let row = row as usize;
                            Neighbour {
                                id: kernel_input.ids[row].clone(),
                                distance,
                                fields: if in_memory {
                                    loaded_fields(&kernel_input, row, &include)
                                } else {
                                    WireRecordFields::default()
                                },
                            }
                        })
                        .collect::<Vec<Neighbour>>()
                })
                .collect::<Vec<Vec<Neighbour>>>())
        })
        .await?;
        if !in_memory {
            self.attach_fields(&dataset, &mut results, &include).await?;
        }
        Ok(KnnResponse { results })
    }

    /// Which rows of the loaded dataset the filter lets through.
    async fn allowed_rows(
        &self,
        dataset: &Dataset,
        ids: &[String],
        filter: Filter,
    ) -> Result<Vec<bool>> {
        let query = FetchQuery {
            filter,
            limit: usize::MAX,
            offset: 0,
            with_vectors: false,
        };
        let matching = self.store().fetch(dataset, &query).await?;
        let matching: HashSet<String> = matching.into_iter().map(|record| record.id).collect();
        Ok(ids.iter().map(|id| matching.contains(id)).collect())
    }

    /// Fills in the fields `include` asks for, with one fetch for all neighbours.
    async fn attach_fields(
        &self,
        dataset: &Dataset,
        results: &mut [Vec<Neighbour>],
        include: &IncludeSet,
    ) -> Result<()> {
        let ids: HashSet<&str> = results
            .iter()
            .flatten()
            .map(|neighbour| neighbour.id.as_str())
            .collect();
        let query = FetchQuery {
            filter: Filter::ids(ids),
            limit: usize::MAX,
            offset: 0,
            with_vectors: include.vector,
        };
        let records = self.store().fetch(dataset, &query).await?;
        let by_id: HashMap<String, WireRecord> = records
            .into_iter()
            .map(|record| (record.id.clone(), WireRecord::from_record(record, include)))
            .collect();
        for neighbour in results.iter_mut().flatten() {
            if let Some(record) = by_id.get(&neighbour.id) {
                neighbour.fields = WireRecordFields {
                    vector: record.vector.clone(),
                    label: record.label.clone(),
                    prediction: record.prediction.clone(),
                    uri: record.uri.clone(),
                    metadata: record.metadata.clone(),
                };
            }
        }
        Ok(())
    }
}

/// The fields `include` asks for that the loaded dataset holds: vector,
/// label and prediction.
fn loaded_fields(loaded: &LoadedDataset, row: usize, include: &IncludeSet) -> WireRecordFields {
    WireRecordFields {
        vector: include.vector.then(|| loaded.row(row).to_vec()),
        label: include
            .label
            .then(|| loaded.label(row).map(str::to_owned))
            .flatten(),
        prediction: include
            .prediction
            .then(|| loaded.prediction(row).map(str::to_owned))
            .flatten(),
        uri: None,
        metadata: None,
    }
}

/// Checks what can be checked before the dataset is at hand.
fn validate_shape(request: &KnnQuery) -> Result<()> {
    if request.k == 0 || request.k > MAX_K {
        return Err(Error::InvalidParameter {
            name: "k",
            reason: format!("k is {}; ask for 1 to {MAX_K} neighbours", request.k),
        });
    }
    if request.n_queries() == 0 || request.n_queries() > MAX_QUERIES {
        return Err(Error::InvalidParameter {
            name: "queries",
            reason: format!(
                "{} queries sent; send 1 to {MAX_QUERIES} per request",
                request.n_queries()
            ),
        });
    }
    let asked = request.n_queries() * request.k;
    if asked > MAX_NEIGHBOURS {
        return Err(Error::KnnTooLarge {
            n_queries: request.n_queries(),
            k: request.k,
            asked,
            max: MAX_NEIGHBOURS,
        });
    }
    Ok(())
}

/// Checks the queries' dimension against the dataset's, and their values.
fn validate_values(request: &KnnQuery, dataset: &str, dimension: usize) -> Result<()> {
    if request.dimension() != dimension {
        return Err(Error::DimensionMismatch {
            dataset: dataset.to_owned(),
            id: "query 0".into(),
            expected: dimension,
            got: request.dimension(),
        });
    }
    if let Some(index) = request.values().iter().position(|value| !value.is_finite()) {
        return Err(Error::NonFiniteValue {
            id: format!("query {}", index / dimension),
            position: index % dimension,
        });
    }
    Ok(())
}
