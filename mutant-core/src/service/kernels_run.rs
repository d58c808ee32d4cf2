//! Runs one analysis on a blocking thread: lines up the class codes of
//! target and reference, builds the neighbour graphs the kind needs (once,
//! through [`NeighbourGraphs`]), calls the kernels, and hands back ranked
//! rows with their verdicts and the summary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use serde_json::{Map, Value, json};

use super::budget::pairs_within;
use super::graphs::{NeighbourGraphs, SelfGraphs};
use super::params::AnalysisParams;
use super::projection_run::{ProjectionRequest, run_projection};
use super::rows::{ResultRows, ShapedRow, class_name, number, object, pair_rows, share};
use super::scoring::{RowNames, Scored};
use super::select_run::run_select;
use crate::Result;
use crate::api::kinds::AnalysisKind;
use crate::kernels::{
    DatasetView, DriftReport, DuplicatePair, Execution, drift, near_duplicates,
    near_duplicates_across, partners_to_check,
};
use crate::model::{ClassVocabulary, LoadedDataset};

/// Everything a job needs to run on a blocking thread.
pub(super) struct AnalysisInput {
    pub(super) kind: AnalysisKind,
    pub(super) params: AnalysisParams,
    pub(super) target: Arc<LoadedDataset>,
    pub(super) reference: Option<Arc<LoadedDataset>>,
    pub(super) threads: usize,
    /// The analysis budget, for what is only known while running (how many
    /// pairs `near_duplicates` finds).
    pub(super) budget_bytes: usize,
    pub(super) progress: Arc<AtomicU32>,
    pub(super) cancel: Arc<AtomicBool>,
    /// Self graphs kept from earlier analyses of the same data.
    pub(super) kept: SelfGraphs,
}

/// Ranked rows, shaped as they are stored, and the summary.
#[derive(Debug)]
pub(crate) struct AnalysisOutput {
    pub(crate) rows: ResultRows,
    pub(crate) summary: Value,
    /// The whole self graphs the run built, for later analyses of the same
    /// data.
    pub(crate) built: SelfGraphs,
}

/// One class vocabulary for target and reference: the reference's codes are
/// kept, the target's are mapped onto them by name.
pub(super) struct SharedClasses {
    pub(super) vocabulary: ClassVocabulary,
    pub(super) target_labels: Vec<Option<u32>>,
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
        class_name(&self.vocabulary, code)
    }
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
    let classes = Arc::new(SharedClasses::new(target, reference));
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
    let metric = crate::kernels::Metric::from(target.dataset.metric);
    let params = &input.params;
    let mut graphs = NeighbourGraphs::new(&target_view, reference_view.as_ref(), metric)
        .with_kept(input.kept.clone());
    let names = RowNames {
        target: Arc::clone(&input.target),
        reference: input.reference.clone(),
        classes: Arc::clone(&classes),
    };

    let (rows, summary) = match input.kind {
        AnalysisKind::BoundaryUncertainty
        | AnalysisKind::ActivationUncertainty
        | AnalysisKind::ClassOutlier
        | AnalysisKind::Mislabel
        | AnalysisKind::Novelty
        | AnalysisKind::Uniqueness => {
            Scored::compute(input.kind, &target_view, &mut graphs, params, &execution)?
                .into_output(names, params.threshold)
        }
        AnalysisKind::NearDuplicates => {
            let k = params.k_for(input.kind);
            let (pairs, others, other_dataset) = match (reference_view.as_ref(), &input.reference) {
                (Some(reference_view), Some(reference)) => {
                    let (across, own) = graphs.density_pair(
                        k,
                        |across| partners_to_check(across, params.duplicates),
                        &execution,
                    )?;
                    let pairs = near_duplicates_across(
                        &target_view,
                        reference_view,
                        across,
                        own,
                        params.duplicates,
                    )?;
                    pairs_within(pairs.len(), input.threads, input.budget_bytes)?;
                    (
                        pairs,
                        Arc::clone(reference),
                        Some(reference.dataset.name.clone()),
                    )
                }
                _ => {
                    let graph = graphs.target_self(k, &execution)?;
                    let pairs = near_duplicates(&target_view, graph, params.duplicates)?;
                    pairs_within(pairs.len(), input.threads, input.budget_bytes)?;
                    (pairs, Arc::clone(&input.target), None)
                }
            };
            let summary = duplicates_summary(&pairs, target.n_records());
            (
                pair_rows(pairs, Arc::clone(&input.target), others, other_dataset),
                summary,
            )
        }
        AnalysisKind::Drift => {
            let reference_view = graphs.require_reference()?;
            let report = drift(
                reference_view,
                &target_view,
                metric,
                &params.drift,
                &execution,
            )?;
            drift_output(
                &report,
                &classes,
                reference_view.n_rows(),
                target_view.n_rows(),
                params.threshold.unwrap_or(0.0),
            )
        }
        AnalysisKind::Projection => {
            let request = ProjectionRequest {
                dimensions: params.dimensions,
                method: params.projection_method,
                seed: params.select.seed,
            };
            run_projection(
                &input.target,
                &target_view,
                &mut graphs,
                request,
                &execution,
            )?
        }
        AnalysisKind::Select => run_select(
            &target_view,
            &mut graphs,
            params,
            (&target.ids, &classes.vocabulary, &classes.target_labels),
            &execution,
        )?,
    };
    Ok(AnalysisOutput {
        rows,
        summary,
        built: graphs.into_built(),
    })
}

