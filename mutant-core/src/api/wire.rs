//! JSON wire types of protocol version 1. Requests refuse unknown fields;
//! optional response fields are omitted when absent.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::kinds::AnalysisKind;
use super::vocabulary::JobStatus;
use crate::model::{Dataset, Filter, Metric, Record, RecordMetadata};
use crate::{Error, Result};

/// `{"error": {"code", "message"}}`, the body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The code and message.
    pub error: ErrorBody,
}

/// A stable snake_case code and a message saying what to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable, for programs: `invalid_filter`, `dimension_mismatch`, ...
    pub code: String,
    /// For people.
    pub message: String,
}

/// `GET /v1/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The server's clock, nanoseconds since the Unix epoch.
    pub nanos: u64,
}

/// `GET /v1/version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionResponse {
    /// The server's release.
    pub mutant: String,
    /// [`super::PROTOCOL_VERSION`] of the server.
    pub protocol: u32,
    /// The ClickHouse release, `major.minor` (e.g. `18.16`).
    pub clickhouse: String,
}

/// `POST /v1/datasets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDatasetRequest {
    /// A simple identifier, unique among live datasets.
    pub name: String,
    /// The vector length.
    pub dimension: usize,
    /// `l2` (default), `cosine` or `dot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// A JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// `PATCH /v1/datasets/{ds}`: any of a new name, replacement metadata, or a
/// JSON merge patch of the metadata.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchDatasetRequest {
    /// The new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Replaces the metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Patches the metadata (RFC 7396: `null` removes a key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_patch: Option<Map<String, Value>>,
}

/// A dataset as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Immutable identity.
    pub id: Uuid,
    /// Current name.
    pub name: String,
    /// Vector length.
    pub dimension: usize,
    /// `l2`, `cosine` or `dot`.
    pub metric: Metric,
    /// Client-managed JSON object.
    pub metadata: Map<String, Value>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
    /// Live records, on `GET /v1/datasets/{ds}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_count: Option<u64>,
}

impl DatasetInfo {
    /// The wire form of a dataset.
    pub fn from_dataset(dataset: &Dataset, record_count: Option<u64>) -> Self {
        DatasetInfo {
            id: dataset.id,
            name: dataset.name.clone(),
            dimension: dataset.dimension,
            metric: dataset.metric,
            metadata: dataset.metadata.clone(),
            created_at_ms: dataset.created_at_ms,
            updated_at_ms: dataset.updated_at_ms,
            record_count,
        }
    }
}

/// `GET /v1/datasets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetList {
    /// Ordered by name.
    pub datasets: Vec<DatasetInfo>,
}

/// A record on the wire. On upsert `vector` is required; in answers, fields
/// not asked for in `include` are omitted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireRecord {
    /// Unique within the dataset.
    pub id: String,
    /// The embedding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// The true class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The model's class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<String>,
    /// Where the input lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// A flat object of strings, numbers and booleans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl WireRecord {
    /// The record to store; fails without a vector or with bad metadata.
    pub fn into_record(self) -> Result<Record> {
        let vector = self.vector.ok_or_else(|| Error::InvalidParameter {
            name: "vector",
            reason: format!(
                "record {:?} has no vector; every written record needs one",
                self.id
            ),
        })?;
        let metadata = match &self.metadata {
            Some(object) => RecordMetadata::from_json(object)?,
            None => RecordMetadata::new(),
        };
        Ok(Record {
            id: self.id,
            vector,
            label: self.label,
            prediction: self.prediction,
            uri: self.uri,
            metadata,
        })
    }

    /// The wire form of a stored record, with the fields `include` asks for.
    pub fn from_record(record: Record, include: &IncludeSet) -> Self {
        WireRecord {
            id: record.id,
            vector: include.vector.then_some(record.vector),
            label: record.label.filter(|_| include.label),
            prediction: record.prediction.filter(|_| include.prediction),
            uri: record.uri.filter(|_| include.uri),
            metadata: (include.metadata && !record.metadata.is_empty())
                .then(|| record.metadata.to_json()),
        }
    }
}

/// A field to return besides the id (and the distance, for kNN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Include {
    /// The embedding.
    Vector,
    /// The label.
    Label,
    /// The prediction.
    Prediction,
    /// The uri.
    Uri,
    /// The metadata.
    Metadata,
}

/// Which optional fields an answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IncludeSet {
    /// Return vectors.
    pub vector: bool,
    /// Return labels.
    pub label: bool,
    /// Return predictions.
    pub prediction: bool,
    /// Return uris.
    pub uri: bool,
    /// Return metadata.
    pub metadata: bool,
}

