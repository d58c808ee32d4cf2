//! Store calls by dataset reference, for the tests: each resolves the
//! reference through the catalogue first, as the service does before any
//! other store call, and validates batches as the service does at its edge.

use mutant_core::Result;
use mutant_core::ingest::ValidBatch;
use mutant_core::model::{
    Dataset, DatasetChanges, DatasetRef, DatasetUpdate, Filter, LoadedDataset, MetadataUpdate,
    Record,
};
use mutant_core::store::{FetchQuery, Store};

pub(crate) async fn upsert<S: Store + ?Sized>(
    store: &S,
    dataset: &DatasetRef,
    records: Vec<Record>,
) -> Result<usize> {
    let dataset = store.get_dataset(dataset).await?;
    store.upsert(ValidBatch::new(&dataset, records)?).await
}

pub(crate) async fn delete_records<S: Store + ?Sized>(
    store: &S,
    dataset: &DatasetRef,
    filter: &Filter,
) -> Result<usize> {
    let dataset = store.get_dataset(dataset).await?;
    store.delete_records(&dataset, filter).await
}

pub(crate) async fn fetch<S: Store + ?Sized>(
    store: &S,
    dataset: &DatasetRef,
    query: &FetchQuery,
) -> Result<Vec<Record>> {
    let dataset = store.get_dataset(dataset).await?;
    store.fetch(&dataset, query).await
}

pub(crate) async fn count<S: Store + ?Sized>(
    store: &S,
    dataset: &DatasetRef,
    filter: &Filter,
) -> Result<usize> {
    let dataset = store.get_dataset(dataset).await?;
    store.count(&dataset, filter).await
}

pub(crate) async fn load<S: Store + ?Sized>(
    store: &S,
    dataset: &DatasetRef,
) -> Result<LoadedDataset> {
    let dataset = store.get_dataset(dataset).await?;
    store.load(&dataset).await
}

pub(crate) async fn load_within<S: Store + ?Sized>(
    store: &S,
    dataset: &DatasetRef,
    max_bytes: usize,
) -> Result<LoadedDataset> {
    let dataset = store.get_dataset(dataset).await?;
    store.load_within(&dataset, max_bytes).await
}

pub(crate) async fn rename_dataset<S: Store + ?Sized>(
    store: &S,
    dataset: &DatasetRef,
    new_name: &str,
) -> Result<Dataset> {
    let resolved = store.resolve(dataset).await?;
    store
        .update_dataset(&resolved, DatasetUpdate::rename(new_name))
        .await
}

pub(crate) async fn update_dataset_metadata<S: Store + ?Sized>(
    store: &S,
    dataset: &DatasetRef,
    update: MetadataUpdate,
) -> Result<Dataset> {
    let resolved = store.resolve(dataset).await?;
    store
        .update_dataset(&resolved, DatasetUpdate::metadata(update))
        .await
}

pub(crate) async fn delete_dataset<S: Store + ?Sized>(
    store: &S,
    dataset: &DatasetRef,
) -> Result<()> {
    let resolved = store.resolve(dataset).await?;
    store.delete_dataset(&resolved).await
}

/// What changed after `watermark`: each id's latest row among those
/// written after it, read whole.
pub(crate) async fn changes_after<S: Store + ?Sized>(
    store: &S,
    dataset: &DatasetRef,
    watermark: u64,
) -> Result<DatasetChanges> {
    let dataset = store.get_dataset(dataset).await?;
    let feed = store.changes_since(&dataset, watermark, watermark).await?;
    Ok(DatasetChanges::from_rows(watermark, feed.rows))
}
