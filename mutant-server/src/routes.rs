//! The routes of protocol version 1. Each handler decodes, calls the core
//! [`Service`], and encodes; nothing else.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use mutant_core::api::PROTOCOL_VERSION;
use mutant_core::api::frame::{decode_knn_query, decode_record_batch, encode_knn_result};
use mutant_core::api::results::{ResultsFormat, ResultsQuery};
use mutant_core::api::wire::{
    HeartbeatResponse, KnnQuery, KnnRequest, UpsertRequest, VersionResponse,
};
use mutant_core::service::{ResultRows, Service};
use tracing::Instrument;
use uuid::Uuid;

use crate::config::Config;
use crate::error::ServerError;
use crate::http::{
    Answer, BodyFormat, authorized, body_format, decode_json, empty_answer, error_answer,
    error_body, frame_answer, json_answer, percent_decode, query_pairs, query_param, read_body,
    streamed_answer, text_answer, wants_frame,
};
use crate::metrics::Metrics;
use crate::stream::{ChunkSender, channel_body};

/// What every request shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) service: Service,
    pub(crate) config: Config,
    pub(crate) metrics: Metrics,
    pub(crate) clickhouse_version: String,
}

/// Answers one request, with a span, metrics, and errors turned into JSON.
pub(crate) async fn handle(
    state: Arc<AppState>,
    request: Request<Incoming>,
) -> Result<Answer, std::convert::Infallible> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", %method, %path);
    let (route, outcome) = dispatch(&state, request).instrument(span.clone()).await;
    let answer = match outcome {
        Ok(answer) => answer,
        Err(error) => {
            let _entered = span.enter();
            if error.is_internal() {
                tracing::error!(route, error = ?error, "request failed");
            } else {
                tracing::debug!(route, error = ?error, "request refused");
            }
            error_answer(&error)
        }
    };
    state
        .metrics
        .observe(route, answer.status().as_u16(), started.elapsed());
    Ok(answer)
}

type Outcome = Result<Answer, ServerError>;

async fn dispatch(state: &AppState, request: Request<Incoming>) -> (&'static str, Outcome) {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let Some(page) = crate::ui::route(request.method(), &segments) {
        return page;
    }
    if segments == ["healthz"] {
        return (
            "/healthz",
            Ok(text_answer(StatusCode::OK, "ok\n".into(), "text/plain")),
        );
    }
    if state
        .config
        .api_token
        .as_deref()
        .is_some_and(|token| !authorized(&request, token))
    {
        return ("unauthorized", Err(ServerError::Unauthorized));
    }
    if let Some(view) = crate::views::route(state, &request, &segments).await {
        return view;
    }
    let method = request.method().clone();
    let not_allowed = || {
        Err(ServerError::MethodNotAllowed {
            method: method.to_string(),
            path: path.clone(),
        })
    };
    let service = &state.service;
    match segments.as_slice() {
        ["metrics"] => (
            "/metrics",
            match method {
                Method::GET => Ok(text_answer(
                    StatusCode::OK,
                    state.metrics.render(service),
                    "text/plain; version=0.0.4",
                )),
                _ => not_allowed(),
            },
        ),
        ["v1", "heartbeat"] => (
            "/v1/heartbeat",
            match method {
                Method::GET => Ok(json_answer(
                    StatusCode::OK,
                    &HeartbeatResponse { nanos: now_nanos() },
                )),
                _ => not_allowed(),
            },
        ),
        ["v1", "version"] => (
            "/v1/version",
            match method {
                Method::GET => Ok(json_answer(
                    StatusCode::OK,
                    &VersionResponse {
                        mutant: env!("CARGO_PKG_VERSION").into(),
                        protocol: PROTOCOL_VERSION,
                        clickhouse: state.clickhouse_version.clone(),
                    },
                )),
                _ => not_allowed(),
            },
        ),
        ["v1", "datasets"] => (
            "/v1/datasets",
            match method {
                Method::POST => create_dataset(state, request).await,
                Method::GET => list_datasets(service, &request).await,
                _ => not_allowed(),
            },
        ),
        ["v1", "datasets", dataset] => (
            "/v1/datasets/{ds}",
            match (method.clone(), decode_segment(dataset)) {
                (_, Err(error)) => Err(error),
                (Method::GET, Ok(dataset)) => service
                    .get_dataset(&dataset)
                    .await
                    .map(|info| json_answer(StatusCode::OK, &info))
                    .map_err(Into::into),
                (Method::PATCH, Ok(dataset)) => patch_dataset(state, request, &dataset).await,
                (Method::DELETE, Ok(dataset)) => service
                    .delete_dataset(&dataset)
                    .await
                    .map(|()| empty_answer(StatusCode::NO_CONTENT))
                    .map_err(Into::into),
                _ => not_allowed(),
            },
        ),
        ["v1", "datasets", dataset, rest @ ..] => {
            dataset_route(state, request, dataset, rest, &method, &path).await
        }
        ["v1", "analyses"] => (
            "/v1/analyses",
            match method {
                Method::POST => start_analysis(state, request).await,
                _ => not_allowed(),
            },
        ),
        ["v1", "analyses", id] => (
            "/v1/analyses/{id}",
            match (method.clone(), parse_analysis_id(id)) {
                (_, Err(error)) => Err(error),
                (Method::GET, Ok(id)) => service
                    .analysis_status(id)
                    .await
                    .map(|status| json_answer(StatusCode::OK, &status))
                    .map_err(Into::into),
                (Method::DELETE, Ok(id)) => service
                    .cancel_analysis(id)
                    .await
                    .map(|status| json_answer(StatusCode::OK, &status))
                    .map_err(Into::into),
                _ => not_allowed(),
            },
        ),
        ["v1", "analyses", id, "results"] => (
            "/v1/analyses/{id}/results",
            match (method.clone(), parse_analysis_id(id)) {
                (_, Err(error)) => Err(error),
                (Method::GET, Ok(id)) => analysis_results(service, &request, id).await,
                _ => not_allowed(),
            },
        ),
        _ => (
            "not_found",
            Err(ServerError::NotFound { path: path.clone() }),
        ),
    }
}

