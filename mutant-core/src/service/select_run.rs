//! `select`: the next records to label. Each weighted score gets a quota of
//! its top records, near-duplicates of a pick are skipped, the rest is
//! random, optionally spread out by greedy k-center. With only `n`, the
//! recipe comes from what the data offers (see [`Recipe::automatic`]).

use serde_json::{Value, json};

use super::analysis::AnalysisKind;
use super::graphs::NeighbourGraphs;
use super::params::{AnalysisParams, SelectParams};
use super::rows::{class_name, number, object};
use super::scoring::Scored;
use crate::Result;
use crate::kernels::{
    AUTOMATIC_RATIO, DatasetView, DuplicateThreshold, Execution, KCenter, Metric, ScoreQuota,
    SelectOptions, SelectionReason, near_duplicates, select,
};
use crate::model::ClassVocabulary;

/// Candidates per pick that greedy k-center spreads over.
const SPREAD_POOL_FACTOR: usize = 4;

/// What `select` weighs, and how.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Recipe {
    /// Scores and their shares.
    pub(super) weights: Vec<(AnalysisKind, f32)>,
    /// The share of random picks.
    pub(super) random_weight: f32,
    /// Whether picks are spread by greedy k-center.
    pub(super) diversity: bool,
    /// How the recipe was chosen, for the summary.
    pub(super) strategy: &'static str,
}

impl Recipe {
    /// The recipe of a request: its own weights when it gives some; random
    /// when it gives only `random_weight`; otherwise what the data offers.
    pub(super) fn of(
        params: &SelectParams,
        has_labeled_reference: bool,
        has_predictions: bool,
    ) -> Self {
        match (params.weights.is_empty(), params.random_weight) {
            (false, random_weight) => Recipe {
                weights: params.weights.clone(),
                random_weight: random_weight.unwrap_or(0.0),
                diversity: params.diversity.unwrap_or(false),
                strategy: "weights",
            },
            (true, Some(random_weight)) => Recipe {
                weights: Vec::new(),
                random_weight,
                diversity: params.diversity.unwrap_or(false),
                strategy: "random",
            },
            (true, None) => {
                let mut recipe = Recipe::automatic(has_labeled_reference, has_predictions);
                recipe.diversity = params.diversity.unwrap_or(recipe.diversity);
                recipe
            }
        }
    }

    /// With only `n`: where a labeled reference and the target's
    /// predictions exist, uncertainty (`boundary_uncertainty`: the
    /// reference neighbours disagree with the prediction) spread by k-center,
    /// so the picks are uncertain and not all from one boundary; without
    /// them, coverage: the most unique records (`uniqueness`), spread by
    /// k-center. Never random unless asked for. Measured on digits in
    /// BENCHMARKS.md.
    pub(super) fn automatic(has_labeled_reference: bool, has_predictions: bool) -> Self {
        if has_labeled_reference && has_predictions {
            Recipe {
                weights: vec![(AnalysisKind::BoundaryUncertainty, 1.0)],
                random_weight: 0.0,
                diversity: true,
                strategy: "uncertainty_with_diversity",
            }
        } else {
            Recipe {
                weights: vec![(AnalysisKind::Uniqueness, 1.0)],
                random_weight: 0.0,
                diversity: true,
                strategy: "coverage_with_diversity",
            }
        }
    }
}

