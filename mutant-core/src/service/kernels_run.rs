//! Runs one analysis: checks its parameters, lines up the class codes of
//! target and reference, calls the kernels (sharing the kNN graphs), and
//! turns their output into ranked result rows with evidence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use serde_json::{Map, Value, json};

use super::analysis::{AnalysisKind, number, object};
use super::kernel_metric;
use super::projection_run::{ProjectionMethod, ProjectionRequest, run_projection};
use crate::kernels::{
    DatasetView, DriftOptions, DuplicatePair, DuplicateThreshold, Execution, KCenter, KnnOptions,
    MislabelMethod, NeighbourEvidence, NeighbourLists, RecordScores, ScoreQuota, SelectOptions,
    SelectionReason, activation_uncertainty, boundary_uncertainty, class_outlier, drift, knn,
    knn_graph, mislabel, near_duplicates, near_duplicates_across, novelty, select, uniqueness,
};
use crate::model::{ClassVocabulary, LoadedDataset};
use crate::{Error, Result};

/// Parameters of an analysis, checked before it is queued.
#[derive(Debug, Clone)]
pub(super) struct AnalysisParams {
    k: usize,
    method: MislabelMethod,
    threshold: DuplicateThreshold,
    dimensions: usize,
    projection_method: Option<ProjectionMethod>,
    drift: DriftOptions,
    n: usize,
    weights: Vec<(AnalysisKind, f32)>,
    random_weight: f32,
    diversity: bool,
    unlabeled_only: bool,
    seed: u64,
}

fn bad(reason: String) -> Error {
    Error::InvalidParameter {
        name: "params",
        reason,
    }
}

fn get_count(raw: &Map<String, Value>, key: &str, default: usize, max: usize) -> Result<usize> {
    match raw.get(key) {
        None => Ok(default),
        Some(value) => match value.as_u64() {
            Some(count) if count >= 1 && count as usize <= max => Ok(count as usize),
            _ => Err(bad(format!(
                "{key} must be an integer from 1 to {max}, got {value}"
            ))),
        },
    }
}

fn get_fraction(raw: &Map<String, Value>, key: &str, default: f32) -> Result<f32> {
    match raw.get(key) {
        None => Ok(default),
        Some(value) => match value.as_f64() {
            Some(number) if number.is_finite() && number >= 0.0 => Ok(number as f32),
            _ => Err(bad(format!(
                "{key} must be a non-negative number, got {value}"
            ))),
        },
    }
}

fn get_flag(raw: &Map<String, Value>, key: &str) -> Result<bool> {
    match raw.get(key) {
        None => Ok(false),
        Some(Value::Bool(flag)) => Ok(*flag),
        Some(other) => Err(bad(format!("{key} must be true or false, got {other}"))),
    }
}

