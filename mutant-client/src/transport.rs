//! HTTP exchanges with the server: one pooled hyper connection pool, the
//! bearer token, a timeout per attempt, and retries with exponential backoff
//! on 503 answers and connection errors, for the requests safe to repeat.

use std::fmt;
use std::hash::BuildHasher;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::endpoint::BaseUrl;
use crate::{Error, Result};

/// The media type of JSON bodies.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json";

/// How failed requests are retried: on HTTP 503 (the server or its
/// ClickHouse is unavailable) and on connection errors and timeouts, with
/// exponential backoff and jitter.
///
/// Only requests that are safe to repeat are retried after they may have
/// reached the server: every read, every upsert (rows are versioned and keyed
/// by id, so a repeated batch changes nothing), deletes and updates. Starting
/// an analysis is retried only when it certainly did not start (connection
/// refused, or 503).
///
/// ```
/// use std::time::Duration;
/// use mutant_client::RetryPolicy;
///
/// let patient = RetryPolicy::default()
///     .with_max_attempts(20)
///     .with_backoff(Duration::from_millis(200), Duration::from_secs(10));
/// assert_eq!(patient.max_attempts(), 20);
/// assert_eq!(RetryPolicy::none().max_attempts(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, waiting 100 ms, then twice as long each time up to 5 s
    /// (about 20 s in all): long enough to ride out a ClickHouse restart.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries: every request is attempted once.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Attempts per request, the first included; at least 1.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// The wait before the first retry, doubled for each further retry up to
    /// `max`. Each wait is randomised between half and all of its value, so
    /// that many writers do not retry in lockstep.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Attempts per request, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait after failed attempt number `attempt` (1-based); `jitter` in
    /// 0..1 picks a point between half and all of the exponential value.
    fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self
            .initial_backoff
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// A number in 0..1 that differs from call to call; good enough for jitter.
fn jitter() -> f64 {
    let random = std::collections::hash_map::RandomState::new().hash_one(0u8);
    (random >> 11) as f64 / (1u64 << 53) as f64
}

/// Whether a request may be sent again after it may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Repeating it changes nothing: reads, upserts, deletes, updates.
    Safe,
    /// Repeating it could do it twice: retried only when it surely was not
    /// processed (connection refused, 503).
    OnlyIfUnprocessed,
}

/// A request body with its media type.
pub(crate) struct Body {
    pub(crate) content_type: &'static str,
    pub(crate) bytes: Bytes,
}

impl Body {
    /// `value` as JSON.
    pub(crate) fn json(value: &impl Serialize) -> Result<Body> {
        let bytes = serde_json::to_vec(value).map_err(|error| Error::InvalidInput {
            code: "invalid_json".to_owned(),
            message: format!("the request cannot be written as JSON: {error}"),
        })?;
        Ok(Body {
            content_type: JSON_CONTENT_TYPE,
            bytes: Bytes::from(bytes),
        })
    }
}

/// A successful answer.
pub(crate) struct Answer {
    /// The `Content-Type` header, when present and readable.
    pub(crate) content_type: Option<String>,
    /// The whole body.
    pub(crate) body: Bytes,
}

/// How one attempt failed before an answer arrived.
enum Failure {
    /// No connection: the request was certainly not processed.
    Connect(String),
    /// The connection broke after the request may have been sent.
    Broken(String),
    /// No complete answer in time.
    Timeout,
}

/// The HTTP side of a [`Client`](crate::Client): cheap to clone, shares one
/// connection pool.
#[derive(Clone)]
pub(crate) struct Transport {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    base: BaseUrl,
    /// `Bearer <token>`, or why the token cannot be a header.
    authorization: Option<Result<HeaderValue, ()>>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Duration,
}

