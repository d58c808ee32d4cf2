//! Records and kNN: upserts and kNN queries travel as binary frames (raw f32,
//! no float-to-text round trip), reads, deletes and counts as JSON. Cheap
//! checks run here before sending; the server remains authoritative.

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use mutant_core::api::frame::{
    FRAME_CONTENT_TYPE, decode_knn_result, encode_knn_query, encode_record_batch,
};
use mutant_core::api::wire::{
    CountRequest, CountResponse, DeleteRecordsRequest, DeleteRecordsResponse, GetRecordsRequest,
    KnnRequest, KnnResponse, Neighbour, RecordsResponse, UpsertResponse, WireRecord,
};
use mutant_core::model::Record;

use crate::endpoint::dataset_path;
use crate::transport::{Body, Replay, decode_json};
use crate::{Client, Error, Result};

impl Client {
    /// Writes `records` into `dataset` as one batch and returns how many the
    /// server wrote, once ClickHouse has them. A record whose id exists
    /// replaces it. Ids must be unique within the batch.
    ///
    /// The batch is retried per the [`RetryPolicy`](crate::RetryPolicy):
    /// upserts are idempotent. To stream records one at a time, use a
    /// [`BatchWriter`](crate::BatchWriter) instead.
    ///
    /// ```no_run
    /// use mutant_client::Record;
    ///
    /// # async fn run(client: mutant_client::Client) -> mutant_client::Result<()> {
    /// let records = vec![
    ///     Record::new("img-1", vec![0.1, 0.2, 0.3]).with_label("cat").with_prediction("cat"),
    ///     Record::new("img-2", vec![0.3, 0.2, 0.1]).with_label("dog").with_prediction("cat"),
    /// ];
    /// assert_eq!(client.upsert("train", &records).await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn upsert(&self, dataset: &str, records: &[Record]) -> Result<usize> {
        for (index, record) in records.iter().enumerate() {
            check_record(index, record)?;
        }
        let path = dataset_path(dataset, "/records")?;
        self.upsert_frame(&path, Bytes::from(encode_record_batch(records)))
            .await
    }

    /// Sends an encoded record-batch frame to `path`.
    pub(crate) async fn upsert_frame(&self, path: &str, frame: Bytes) -> Result<usize> {
        let body = Body {
            content_type: FRAME_CONTENT_TYPE,
            bytes: frame,
        };
        let answer = self
            .transport
            .execute(Method::POST, path, Some(body), None, Replay::Safe)
            .await?;
        let response: UpsertResponse = decode_json(Method::POST, path, &answer.body)?;
        Ok(response.written)
    }

    /// Reads records of `dataset`, in a stable (id) order: by ids, by filter,
    /// or both, a page at a time (`limit` defaults to 100). Fields not asked
    /// for in `include` are absent; by default everything but the vector.
    ///
    /// ```no_run
    /// use mutant_client::wire::{GetRecordsRequest, Include};
    ///
    /// # async fn run(client: mutant_client::Client) -> mutant_client::Result<()> {
    /// let cats = client
    ///     .get_records(
    ///         "train",
    ///         &GetRecordsRequest {
    ///             filter: Some(serde_json::json!({"label": "cat"})),
    ///             limit: Some(1000),
    ///             include: Some(vec![Include::Vector, Include::Label]),
    ///             ..GetRecordsRequest::default()
    ///         },
    ///     )
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_records(
        &self,
        dataset: &str,
        request: &GetRecordsRequest,
    ) -> Result<Vec<WireRecord>> {
        let path = dataset_path(dataset, "/records/get")?;
        let response: RecordsResponse = self
            .transport
            .send_json(Method::POST, &path, request, Replay::Safe)
            .await?;
        Ok(response.records)
    }

    /// Deletes the records of `dataset` with the given ids and/or matching
    /// the filter, and returns how many live records it deleted. A request
    /// with neither ids nor filter deletes every record of the dataset.
    pub async fn delete_records(
        &self,
        dataset: &str,
        request: &DeleteRecordsRequest,
    ) -> Result<usize> {
        let path = dataset_path(dataset, "/records/delete")?;
        let response: DeleteRecordsResponse = self
            .transport
            .send_json(Method::POST, &path, request, Replay::Safe)
            .await?;
        Ok(response.deleted)
    }

    /// Counts the live records of `dataset`, or those matching `filter`.
    ///
    /// ```no_run
    /// # async fn run(client: mutant_client::Client) -> mutant_client::Result<()> {
    /// let filter = serde_json::json!({"$and": [{"label": "cat"}, {"prediction": {"$ne": "cat"}}]});
    /// let n_wrong = client.count("train", Some(&filter)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn count(&self, dataset: &str, filter: Option<&Value>) -> Result<usize> {
        let path = dataset_path(dataset, "/count")?;
        let request = CountRequest {
            filter: filter.cloned(),
        };
        let response: CountResponse = self
            .transport
            .send_json(Method::POST, &path, &request, Replay::Safe)
            .await?;
        Ok(response.count)
    }

    /// The `k` nearest records of `dataset` to each query, nearest first
    /// (see DESIGN.md for the distances), one list per query. Only records
    /// matching the filter are candidates. Queries and results travel as
    /// binary frames.
    ///
    /// ```no_run
    /// use mutant_client::wire::{Include, KnnRequest};
    ///
    /// # async fn run(client: mutant_client::Client) -> mutant_client::Result<()> {
    /// let results = client
    ///     .knn(
    ///         "train",
    ///         &KnnRequest {
    ///             queries: vec![vec![0.1, 0.2, 0.3]],
    ///             k: 10,
    ///             filter: Some(serde_json::json!({"label": {"$in": ["cat", "dog"]}})),
    ///             include: Some(vec![Include::Label, Include::Uri]),
    ///         },
    ///     )
    ///     .await?;
    /// for neighbour in &results[0] {
    ///     println!("{} at {:.3}: {:?}", neighbour.id, neighbour.distance, neighbour.fields.label);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn knn(&self, dataset: &str, request: &KnnRequest) -> Result<Vec<Vec<Neighbour>>> {
        check_knn_queries(&request.queries)?;
        let path = dataset_path(dataset, "/knn")?;
        let body = Body {
            content_type: FRAME_CONTENT_TYPE,
            bytes: Bytes::from(encode_knn_query(request)),
        };
        let answer = self
            .transport
            .execute(
                Method::POST,
                &path,
                Some(body),
                Some(FRAME_CONTENT_TYPE),
                Replay::Safe,
            )
            .await?;
        let is_frame = answer
            .content_type
            .as_deref()
            .is_some_and(|content_type| content_type.starts_with(FRAME_CONTENT_TYPE));
        let response = if is_frame {
            decode_knn_result(&answer.body).map_err(|error| Error::Decode {
                request: format!("POST {path}"),
                reason: error.to_string(),
            })?
        } else {
            decode_json::<KnnResponse>(Method::POST, &path, &answer.body)?
        };
        Ok(response.results)
    }
}

