//! The binary frame: record batches, kNN queries and kNN results as raw
//! little-endian f32 vectors and length-prefixed strings, so vectors never
//! round-trip through text. Media type [`FRAME_CONTENT_TYPE`].
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! frame    = magic "MUTF" | version u16 (=1) | kind u16 | body
//! string   = len u32 | UTF-8 bytes
//! optional = present u8 (0 or 1) | string if present
//! vector   = dimension u32 | dimension x f32
//! fields   = flags u8 (1 label, 2 prediction, 4 uri, 8 metadata JSON, 16 vector)
//!            | the flagged strings in that order | vector if flagged
//! kind 1, record batch = n u32 | n x (id string | vector | fields without the vector flag)
//! kind 2, kNN query    = k u32 | include flags u8 | filter optional (JSON) | n u32 | dimension u32 | n x dimension x f32
//! kind 3, kNN result   = n_queries u32 | n_queries x (n u32 | n x (id string | distance f32 | fields))
//! kind 4, points       = see [`points`](super::points)
//! ```
//!
//! Decoders check every length against the bytes left and the limits below,
//! so arbitrary bytes give [`Error::MalformedFrame`], never a panic.

use serde_json::Value;

use super::wire::{IncludeSet, KnnQuery, KnnRequest, KnnResponse, Neighbour, WireRecordFields};
use crate::ingest::MAX_BATCH_RECORDS;
use crate::model::{MAX_DIMENSION, MetadataValue, Record, RecordMetadata};
use crate::{Error, Result};

/// The media type of a frame, for `Content-Type` and `Accept`.
pub const FRAME_CONTENT_TYPE: &str = "application/vnd.mutant.frame";

const MAGIC: &[u8; 4] = b"MUTF";
const VERSION: u16 = 1;
const KIND_RECORD_BATCH: u16 = 1;
const KIND_KNN_QUERY: u16 = 2;
const KIND_KNN_RESULT: u16 = 3;
/// Kind 4, the points of a map (see `points`).
pub(super) const KIND_POINTS: u16 = 4;

const FLAG_LABEL: u8 = 1;
const FLAG_PREDICTION: u8 = 2;
const FLAG_URI: u8 = 4;
const FLAG_METADATA: u8 = 8;
const FLAG_VECTOR: u8 = 16;

pub(super) fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedFrame {
        reason: reason.into(),
    }
}

/// Builds a frame: the header, then the body's pieces in order.
pub(super) struct Writer(Vec<u8>);

impl Writer {
    pub(super) fn new(kind: u16) -> Self {
        let mut bytes = Vec::with_capacity(1024);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&kind.to_le_bytes());
        Writer(bytes)
    }

    pub(super) fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    pub(super) fn u32(&mut self, value: usize) {
        self.0
            .extend_from_slice(&u32::try_from(value).unwrap_or(u32::MAX).to_le_bytes());
    }

    pub(super) fn string(&mut self, text: &str) {
        self.u32(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }

    pub(super) fn floats(&mut self, values: &[f32]) {
        self.0.reserve(values.len() * 4);
        for value in values {
            self.0.extend_from_slice(&value.to_le_bytes());
        }
    }

    fn vector(&mut self, values: &[f32]) {
        self.u32(values.len());
        self.floats(values);
    }

    fn fields(&mut self, fields: &WireRecordFields) {
        let flag = |present: bool, bit: u8| if present { bit } else { 0 };
        self.u8(flag(fields.label.is_some(), FLAG_LABEL)
            | flag(fields.prediction.is_some(), FLAG_PREDICTION)
            | flag(fields.uri.is_some(), FLAG_URI)
            | flag(fields.metadata.is_some(), FLAG_METADATA)
            | flag(fields.vector.is_some(), FLAG_VECTOR));
        for text in [&fields.label, &fields.prediction, &fields.uri]
            .into_iter()
            .flatten()
        {
            self.string(text);
        }
        if let Some(metadata) = &fields.metadata {
            self.string(&Value::Object(metadata.clone()).to_string());
        }
        if let Some(vector) = &fields.vector {
            self.vector(vector);
        }
    }
}

