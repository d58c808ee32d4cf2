//! What the web page reads beside the core routes: a dataset's summary,
//! the list of its analyses, and an analysis's rows as the points of a map
//! (frame kind 4), joined with the records' current labels and predictions.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use super::Service;
use super::analysis::status_of;
use crate::api::points::Points;
use crate::api::views::{AnalysisList, ClassCount, DatasetSummary};
use crate::api::wire::DatasetInfo;
use crate::model::{DatasetRef, JobState, LoadedDataset};
use crate::store::ResultSelection;
use crate::{Error, Result};

/// The most analyses one list returns.
pub const MAX_ANALYSES_LISTED: usize = 1_000;

impl Service {
    /// `GET /v1/datasets/{ds}/summary`: record and class counts and the last
    /// write, from the cached copy (loading the dataset if it is not held).
    pub async fn dataset_summary(&self, dataset: &str) -> Result<DatasetSummary> {
        let found = self.resolve(dataset).await?;
        let (loaded, version) = self.cache().get_with_version(&found).await?;
        Ok(summarise(&loaded, version))
    }

    /// `GET /v1/analyses?target=`: the analyses of a dataset (of every
    /// dataset without one), newest first, with their current status.
    pub async fn list_analyses(&self, target: Option<&str>, limit: usize) -> Result<AnalysisList> {
        let target_id = match target {
            Some(target) => Some(self.resolve(target).await?.id),
            None => None,
        };
        let jobs = self
            .store()
            .list_analyses(target_id, limit.min(MAX_ANALYSES_LISTED))
            .await?;
        let mut watermarks: HashMap<Uuid, Option<u64>> = HashMap::new();
        let mut analyses = Vec::with_capacity(jobs.len());
        for job in jobs {
            // A job that is not final may have lost its server: read it the
            // way `GET /v1/analyses/{id}` does, lease check included.
            let job = if job.state.is_final() {
                job
            } else {
                self.current_job(job.id).await?
            };
            let mut stale = false;
            if job.state == JobState::Done {
                let datasets = std::iter::once((job.target, job.target_watermark))
                    .chain(job.reference.map(|id| (id, job.reference_watermark)));
                for (dataset_id, recorded) in datasets {
                    let current = match watermarks.get(&dataset_id) {
                        Some(current) => *current,
                        None => {
                            let current = match self.store().dataset_watermark(dataset_id).await {
                                Ok(current) => Some(current),
                                Err(Error::UnknownDataset { .. }) => None,
                                Err(error) => return Err(error),
                            };
                            watermarks.insert(dataset_id, current);
                            current
                        }
                    };
                    stale |= current.is_none_or(|current| current > recorded);
                }
            }
            analyses.push(status_of(&job, stale)?);
        }
        Ok(AnalysisList { analyses })
    }

    /// `GET /v1/analyses/{id}/points`: every row of a finished per-record
    /// analysis (a projection's coordinates, a score's scores and verdicts),
    /// with the labels and predictions the records have now.
    pub async fn analysis_points(&self, id: Uuid) -> Result<Points> {
        let job = self.current_job(id).await?;
        if job.state != JobState::Done {
            return Err(Error::AnalysisNotFinished {
                id,
                status: job.state.as_str().to_owned(),
            });
        }
        if matches!(job.kind.as_str(), "near_duplicates" | "drift") {
            return Err(Error::InvalidParameter {
                name: "analysis",
                reason: format!(
                    "a {} analysis has no row per record to draw; page through its results instead",
                    job.kind
                ),
            });
        }
        let n_rows = usize::try_from(job.n_results).unwrap_or(usize::MAX);
        // The rows and the target's classes come from different places:
        // fetch both at once.
        let selection = ResultSelection::page(0, n_rows);
        let (rows, target) = tokio::join!(
            self.store().analysis_results(id, &selection),
            self.points_target(job.target)
        );
        let (rows, target) = (rows?, target?);
        super::run_blocking(move || Ok(points_of(&rows, target.as_deref()))).await
    }