/// Runs `select` and returns its rows and summary.
pub(super) fn run_select<'a>(
    target: &'a DatasetView<'a>,
    graphs: &mut NeighbourGraphs<'a>,
    params: &AnalysisParams,
    metric: Metric,
    names: (&[String], &ClassVocabulary, &[Option<u32>]),
    execution: &Execution<'_>,
) -> Result<(Vec<Value>, Value)> {
    let (ids, vocabulary, target_labels) = names;
    let has_labeled_reference = graphs
        .require_reference()
        .is_ok_and(|reference| reference.has_labels());
    let has_predictions = (0..target.n_rows()).any(|row| target.prediction(row).is_some());
    let recipe = Recipe::of(&params.select, has_labeled_reference, has_predictions);
    // Progress: the self graph, then each weighted score, an equal part each.
    let n_phases = (1 + recipe.weights.len()) as f32;
    let phase =
        |index: usize| execution.part(index as f32 / n_phases, (index + 1) as f32 / n_phases);
    let self_k = params.k_for(AnalysisKind::Uniqueness);
    graphs.target_self(self_k, &phase(0))?;
    let mut rankings: Vec<Vec<u32>> = Vec::with_capacity(recipe.weights.len());
    for (weight_idx, (kind, _)) in recipe.weights.iter().enumerate() {
        let scored = Scored::compute(*kind, target, graphs, params, &phase(weight_idx + 1))?;
        rankings.push(scored.scores().ranking());
    }
    let quotas: Vec<ScoreQuota<'_>> = rankings
        .iter()
        .zip(&recipe.weights)
        .map(|(ranking, (_, weight))| ScoreQuota {
            ranking,
            weight: *weight,
        })
        .collect();
    let duplicates = near_duplicates(
        target,
        graphs.target_self(self_k, execution)?,
        DuplicateThreshold::Automatic {
            ratio: AUTOMATIC_RATIO,
        },
    )?;
    let eligible: Option<Vec<bool>> = params
        .select
        .unlabeled_only
        .then(|| target_labels.iter().map(Option::is_none).collect());
    let options = SelectOptions {
        n: params.select.n,
        quotas: &quotas,
        random_weight: recipe.random_weight,
        eligible: eligible.as_deref(),
        duplicates: &duplicates,
        spread: recipe.diversity.then_some(KCenter {
            dataset: target,
            metric,
            pool_factor: SPREAD_POOL_FACTOR,
        }),
        seed: params.select.seed,
    };
    let selected = select(target.n_rows(), &options)?;
    let n_selected = selected.len().max(1) as f32;
    let rows = selected
        .iter()
        .enumerate()
        .map(|(rank, choice)| {
            let reason = match choice.reason {
                SelectionReason::Score(quota) => recipe.weights[quota].0.as_str(),
                SelectionReason::Random => "random",
            };
            object([
                ("id", json!(ids[choice.row as usize])),
                ("score", number(1.0 - rank as f32 / n_selected)),
                ("rank", json!(rank + 1)),
                ("flagged", json!(true)),
                ("reason", json!(reason)),
                (
                    "label",
                    class_name(vocabulary, target_labels[choice.row as usize]),
                ),
            ])
        })
        .collect();
    let summary = object([
        ("n_flagged", json!(selected.len())),
        (
            "share_flagged",
            number(selected.len() as f32 / target.n_rows().max(1) as f32),
        ),
        ("strategy", json!(recipe.strategy)),
        (
            "weights",
            Value::Object(
                recipe
                    .weights
                    .iter()
                    .map(|(kind, weight)| (kind.as_str().to_owned(), number(*weight)))
                    .collect(),
            ),
        ),
        ("random_weight", number(recipe.random_weight)),
        ("diversity", json!(recipe.diversity)),
    ]);
    Ok((rows, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(weights: Vec<(AnalysisKind, f32)>, random_weight: Option<f32>) -> SelectParams {
        SelectParams {
            n: 3,
            weights,
            random_weight,
            diversity: None,
            unlabeled_only: false,
            seed: 0,
        }
    }

    #[test]
    fn only_n_uses_what_the_data_offers_and_never_random() {
        let only_n = params(Vec::new(), None);
        let with_reference = Recipe::of(&only_n, true, true);
        assert_eq!(
            with_reference.weights,
            vec![(AnalysisKind::BoundaryUncertainty, 1.0)]
        );
        assert!(with_reference.diversity);
        assert_eq!(with_reference.random_weight, 0.0);
        let without = Recipe::of(&only_n, false, true);
        assert_eq!(without.weights, vec![(AnalysisKind::Uniqueness, 1.0)]);
        assert_eq!(
            Recipe::of(&only_n, true, false).strategy,
            "coverage_with_diversity"
        );
        let random = Recipe::of(&params(Vec::new(), Some(1.0)), true, true);
        assert_eq!((random.weights.len(), random.random_weight), (0, 1.0));
        let explicit = Recipe::of(
            &params(vec![(AnalysisKind::Novelty, 2.0)], None),
            true,
            true,
        );
        assert_eq!((explicit.strategy, explicit.diversity), ("weights", false));
    }
}
