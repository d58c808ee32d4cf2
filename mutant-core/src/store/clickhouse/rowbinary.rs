//! ClickHouse's RowBinary format, by hand for the two hot paths: encoding
//! record rows for INSERT (no per-row allocation) and decoding a streamed load
//! straight into a contiguous matrix.

use uuid::Uuid;

use super::schema::{META_KIND_BOOL, META_KIND_NUMBER, META_KIND_STRING};
use crate::model::{MetadataValue, Record, RecordMetadata};

/// Appends one `records` row in RowBinary, in the column order of
/// [`super::schema::RECORD_COLUMNS`]; a tombstone has no record. The
/// version is left 0: returns where it sits in `buffer`, for group commit to
/// stamp once the row's INSERT starts.
pub(super) fn encode_record_row(
    buffer: &mut Vec<u8>,
    dataset: Uuid,
    id: &str,
    record: Option<&Record>,
) -> usize {
    let (high, low) = dataset.as_u64_pair();
    buffer.extend_from_slice(&high.to_le_bytes());
    buffer.extend_from_slice(&low.to_le_bytes());
    write_str(buffer, id);
    let version_offset = buffer.len();
    buffer.extend_from_slice(&0u64.to_le_bytes());
    match record {
        Some(record) => {
            buffer.push(0);
            write_varint(buffer, record.vector.len() as u64);
            buffer.reserve(record.vector.len() * 4);
            for value in &record.vector {
                buffer.extend_from_slice(&value.to_le_bytes());
            }
            write_nullable_str(buffer, record.label.as_deref());
            write_nullable_str(buffer, record.prediction.as_deref());
            write_nullable_str(buffer, record.uri.as_deref());
            if record.metadata.is_empty() {
                write_str(buffer, "");
            } else {
                write_str(buffer, &record.metadata.to_json_string());
            }
            write_typed_metadata(buffer, &record.metadata);
        }
        None => {
            buffer.push(1);
            write_varint(buffer, 0);
            for _ in 0..3 {
                write_nullable_str(buffer, None);
            }
            write_str(buffer, "");
            write_typed_metadata(buffer, &RecordMetadata::new());
        }
    }
    version_offset
}

/// The `meta_keys`, `meta_kinds`, `meta_strings`, `meta_numbers` arrays.
fn write_typed_metadata(buffer: &mut Vec<u8>, metadata: &RecordMetadata) {
    let n_keys = metadata.iter().count() as u64;
    write_varint(buffer, n_keys);
    for (key, _) in metadata.iter() {
        write_str(buffer, key);
    }
    write_varint(buffer, n_keys);
    for (_, value) in metadata.iter() {
        buffer.push(match value {
            MetadataValue::String(_) => META_KIND_STRING,
            MetadataValue::Number(_) => META_KIND_NUMBER,
            MetadataValue::Bool(_) => META_KIND_BOOL,
        });
    }
    write_varint(buffer, n_keys);
    for (_, value) in metadata.iter() {
        write_str(
            buffer,
            if let MetadataValue::String(text) = value {
                text
            } else {
                ""
            },
        );
    }
    write_varint(buffer, n_keys);
    for (_, value) in metadata.iter() {
        let number = match value {
            MetadataValue::String(_) => 0.0,
            MetadataValue::Number(number) => number.as_f64().unwrap_or(0.0),
            MetadataValue::Bool(flag) => f64::from(u8::from(*flag)),
        };
        buffer.extend_from_slice(&number.to_le_bytes());
    }
}

fn write_varint(buffer: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            buffer.push(byte);
            return;
        }
        buffer.push(byte | 0x80);
    }
}

fn write_str(buffer: &mut Vec<u8>, text: &str) {
    write_varint(buffer, text.len() as u64);
    buffer.extend_from_slice(text.as_bytes());
}

fn write_nullable_str(buffer: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => {
            buffer.push(0);
            write_str(buffer, text);
        }
        None => buffer.push(1),
    }
}

/// Reads RowBinary values from a buffer that may end in the middle of a row:
/// every read returns `None` when the buffer runs out, and the caller retries
/// the whole row once more bytes arrived.
pub(super) struct RowReader<'a> {
    buffer: &'a [u8],
    position: usize,
    /// How many more bytes the read that ran out needed, at least.
    missing: usize,
}

impl<'a> RowReader<'a> {
    pub(super) fn new(buffer: &'a [u8]) -> Self {
        RowReader {
            buffer,
            position: 0,
            missing: 0,
        }
    }

    /// Bytes consumed by complete reads so far.
    pub(super) fn position(&self) -> usize {
        self.position
    }

