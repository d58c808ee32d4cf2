//! Datasets: a named, fixed-dimension collection of embeddings with a metric
//! and client-managed JSON metadata.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{Error, Result};

/// The longest dataset name accepted, in bytes.
pub const MAX_DATASET_NAME_LEN: usize = 128;
/// The largest dimension a dataset may have.
pub const MAX_DIMENSION: usize = 65_536;

/// How distances between vectors of a dataset are measured; smaller is nearer.
/// Part of the protocol's vocabulary (`api::vocabulary`): it serialises as
/// its wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Metric {
    /// Euclidean distance (not squared).
    #[default]
    #[serde(rename = "l2")]
    L2,
    /// One minus the cosine similarity.
    #[serde(rename = "cosine")]
    Cosine,
    /// The negated inner product.
    #[serde(rename = "dot")]
    Dot,
}

impl Metric {
    /// The metric's wire and storage name: `l2`, `cosine` or `dot`.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for Metric {
    type Err = Error;

    /// Parses `l2`, `cosine` or `dot`.
    ///
    /// ```
    /// use mutant_core::model::Metric;
    /// assert_eq!("cosine".parse::<Metric>()?, Metric::Cosine);
    /// assert!("manhattan".parse::<Metric>().is_err());
    /// # Ok::<(), mutant_core::Error>(())
    /// ```
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "l2" => Ok(Metric::L2),
            "cosine" => Ok(Metric::Cosine),
            "dot" => Ok(Metric::Dot),
            other => Err(Error::UnknownMetric {
                metric: other.to_owned(),
            }),
        }
    }
}

/// A live dataset as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Immutable identity; a re-created dataset of the same name gets a new one.
    pub id: Uuid,
    /// Unique among live datasets; see [`validate_dataset_name`].
    pub name: String,
    /// Length of every vector, fixed at creation.
    pub dimension: usize,
    /// Distance used by kNN and the kernels.
    pub metric: Metric,
    /// A JSON object managed by the client.
    pub metadata: Map<String, Value>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Time of the last catalogue change (rename, metadata), milliseconds since the Unix epoch.
    pub updated_at_ms: u64,
}

impl Dataset {
    /// True when `pattern` is contained in this dataset's metadata: every key
    /// of the pattern is present with an equal value, recursively for nested
    /// objects (arrays must be equal).
    ///
    /// ```
    /// # use mutant_core::model::{Dataset, Metric};
    /// # use serde_json::json;
    /// let mut dataset = Dataset { id: uuid::Uuid::nil(), name: "d".into(), dimension: 2,
    ///     metric: Metric::L2, metadata: Default::default(), created_at_ms: 0, updated_at_ms: 0 };
    /// dataset.metadata = json!({"team": "vision", "split": {"kind": "train", "year": 2026}})
    ///     .as_object().cloned().unwrap_or_default();
    /// assert!(dataset.metadata_contains(json!({"split": {"kind": "train"}}).as_object().unwrap()));
    /// assert!(!dataset.metadata_contains(json!({"team": "audio"}).as_object().unwrap()));
    /// ```
    pub fn metadata_contains(&self, pattern: &Map<String, Value>) -> bool {
        object_contains(&self.metadata, pattern)
    }
}

fn object_contains(haystack: &Map<String, Value>, pattern: &Map<String, Value>) -> bool {
    pattern
        .iter()
        .all(|(key, wanted)| match (haystack.get(key), wanted) {
            (Some(Value::Object(inner)), Value::Object(wanted_inner)) => {
                object_contains(inner, wanted_inner)
            }
            (Some(found), wanted) => found == wanted,
            (None, _) => false,
        })
}

/// What a client asks for when creating a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDataset {
    /// The unique name.
    pub name: String,
    /// The vector length.
    pub dimension: usize,
    /// The distance; `l2` by default.
    pub metric: Metric,
    /// A JSON object; empty by default.
    pub metadata: Map<String, Value>,
}

impl NewDataset {
    /// A dataset of `dimension` with the `l2` metric and no metadata.
    pub fn new(name: impl Into<String>, dimension: usize) -> Self {
        NewDataset {
            name: name.into(),
            dimension,
            metric: Metric::L2,
            metadata: Map::new(),
        }
    }

