//! HTTP plumbing shared by the routes: bodies with a size limit, content
//! types, JSON and frame answers, bearer tokens, query strings.

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use mutant_core::api::frame::FRAME_CONTENT_TYPE;
use mutant_core::api::wire::{ErrorBody, ErrorResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ServerError;
use crate::stream::ChannelBody;

/// A whole body, or one streamed as it is produced.
pub(crate) type AnswerBody = Either<Full<Bytes>, ChannelBody>;

pub(crate) type Answer = Response<AnswerBody>;

/// How a request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    Json,
    Frame,
}

/// The body format from `Content-Type`; no header means JSON.
pub(crate) fn body_format(
    request: &Request<Incoming>,
    frames_allowed: bool,
) -> Result<BodyFormat, ServerError> {
    let Some(value) = request.headers().get(CONTENT_TYPE) else {
        return Ok(BodyFormat::Json);
    };
    let media_type = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media_type.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        FRAME_CONTENT_TYPE if frames_allowed => Ok(BodyFormat::Frame),
        _ => Err(ServerError::UnsupportedMediaType {
            got: media_type,
            expected: if frames_allowed {
                "application/json or application/vnd.mutant.frame"
            } else {
                "application/json"
            },
        }),
    }
}

/// Whether the client asked for a frame answer.
pub(crate) fn wants_frame(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains(FRAME_CONTENT_TYPE))
}

/// Reads the whole body, refusing more than `limit` bytes.
pub(crate) async fn read_body(
    request: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, ServerError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ServerError::PayloadTooLarge { limit });
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ServerError::PayloadTooLarge { limit })
        }
        Err(error) => Err(ServerError::InvalidJson {
            reason: format!("the body could not be read: {error}"),
        }),
    }
}

/// Decodes a JSON body, which must be an object; an empty body reads as `{}`.
/// (serde would also read a struct from an array of its fields in order; the
/// protocol has no such form, so arrays are refused before it gets the chance.)
pub(crate) fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ServerError> {
    let body: &[u8] = match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
        None => b"{}",
        Some(b'{') => body,
        Some(_) => {
            return Err(ServerError::InvalidJson {
                reason: "the body must be a JSON object, `{...}`".to_owned(),
            });
        }
    };
    serde_json::from_slice(body).map_err(|error| ServerError::InvalidJson {
        reason: error.to_string(),
    })
}

pub(crate) fn json_answer<T: Serialize>(status: StatusCode, value: &T) -> Answer {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    with_content_type(status, body, "application/json")
}

pub(crate) fn frame_answer(body: Vec<u8>) -> Answer {
    with_content_type(StatusCode::OK, body, FRAME_CONTENT_TYPE)
}

pub(crate) fn text_answer(status: StatusCode, body: String, content_type: &'static str) -> Answer {
    with_content_type(status, body.into_bytes(), content_type)
}

pub(crate) fn empty_answer(status: StatusCode) -> Answer {
    let mut answer = Response::new(Either::Left(Full::new(Bytes::new())));
    *answer.status_mut() = status;
    answer
}

/// A 200 whose body streams from `body`.
pub(crate) fn streamed_answer(body: ChannelBody, content_type: &'static str) -> Answer {
    let mut answer = Response::new(Either::Right(body));
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

fn with_content_type(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Answer {
    let mut answer = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

pub(crate) fn error_answer(error: &ServerError) -> Answer {
    let (status, body) = error_body(error);
    json_answer(status, &body)
}

/// The status and JSON body of an error.
pub(crate) fn error_body(error: &ServerError) -> (StatusCode, ErrorResponse) {
    let (status, code, message) = error.parts();
    (
        status,
        ErrorResponse {
            error: ErrorBody {
                code: code.as_str().to_owned(),
                message,
            },
        },
    )
}

/// Checks `Authorization: Bearer <token>` in constant time.
pub(crate) fn authorized(request: &Request<Incoming>, token: &str) -> bool {
    let Some(given) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let Some(given) = given.strip_prefix("Bearer ") else {
        return false;
    };
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// Decodes `%XX` escapes and `+` (in query strings).
pub(crate) fn percent_decode(text: &str, plus_is_space: bool) -> Result<String, ServerError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let hex = bytes
                    .get(index + 1..index + 3)
                    .and_then(|pair| std::str::from_utf8(pair).ok());
                let byte = hex.and_then(|pair| u8::from_str_radix(pair, 16).ok());
                decoded.push(byte.ok_or_else(|| ServerError::InvalidQuery {
                    reason: format!("bad percent escape in {text:?}"),
                })?);
                index += 3;
            }
            b'+' if plus_is_space => {
                decoded.push(b' ');
                index += 1;
            }
            other => {
                decoded.push(other);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).map_err(|_| ServerError::InvalidQuery {
        reason: format!("{text:?} does not decode to UTF-8"),
    })
}

/// The value of `name` in a query string, decoded.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, ServerError> {
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == name {
            return percent_decode(value, true).map(Some);
        }
    }
    Ok(None)
}

/// Every `name=value` pair of a query string, decoded.
pub(crate) fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ServerError> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(name, true)?, percent_decode(value, true)?))
        })
        .collect()
}

/// A whole-number query parameter.
pub(crate) fn query_number(
    query: Option<&str>,
    name: &str,
    default: usize,
) -> Result<usize, ServerError> {
    match query_param(query, name)? {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| ServerError::InvalidQuery {
            reason: format!("{name} must be a whole number, got {text:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let query = Some("metadata=%7B%22team%22%3A%22a+b%22%7D&limit=5");
        assert_eq!(
            query_param(query, "metadata").unwrap().as_deref(),
            Some("{\"team\":\"a b\"}")
        );
        assert_eq!(
            query_pairs(query).unwrap(),
            vec![
                ("metadata".to_owned(), "{\"team\":\"a b\"}".to_owned()),
                ("limit".to_owned(), "5".to_owned())
            ]
        );
        assert_eq!(query_pairs(None).unwrap(), Vec::new());
        assert_eq!(query_number(query, "limit", 1).unwrap(), 5);
        assert_eq!(query_number(query, "offset", 7).unwrap(), 7);
        assert!(query_number(Some("limit=x"), "limit", 1).is_err());
        assert!(query_pairs(Some("include=%zz")).is_err());
        assert!(percent_decode("%zz", false).is_err());
        assert!(percent_decode("%ff", false).is_err());
    }
}