async fn dataset_route(
    state: &AppState,
    request: Request<Incoming>,
    dataset: &str,
    rest: &[&str],
    method: &Method,
    path: &str,
) -> (&'static str, Outcome) {
    let route = match rest {
        ["records"] => "/v1/datasets/{ds}/records",
        ["records", "get"] => "/v1/datasets/{ds}/records/get",
        ["records", "delete"] => "/v1/datasets/{ds}/records/delete",
        ["count"] => "/v1/datasets/{ds}/count",
        ["knn"] => "/v1/datasets/{ds}/knn",
        _ => {
            return (
                "not_found",
                Err(ServerError::NotFound {
                    path: path.to_owned(),
                }),
            );
        }
    };
    if method != Method::POST {
        return (
            route,
            Err(ServerError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_owned(),
            }),
        );
    }
    let dataset = match decode_segment(dataset) {
        Ok(dataset) => dataset,
        Err(error) => return (route, Err(error)),
    };
    let service = &state.service;
    let limit = state.config.max_body_bytes;
    let outcome = async {
        match rest {
            ["records"] => upsert(state, request, &dataset).await,
            ["knn"] => knn(state, request, &dataset).await,
            _ => {
                body_format(&request, false)?;
                let body = read_body(request, limit).await?;
                match rest {
                    ["records", "get"] => Ok(json_answer(
                        StatusCode::OK,
                        &service.get_records(&dataset, decode_json(&body)?).await?,
                    )),
                    ["records", "delete"] => Ok(json_answer(
                        StatusCode::OK,
                        &service
                            .delete_records(&dataset, decode_json(&body)?)
                            .await?,
                    )),
                    _ => Ok(json_answer(
                        StatusCode::OK,
                        &service.count(&dataset, decode_json(&body)?).await?,
                    )),
                }
            }
        }
    }
    .instrument(tracing::info_span!("dataset", dataset = %dataset))
    .await;
    (route, outcome)
}

async fn create_dataset(state: &AppState, request: Request<Incoming>) -> Outcome {
    body_format(&request, false)?;
    let body = read_body(request, state.config.max_body_bytes).await?;
    Ok(json_answer(
        StatusCode::CREATED,
        &state.service.create_dataset(decode_json(&body)?).await?,
    ))
}

async fn list_datasets(service: &Service, request: &Request<Incoming>) -> Outcome {
    let pattern = query_param(request.uri().query(), "metadata")?;
    Ok(json_answer(
        StatusCode::OK,
        &service.list_datasets(pattern.as_deref()).await?,
    ))
}