    /// Sets the metric.
    pub fn with_metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// Sets the metadata object.
    pub fn with_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// The dataset this request creates, with its id and creation time.
    pub fn into_dataset(self, id: Uuid, now_ms: u64) -> Dataset {
        Dataset {
            id,
            name: self.name,
            dimension: self.dimension,
            metric: self.metric,
            metadata: self.metadata,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    /// Checks the name, the dimension and the metadata's size.
    pub fn validate(&self) -> Result<()> {
        validate_dataset_name(&self.name)?;
        validate_dimension(self.dimension)?;
        validate_dataset_metadata(&self.name, &self.metadata)
    }
}

/// The largest dataset metadata, in bytes of JSON: the catalogue is read
/// whole by listings and name look-ups, so one dataset must not weigh on
/// every other.
pub const MAX_DATASET_METADATA_LEN: usize = 65_536;

/// Refuses metadata over [`MAX_DATASET_METADATA_LEN`] bytes of JSON.
///
/// ```
/// # use mutant_core::model::{validate_dataset_metadata, MAX_DATASET_METADATA_LEN};
/// # use serde_json::json;
/// let small = json!({"team": "vision"}).as_object().cloned().unwrap();
/// assert!(validate_dataset_metadata("train", &small).is_ok());
/// let large = json!({"notes": "x".repeat(MAX_DATASET_METADATA_LEN)}).as_object().cloned().unwrap();
/// assert!(validate_dataset_metadata("train", &large).is_err());
/// ```
pub fn validate_dataset_metadata(dataset: &str, metadata: &Map<String, Value>) -> Result<()> {
    let len = serde_json::to_vec(metadata).map_or(usize::MAX, |json| json.len());
    if len > MAX_DATASET_METADATA_LEN {
        return Err(Error::DatasetMetadataTooLong {
            dataset: dataset.to_owned(),
            len,
            max: MAX_DATASET_METADATA_LEN,
        });
    }
    Ok(())
}

/// How a dataset's metadata changes.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataUpdate {
    /// The object replaces the metadata entirely.
    Replace(Map<String, Value>),
    /// A JSON merge patch (RFC 7396): keys are set, `null` removes a key,
    /// nested objects are patched recursively.
    Patch(Map<String, Value>),
}

impl MetadataUpdate {
    /// Applies the update to `metadata`.
    ///
    /// ```
    /// # use mutant_core::model::MetadataUpdate;
    /// # use serde_json::json;
    /// let mut metadata = json!({"a": 1, "b": {"c": 2, "d": 3}}).as_object().cloned().unwrap();
    /// let patch = json!({"a": null, "b": {"c": 5}}).as_object().cloned().unwrap();
    /// MetadataUpdate::Patch(patch).apply(&mut metadata);
    /// assert_eq!(Some(&metadata), json!({"b": {"c": 5, "d": 3}}).as_object());
    /// ```
    pub fn apply(self, metadata: &mut Map<String, Value>) {
        match self {
            MetadataUpdate::Replace(replacement) => *metadata = replacement,
            MetadataUpdate::Patch(patch) => merge_patch(metadata, patch),
        }
    }
}

/// A change to a dataset's catalogue entry: a new name, new metadata, or
/// both, written as one change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DatasetUpdate {
    /// The new name, which must be unused.
    pub name: Option<String>,
    /// How the metadata changes.
    pub metadata: Option<MetadataUpdate>,
}

impl DatasetUpdate {
    /// A rename.
    pub fn rename(name: impl Into<String>) -> Self {
        DatasetUpdate {
            name: Some(name.into()),
            metadata: None,
        }
    }

    /// A metadata change.
    pub fn metadata(update: MetadataUpdate) -> Self {
        DatasetUpdate {
            name: None,
            metadata: Some(update),
        }
    }

    /// Checks the new name, if any.
    pub fn validate(&self) -> Result<()> {
        self.name.as_deref().map_or(Ok(()), validate_dataset_name)
    }