    /// After a read returned `None` because the buffer ran out: how many
    /// bytes it lacked (the reads after it may need more).
    pub(super) fn missing(&self) -> usize {
        self.missing
    }

    pub(super) fn is_at_end(&self) -> bool {
        self.position >= self.buffer.len()
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let Some(end) = self.position.checked_add(len) else {
            self.missing = usize::MAX;
            return None;
        };
        let Some(bytes) = self.buffer.get(self.position..end) else {
            self.missing = end - self.buffer.len();
            return None;
        };
        self.position = end;
        Some(bytes)
    }

    pub(super) fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        Some(value)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        let bytes = self.take(8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    /// A string's raw bytes (ClickHouse strings are bytes; ours are UTF-8).
    pub(super) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len)
    }

    pub(super) fn nullable_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        match self.u8()? {
            0 => Some(Some(self.bytes()?)),
            _ => Some(None),
        }
    }

    /// An `Array(Float32)` as its raw little-endian bytes.
    pub(super) fn f32_array_bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        self.take(len.saturating_mul(4))
    }
}

/// Decodes little-endian f32 bytes into `destination` (same length / 4).
pub(super) fn decode_f32s(bytes: &[u8], destination: &mut [f32]) {
    let (values, _) = bytes.as_chunks::<4>();
    for (value, chunk) in destination.iter_mut().zip(values) {
        *value = f32::from_le_bytes(*chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_back_and_partial_rows_ask_for_more() {
        let record = Record::new("é1", vec![1.5, -2.0])
            .with_label("cat")
            .with_metadata("k", true);
        let mut buffer = Vec::new();
        let version_offset = encode_record_row(&mut buffer, Uuid::nil(), &record.id, Some(&record));
        buffer[version_offset..version_offset + 8].copy_from_slice(&42u64.to_le_bytes());
        let read = |bytes: &[u8]| {
            let mut reader = RowReader::new(bytes);
            reader.take(16)?;
            let id = reader.bytes()?.to_vec();
            let version = reader.u64()?;
            let deleted = reader.u8()?;
            let vector = reader.f32_array_bytes()?.to_vec();
            let label = reader.nullable_bytes()?.map(<[u8]>::to_vec);
            let prediction = reader.nullable_bytes()?;
            reader.nullable_bytes()?;
            let metadata = reader.bytes()?.to_vec();
            let n_keys = reader.varint()?;
            let key = reader.bytes()?.to_vec();
            let kinds = (reader.varint()?, reader.u8()?);
            let strings = (reader.varint()?, reader.bytes()?.len());
            let numbers = (reader.varint()?, reader.u64()?);
            assert_eq!(
                (n_keys, key.as_slice(), kinds, strings, numbers),
                (
                    1,
                    &b"k"[..],
                    (1, META_KIND_BOOL),
                    (1, 0),
                    (1, 1f64.to_bits())
                )
            );
            Some((
                id,
                version,
                deleted,
                vector,
                label,
                prediction.is_none(),
                metadata,
                reader.position(),
            ))
        };
        let (id, version, deleted, vector, label, no_prediction, metadata, used) =
            read(&buffer).unwrap();
        assert_eq!(id, "é1".as_bytes());
        assert_eq!((version, deleted, used), (42, 0, buffer.len()));
        let mut floats = [0.0f32; 2];
        decode_f32s(&vector, &mut floats);
        assert_eq!(floats, [1.5, -2.0]);
        assert_eq!(label.as_deref(), Some(&b"cat"[..]));
        assert!(no_prediction);
        assert_eq!(metadata, br#"{"k":true}"#);
        for cut in 0..buffer.len() {
            assert!(
                read(&buffer[..cut]).is_none(),
                "a row cut at {cut} bytes must ask for more"
            );
        }
        // Adding what each failed read says it lacks completes the row.
        let mut cut = 0;
        loop {
            let mut reader = RowReader::new(&buffer[..cut]);
            if reader.take(16).is_some()
                && reader.bytes().is_some()
                && reader.u64().is_some()
                && reader.u8().is_some()
                && reader.f32_array_bytes().is_some()
            {
                break;
            }
            assert!(reader.missing() >= 1 && cut + reader.missing() <= buffer.len());
            cut += reader.missing();
        }
        assert_eq!(cut, version_offset + 8 + 1 + 1 + 8);
    }

    #[test]
    fn varints_round_trip() {
        for value in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut buffer = Vec::new();
            write_varint(&mut buffer, value);
            assert_eq!(RowReader::new(&buffer).varint(), Some(value));
        }
    }
}
