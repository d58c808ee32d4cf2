//! The per-record kinds (`boundary_uncertainty`, `activation_uncertainty`,
//! `class_outlier`, `mislabel`, `novelty`, `uniqueness`): one place that
//! computes a kind's scores from the shared neighbour graphs, gives each
//! record its verdict, and shapes its rows. `select` weighs the same scores.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::graphs::NeighbourGraphs;
use super::kernels_run::SharedClasses;
use super::params::AnalysisParams;
use super::rows::{ResultRows, ShapedRow, class_name, evidence, number, share};
use crate::api::kinds::AnalysisKind;
use crate::kernels::{
    ActivationScores, BoundaryScores, DatasetView, DensityScores, Execution, FAR_OUT_FENCE,
    MislabelScores, OUTER_FENCE, OutlierScores, RecordScores, Verdict, activation_uncertainty,
    boundary_uncertainty, class_outlier, mislabel, novelty, outlier_verdict, share_verdict,
    uniqueness,
};
use crate::model::LoadedDataset;
use crate::{Error, Result};

/// What one per-record kernel produced.
pub(super) enum Scored {
    Boundary(BoundaryScores),
    Activation(ActivationScores),
    Outlier(OutlierScores),
    Mislabel(MislabelScores),
    /// `novelty` (neighbours in the reference, judged against the
    /// reference's own uniqueness, its `null`) or `uniqueness` (neighbours
    /// in the target itself, judged against its own scores).
    Density {
        scores: DensityScores,
        null: Option<Vec<f32>>,
    },
}

/// The ids and classes rows are written with, held until the last row is
/// shaped.
pub(super) struct RowNames {
    pub(super) target: Arc<LoadedDataset>,
    pub(super) reference: Option<Arc<LoadedDataset>>,
    /// One vocabulary for both, and the target's labels in its codes.
    pub(super) classes: Arc<SharedClasses>,
}

impl RowNames {
    fn reference_ids(&self) -> &[String] {
        self.reference
            .as_deref()
            .map_or(&[], |reference| &reference.ids)
    }
}