/// Reads a frame, checking every length against the bytes left.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], expected_kind: u16) -> Result<Self> {
        let mut reader = Reader { bytes, position: 0 };
        if reader.take(4)? != MAGIC {
            return Err(malformed(
                "the body does not start with the frame magic \"MUTF\"",
            ));
        }
        let version = reader.u16()?;
        if version != VERSION {
            return Err(malformed(format!(
                "frame version {version} is not supported; this server speaks version {VERSION}"
            )));
        }
        let kind = reader.u16()?;
        if kind != expected_kind {
            return Err(malformed(format!(
                "frame kind {kind} where kind {expected_kind} was expected"
            )));
        }
        Ok(reader)
    }

    pub(super) fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| {
            malformed(format!(
                "the frame ends early: {len} more bytes expected at offset {}",
                self.position
            ))
        })?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let bytes = self.take(2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    pub(super) fn u32(&mut self) -> Result<usize> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    }

    fn f32(&mut self) -> Result<f32> {
        let bytes = self.take(4)?;
        Ok(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(super) fn string(&mut self) -> Result<String> {
        let len = self.u32()?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| malformed("a string is not valid UTF-8"))
    }

    pub(super) fn floats(&mut self, n_values: usize) -> Result<Vec<f32>> {
        let bytes = self.take(
            n_values
                .checked_mul(4)
                .ok_or_else(|| malformed("a vector is too long"))?,
        )?;
        Ok(bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
            .collect())
    }

    fn vector(&mut self) -> Result<Vec<f32>> {
        let dimension = self.u32()?;
        if dimension > MAX_DIMENSION {
            return Err(malformed(format!(
                "a vector of {dimension} values is over the limit of {MAX_DIMENSION}"
            )));
        }
        self.floats(dimension)
    }

    fn count(&mut self, what: &str, max: usize) -> Result<usize> {
        let count = self.u32()?;
        if count > max {
            return Err(malformed(format!(
                "{count} {what} is over the limit of {max}"
            )));
        }
        Ok(count)
    }

    fn fields(&mut self) -> Result<WireRecordFields> {
        let flags = self.u8()?;
        if flags & !(FLAG_LABEL | FLAG_PREDICTION | FLAG_URI | FLAG_METADATA | FLAG_VECTOR) != 0 {
            return Err(malformed(format!("unknown field flags {flags:#04x}")));
        }
        let read_if = |bit: u8, reader: &mut Self| {
            if flags & bit != 0 {
                reader.string().map(Some)
            } else {
                Ok(None)
            }
        };
        let label = read_if(FLAG_LABEL, self)?;
        let prediction = read_if(FLAG_PREDICTION, self)?;
        let uri = read_if(FLAG_URI, self)?;
        let metadata = match read_if(FLAG_METADATA, self)? {
            Some(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(object)) => Some(object),
                Ok(_) | Err(_) => return Err(malformed("record metadata is not a JSON object")),
            },
            None => None,
        };
        let vector = if flags & FLAG_VECTOR != 0 {
            Some(self.vector()?)
        } else {
            None
        };
        Ok(WireRecordFields {
            vector,
            label,
            prediction,
            uri,
            metadata,
        })
    }

    pub(super) fn finish(self) -> Result<()> {
        if self.position != self.bytes.len() {
            return Err(malformed(format!(
                "{} unexpected bytes after the frame",
                self.bytes.len() - self.position
            )));
        }
        Ok(())
    }
}

/// Encodes a batch of records for `POST /v1/datasets/{ds}/records`.
///
/// ```
/// use mutant_core::api::frame::{decode_record_batch, encode_record_batch};
/// use mutant_core::model::Record;
/// let batch = vec![Record::new("a", vec![0.5, -1.0]).with_label("cat")];
/// assert_eq!(decode_record_batch(&encode_record_batch(&batch))?, batch);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn encode_record_batch(records: &[Record]) -> Vec<u8> {
    let mut writer = Writer::new(KIND_RECORD_BATCH);
    writer.u32(records.len());
    for record in records {
        writer.string(&record.id);
        writer.vector(&record.vector);
        writer.fields(&WireRecordFields {
            vector: None,
            label: record.label.clone(),
            prediction: record.prediction.clone(),
            uri: record.uri.clone(),
            metadata: (!record.metadata.is_empty()).then(|| record.metadata.to_json()),
        });
    }
    writer.0
}

