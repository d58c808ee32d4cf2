//! Frame kind 4, the points of a map: what the web page draws, in one binary
//! answer of `GET /v1/analyses/{id}/points`: each record's id, plot
//! coordinates (for a projection), score and verdict (for a scored
//! analysis), and label and prediction, as columns.
//!
//! ```text
//! header           "MUTF" | version u16 (=1) | kind u16 (=4)
//! n_points         u32
//! n_components     u32 (0: no coordinates, 2 or 3)
//! coordinates      n_points x n_components x f32, point after point
//! scores           n_points x f32 (NaN: the row has none)
//! labels           n_points x u32, codes into the class names (0xFFFFFFFF: none)
//! predictions      n_points x u32, likewise
//! flagged          n_points x u8 (0: no, 1: yes, 2: the row has no verdict)
//! n_classes        u32
//! class names      n_classes x string (u32 length | UTF-8)
//! ids              n_points x string
//! ```
//!
//! The fixed-width columns come first and the header and counts take 16
//! bytes, so coordinates, scores and codes start at multiples of 4: a
//! browser reads them as `Float32Array` / `Uint32Array` views without a copy.

use super::frame::{KIND_POINTS, Reader, Writer, malformed};
use crate::Result;

/// A label or prediction code meaning "none".
pub const NO_CLASS: u32 = u32::MAX;

/// The columns of a points frame, one entry per point.
///
/// ```
/// use mutant_core::api::points::{decode_points, encode_points, Points};
/// let points = Points {
///     n_components: 2,
///     coordinates: vec![0.5, -1.0],
///     scores: vec![0.9],
///     labels: vec![Some(0)],
///     predictions: vec![None],
///     flagged: vec![Some(true)],
///     classes: vec!["cat".into()],
///     ids: vec!["a".into()],
/// };
/// assert_eq!(decode_points(&encode_points(&points))?, points);
/// # Ok::<(), mutant_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Points {
    /// 0 (no coordinates), 2 or 3.
    pub n_components: usize,
    /// `ids.len() x n_components`, row-major.
    pub coordinates: Vec<f32>,
    /// One per point; NaN when the row has no score.
    pub scores: Vec<f32>,
    /// Codes into `classes`.
    pub labels: Vec<Option<u32>>,
    /// Codes into `classes`.
    pub predictions: Vec<Option<u32>>,
    /// The analysis's verdict on the point, when it gives one.
    pub flagged: Vec<Option<bool>>,
    /// Class names, indexed by code.
    pub classes: Vec<String>,
    /// Record ids.
    pub ids: Vec<String>,
}

/// Encodes `points` as a kind-4 frame. Every column must have one entry per
/// id (coordinates `n_components` per id); the server builds them so.
pub fn encode_points(points: &Points) -> Vec<u8> {
    let mut writer = Writer::new(KIND_POINTS);
    writer.u32(points.ids.len());
    writer.u32(points.n_components);
    writer.floats(&points.coordinates);
    writer.floats(&points.scores);
    for codes in [&points.labels, &points.predictions] {
        for code in codes {
            writer.u32(code.unwrap_or(NO_CLASS) as usize);
        }
    }
    for verdict in &points.flagged {
        writer.u8(match verdict {
            Some(false) => 0,
            Some(true) => 1,
            None => 2,
        });
    }
    writer.u32(points.classes.len());
    for name in &points.classes {
        writer.string(name);
    }
    for id in &points.ids {
        writer.string(id);
    }
    writer.into_bytes()
}