impl AnalysisParams {
    /// Reads and checks `params`; unknown keys are refused, never ignored.
    pub(super) fn parse(kind: AnalysisKind, raw: &Map<String, Value>) -> Result<Self> {
        let allowed: &[&str] = match kind {
            AnalysisKind::BoundaryUncertainty
            | AnalysisKind::Novelty
            | AnalysisKind::Uniqueness => &["k"],
            AnalysisKind::ActivationUncertainty | AnalysisKind::ClassOutlier => &[],
            AnalysisKind::Mislabel => &["k", "method"],
            AnalysisKind::NearDuplicates => &["k", "threshold", "ratio"],
            AnalysisKind::Drift => &["sample_size", "n_permutations", "seed"],
            AnalysisKind::Select => &[
                "k",
                "n",
                "weights",
                "random_weight",
                "diversity",
                "unlabeled_only",
                "seed",
            ],
            AnalysisKind::Projection => &["dimensions", "method", "seed"],
        };
        if let Some(unknown) = raw.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(bad(format!(
                "{} takes no parameter {unknown:?}; it takes {allowed:?}",
                kind.as_str()
            )));
        }
        // `method` is the projection's method for a projection, the score's otherwise.
        let projection_method = match kind {
            AnalysisKind::Projection => ProjectionMethod::parse(raw.get("method"))?,
            _ => None,
        };
        let mislabel_method = raw
            .get("method")
            .filter(|_| kind != AnalysisKind::Projection);
        let method = match mislabel_method.map(|value| value.as_str()) {
            None | Some(Some("self_confidence")) => MislabelMethod::SelfConfidence,
            Some(Some("normalized_margin")) => MislabelMethod::NormalizedMargin,
            Some(_) => {
                return Err(bad(
                    "method must be \"self_confidence\" or \"normalized_margin\"".into(),
                ));
            }
        };
        let threshold = match raw.get("threshold") {
            Some(value) => match value.as_f64() {
                Some(distance) if distance.is_finite() && distance >= 0.0 => {
                    DuplicateThreshold::Absolute(distance as f32)
                }
                _ => {
                    return Err(bad(format!(
                        "threshold must be a non-negative distance, got {value}"
                    )));
                }
            },
            None => DuplicateThreshold::Automatic {
                ratio: get_fraction(raw, "ratio", 0.1)?.min(1.0),
            },
        };
        let dimensions = get_count(raw, "dimensions", 2, 3)?;
        if dimensions < 2 {
            return Err(bad("dimensions must be 2 or 3".into()));
        }
        let seed = raw
            .get("seed")
            .map_or(Some(0), Value::as_u64)
            .ok_or_else(|| bad("seed must be a non-negative integer".into()))?;
        let defaults = DriftOptions::default();
        let drift = DriftOptions {
            sample_size: get_count(raw, "sample_size", defaults.sample_size, 100_000)?,
            n_permutations: get_count(raw, "n_permutations", defaults.n_permutations, 10_000)?,
            seed,
        };
        let weights = match raw.get("weights") {
            None => Vec::new(),
            Some(Value::Object(weights)) => weights
                .iter()
                .map(|(name, weight)| {
                    let kind: AnalysisKind = name.parse()?;
                    if !matches!(
                        kind,
                        AnalysisKind::BoundaryUncertainty
                            | AnalysisKind::ActivationUncertainty
                            | AnalysisKind::ClassOutlier
                            | AnalysisKind::Mislabel
                            | AnalysisKind::Novelty
                            | AnalysisKind::Uniqueness
                    ) {
                        return Err(bad(format!(
                            "select cannot weigh {name:?}; weigh a per-record score"
                        )));
                    }
                    let weight = weight
                        .as_f64()
                        .filter(|weight| weight.is_finite() && *weight >= 0.0);
                    Ok((
                        kind,
                        weight.ok_or_else(|| {
                            bad(format!(
                                "the weight of {name} must be a non-negative number"
                            ))
                        })? as f32,
                    ))
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(bad(format!(
                    "weights must be an object of score name to weight, got {other}"
                )));
            }
        };
        if kind == AnalysisKind::Select && !raw.contains_key("n") {
            return Err(bad("select needs n, the number of records to pick".into()));
        }
        Ok(AnalysisParams {
            k: get_count(raw, "k", 10, 1_000)?,
            method,
            threshold,
            dimensions,
            projection_method,
            drift,
            n: get_count(raw, "n", 1, 1_000_000)?,
            random_weight: get_fraction(
                raw,
                "random_weight",
                if weights.is_empty() { 1.0 } else { 0.0 },
            )?,
            weights,
            diversity: get_flag(raw, "diversity")?,
            unlabeled_only: get_flag(raw, "unlabeled_only")?,
            seed,
        })
    }
}

/// Everything a job needs to run on a blocking thread.
pub(super) struct AnalysisInput {
    pub(super) kind: AnalysisKind,
    pub(super) params: AnalysisParams,
    pub(super) target: Arc<LoadedDataset>,
    pub(super) reference: Option<Arc<LoadedDataset>>,
    pub(super) threads: usize,
    pub(super) progress: Arc<AtomicU32>,
    pub(super) cancel: Arc<AtomicBool>,
}

/// Ranked rows and, for some kinds, a summary.
#[derive(Debug, Default)]
pub(crate) struct AnalysisOutput {
    pub(crate) rows: Vec<Value>,
    pub(crate) summary: Option<Value>,
}

/// One class vocabulary for target and reference: the reference's codes are
/// kept, the target's are mapped onto them by name.
struct SharedClasses {
    vocabulary: ClassVocabulary,
    target_labels: Vec<Option<u32>>,
    target_predictions: Vec<Option<u32>>,
}