/// Bytes of a record-batch frame before its records: magic, version, kind,
/// record count.
pub const RECORD_BATCH_HEADER_BYTES: usize = 12;

/// The bytes `record` takes in a record-batch frame
/// ([`encode_record_batch`]): exact but for the metadata JSON, which is
/// estimated (from above, for short values) without serialising it. A
/// writer sizes its batches with it.
pub fn record_frame_bytes(record: &Record) -> usize {
    let optional_string = |text: &Option<String>| text.as_ref().map_or(0, |text| 4 + text.len());
    let metadata = if record.metadata.is_empty() {
        0
    } else {
        // `{"key":value,...}`: quotes, colon and comma around each key.
        4 + 2
            + record
                .metadata
                .iter()
                .map(|(key, value)| {
                    key.len()
                        + 4
                        + match value {
                            MetadataValue::String(text) => text.len() + 2,
                            MetadataValue::Number(_) => 24,
                            MetadataValue::Bool(_) => 5,
                        }
                })
                .sum::<usize>()
    };
    (4 + record.id.len())
        + (4 + 4 * record.vector.len())
        + 1
        + optional_string(&record.label)
        + optional_string(&record.prediction)
        + optional_string(&record.uri)
        + metadata
}

/// Decodes a record batch frame. Records are validated later, by ingest.
pub fn decode_record_batch(bytes: &[u8]) -> Result<Vec<Record>> {
    let mut reader = Reader::new(bytes, KIND_RECORD_BATCH)?;
    let n_records = reader.u32()?;
    if n_records > MAX_BATCH_RECORDS {
        // The same answer as the JSON form of an oversized batch.
        return Err(Error::BatchTooLarge {
            n_records,
            max: MAX_BATCH_RECORDS,
        });
    }
    let mut records = Vec::with_capacity(n_records.min(bytes.len() / 8));
    for _ in 0..n_records {
        let id = reader.string()?;
        let vector = reader.vector()?;
        let fields = reader.fields()?;
        if fields.vector.is_some() {
            return Err(malformed(
                "a record batch carries the vector before the fields, not as a field",
            ));
        }
        let metadata = match &fields.metadata {
            Some(object) => RecordMetadata::from_json(object)?,
            None => RecordMetadata::new(),
        };
        records.push(Record {
            id,
            vector,
            label: fields.label,
            prediction: fields.prediction,
            uri: fields.uri,
            metadata,
        });
    }
    reader.finish()?;
    Ok(records)
}

fn include_flags(include: &IncludeSet) -> u8 {
    let flag = |present: bool, bit: u8| if present { bit } else { 0 };
    flag(include.label, FLAG_LABEL)
        | flag(include.prediction, FLAG_PREDICTION)
        | flag(include.uri, FLAG_URI)
        | flag(include.metadata, FLAG_METADATA)
        | flag(include.vector, FLAG_VECTOR)
}

/// Encodes a kNN request; every query must have the same length.
pub fn encode_knn_query(request: &KnnRequest) -> Vec<u8> {
    let mut writer = Writer::new(KIND_KNN_QUERY);
    writer.u32(request.k);
    writer.u8(include_flags(&IncludeSet::from_list(
        request.include.as_deref(),
        IncludeSet::default(),
    )));
    match &request.filter {
        Some(filter) => {
            writer.u8(1);
            writer.string(&filter.to_string());
        }
        None => writer.u8(0),
    }
    writer.u32(request.queries.len());
    writer.u32(request.queries.first().map_or(0, Vec::len));
    for query in &request.queries {
        writer.floats(query);
    }
    writer.0
}