    /// The target's cached copy, for the classes of its points; `None`
    /// without it (deleted, or too big for the cache): the points still go
    /// out, without classes.
    async fn points_target(&self, target: Uuid) -> Result<Option<Arc<LoadedDataset>>> {
        match self.store().get_dataset(&DatasetRef::Id(target)).await {
            Ok(dataset) => match self.cache().get(&dataset).await {
                Ok(loaded) => Ok(Some(loaded)),
                Err(Error::DatasetTooLarge { .. }) => Ok(None),
                Err(error) => Err(error),
            },
            Err(Error::UnknownDataset { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

fn summarise(loaded: &LoadedDataset, version: u64) -> DatasetSummary {
    let mut classes: Vec<ClassCount> = (0..loaded.classes.len() as u32)
        .map(|code| ClassCount {
            name: loaded.classes.name(code).unwrap_or_default().to_owned(),
            labels: 0,
            predictions: 0,
        })
        .collect();
    for code in loaded.labels.iter().flatten() {
        classes[*code as usize].labels += 1;
    }
    for code in loaded.predictions.iter().flatten() {
        classes[*code as usize].predictions += 1;
    }
    // A class no live record names any more stays in the vocabulary; leave it out.
    classes.retain(|class| class.labels + class.predictions > 0);
    classes.sort_by(|a, b| a.name.cmp(&b.name));
    let count = |codes: &[Option<u32>]| codes.iter().flatten().count() as u64;
    DatasetSummary {
        dataset: DatasetInfo::from_dataset(&loaded.dataset, Some(loaded.n_records() as u64)),
        n_labelled: count(&loaded.labels),
        n_predicted: count(&loaded.predictions),
        classes,
        last_write_ms: (version > 0).then_some(version / 1_000_000),
    }
}

/// The points of result `rows`, with labels and predictions from `target`
/// (none for records it no longer has, or when it is gone).
fn points_of(rows: &[Value], target: Option<&LoadedDataset>) -> Points {
    let index: Option<HashMap<&str, usize>> = target.map(|target| {
        target
            .ids
            .iter()
            .enumerate()
            .map(|(row, id)| (id.as_str(), row))
            .collect()
    });
    let n_components = rows
        .first()
        .and_then(|row| row.get("coordinates"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut points = Points {
        n_components,
        classes: target.map_or_else(Vec::new, |target| {
            (0..target.classes.len() as u32)
                .map(|code| target.classes.name(code).unwrap_or_default().to_owned())
                .collect()
        }),
        ..Points::default()
    };
    for row in rows {
        let id = row.get("id").and_then(Value::as_str).unwrap_or_default();
        let coordinates = row.get("coordinates").and_then(Value::as_array);
        for component in 0..n_components {
            let value = coordinates
                .and_then(|values| values.get(component))
                .and_then(Value::as_f64);
            points
                .coordinates
                .push(value.map_or(f32::NAN, |value| value as f32));
        }
        let score = row.get("score").and_then(Value::as_f64);
        points
            .scores
            .push(score.map_or(f32::NAN, |score| score as f32));
        points
            .flagged
            .push(row.get("flagged").and_then(Value::as_bool));
        let record_row = index
            .as_ref()
            .zip(target)
            .and_then(|(index, target)| Some((*index.get(id)?, target)));
        points
            .labels
            .push(record_row.and_then(|(row, target)| target.labels[row]));
        points
            .predictions
            .push(record_row.and_then(|(row, target)| target.predictions[row]));
        points.ids.push(id.to_owned());
    }
    points
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{Dataset, Metric, Record};

    fn loaded() -> LoadedDataset {
        let dataset = Dataset {
            id: Uuid::nil(),
            name: "train".into(),
            dimension: 1,
            metric: Metric::L2,
            metadata: serde_json::Map::new(),
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        let mut loaded = LoadedDataset::empty(dataset);
        loaded.push(&Record::new("a", vec![0.0]).with_label("cat"));
        loaded.push(
            &Record::new("b", vec![1.0])
                .with_label("dog")
                .with_prediction("cat"),
        );
        loaded.push(&Record::new("c", vec![2.0]));
        loaded
    }

    #[test]
    fn a_summary_counts_classes_and_converts_the_write_version() {
        let summary = summarise(&loaded(), 5_000_000_123);
        assert_eq!(summary.dataset.record_count, Some(3));
        assert_eq!((summary.n_labelled, summary.n_predicted), (2, 1));
        assert_eq!(
            summary.classes[0],
            ClassCount {
                name: "cat".into(),
                labels: 1,
                predictions: 1
            }
        );
        assert_eq!(summary.classes[1].name, "dog");
        assert_eq!(summary.last_write_ms, Some(5_000));
        assert_eq!(summarise(&loaded(), 0).last_write_ms, None);
    }

    #[test]
    fn points_join_the_records_classes_and_keep_missing_values_missing() {
        let target = loaded();
        let rows = [
            json!({"id": "b", "score": 0.5, "rank": 1, "flagged": true}),
            json!({"id": "gone", "score": null, "rank": 2}),
            json!({"id": "a", "score": 0.1, "rank": 3, "flagged": false}),
        ];
        let points = points_of(&rows, Some(&target));
        assert_eq!(points.n_components, 0);
        assert_eq!(points.ids, ["b", "gone", "a"]);
        assert_eq!(points.flagged, [Some(true), None, Some(false)]);
        assert!(points.scores[1].is_nan());
        let name = |code: Option<u32>| code.map(|code| points.classes[code as usize].as_str());
        assert_eq!(name(points.labels[0]), Some("dog"));
        assert_eq!(name(points.predictions[0]), Some("cat"));
        assert_eq!(points.labels[1], None);
        let projected = [json!({"id": "a", "rank": 1, "coordinates": [1.5, -2.0]})];
        let points = points_of(&projected, None);
        assert_eq!(
            (points.n_components, points.coordinates.clone()),
            (2, vec![1.5, -2.0])
        );
        assert!(points.classes.is_empty() && points.labels == [None]);
    }
}