/// Decodes a kind-4 frame; any byte sequence gives the points or
/// [`Error::MalformedFrame`](crate::Error::MalformedFrame), never a panic.
pub fn decode_points(bytes: &[u8]) -> Result<Points> {
    let mut reader = Reader::new(bytes, KIND_POINTS)?;
    let n_points = reader.u32()?;
    let n_components = reader.u32()?;
    if ![0, 2, 3].contains(&n_components) {
        return Err(malformed(format!(
            "a points frame has 0, 2 or 3 components, not {n_components}"
        )));
    }
    // Every point takes at least 17 bytes; refuse counts the frame cannot hold
    // before allocating for them.
    if n_points.saturating_mul(17) > bytes.len() {
        return Err(malformed(format!(
            "{n_points} points cannot fit in a frame of {} bytes",
            bytes.len()
        )));
    }
    let coordinates = reader.floats(n_points * n_components)?;
    let scores = reader.floats(n_points)?;
    let read_codes = |reader: &mut Reader<'_>| -> Result<Vec<Option<u32>>> {
        (0..n_points)
            .map(|_| {
                let code = reader.u32()? as u32;
                Ok((code != NO_CLASS).then_some(code))
            })
            .collect()
    };
    let labels = read_codes(&mut reader)?;
    let predictions = read_codes(&mut reader)?;
    let flagged = (0..n_points)
        .map(|_| match reader.u8()? {
            0 => Ok(Some(false)),
            1 => Ok(Some(true)),
            2 => Ok(None),
            other => Err(malformed(format!(
                "a verdict byte is 0, 1 or 2, not {other}"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let n_classes = reader.u32()?;
    if n_classes.saturating_mul(4) > bytes.len() {
        return Err(malformed(format!(
            "{n_classes} class names cannot fit in the frame"
        )));
    }
    let classes = (0..n_classes)
        .map(|_| reader.string())
        .collect::<Result<Vec<_>>>()?;
    if let Some(code) = labels
        .iter()
        .chain(&predictions)
        .flatten()
        .find(|&&code| code as usize >= n_classes)
    {
        return Err(malformed(format!(
            "class code {code} is past the {n_classes} class names"
        )));
    }
    let ids = (0..n_points)
        .map(|_| reader.string())
        .collect::<Result<Vec<_>>>()?;
    reader.finish()?;
    Ok(Points {
        n_components,
        coordinates,
        scores,
        labels,
        predictions,
        flagged,
        classes,
        ids,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> Points {
        Points {
            n_components: 2,
            coordinates: vec![1.0, -2.0, 0.5, 0.25],
            scores: vec![0.75, f32::NAN],
            labels: vec![Some(0), None],
            predictions: vec![Some(1), Some(0)],
            flagged: vec![Some(true), None],
            classes: vec!["cat".into(), "dog".into()],
            ids: vec!["a".into(), "bb".into()],
        }
    }

    /// The worked example of PROTOCOL.md, byte by byte.
    #[test]
    fn the_documented_example_decodes() {
        let hex = "4d55544601000400\
                   02000000 02000000\
                   0000803f 000000c0 0000003f 0000803e\
                   0000403f 0000c07f\
                   00000000 ffffffff\
                   01000000 00000000\
                   01 02\
                   02000000 03000000 636174 03000000 646f67\
                   01000000 61 02000000 6262";
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .collect::<String>()
            .as_bytes()
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect();
        assert_eq!(bytes.len(), 87);
        let decoded = decode_points(&bytes).unwrap();
        let expected = sample();
        assert_eq!(decoded.ids, expected.ids);
        assert_eq!(decoded.coordinates, expected.coordinates);
        assert_eq!(decoded.scores[0], 0.75);
        assert!(decoded.scores[1].is_nan());
        assert_eq!(decoded.labels, expected.labels);
        assert_eq!(decoded.predictions, expected.predictions);
        assert_eq!(decoded.flagged, expected.flagged);
        assert_eq!(decoded.classes, expected.classes);
        assert_eq!(encode_points(&expected), bytes);
    }

    #[test]
    fn columns_start_aligned_and_bad_frames_are_malformed() {
        let bytes = encode_points(&sample());
        // Coordinates at 16, scores at 16 + 4 * 4, codes after them.
        assert_eq!(&bytes[16..20], &1.0f32.to_le_bytes());
        assert_eq!(&bytes[32..36], &0.75f32.to_le_bytes());
        let mut bad_component = bytes.clone();
        bad_component[12] = 4;
        assert!(decode_points(&bad_component).is_err());
        let mut bad_code = bytes.clone();
        bad_code[40] = 7; // the first label code, past the two classes
        assert!(decode_points(&bad_code).is_err());
        let mut bad_verdict = bytes.clone();
        bad_verdict[56] = 3;
        assert!(decode_points(&bad_verdict).is_err());
        for len in 0..bytes.len() {
            assert!(decode_points(&bytes[..len]).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_points(&trailing).is_err());
        let empty = Points::default();
        assert_eq!(decode_points(&encode_points(&empty)).unwrap(), empty);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut framed = b"MUTF\x01\x00\x04\x00".to_vec();
            framed.extend(&bytes);
            let _ = decode_points(&framed);
        }
    }
}