/// Decodes a kNN request frame: the queries into one contiguous matrix,
/// the fields to return as flags.
pub fn decode_knn_query(bytes: &[u8]) -> Result<KnnQuery> {
    let mut reader = Reader::new(bytes, KIND_KNN_QUERY)?;
    let k = reader.u32()?;
    let flags = reader.u8()?;
    let filter = match reader.u8()? {
        0 => None,
        1 => Some(
            serde_json::from_str::<Value>(&reader.string()?)
                .map_err(|_| malformed("the filter is not JSON"))?,
        ),
        other => {
            return Err(malformed(format!(
                "filter presence byte {other} is neither 0 nor 1"
            )));
        }
    };
    let n_queries = reader.count("queries", MAX_BATCH_RECORDS)?;
    let dimension = reader.count("dimensions", MAX_DIMENSION)?;
    // At most 100,000 x 65,536 values: no overflow on 64-bit targets.
    let values = reader.floats(n_queries * dimension)?;
    reader.finish()?;
    let mut query = KnnQuery::from_matrix(values, n_queries, dimension, k)?;
    query.filter = filter;
    query.include = IncludeSet {
        label: flags & FLAG_LABEL != 0,
        prediction: flags & FLAG_PREDICTION != 0,
        uri: flags & FLAG_URI != 0,
        metadata: flags & FLAG_METADATA != 0,
        vector: flags & FLAG_VECTOR != 0,
    };
    Ok(query)
}

/// Encodes kNN results.
pub fn encode_knn_result(response: &KnnResponse) -> Vec<u8> {
    let mut writer = Writer::new(KIND_KNN_RESULT);
    writer.u32(response.results.len());
    for neighbours in &response.results {
        writer.u32(neighbours.len());
        for neighbour in neighbours {
            writer.string(&neighbour.id);
            writer.floats(&[neighbour.distance]);
            writer.fields(&neighbour.fields);
        }
    }
    writer.0
}