impl IncludeSet {
    /// The fields listed, or `default` when the list is absent.
    pub fn from_list(list: Option<&[Include]>, default: IncludeSet) -> Self {
        let Some(list) = list else { return default };
        let mut set = IncludeSet::default();
        for field in list {
            match field {
                Include::Vector => set.vector = true,
                Include::Label => set.label = true,
                Include::Prediction => set.prediction = true,
                Include::Uri => set.uri = true,
                Include::Metadata => set.metadata = true,
            }
        }
        set
    }

    /// Everything but vectors: what record reads return by default.
    pub fn all_but_vectors() -> Self {
        IncludeSet {
            vector: false,
            label: true,
            prediction: true,
            uri: true,
            metadata: true,
        }
    }

    /// The list form.
    pub fn to_list(self) -> Vec<Include> {
        [
            (self.vector, Include::Vector),
            (self.label, Include::Label),
            (self.prediction, Include::Prediction),
            (self.uri, Include::Uri),
            (self.metadata, Include::Metadata),
        ]
        .into_iter()
        .filter_map(|(wanted, field)| wanted.then_some(field))
        .collect()
    }
}

/// `POST /v1/datasets/{ds}/records`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertRequest {
    /// The batch; ids unique within it.
    pub records: Vec<WireRecord>,
}

/// The answer to an upsert, sent once ClickHouse has the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpsertResponse {
    /// Records written.
    pub written: usize,
}

/// `POST /v1/datasets/{ds}/records/get`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetRecordsRequest {
    /// Only these ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// Only records matching this filter (see DESIGN.md's filter syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// At most this many (default 100, at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Skip this many first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// Fields to return; default all but `vector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<Include>>,
}

/// Records in id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordsResponse {
    /// The page.
    pub records: Vec<WireRecord>,
}

/// `POST /v1/datasets/{ds}/records/delete`: ids, a filter, or both (and).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRecordsRequest {
    /// These ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// Records matching this filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
}

/// How many records a delete removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteRecordsResponse {
    /// Live records deleted.
    pub deleted: usize,
}

/// `POST /v1/datasets/{ds}/count`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRequest {
    /// Count only matching records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
}

/// A count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountResponse {
    /// Live records matching.
    pub count: usize,
}

/// `POST /v1/datasets/{ds}/knn`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnnRequest {
    /// Query vectors, each of the dataset's dimension.
    pub queries: Vec<Vec<f32>>,
    /// Neighbours per query.
    pub k: usize,
    /// Only records matching this filter are candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// Fields to return with each neighbour; default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<Include>>,
}

/// A kNN request as the service runs it: the queries as one row-major
/// matrix, the fields to return as flags. A kNN frame decodes straight into
/// it ([`crate::api::frame::decode_knn_query`]); a JSON [`KnnRequest`]
/// converts with [`KnnQuery::from_request`].
///
/// ```
/// # use mutant_core::api::wire::{KnnQuery, KnnRequest};
/// let request = KnnRequest { queries: vec![vec![1.0, 2.0], vec![3.0, 4.0]], k: 5, ..Default::default() };
/// let query = KnnQuery::from_request(request)?;
/// assert_eq!((query.n_queries(), query.dimension()), (2, 2));
/// assert_eq!(query.query(1), [3.0, 4.0]);
/// # Ok::<(), mutant_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KnnQuery {
    values: Vec<f32>,
    n_queries: usize,
    dimension: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Only records matching this filter are candidates.
    pub filter: Option<Value>,
    /// Fields to return with each neighbour.
    pub include: IncludeSet,
}

impl KnnQuery {
    /// `n_queries` queries of `dimension` values each, laid end to end in
    /// `values`; `InvalidParameter` when the lengths disagree.
    pub fn from_matrix(
        values: Vec<f32>,
        n_queries: usize,
        dimension: usize,
        k: usize,
    ) -> Result<Self> {
        if n_queries.checked_mul(dimension) != Some(values.len()) {
            return Err(Error::InvalidParameter {
                name: "queries",
                reason: format!(
                    "{} values do not make {n_queries} queries of {dimension}",
                    values.len()
                ),
            });
        }
        Ok(KnnQuery {
            values,
            n_queries,
            dimension,
            k,
            filter: None,
            include: IncludeSet::default(),
        })
    }

    /// The JSON request's queries laid end to end. Queries of different
    /// lengths get `RaggedQueries`, naming the first that differs from the
    /// first query.
    pub fn from_request(request: KnnRequest) -> Result<Self> {
        let n_queries = request.queries.len();
        let dimension = request.queries.first().map_or(0, Vec::len);
        let mut values = Vec::with_capacity(n_queries.saturating_mul(dimension));
        for (query_idx, query) in request.queries.into_iter().enumerate() {
            if query.len() != dimension {
                return Err(Error::RaggedQueries {
                    query: query_idx,
                    expected: dimension,
                    got: query.len(),
                });
            }
            values.extend_from_slice(&query);
        }
        Ok(KnnQuery {
            include: IncludeSet::from_list(request.include.as_deref(), IncludeSet::default()),
            filter: request.filter,
            ..KnnQuery::from_matrix(values, n_queries, dimension, request.k)?
        })
    }

