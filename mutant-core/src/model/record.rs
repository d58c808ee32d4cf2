//! Records: one embedding with its id, optional label, prediction, uri and a
//! flat metadata object.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use crate::{Error, Result};

/// A metadata value: records carry flat objects of strings, numbers and booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// A string.
    String(String),
    /// A JSON number (always finite).
    Number(Number),
    /// A boolean.
    Bool(bool),
}

impl MetadataValue {
    /// Converts to a JSON value.
    pub fn to_json(&self) -> Value {
        match self {
            MetadataValue::String(text) => Value::String(text.clone()),
            MetadataValue::Number(number) => Value::Number(number.clone()),
            MetadataValue::Bool(flag) => Value::Bool(*flag),
        }
    }
}

impl From<&str> for MetadataValue {
    fn from(text: &str) -> Self {
        MetadataValue::String(text.to_owned())
    }
}

impl From<String> for MetadataValue {
    fn from(text: String) -> Self {
        MetadataValue::String(text)
    }
}

impl From<bool> for MetadataValue {
    fn from(flag: bool) -> Self {
        MetadataValue::Bool(flag)
    }
}

impl From<i64> for MetadataValue {
    fn from(number: i64) -> Self {
        MetadataValue::Number(number.into())
    }
}

/// A record's metadata: a flat map from key to scalar, ordered by key so that
/// its JSON form is canonical.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordMetadata(BTreeMap<String, MetadataValue>);

impl RecordMetadata {
    /// The longest metadata key accepted, in bytes.
    pub const MAX_KEY_LEN: usize = 128;

    /// An empty metadata object.
    pub fn new() -> Self {
        RecordMetadata::default()
    }

    /// Reads a flat JSON object of strings, numbers and booleans; keys are 1 to
    /// [`Self::MAX_KEY_LEN`] ASCII letters, digits, `_`, `-` or `.`.
    ///
    /// ```
    /// # use mutant_core::model::RecordMetadata;
    /// # use serde_json::json;
    /// let metadata = RecordMetadata::from_json(json!({"camera": "front", "score": 0.5}).as_object().unwrap())?;
    /// assert_eq!(metadata.to_json_string(), r#"{"camera":"front","score":0.5}"#);
    /// assert!(RecordMetadata::from_json(json!({"nested": {"a": 1}}).as_object().unwrap()).is_err());
    /// # Ok::<(), mutant_core::Error>(())
    /// ```
    pub fn from_json(object: &Map<String, Value>) -> Result<Self> {
        let mut entries = BTreeMap::new();
        for (key, value) in object {
            validate_metadata_key(key)?;
            let scalar = match value {
                Value::String(text) => MetadataValue::String(text.clone()),
                Value::Number(number) => MetadataValue::Number(number.clone()),
                Value::Bool(flag) => MetadataValue::Bool(*flag),
                Value::Null | Value::Array(_) | Value::Object(_) => {
                    return Err(Error::InvalidMetadata {
                        reason: format!(
                            "the value of {key:?} is not a string, number or boolean; record metadata is a flat object of scalars"
                        ),
                    });
                }
            };
            entries.insert(key.clone(), scalar);
        }
        Ok(RecordMetadata(entries))
    }

    /// Parses the stored JSON text form.
    pub fn from_json_str(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Ok(RecordMetadata::new());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => RecordMetadata::from_json(&object),
            Ok(_) | Err(_) => Err(Error::InvalidMetadata {
                reason: format!("stored metadata {text:?} is not a JSON object"),
            }),
        }
    }

    /// The canonical JSON text form: keys sorted, no whitespace. Filters on
    /// metadata rely on this form.
    pub fn to_json_string(&self) -> String {
        Value::Object(self.to_json()).to_string()
    }

    /// The JSON object form.
    pub fn to_json(&self) -> Map<String, Value> {
        self.0
            .iter()
            .map(|(key, value)| (key.clone(), value.to_json()))
            .collect()
    }

    /// Sets a key; the key is checked when the record is validated.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<MetadataValue>) {
        self.0.insert(key.into(), value.into());
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.0.get(key)
    }

    /// Iterates in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.0.iter().map(|(key, value)| (key.as_str(), value))
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks every key.
    pub fn validate(&self) -> Result<()> {
        self.0.keys().try_for_each(|key| validate_metadata_key(key))
    }
}

/// Checks a metadata key: 1 to [`RecordMetadata::MAX_KEY_LEN`] ASCII letters,
/// digits, `_`, `-` or `.`.
pub(crate) fn validate_metadata_key(key: &str) -> Result<()> {
    let simple = key
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
    if key.is_empty() || key.len() > RecordMetadata::MAX_KEY_LEN || !simple {
        return Err(Error::InvalidMetadata {
            reason: format!(
                "key {key:?} is not allowed; use 1 to {} ASCII letters, digits, '_', '-' or '.'",
                RecordMetadata::MAX_KEY_LEN
            ),
        });
    }
    Ok(())
}

/// One embedding and what is known about the input it came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    /// Chosen by the client, unique within its dataset; writing an existing id replaces the record.
    pub id: String,
    /// The embedding; its length is the dataset's dimension.
    pub vector: Vec<f32>,
    /// The true class, for training data.
    pub label: Option<String>,
    /// The model's inferred class.
    pub prediction: Option<String>,
    /// Where the original input lives.
    pub uri: Option<String>,
    /// Flat scalar metadata.
    pub metadata: RecordMetadata,
}

impl Record {
    /// A record with only an id and a vector.
    pub fn new(id: impl Into<String>, vector: Vec<f32>) -> Self {
        Record {
            id: id.into(),
            vector,
            ..Record::default()
        }
    }

    /// Sets the label.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Sets the prediction.
    pub fn with_prediction(mut self, prediction: impl Into<String>) -> Self {
        self.prediction = Some(prediction.into());
        self
    }

    /// Sets the uri.
    pub fn with_uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = Some(uri.into());
        self
    }

    /// Sets one metadata key.
    pub fn with_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<MetadataValue>,
    ) -> Self {
        self.metadata.insert(key, value);
        self
    }
}