    /// `dataset` as this update leaves it, stamped `now_ms`.
    pub fn applied_to(self, dataset: &Dataset, now_ms: u64) -> Dataset {
        let mut updated = dataset.clone();
        if let Some(name) = self.name {
            updated.name = name;
        }
        if let Some(metadata) = self.metadata {
            metadata.apply(&mut updated.metadata);
        }
        updated.updated_at_ms = now_ms;
        updated
    }
}

fn merge_patch(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(&key);
            }
            Value::Object(inner_patch) => {
                let slot = target
                    .entry(key)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(inner) = slot {
                    merge_patch(inner, inner_patch);
                }
            }
            other => {
                target.insert(key, other);
            }
        }
    }
}

/// A dataset addressed by name or by UUID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DatasetRef {
    /// By its immutable id.
    Id(Uuid),
    /// By its current name.
    Name(String),
}

impl DatasetRef {
    /// Reads a UUID if the text is one, a name otherwise. Names never look
    /// like UUIDs (see [`validate_dataset_name`]), so this is unambiguous.
    ///
    /// ```
    /// # use mutant_core::model::DatasetRef;
    /// assert_eq!(DatasetRef::parse("train"), DatasetRef::Name("train".into()));
    /// assert!(matches!(DatasetRef::parse("67e55044-10b1-426f-9247-bb680e5fe0c8"), DatasetRef::Id(_)));
    /// ```
    pub fn parse(text: &str) -> DatasetRef {
        match Uuid::parse_str(text) {
            Ok(id) => DatasetRef::Id(id),
            Err(_) => DatasetRef::Name(text.to_owned()),
        }
    }
}

impl fmt::Display for DatasetRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetRef::Id(id) => write!(formatter, "{id}"),
            DatasetRef::Name(name) => formatter.write_str(name),
        }
    }
}

impl From<&str> for DatasetRef {
    fn from(text: &str) -> Self {
        DatasetRef::parse(text)
    }
}

impl From<Uuid> for DatasetRef {
    fn from(id: Uuid) -> Self {
        DatasetRef::Id(id)
    }
}

/// Checks that `name` is a simple identifier: 1 to [`MAX_DATASET_NAME_LEN`]
/// ASCII letters, digits, `_` or `-`, starting with a letter, and not
/// parseable as a UUID.
///
/// ```
/// # use mutant_core::model::validate_dataset_name;
/// assert!(validate_dataset_name("train-2026_v2").is_ok());
/// assert!(validate_dataset_name("drop table; --").is_err());
/// assert!(validate_dataset_name("").is_err());
/// ```
pub fn validate_dataset_name(name: &str) -> Result<()> {
    let invalid = || Error::InvalidDatasetName {
        name: name.to_owned(),
        max_len: MAX_DATASET_NAME_LEN,
    };
    let starts_with_letter = name.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
    let simple = name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
    if !starts_with_letter
        || !simple
        || name.len() > MAX_DATASET_NAME_LEN
        || Uuid::parse_str(name).is_ok()
    {
        return Err(invalid());
    }
    Ok(())
}

/// Checks that a dimension is between 1 and [`MAX_DIMENSION`].
pub fn validate_dimension(dimension: usize) -> Result<()> {
    if dimension == 0 || dimension > MAX_DIMENSION {
        return Err(Error::InvalidDimension {
            dimension,
            max: MAX_DIMENSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_shaped_like_uuids_are_rejected() {
        assert!(validate_dataset_name("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").is_err());
        assert!(validate_dataset_name("a0eebc999c0b4ef8bb6d6bb9bd380a11").is_err());
    }

    #[test]
    fn names_must_start_with_a_letter_and_fit() {
        assert!(validate_dataset_name("1abc").is_err());
        assert!(validate_dataset_name("_abc").is_err());
        assert!(validate_dataset_name(&"a".repeat(MAX_DATASET_NAME_LEN)).is_ok());
        assert!(validate_dataset_name(&"a".repeat(MAX_DATASET_NAME_LEN + 1)).is_err());
        assert!(validate_dataset_name("caf\u{e9}").is_err());
    }

    #[test]
    fn dimension_bounds() {
        assert!(validate_dimension(0).is_err());
        assert!(validate_dimension(1).is_ok());
        assert!(validate_dimension(MAX_DIMENSION + 1).is_err());
    }
}
