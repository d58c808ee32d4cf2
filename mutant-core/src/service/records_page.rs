//! Pages of records named by an `ids` list. The list is read a chunk of ids
//! at a time, in the byte order records come back in, and reading stops as
//! soon as the page is full: a page of 100 from a list of 100,000 ids costs
//! the chunks up to its last record, not a fetch of every listed record.

use super::Service;
use crate::Result;
use crate::model::{Dataset, Filter, Record};
use crate::store::FetchQuery;

/// Bytes of ids per chunk (each id counted with 8 bytes of SQL around it):
/// a chunk with a filter beside it stays well within ClickHouse's query
/// size limit.
const ID_CHUNK_BYTES: usize = 64 * 1024;

/// Which records of an `ids` list to return.
#[derive(Debug)]
pub(super) struct IdsPage<'a> {
    /// The distinct ids, in byte order.
    pub(super) ids: &'a [&'a str],
    /// A filter the records must pass too.
    pub(super) filter: Option<Filter>,
    pub(super) limit: usize,
    pub(super) offset: usize,
    pub(super) with_vectors: bool,
}

impl Service {
    /// The page of live records among `page.ids` that pass its filter, in
    /// id order.
    pub(super) async fn fetch_ids_page(
        &self,
        dataset: &Dataset,
        page: IdsPage<'_>,
    ) -> Result<Vec<Record>> {
        let wanted = page.offset.saturating_add(page.limit);
        let mut records: Vec<Record> = Vec::new();
        for chunk in id_chunks(page.ids) {
            if records.len() >= wanted {
                break;
            }
            let ids = Filter::ids(chunk.iter().copied());
            let query = FetchQuery {
                filter: match &page.filter {
                    Some(filter) => Filter::And(vec![ids, filter.clone()]),
                    None => ids,
                },
                limit: wanted - records.len(),
                offset: 0,
                with_vectors: page.with_vectors,
            };
            records.extend(self.store().fetch(dataset, &query).await?);
        }
        Ok(records
            .into_iter()
            .skip(page.offset)
            .take(page.limit)
            .collect())
    }
}

/// Consecutive runs of `ids` of at most [`ID_CHUNK_BYTES`] each (one id
/// alone may be longer).
fn id_chunks<'a>(ids: &'a [&'a str]) -> impl Iterator<Item = &'a [&'a str]> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= ids.len() {
            return None;
        }
        let mut end = start;
        let mut bytes = 0;
        while end < ids.len() && (end == start || bytes + ids[end].len() + 8 <= ID_CHUNK_BYTES) {
            bytes += ids[end].len() + 8;
            end += 1;
        }
        let chunk = &ids[start..end];
        start = end;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_id_once_in_order_within_the_bytes() {
        let owned: Vec<String> = (0..20_000).map(|n| format!("record-{n:06}")).collect();
        let ids: Vec<&str> = owned.iter().map(String::as_str).collect();
        let chunks: Vec<&[&str]> = id_chunks(&ids).collect();
        assert!(chunks.len() > 1);
        assert_eq!(chunks.concat(), ids);
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(|id| id.len() + 8).sum();
            assert!(bytes <= ID_CHUNK_BYTES);
        }
        assert_eq!(id_chunks(&[]).count(), 0);
    }
}