impl SharedClasses {
    fn new(target: &LoadedDataset, reference: Option<&LoadedDataset>) -> Self {
        let mut vocabulary = reference.map_or_else(
            || target.classes.clone(),
            |reference| reference.classes.clone(),
        );
        let mapping: Vec<u32> = (0..target.classes.len() as u32)
            .map(|code| vocabulary.intern(target.classes.name(code).unwrap_or_default()))
            .collect();
        let remap = |codes: &[Option<u32>]| {
            codes
                .iter()
                .map(|code| code.map(|code| mapping[code as usize]))
                .collect()
        };
        SharedClasses {
            target_labels: remap(&target.labels),
            target_predictions: remap(&target.predictions),
            vocabulary,
        }
    }

    fn name(&self, code: Option<u32>) -> Value {
        code.and_then(|code| self.vocabulary.name(code))
            .map_or(Value::Null, |name| json!(name))
    }
}

fn evidence(
    evidence: &NeighbourEvidence,
    row: usize,
    neighbour_ids: &[String],
    classes: &SharedClasses,
) -> Value {
    let record = evidence.record(row);
    let neighbours: Vec<Value> = record
        .rows
        .iter()
        .zip(record.labels)
        .zip(record.distances)
        .map(|((&neighbour, &label), &distance)| {
            object([
                ("id", json!(neighbour_ids[neighbour as usize])),
                ("label", classes.name(label)),
                ("distance", number(distance)),
            ])
        })
        .collect();
    object([("neighbours", Value::Array(neighbours))])
}

/// Rows ranked by score (ties by the refinement), with extra fields per row.
fn ranked(
    ids: &[String],
    scores: &RecordScores,
    mut extra: impl FnMut(usize, &mut Map<String, Value>),
) -> Vec<Value> {
    scores
        .ranking()
        .into_iter()
        .enumerate()
        .map(|(rank, row)| {
            let row = row as usize;
            let mut fields = Map::new();
            fields.insert("id".into(), json!(ids[row]));
            fields.insert("score".into(), number(scores.scores[row]));
            fields.insert("rank".into(), json!(rank + 1));
            extra(row, &mut fields);
            Value::Object(fields)
        })
        .collect()
}

fn pair_rows(
    pairs: &[DuplicatePair],
    ids: &[String],
    other_ids: &[String],
    other_dataset: Option<&str>,
) -> Vec<Value> {
    pairs
        .iter()
        .enumerate()
        .map(|(rank, pair)| {
            let mut fields = Map::new();
            fields.insert("id".into(), json!(ids[pair.row as usize]));
            fields.insert("other_id".into(), json!(other_ids[pair.other_row as usize]));
            if let Some(other_dataset) = other_dataset {
                fields.insert("other_dataset".into(), json!(other_dataset));
            }
            fields.insert("distance".into(), number(pair.distance));
            fields.insert("score".into(), number(pair.score));
            fields.insert("rank".into(), json!(rank + 1));
            fields.insert("exact".into(), json!(pair.exact));
            Value::Object(fields)
        })
        .collect()
}