/// Decodes kNN results.
pub fn decode_knn_result(bytes: &[u8]) -> Result<KnnResponse> {
    let mut reader = Reader::new(bytes, KIND_KNN_RESULT)?;
    let n_queries = reader.count("queries", MAX_BATCH_RECORDS)?;
    let mut results = Vec::with_capacity(n_queries.min(bytes.len() / 4 + 1));
    for _ in 0..n_queries {
        let n_neighbours = reader.count("neighbours", MAX_BATCH_RECORDS)?;
        let mut neighbours = Vec::with_capacity(n_neighbours.min(bytes.len() / 8 + 1));
        for _ in 0..n_neighbours {
            let id = reader.string()?;
            let distance = reader.f32()?;
            let fields = reader.fields()?;
            neighbours.push(Neighbour {
                id,
                distance,
                fields,
            });
        }
        results.push(neighbours);
    }
    reader.finish()?;
    Ok(KnnResponse { results })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn frame_sizes_are_exact_without_metadata() {
        let plain = Record::new("r1", vec![0.5; 7]);
        let full = Record::new("record-2", vec![1.0; 3])
            .with_label("cat")
            .with_prediction("dog")
            .with_uri("s3://bucket/key.jpg");
        for record in [plain, full] {
            assert_eq!(
                RECORD_BATCH_HEADER_BYTES + record_frame_bytes(&record),
                encode_record_batch(std::slice::from_ref(&record)).len()
            );
        }
    }

    #[test]
    fn metadata_sizes_are_estimated_from_above_for_short_values() {
        let record = Record::new("r", vec![1.0])
            .with_metadata("camera", "front")
            .with_metadata("exposure", 125)
            .with_metadata("night", false);
        let exact = encode_record_batch(std::slice::from_ref(&record)).len();
        let estimated = RECORD_BATCH_HEADER_BYTES + record_frame_bytes(&record);
        assert!(
            estimated >= exact && estimated < exact + 64,
            "{estimated} vs {exact}"
        );
    }

    #[test]
    fn knn_frames_round_trip() {
        let request = KnnRequest {
            queries: vec![vec![1.0, 2.0], vec![3.0, f32::NAN]],
            k: 3,
            filter: Some(serde_json::json!({"label": "cat"})),
            include: Some(vec![super::super::wire::Include::Label]),
        };
        let decoded = decode_knn_query(&encode_knn_query(&request)).unwrap();
        assert_eq!(
            (decoded.k, &decoded.filter, decoded.include),
            (
                3,
                &request.filter,
                IncludeSet {
                    label: true,
                    ..IncludeSet::default()
                }
            )
        );
        assert_eq!((decoded.n_queries(), decoded.dimension()), (2, 2));
        assert_eq!(decoded.query(0), [1.0, 2.0]);
        assert!(decoded.query(1)[1].is_nan());
        let response = KnnResponse {
            results: vec![vec![Neighbour {
                id: "a".into(),
                distance: 0.5,
                fields: WireRecordFields {
                    label: Some("cat".into()),
                    vector: Some(vec![1.0]),
                    ..WireRecordFields::default()
                },
            }]],
        };
        assert_eq!(
            decode_knn_result(&encode_knn_result(&response)).unwrap(),
            response
        );
    }

    #[test]
    fn truncated_frames_are_malformed() {
        let frame = encode_record_batch(&[Record::new("a", vec![1.0, 2.0]).with_uri("u")]);
        for cut in 0..frame.len() {
            assert!(
                matches!(
                    decode_record_batch(&frame[..cut]),
                    Err(Error::MalformedFrame { .. })
                ),
                "cut at {cut}"
            );
        }
        let mut longer = frame.clone();
        longer.push(0);
        assert!(matches!(
            decode_record_batch(&longer),
            Err(Error::MalformedFrame { .. })
        ));
    }

    /// Every decoder on `bytes`: each may refuse them, none may panic.
    fn decode_every_kind(bytes: &[u8]) {
        let _ = decode_record_batch(bytes);
        let _ = decode_knn_query(bytes);
        let _ = decode_knn_result(bytes);
    }

    /// A valid frame of each kind, every field present.
    fn sample_frames() -> [Vec<u8>; 3] {
        let fields = WireRecordFields {
            label: Some("cat".into()),
            prediction: Some("dog".into()),
            uri: Some("s3://b/k".into()),
            metadata: Some(serde_json::Map::from_iter([("n".to_owned(), 1.into())])),
            vector: Some(vec![1.0, 2.0]),
        };
        [
            encode_record_batch(&[
                Record::new("a", vec![1.0, 2.0])
                    .with_label("cat")
                    .with_uri("u"),
                Record::new("b", vec![3.0, 4.0]).with_prediction("dog"),
            ]),
            encode_knn_query(&KnnRequest {
                queries: vec![vec![1.0, 2.0], vec![3.0, 4.0]],
                k: 3,
                filter: Some(serde_json::json!({"label": {"$in": ["cat", "dog"]}})),
                include: Some(vec![super::super::wire::Include::Label]),
            }),
            encode_knn_result(&KnnResponse {
                results: vec![vec![
                    Neighbour {
                        id: "a".into(),
                        distance: 0.5,
                        fields: fields.clone(),
                    },
                    Neighbour {
                        id: "b".into(),
                        distance: 0.7,
                        fields,
                    },
                ]],
            }),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            decode_every_kind(&bytes);
            // Past a valid header of each kind, so every body decoder runs.
            for kind in [KIND_RECORD_BATCH, KIND_KNN_QUERY, KIND_KNN_RESULT] {
                let mut framed = Writer::new(kind).0;
                framed.extend_from_slice(&bytes);
                decode_every_kind(&framed);
            }
        }

        /// Valid frames with a few bytes changed and the end cut anywhere
        /// reach every branch of the body decoders.
        #[test]
        fn corrupted_frames_never_panic(
            kind in 0usize..3,
            edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut frame = sample_frames()[kind].clone();
            for (at, byte) in edits {
                let at = at.index(frame.len());
                frame[at] = byte;
            }
            frame.truncate(cut.index(frame.len() + 1));
            decode_every_kind(&frame);
        }
    }
}