impl fmt::Debug for Transport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Transport")
            .field("base", &self.base.as_str())
            .field("token", &self.authorization.as_ref().map(|_| "<redacted>"))
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Transport {
    /// A transport to `base` with the default retry policy and a 60 s timeout.
    pub(crate) fn new(base: BaseUrl) -> Transport {
        let mut connector = HttpConnector::new();
        // Small requests (a 100-record batch, a kNN query) must not wait for
        // Nagle's algorithm.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Transport {
            http,
            base,
            authorization: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
        }
    }

    /// The server's base URL.
    pub(crate) fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Sends `Authorization: Bearer <token>` from now on.
    pub(crate) fn set_token(&mut self, token: &str) {
        let header = HeaderValue::from_str(&format!("Bearer {token}"))
            .map(|mut value| {
                value.set_sensitive(true);
                value
            })
            .map_err(|_| ());
        self.authorization = Some(header);
    }

    /// `GET path`, decoding a JSON answer.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let answer = self
            .execute(Method::GET, path, None, None, Replay::Safe)
            .await?;
        decode_json(Method::GET, path, &answer.body)
    }

    /// `method path` with a JSON body, decoding a JSON answer.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        request: &impl Serialize,
        replay: Replay,
    ) -> Result<T> {
        let body = Body::json(request)?;
        let answer = self
            .execute(method.clone(), path, Some(body), None, replay)
            .await?;
        decode_json(method, path, &answer.body)
    }

    /// Sends a request, retrying per the policy, and returns a successful
    /// answer or the error the server or the connection gave.
    pub(crate) async fn execute(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
        accept: Option<&'static str>,
        replay: Replay,
    ) -> Result<Answer> {
        let url = self.base.join(path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self.request(&method, &url, body.as_ref(), accept)?;
            let (error, retry_after) = match self.attempt(request).await {
                Ok((status, answer)) if status.is_success() => return Ok(answer.into()),
                Ok((status, answer)) => (
                    Error::from_response(status.as_u16(), &answer.body),
                    answer.retry_after,
                ),
                Err(Failure::Connect(reason)) => (
                    Error::Transport {
                        url: url.clone(),
                        reason,
                        attempts: attempt,
                    },
                    None,
                ),
                Err(Failure::Broken(reason)) if replay == Replay::Safe => (
                    Error::Transport {
                        url: url.clone(),
                        reason,
                        attempts: attempt,
                    },
                    None,
                ),
                Err(Failure::Broken(reason)) => {
                    return Err(Error::Transport {
                        url,
                        reason: format!(
                            "{reason}; not retried, since the request may have been processed"
                        ),
                        attempts: attempt,
                    });
                }
                Err(Failure::Timeout) => {
                    let error = Error::Timeout {
                        url: url.clone(),
                        timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                        attempts: attempt,
                    };
                    if replay != Replay::Safe {
                        return Err(error);
                    }
                    (error, None)
                }
            };
            if !error.is_retryable() || attempt >= self.retry.max_attempts {
                return Err(error.with_attempts(attempt));
            }
            let backoff = self.retry.backoff(attempt, jitter());
            let wait = retry_after.map_or(backoff, |asked| {
                asked.clamp(backoff, self.retry.max_backoff.max(backoff))
            });
            tracing::warn!(
                %method,
                url = %url,
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "request failed, retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    fn request(
        &self,
        method: &Method,
        url: &str,
        body: Option<&Body>,
        accept: Option<&'static str>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(url)
            .header(
                USER_AGENT,
                concat!("mutant-client/", env!("CARGO_PKG_VERSION")),
            )
            .header(ACCEPT, accept.unwrap_or(JSON_CONTENT_TYPE));
        match &self.authorization {
            Some(Ok(header)) => builder = builder.header(AUTHORIZATION, header.clone()),
            Some(Err(())) => return Err(Error::InvalidToken),
            None => {}
        }
        let payload = match body {
            Some(body) => {
                builder = builder.header(CONTENT_TYPE, body.content_type);
                Full::new(body.bytes.clone())
            }
            None => Full::new(Bytes::new()),
        };
        builder
            .body(payload)
            .map_err(|error| Error::InvalidBaseUrl {
                url: url.to_owned(),
                reason: format!("the request URL is not valid ({error})"),
            })
    }

    async fn attempt(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, RawAnswer), Failure> {
        let exchange = async {
            let response = self.http.request(request).await.map_err(|error| {
                let reason = error_chain(&error);
                if error.is_connect() {
                    Failure::Connect(reason)
                } else {
                    Failure::Broken(reason)
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|error| Failure::Broken(error_chain(&error)))?
                .to_bytes();
            let header_text = |name| {
                parts
                    .headers
                    .get(name)
                    .and_then(|value: &HeaderValue| value.to_str().ok())
            };
            let answer = RawAnswer {
                content_type: header_text(CONTENT_TYPE).map(str::to_owned),
                retry_after: header_text(RETRY_AFTER)
                    .and_then(|text| text.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
                body,
            };
            Ok((parts.status, answer))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Timeout),
        }
    }
}

/// An answer of any status, before it is judged.
struct RawAnswer {
    content_type: Option<String>,
    retry_after: Option<Duration>,
    body: Bytes,
}

impl From<RawAnswer> for Answer {
    fn from(raw: RawAnswer) -> Answer {
        Answer {
            content_type: raw.content_type,
            body: raw.body,
        }
    }
}

/// An error and its sources, as one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Decodes the JSON answer to `method path`.
pub(crate) fn decode_json<T: DeserializeOwned>(
    method: Method,
    path: &str,
    body: &[u8],
) -> Result<T> {
    serde_json::from_slice(body).map_err(|error| Error::Decode {
        request: format!("{method} {path}"),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let policy =
            RetryPolicy::default().with_backoff(Duration::from_millis(100), Duration::from_secs(1));
        let full: Vec<_> = (1..=6)
            .map(|attempt| policy.backoff(attempt, 1.0))
            .collect();
        assert_eq!(
            full,
            [100, 200, 400, 800, 1000, 1000].map(Duration::from_millis)
        );
        assert_eq!(policy.backoff(3, 0.0), Duration::from_millis(200));
        assert_eq!(policy.backoff(u32::MAX, 1.0), Duration::from_secs(1));
        let jittered = policy.backoff(2, jitter());
        assert!(jittered >= Duration::from_millis(100) && jittered <= Duration::from_millis(200));
    }

    #[test]
    fn policies_have_at_least_one_attempt() {
        assert_eq!(
            RetryPolicy::default().with_max_attempts(0).max_attempts(),
            1
        );
        assert_eq!(RetryPolicy::none().max_attempts(), 1);
        let capped =
            RetryPolicy::none().with_backoff(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(capped.backoff(5, 1.0), Duration::from_secs(2));
    }

    #[test]
    fn tokens_are_redacted_and_bad_tokens_refused() {
        let mut transport = Transport::new(BaseUrl::parse("http://127.0.0.1:1").unwrap());
        transport.set_token("s3cret");
        assert!(!format!("{transport:?}").contains("s3cret"));
        transport.set_token("bad\ntoken");
        assert!(matches!(
            transport.request(&Method::GET, "http://127.0.0.1:1/v1/version", None, None),
            Err(Error::InvalidToken)
        ));
    }
}