/// Runs the analysis.
pub(super) fn compute(input: &AnalysisInput) -> Result<AnalysisOutput> {
    let report = |fraction: f32| input.progress.store(fraction.to_bits(), Ordering::Relaxed);
    let execution = Execution::new()
        .with_threads(input.threads)
        .with_progress(&report)
        .with_cancel_flag(&input.cancel);
    let target = input.target.as_ref();
    let reference = input.reference.as_deref();
    let classes = SharedClasses::new(target, reference);
    let dimension = target.dataset.dimension;
    let target_view = DatasetView::new(&target.vectors, dimension)?
        .with_labels(&classes.target_labels)?
        .with_predictions(&classes.target_predictions)?;
    let reference_view = reference
        .map(|reference| {
            DatasetView::new(&reference.vectors, dimension)?
                .with_labels(&reference.labels)?
                .with_predictions(&reference.predictions)
        })
        .transpose()?;
    let metric = kernel_metric(target.dataset.metric);
    let params = &input.params;
    let self_graph = || {
        knn_graph(
            &target_view,
            metric,
            &KnnOptions::new(params.k.min(target.n_records().saturating_sub(1)).max(1)),
            &execution,
        )
    };
    let need_reference = || {
        reference_view
            .as_ref()
            .zip(reference)
            .ok_or_else(|| Error::InvalidParameter {
                name: "reference",
                reason: format!("{} needs a reference dataset", input.kind.as_str()),
            })
    };
    let reference_graphs = |reference_view: &DatasetView<'_>,
                            reference: &LoadedDataset|
     -> Result<(NeighbourLists, NeighbourLists)> {
        let k = params.k.min(reference.n_records().saturating_sub(1)).max(1);
        let target_graph = knn(
            reference_view,
            &target_view,
            metric,
            &KnnOptions::new(k),
            &execution.part(0.0, 0.5),
        )?;
        let reference_graph = knn_graph(
            reference_view,
            metric,
            &KnnOptions::new(k),
            &execution.part(0.5, 1.0),
        )?;
        Ok((target_graph, reference_graph))
    };

    let mut output = AnalysisOutput::default();
    match input.kind {
        AnalysisKind::BoundaryUncertainty => {
            let (reference_view, reference) = need_reference()?;
            let graph = knn(
                reference_view,
                &target_view,
                metric,
                &KnnOptions::new(params.k.min(reference.n_records())),
                &execution,
            )?;
            let result = boundary_uncertainty(&target_view, reference_view, &graph)?;
            output.rows = ranked(&target.ids, &result.scores, |row, fields| {
                fields.insert(
                    "evidence".into(),
                    evidence(&result.evidence, row, &reference.ids, &classes),
                );
            });
        }
        AnalysisKind::ActivationUncertainty => {
            let (reference_view, _) = need_reference()?;
            let result = activation_uncertainty(&target_view, reference_view)?;
            output.rows = ranked(&target.ids, &result.scores, |row, fields| {
                fields.insert("norm".into(), number(result.norms[row]));
                fields.insert("class".into(), classes.name(result.compared_class[row]));
            });
        }
        AnalysisKind::ClassOutlier => {
            let (reference_view, _) = need_reference()?;
            let result = class_outlier(&target_view, reference_view, &execution)?;
            output.rows = ranked(&target.ids, &result.scores, |row, fields| {
                fields.insert("percentile".into(), number(result.percentile[row]));
                fields.insert("class".into(), classes.name(result.compared_class[row]));
            });
        }
        AnalysisKind::Mislabel => {
            let graph = self_graph()?;
            let result = mislabel(&target_view, &graph, params.method)?;
            output.rows = ranked(&target.ids, &result.scores, |row, fields| {
                fields.insert("label".into(), classes.name(classes.target_labels[row]));
                fields.insert(
                    "given_probability".into(),
                    number(result.given_probability[row]),
                );
                fields.insert(
                    "suggested_label".into(),
                    classes.name(result.suggested_label[row]),
                );
                fields.insert("flagged".into(), json!(result.flagged[row]));
                fields.insert(
                    "evidence".into(),
                    evidence(&result.evidence, row, &target.ids, &classes),
                );
            });
        }
        AnalysisKind::Novelty => {
            let (reference_view, reference) = need_reference()?;
            let (target_graph, reference_graph) = reference_graphs(reference_view, reference)?;
            let result = novelty(
                &target_view,
                reference_view,
                &target_graph,
                &reference_graph,
            )?;
            output.rows = ranked(&target.ids, &result.scores, |row, fields| {
                fields.insert(
                    "evidence".into(),
                    evidence(&result.evidence, row, &reference.ids, &classes),
                );
            });
        }
        AnalysisKind::Uniqueness => {
            let graph = self_graph()?;
            let result = uniqueness(&target_view, &graph)?;
            output.rows = ranked(&target.ids, &result.scores, |row, fields| {
                fields.insert(
                    "evidence".into(),
                    evidence(&result.evidence, row, &target.ids, &classes),
                );
            });
        }
        AnalysisKind::NearDuplicates => match (reference_view.as_ref(), reference) {
            (Some(reference_view), Some(reference)) => {
                let (target_graph, reference_graph) = reference_graphs(reference_view, reference)?;
                let pairs = near_duplicates_across(
                    &target_view,
                    reference_view,
                    &target_graph,
                    &reference_graph,
                    params.threshold,
                )?;
                output.rows = pair_rows(
                    &pairs,
                    &target.ids,
                    &reference.ids,
                    Some(&reference.dataset.name),
                );
            }
            _ => {
                let pairs = near_duplicates(&target_view, &self_graph()?, params.threshold)?;
                output.rows = pair_rows(&pairs, &target.ids, &target.ids, None);
            }
        },
        AnalysisKind::Drift => {
            let (reference_view, _) = need_reference()?;
            let report = drift(
                reference_view,
                &target_view,
                metric,
                &params.drift,
                &execution,
            )?;
            let mut shares = report.class_shares.clone();
            shares.sort_by(|a, b| b.change.abs().total_cmp(&a.change.abs()));
            output.rows = shares
                .iter()
                .enumerate()
                .map(|(rank, share)| {
                    object([
                        ("class", classes.name(Some(share.class))),
                        ("reference_share", number(share.reference_share)),
                        ("target_share", number(share.target_share)),
                        ("change", number(share.change)),
                        ("rank", json!(rank + 1)),
                    ])
                })
                .collect();
            output.summary = Some(object([
                ("mmd_squared", number(report.mmd_squared)),
                ("p_value", number(report.p_value)),
                ("bandwidth", number(report.bandwidth)),
                ("n_reference_sampled", json!(report.n_reference_sampled)),
                ("n_target_sampled", json!(report.n_target_sampled)),
            ]));
        }
        AnalysisKind::Projection => {
            let request = ProjectionRequest {
                dimensions: params.dimensions,
                method: params.projection_method,
                seed: params.seed,
                metric,
            };
            output = run_projection(&target.ids, &target_view, request, &execution)?;
        }
        AnalysisKind::Select => {
            output.rows = run_select(
                input,
                &target_view,
                reference_view.as_ref(),
                &classes,
                &execution,
            )?;
        }
    }
    Ok(output)
}