async fn patch_dataset(state: &AppState, request: Request<Incoming>, dataset: &str) -> Outcome {
    body_format(&request, false)?;
    let body = read_body(request, state.config.max_body_bytes).await?;
    Ok(json_answer(
        StatusCode::OK,
        &state
            .service
            .patch_dataset(dataset, decode_json(&body)?)
            .await?,
    ))
}

async fn upsert(state: &AppState, request: Request<Incoming>, dataset: &str) -> Outcome {
    let format = body_format(&request, true)?;
    let body = read_body(request, state.config.max_body_bytes).await?;
    let written = match format {
        BodyFormat::Frame => {
            state
                .service
                .upsert(dataset, decode_record_batch(&body)?)
                .await?
        }
        BodyFormat::Json => {
            state
                .service
                .upsert_wire(dataset, decode_json::<UpsertRequest>(&body)?.records)
                .await?
        }
    };
    Ok(json_answer(StatusCode::OK, &written))
}

async fn knn(state: &AppState, request: Request<Incoming>, dataset: &str) -> Outcome {
    let format = body_format(&request, true)?;
    let frame_answer_wanted = wants_frame(&request);
    let body = read_body(request, state.config.max_body_bytes).await?;
    let query = match format {
        BodyFormat::Frame => decode_knn_query(&body)?,
        BodyFormat::Json => KnnQuery::from_request(decode_json::<KnnRequest>(&body)?)?,
    };
    let response = state.service.knn(dataset, query).await?;
    // Up to MAX_NEIGHBOURS neighbours: encoded on a blocking thread, not on
    // the threads that serve every other request.
    tokio::task::spawn_blocking(move || {
        if frame_answer_wanted {
            frame_answer(encode_knn_result(&response))
        } else {
            json_answer(StatusCode::OK, &response)
        }
    })
    .await
    .map_err(|error| {
        ServerError::Core(mutant_core::Error::Internal {
            message: format!("encoding a kNN answer failed: {error}"),
        })
    })
}

async fn start_analysis(state: &AppState, request: Request<Incoming>) -> Outcome {
    body_format(&request, false)?;
    let body = read_body(request, state.config.max_body_bytes).await?;
    Ok(json_answer(
        StatusCode::ACCEPTED,
        &state.service.start_analysis(decode_json(&body)?).await?,
    ))
}

async fn analysis_results(service: &Service, request: &Request<Incoming>, id: Uuid) -> Outcome {
    let query = ResultsQuery::from_pairs(&query_pairs(request.uri().query())?)?;
    match query.format {
        ResultsFormat::Json => Ok(json_answer(
            StatusCode::OK,
            &service.analysis_results(id, &query).await?,
        )),
        ResultsFormat::Ndjson => {
            let rows = service.analysis_result_rows(id, &query).await?;
            let (sender, body) = channel_body();
            tokio::spawn(stream_rows(rows, sender));
            Ok(streamed_answer(body, "application/x-ndjson"))
        }
    }
}

/// Writes every row, one JSON object a line. A failure after the first row
/// can no longer change the status: it ends the stream with an `{"error":
/// ...}` line instead, so a reader never mistakes a cut stream for a whole
/// one.
async fn stream_rows(mut rows: ResultRows, sender: ChunkSender) {
    loop {
        let chunk = match rows.next_page().await {
            Ok(None) => return,
            Ok(Some(page)) => {
                let mut chunk = Vec::new();
                for row in &page {
                    if serde_json::to_writer(&mut chunk, row).is_err() {
                        return;
                    }
                    chunk.push(b'\n');
                }
                chunk
            }
            Err(error) => {
                let error = ServerError::from(error);
                if error.is_internal() {
                    tracing::error!(error = ?error, "streaming analysis results failed");
                }
                let mut line = serde_json::to_vec(&error_body(&error).1).unwrap_or_default();
                line.push(b'\n');
                let _ = sender.send(Bytes::from(line)).await;
                return;
            }
        };
        if sender.send(Bytes::from(chunk)).await.is_err() {
            // The client went away.
            return;
        }
    }
}

fn decode_segment(segment: &str) -> Result<String, ServerError> {
    percent_decode(segment, false)
}

pub(crate) fn parse_analysis_id(text: &str) -> Result<Uuid, ServerError> {
    Uuid::parse_str(text).map_err(|_| ServerError::InvalidQuery {
        reason: format!("{text:?} is not an analysis id (a UUID)"),
    })
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
        })
}