impl Scored {
    /// Runs `kind` (a per-record kind) over the target, building only the
    /// graphs it needs through `graphs`.
    pub(super) fn compute<'a>(
        kind: AnalysisKind,
        target: &'a DatasetView<'a>,
        graphs: &mut NeighbourGraphs<'a>,
        params: &AnalysisParams,
        execution: &Execution<'_>,
    ) -> Result<Scored> {
        Ok(match kind {
            AnalysisKind::BoundaryUncertainty => {
                let reference = graphs.require_reference()?;
                let graph = graphs.target_in_reference(reference, params.k_for(kind), execution)?;
                Scored::Boundary(boundary_uncertainty(target, reference, graph)?)
            }
            AnalysisKind::ActivationUncertainty => {
                let reference = graphs.require_reference()?;
                Scored::Activation(activation_uncertainty(target, reference)?)
            }
            AnalysisKind::ClassOutlier => {
                let reference = graphs.require_reference()?;
                Scored::Outlier(class_outlier(target, reference, execution)?)
            }
            AnalysisKind::Mislabel => {
                let graph = graphs.target_self(params.k_for(kind), execution)?;
                Scored::Mislabel(mislabel(target, graph, params.method)?)
            }
            AnalysisKind::Novelty => {
                let reference = graphs.require_reference()?;
                let (across, own) = graphs.density_pair(
                    params.k_for(kind),
                    NeighbourGraphs::named_rows,
                    execution,
                )?;
                Scored::Density {
                    scores: novelty(target, reference, across, own)?,
                    null: Some(uniqueness(reference, own)?.scores.scores),
                }
            }
            AnalysisKind::Uniqueness => {
                let graph = graphs.target_self(params.k_for(kind), execution)?;
                Scored::Density {
                    scores: uniqueness(target, graph)?,
                    null: None,
                }
            }
            AnalysisKind::NearDuplicates
            | AnalysisKind::Drift
            | AnalysisKind::Select
            | AnalysisKind::Projection => {
                return Err(Error::Internal {
                    message: format!("{} is not a per-record score", kind.as_str()),
                });
            }
        })
    }

    /// The scores and their tie refinement.
    pub(super) fn scores(&self) -> &RecordScores {
        match self {
            Scored::Boundary(result) => &result.scores,
            Scored::Activation(result) => &result.scores,
            Scored::Outlier(result) => &result.scores,
            Scored::Mislabel(result) => &result.scores,
            Scored::Density { scores, .. } => &scores.scores,
        }
    }

    /// Each record's verdict: the kind's automatic rule, or `score >=
    /// threshold` when one is given.
    pub(super) fn verdict(&self, threshold: Option<f32>) -> Verdict {
        let scores = &self.scores().scores;
        if let Some(threshold) = threshold {
            return Verdict::at_least(scores, threshold);
        }
        match self {
            Scored::Boundary(_) => share_verdict(scores),
            Scored::Activation(result) => {
                Verdict::by_rule(result.flagged.clone(), "norm_below_class_fence")
            }
            Scored::Outlier(_) | Scored::Density { null: None, .. } => {
                outlier_verdict(scores, scores, FAR_OUT_FENCE)
            }
            Scored::Density {
                null: Some(null), ..
            } => outlier_verdict(scores, null, OUTER_FENCE),
            Scored::Mislabel(result) => {
                Verdict::by_rule(result.flagged.clone(), "neighbours_prefer_another_label")
            }
        }
    }

    /// Ranked rows with verdict and evidence, shaped as they are stored,
    /// and the summary.
    pub(super) fn into_output(
        self,
        names: RowNames,
        threshold: Option<f32>,
    ) -> (ResultRows, Value) {
        let verdict = self.verdict(threshold);
        let summary = verdict_summary(&verdict);
        let ranking = self.scores().ranking();
        let flagged = verdict.flagged;
        let rows = ResultRows::lazy(ranking.len(), move |rank| {
            let row = ranking[rank] as usize;
            let mut fields = Map::new();
            fields.insert("id".into(), json!(names.target.ids[row]));
            fields.insert("score".into(), number(self.scores().scores[row]));
            fields.insert("rank".into(), json!(rank + 1));
            fields.insert("flagged".into(), json!(flagged[row]));
            self.add_fields(row, &names, &mut fields);
            ShapedRow::about(row, fields)
        });
        (rows, summary)
    }

    /// What the kind adds to the row of the target's record `row`.
    fn add_fields(&self, row: usize, names: &RowNames, fields: &mut Map<String, Value>) {
        let vocabulary = &names.classes.vocabulary;
        match self {
            Scored::Boundary(result) => {
                fields.insert(
                    "evidence".into(),
                    evidence(&result.evidence, row, names.reference_ids(), vocabulary),
                );
            }
            Scored::Activation(result) => {
                fields.insert("norm".into(), number(result.norms[row]));
                fields.insert(
                    "class".into(),
                    class_name(vocabulary, result.compared_class[row]),
                );
            }
            Scored::Outlier(result) => {
                fields.insert("percentile".into(), number(result.percentile[row]));
                fields.insert(
                    "class".into(),
                    class_name(vocabulary, result.compared_class[row]),
                );
            }
            Scored::Mislabel(result) => {
                fields.insert(
                    "label".into(),
                    class_name(vocabulary, names.classes.target_labels[row]),
                );
                fields.insert(
                    "given_probability".into(),
                    number(result.given_probability[row]),
                );
                fields.insert(
                    "suggested_label".into(),
                    class_name(vocabulary, result.suggested_label[row]),
                );
                fields.insert(
                    "evidence".into(),
                    evidence(&result.evidence, row, &names.target.ids, vocabulary),
                );
            }
            Scored::Density {
                scores: result,
                null,
            } => {
                let neighbour_ids = if null.is_some() {
                    names.reference_ids()
                } else {
                    &names.target.ids
                };
                fields.insert(
                    "evidence".into(),
                    evidence(&result.evidence, row, neighbour_ids, vocabulary),
                );
            }
        }
    }
}

/// The summary every per-record kind starts from: how many records it
/// flagged, their share, and the rule that flagged them (with the score cut,
/// where the rule is one).
pub(super) fn verdict_summary(verdict: &Verdict) -> Value {
    let mut fields = Map::new();
    fields.insert("n_flagged".into(), json!(verdict.n_flagged()));
    fields.insert(
        "share_flagged".into(),
        share(verdict.n_flagged(), verdict.flagged.len()),
    );
    fields.insert("rule".into(), json!(verdict.rule));
    if let Some(cut) = verdict.cut {
        fields.insert("cut".into(), number(cut));
    }
    Value::Object(fields)
}