/// The neighbour lists in `slot` if they were computed for `k`, else
/// `compute`'s, kept in `slot` for the next caller.
fn reuse_or_compute(
    slot: &mut Option<(usize, NeighbourLists)>,
    k: usize,
    compute: impl FnOnce() -> Result<NeighbourLists>,
) -> Result<&NeighbourLists> {
    if !matches!(slot, Some((held_k, _)) if *held_k == k) {
        *slot = Some((k, compute()?));
    }
    slot.as_ref()
        .map(|(_, graph)| graph)
        .ok_or_else(|| Error::Internal {
            message: "a neighbour graph was computed but not kept".into(),
        })
}

/// `select`: each weighted score's ranking gets a quota, near-duplicates are
/// skipped, the rest is random, optionally spread by greedy k-center.
fn run_select(
    input: &AnalysisInput,
    target_view: &DatasetView<'_>,
    reference_view: Option<&DatasetView<'_>>,
    classes: &SharedClasses,
    execution: &Execution<'_>,
) -> Result<Vec<Value>> {
    let target = input.target.as_ref();
    let params = &input.params;
    let metric = kernel_metric(target.dataset.metric);
    let self_k = params.k.min(target.n_records().saturating_sub(1)).max(1);
    // Progress: the self graph, then each weighted score, an equal part each.
    let n_phases = (1 + params.weights.len()) as f32;
    let phase =
        |index: usize| execution.part(index as f32 / n_phases, (index + 1) as f32 / n_phases);
    let self_graph = knn_graph(target_view, metric, &KnnOptions::new(self_k), &phase(0))?;
    let mut rankings: Vec<Vec<u32>> = Vec::new();
    // The target's neighbours in the reference serve boundary_uncertainty
    // and novelty alike: computed for the first, reused by the other.
    let mut cross_graph: Option<(usize, NeighbourLists)> = None;
    for (weight_idx, (kind, _)) in params.weights.iter().enumerate() {
        let execution = &phase(weight_idx + 1);
        let scores = match (kind, reference_view) {
            (AnalysisKind::Mislabel, _) => {
                mislabel(target_view, &self_graph, params.method)?.scores
            }
            (AnalysisKind::Uniqueness, _) => uniqueness(target_view, &self_graph)?.scores,
            (AnalysisKind::ActivationUncertainty, Some(reference)) => {
                activation_uncertainty(target_view, reference)?.scores
            }
            (AnalysisKind::ClassOutlier, Some(reference)) => {
                class_outlier(target_view, reference, execution)?.scores
            }
            (AnalysisKind::BoundaryUncertainty, Some(reference)) => {
                let k = params.k.min(reference.n_rows());
                let graph = reuse_or_compute(&mut cross_graph, k, || {
                    knn(
                        reference,
                        target_view,
                        metric,
                        &KnnOptions::new(k),
                        execution,
                    )
                })?;
                boundary_uncertainty(target_view, reference, graph)?.scores
            }
            (AnalysisKind::Novelty, Some(reference)) => {
                let k = params.k.min(reference.n_rows().saturating_sub(1)).max(1);
                let target_graph = reuse_or_compute(&mut cross_graph, k, || {
                    knn(
                        reference,
                        target_view,
                        metric,
                        &KnnOptions::new(k),
                        &execution.part(0.0, 0.5),
                    )
                })?;
                let reference_graph = knn_graph(
                    reference,
                    metric,
                    &KnnOptions::new(k),
                    &execution.part(0.5, 1.0),
                )?;
                novelty(target_view, reference, target_graph, &reference_graph)?.scores
            }
            (other, _) => {
                return Err(Error::InvalidParameter {
                    name: "reference",
                    reason: format!(
                        "select weighs {}, which needs a reference dataset",
                        other.as_str()
                    ),
                });
            }
        };
        rankings.push(scores.ranking());
    }
    let quotas: Vec<ScoreQuota<'_>> = rankings
        .iter()
        .zip(&params.weights)
        .map(|(ranking, (_, weight))| ScoreQuota {
            ranking,
            weight: *weight,
        })
        .collect();
    let duplicates = near_duplicates(
        target_view,
        &self_graph,
        DuplicateThreshold::Automatic { ratio: 0.1 },
    )?;
    let eligible: Option<Vec<bool>> = params
        .unlabeled_only
        .then(|| classes.target_labels.iter().map(Option::is_none).collect());
    let options = SelectOptions {
        n: params.n,
        quotas: &quotas,
        random_weight: params.random_weight,
        eligible: eligible.as_deref(),
        duplicates: &duplicates,
        spread: params.diversity.then_some(KCenter {
            dataset: target_view,
            metric,
            pool_factor: 4,
        }),
        seed: params.seed,
    };
    let selected = select(target.n_records(), &options)?;
    let n_selected = selected.len().max(1) as f32;
    Ok(selected
        .iter()
        .enumerate()
        .map(|(rank, choice)| {
            let reason = match choice.reason {
                SelectionReason::Score(quota) => params.weights[quota].0.as_str(),
                SelectionReason::Random => "random",
            };
            object([
                ("id", json!(target.ids[choice.row as usize])),
                ("score", number(1.0 - rank as f32 / n_selected)),
                ("rank", json!(rank + 1)),
                ("reason", json!(reason)),
                (
                    "label",
                    classes.name(classes.target_labels[choice.row as usize]),
                ),
            ])
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{DatasetView, Execution, KnnOptions, Metric, knn};

    #[test]
    fn a_neighbour_graph_is_computed_once_per_k() {
        let values: Vec<f32> = (0..40).map(|value| value as f32).collect();
        let dataset = DatasetView::new(&values, 2).unwrap();
        let mut computed = 0;
        let mut compute = |k: usize| {
            computed += 1;
            knn(
                &dataset,
                &dataset,
                Metric::L2,
                &KnnOptions::new(k),
                &Execution::new(),
            )
        };
        let mut slot = None;
        assert_eq!(
            reuse_or_compute(&mut slot, 3, || compute(3)).unwrap().k(),
            3
        );
        assert_eq!(
            reuse_or_compute(&mut slot, 3, || compute(3)).unwrap().k(),
            3
        );
        assert_eq!(
            reuse_or_compute(&mut slot, 2, || compute(2)).unwrap().k(),
            2
        );
        drop(slot);
        assert_eq!(computed, 2);
    }
}