/// A near-duplicate run's summary: its pairs, the records in them (the
/// flagged ones), and the groups they form (connected components: three
/// copies of one image are one group of three).
fn duplicates_summary(pairs: &[DuplicatePair], n_records: usize) -> Value {
    let mut groups = DisjointSets::new(n_records);
    let mut in_pair = vec![false; n_records];
    for pair in pairs {
        in_pair[pair.row as usize] = true;
        // Across datasets the other row indexes the reference: only the
        // target's records count, each pair is its own group's evidence.
        if (pair.other_row as usize) < n_records {
            groups.union(pair.row as usize, pair.other_row as usize);
        }
    }
    let n_flagged = in_pair.iter().filter(|&&flagged| flagged).count();
    let n_groups = {
        let mut roots: Vec<usize> = (0..n_records)
            .filter(|&row| in_pair[row])
            .map(|row| groups.root(row))
            .collect();
        roots.sort_unstable();
        roots.dedup();
        roots.len()
    };
    object([
        ("n_flagged", json!(n_flagged)),
        ("share_flagged", share(n_flagged, n_records)),
        ("rule", json!("pairs")),
        ("n_pairs", json!(pairs.len())),
        (
            "n_exact_pairs",
            json!(pairs.iter().filter(|pair| pair.exact).count()),
        ),
        ("n_groups", json!(n_groups)),
    ])
}

/// Union-find over record rows, for duplicate groups.
struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        DisjointSets {
            parent: (0..n).collect(),
        }
    }

    fn root(&mut self, mut node: usize) -> usize {
        while self.parent[node] != node {
            self.parent[node] = self.parent[self.parent[node]];
            node = self.parent[node];
        }
        node
    }

    fn union(&mut self, left: usize, right: usize) {
        let (left, right) = (self.root(left), self.root(right));
        if left != right {
            self.parent[left.max(right)] = left.min(right);
        }
    }
}

/// How many standard errors a class's share must move for its row to be
/// flagged (a two-proportion z-test; 3 keeps false flags rare across the
/// tens of classes a dataset may have).
const SHARE_CHANGE_Z: f32 = 3.0;

/// `drift`'s rows (per class, largest change first, flagged when the change
/// is significant) and summary (`drifted` when the p-value is below
/// `significance`, with the MMD as the effect size).
fn drift_output(
    report: &DriftReport,
    classes: &SharedClasses,
    n_reference: usize,
    n_target: usize,
    significance: f32,
) -> (ResultRows, Value) {
    let mut shares = report.class_shares.clone();
    shares.sort_by(|a, b| b.change.abs().total_cmp(&a.change.abs()));
    let significant = |reference_share: f32, target_share: f32| {
        let (n_reference, n_target) = (n_reference.max(1) as f32, n_target.max(1) as f32);
        let pooled =
            (reference_share * n_reference + target_share * n_target) / (n_reference + n_target);
        let error = (pooled * (1.0 - pooled) * (1.0 / n_reference + 1.0 / n_target)).sqrt();
        let change = (target_share - reference_share).abs();
        if error > 0.0 {
            change / error > SHARE_CHANGE_Z
        } else {
            change > 0.0
        }
    };
    let flagged: Vec<bool> = shares
        .iter()
        .map(|share| significant(share.reference_share, share.target_share))
        .collect();
    let rows = shares
        .iter()
        .zip(&flagged)
        .enumerate()
        .map(|(rank, (share, &flagged))| ShapedRow {
            fields: Map::from_iter(
                [
                    ("class", classes.name(Some(share.class))),
                    ("reference_share", number(share.reference_share)),
                    ("target_share", number(share.target_share)),
                    ("change", number(share.change)),
                    ("score", number(share.change.abs())),
                    ("rank", json!(rank + 1)),
                    ("flagged", json!(flagged)),
                ]
                .map(|(key, value)| (key.to_owned(), value)),
            ),
            ..ShapedRow::default()
        })
        .collect();
    let mut summary = Map::new();
    let n_flagged = flagged.iter().filter(|&&flagged| flagged).count();
    summary.insert("n_flagged".into(), json!(n_flagged));
    summary.insert("share_flagged".into(), share(n_flagged, flagged.len()));
    summary.insert("rule".into(), json!("share_change_z3"));
    summary.insert("drifted".into(), json!(report.p_value < significance));
    summary.insert("significance".into(), number(significance));
    summary.insert("p_value".into(), number(report.p_value));
    summary.insert(
        "effect_size".into(),
        number(report.mmd_squared.max(0.0).sqrt()),
    );
    summary.insert("mmd_squared".into(), number(report.mmd_squared));
    summary.insert("bandwidth".into(), number(report.bandwidth));
    summary.insert(
        "n_reference_sampled".into(),
        json!(report.n_reference_sampled),
    );
    summary.insert("n_target_sampled".into(), json!(report.n_target_sampled));
    (ResultRows::shaped(rows), Value::Object(summary))
}