/// The cheap checks of a record about to be written, with the server's codes
/// and messages: a non-empty id and finite values.
pub(crate) fn check_record(index: usize, record: &Record) -> Result<()> {
    if record.id.is_empty() {
        return Err(Error::refused(&mutant_core::Error::EmptyRecordId { index }));
    }
    if let Some(position) = record.vector.iter().position(|value| !value.is_finite()) {
        return Err(Error::refused(&mutant_core::Error::NonFiniteValue {
            id: record.id.clone(),
            position,
        }));
    }
    Ok(())
}

/// The frame carries one dimension for all queries, so they must agree.
fn check_knn_queries(queries: &[Vec<f32>]) -> Result<()> {
    let Some(first) = queries.first() else {
        return Ok(());
    };
    for (index, query) in queries.iter().enumerate() {
        if query.len() != first.len() {
            return Err(Error::InvalidInput {
                code: "dimension_mismatch".to_owned(),
                message: format!(
                    "kNN query {index} has {} values but query 0 has {}; give every query the dataset's dimension",
                    query.len(),
                    first.len()
                ),
            });
        }
        if let Some(position) = query.iter().position(|value| !value.is_finite()) {
            return Err(Error::InvalidInput {
                code: "non_finite_value".to_owned(),
                message: format!(
                    "kNN query {index} has a non-finite value (NaN or infinity) at position {position}; clean the query before sending it"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_with_empty_ids_or_non_finite_values_are_refused() {
        assert!(check_record(0, &Record::new("a", vec![1.0, -2.0])).is_ok());
        let empty_id = check_record(7, &Record::new("", vec![1.0])).unwrap_err();
        assert_eq!(empty_id.code(), Some("empty_record_id"));
        assert!(empty_id.to_string().contains("position 7"));
        let nan = check_record(0, &Record::new("a", vec![1.0, f32::NAN])).unwrap_err();
        assert_eq!(nan.code(), Some("non_finite_value"));
        assert!(nan.to_string().contains("position 1"));
        let infinite = check_record(0, &Record::new("a", vec![f32::INFINITY])).unwrap_err();
        assert_eq!(infinite.code(), Some("non_finite_value"));
    }

    #[test]
    fn ragged_or_non_finite_knn_queries_are_refused() {
        assert!(check_knn_queries(&[]).is_ok());
        assert!(check_knn_queries(&[vec![1.0, 2.0], vec![3.0, 4.0]]).is_ok());
        let ragged = check_knn_queries(&[vec![1.0, 2.0], vec![3.0]]).unwrap_err();
        assert_eq!(ragged.code(), Some("dimension_mismatch"));
        let nan = check_knn_queries(&[vec![1.0, f32::NAN]]).unwrap_err();
        assert_eq!(nan.code(), Some("non_finite_value"));
    }
}