    /// How many queries.
    pub fn n_queries(&self) -> usize {
        self.n_queries
    }

    /// Values per query.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Every query's values, one query after another.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Query `index`'s values.
    pub fn query(&self, index: usize) -> &[f32] {
        &self.values[index * self.dimension..(index + 1) * self.dimension]
    }

    /// The values, given up to the kernel.
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }
}

/// One neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// The record id.
    pub id: String,
    /// Smaller is nearer (see DESIGN.md's distances).
    pub distance: f32,
    /// The other fields asked for.
    #[serde(flatten)]
    pub fields: WireRecordFields,
}

/// The optional fields of a neighbour.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WireRecordFields {
    /// The embedding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// The label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<String>,
    /// The uri.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// One list per query, nearest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnnResponse {
    /// Neighbours per query.
    pub results: Vec<Vec<Neighbour>>,
}

/// `POST /v1/analyses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartAnalysisRequest {
    /// The algorithm: `mislabel`, `select`, `novelty`, ...
    pub kind: String,
    /// The dataset scored (name or UUID).
    pub target: String,
    /// The dataset compared against, where the kind needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Kind-specific parameters (`k`, `n`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
}

/// An analysis and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisStatus {
    /// Its id.
    pub id: Uuid,
    /// The algorithm.
    pub kind: AnalysisKind,
    /// `queued`, `running`, `done`, `failed` or `cancelled`; or `stale`: a
    /// done analysis whose target or reference has had writes (or was
    /// deleted) since it was computed. A stale analysis's results can still
    /// be read; start it again for results on the current data.
    pub status: JobStatus,
    /// 0 to 1.
    pub progress: f32,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The target dataset's id.
    pub target: Uuid,
    /// The reference dataset's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Uuid>,
    /// Parameters as given.
    pub params: Map<String, Value>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When it started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// The server that runs (or ran) it: a per-process id, then where it
    /// listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Once done: what the analysis found, with at least `n_flagged` and
    /// `share_flagged` (see PROTOCOL.md, Result rows, for each kind's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
}

/// `GET /v1/analyses/{id}/results`: ranked rows (per kind, see PROTOCOL.md),
/// and the analysis's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisResults {
    /// The page of ranked rows, highest score first.
    pub results: Vec<Value>,
    /// Rows in all that pass the request's filters.
    pub total: usize,
    /// What the analysis found, as in its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
}

/// The distinct ids of a request's `ids` list, in byte order (the order
/// records come back in); refused over
/// [`MAX_FILTER_VALUES`](crate::model::MAX_FILTER_VALUES), the bound every
/// filter has.
///
/// ```
/// # use mutant_core::api::wire::distinct_ids;
/// let ids = ["b".to_owned(), "a".to_owned(), "b".to_owned()];
/// assert_eq!(distinct_ids(&ids)?, vec!["a", "b"]);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn distinct_ids(ids: &[String]) -> Result<Vec<&str>> {
    let mut distinct: Vec<&str> = ids.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() > crate::model::MAX_FILTER_VALUES {
        return Err(Error::InvalidParameter {
            name: "ids",
            reason: format!(
                "{} distinct ids; the limit is {} per request, as for filters; split the list",
                distinct.len(),
                crate::model::MAX_FILTER_VALUES
            ),
        });
    }
    Ok(distinct)
}

/// Builds the filter of a request that may carry ids (each counted once),
/// a filter, or both; together they stay within the filters' cost bound.
///
/// ```
/// # use mutant_core::api::wire::request_filter;
/// let filter = request_filter(Some(&["a".to_owned()]), Some(&serde_json::json!({"label": "cat"})))?;
/// assert!(filter.matches(&mutant_core::model::Record::new("a", vec![]).with_label("cat")));
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn request_filter(ids: Option<&[String]>, filter: Option<&Value>) -> Result<Filter> {
    let mut parts = Vec::new();
    if let Some(ids) = ids {
        parts.push(Filter::ids(distinct_ids(ids)?));
    }
    if let Some(filter) = filter {
        parts.push(Filter::from_json(filter)?);
    }
    let filter = match parts.len() {
        0 => Filter::all(),
        1 => parts.remove(0),
        _ => Filter::And(parts),
    };
    filter.check_cost()?;
    Ok(filter)
}
