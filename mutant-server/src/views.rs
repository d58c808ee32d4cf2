//! The routes the web page reads beside the core protocol: a dataset's
//! summary, the list of analyses, and an analysis's points as a frame.
//! Decode, call the service, encode; nothing else.

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use mutant_core::api::points::encode_points;

use crate::error::ServerError;
use crate::http::{Answer, frame_answer, json_answer, query_number, query_param};
use crate::routes::AppState;

/// Analyses listed when the request names no limit.
const DEFAULT_ANALYSES_LISTED: usize = 100;

/// Answers `request` when it is one of these routes (`None` otherwise):
/// `GET /v1/analyses`, `GET /v1/datasets/{ds}/summary`,
/// `GET /v1/analyses/{id}/points`.
pub(crate) async fn route(
    state: &AppState,
    request: &Request<Incoming>,
    segments: &[&str],
) -> Option<(&'static str, Result<Answer, ServerError>)> {
    let service = &state.service;
    let query = request.uri().query();
    if request.method() != Method::GET {
        // `POST /v1/analyses` is the core router's; the other two paths
        // take GET alone.
        let route = match segments {
            ["v1", "datasets", _, "summary"] => "/v1/datasets/{ds}/summary",
            ["v1", "analyses", _, "points"] => "/v1/analyses/{id}/points",
            _ => return None,
        };
        return Some((
            route,
            Err(ServerError::MethodNotAllowed {
                method: request.method().to_string(),
                path: request.uri().path().to_owned(),
            }),
        ));
    }
    match segments {
        ["v1", "analyses"] => Some((
            "/v1/analyses",
            async {
                let target = query_param(query, "target")?;
                let limit = query_number(query, "limit", DEFAULT_ANALYSES_LISTED)?;
                let list = service.list_analyses(target.as_deref(), limit).await?;
                Ok(json_answer(StatusCode::OK, &list))
            }
            .await,
        )),
        ["v1", "datasets", dataset, "summary"] => Some((
            "/v1/datasets/{ds}/summary",
            async {
                let dataset = crate::http::percent_decode(dataset, false)?;
                let summary = service.dataset_summary(&dataset).await?;
                Ok(json_answer(StatusCode::OK, &summary))
            }
            .await,
        )),
        ["v1", "analyses", id, "points"] => Some((
            "/v1/analyses/{id}/points",
            async {
                let id = crate::routes::parse_analysis_id(id)?;
                let points = service.analysis_points(id).await?;
                Ok(frame_answer(encode_points(&points)))
            }
            .await,
        )),
        _ => None,
    }
}
