//! `select`: the next records to label. With weights, each weighted score
//! gets a quota of its top records, near-duplicates of a pick are skipped,
//! the rest is random, optionally spread out by greedy k-center. With only
//! `n`, the picks cover the data, weighted by the model's uncertainty where
//! a labeled reference and predictions give one (see [`Recipe`]).

use serde_json::{Map, Value, json};

use super::graphs::NeighbourGraphs;
use super::params::{AnalysisParams, SelectParams};
use super::rows::{ResultRows, ShapedRow, class_name, number, object, share};
use super::scoring::Scored;
use crate::Result;
use crate::api::kinds::AnalysisKind;
use crate::kernels::{
    AUTOMATIC_RATIO, Coverage, DatasetView, DuplicateThreshold, Execution, KCenter, ScoreQuota,
    SelectOptions, SelectionReason, boundary_uncertainty, cover, near_duplicates, select,
    uniqueness,
};
use crate::model::ClassVocabulary;

/// Candidates per pick that greedy k-center spreads over.
const SPREAD_POOL_FACTOR: usize = 4;

/// What `select` weighs, and how.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Recipe {
    /// The request's own choice: a quota per weighted score, a random
    /// share, optionally spread by greedy k-center.
    Quotas {
        /// Scores and their shares.
        weights: Vec<(AnalysisKind, f32)>,
        /// The share of random picks.
        random_weight: f32,
        /// Whether picks are spread by greedy k-center.
        diversity: bool,
    },
    /// With only `n`: cover the target (see [`cover`]), weighting each
    /// record by the model's uncertainty about it when a labeled reference
    /// and predictions give one, and counting what the reference's labeled
    /// records already cover.
    Coverage {
        /// Weight records by boundary uncertainty.
        uncertainty: bool,
    },
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
            (false, random_weight) => Recipe::Quotas {
                weights: params.weights.clone(),
                random_weight: random_weight.unwrap_or(0.0),
                diversity: params.diversity.unwrap_or(false),
            },
            (true, Some(random_weight)) => Recipe::Quotas {
                weights: Vec::new(),
                random_weight,
                diversity: params.diversity.unwrap_or(false),
            },
            (true, None) => Recipe::Coverage {
                uncertainty: has_labeled_reference && has_predictions,
            },
        }
    }

    /// How the recipe picks, as the summary names it.
    fn strategy(&self) -> &'static str {
        match self {
            Recipe::Quotas { weights, .. } if weights.is_empty() => "random",
            Recipe::Quotas { .. } => "weights",
            Recipe::Coverage { uncertainty: true } => "uncertainty_coverage",
            Recipe::Coverage { uncertainty: false } => "coverage",
        }
    }
}

/// In uncertainty coverage, a record's worth is this plus the share of its
/// reference neighbours' (distance-weighted) votes against its prediction:
/// certain regions still count a little, so the picks cover them too once
/// the uncertain ones are covered. Measured on digits (BENCHMARKS.md): 0.2
/// beat 1 and 0.
const CERTAIN_WORTH: f32 = 0.2;

/// The most reference neighbours an uncertainty weight is voted by; fewer
/// when the smallest labeled reference class is smaller, so that a record
/// whose neighbours all belong to one class can read as certain.
const UNCERTAINTY_K: usize = 10;

/// Runs `select` and returns its rows and summary.
pub(super) fn run_select<'a>(
    target: &'a DatasetView<'a>,
    graphs: &mut NeighbourGraphs<'a>,
    params: &AnalysisParams,
    names: (&[String], &ClassVocabulary, &[Option<u32>]),
    execution: &Execution<'_>,
) -> Result<(ResultRows, Value)> {
    let (ids, vocabulary, target_labels) = names;
    let has_labeled_reference = graphs
        .require_reference()
        .is_ok_and(|reference| reference.has_labels());
    let has_predictions = (0..target.n_rows()).any(|row| target.prediction(row).is_some());
    let recipe = Recipe::of(&params.select, has_labeled_reference, has_predictions);
    let eligible: Option<Vec<bool>> = params
        .select
        .unlabeled_only
        .then(|| target_labels.iter().map(Option::is_none).collect());
    let picks: Vec<(u32, &'static str)> = match &recipe {
        Recipe::Quotas {
            weights,
            random_weight,
            diversity,
        } => pick_by_quotas(
            target,
            graphs,
            params,
            (weights, *random_weight, *diversity),
            eligible.as_deref(),
            execution,
        )?,
        Recipe::Coverage { uncertainty } => pick_by_coverage(
            target,
            graphs,
            params,
            *uncertainty,
            eligible.as_deref(),
            execution,
        )?,
    };
    let n_picked = picks.len().max(1) as f32;
    let rows = picks
        .iter()
        .enumerate()
        .map(|(rank, &(row, reason))| {
            let fields = [
                ("id", json!(ids[row as usize])),
                ("score", number(1.0 - rank as f32 / n_picked)),
                ("rank", json!(rank + 1)),
                ("flagged", json!(true)),
                ("reason", json!(reason)),
                ("label", class_name(vocabulary, target_labels[row as usize])),
            ]
            .map(|(key, value)| (key.to_owned(), value));
            ShapedRow::about(row as usize, Map::from_iter(fields))
        })
        .collect();
    let mut summary = object([
        ("n_flagged", json!(picks.len())),
        ("share_flagged", share(picks.len(), target.n_rows())),
        ("strategy", json!(recipe.strategy())),
    ]);
    if let (
        Value::Object(fields),
        Recipe::Quotas {
            weights,
            random_weight,
            diversity,
        },
    ) = (&mut summary, &recipe)
    {
        fields.insert(
            "weights".into(),
            Value::Object(
                weights
                    .iter()
                    .map(|(kind, weight)| (kind.as_str().to_owned(), number(*weight)))
                    .collect(),
            ),
        );
        fields.insert("random_weight".into(), number(*random_weight));
        fields.insert("diversity".into(), json!(diversity));
    }
    Ok((ResultRows::shaped(rows), summary))
}

/// Explicit weights: each score's ranking fills its quota, skipping
/// near-duplicates of a pick, the rest at random, optionally spread by
/// greedy k-center. Each pick comes with the score that chose it.
fn pick_by_quotas<'a>(
    target: &'a DatasetView<'a>,
    graphs: &mut NeighbourGraphs<'a>,
    params: &AnalysisParams,
    (weights, random_weight, diversity): (&[(AnalysisKind, f32)], f32, bool),
    eligible: Option<&[bool]>,
    execution: &Execution<'_>,
) -> Result<Vec<(u32, &'static str)>> {
    // Progress: the self graph, then each weighted score, an equal part each.
    let n_phases = (1 + weights.len()) as f32;
    let phase =
        |index: usize| execution.part(index as f32 / n_phases, (index + 1) as f32 / n_phases);
    let self_k = params.k_for(AnalysisKind::Uniqueness);
    graphs.target_self(self_k, &phase(0))?;
    let mut rankings: Vec<Vec<u32>> = Vec::with_capacity(weights.len());
    for (weight_idx, (kind, _)) in weights.iter().enumerate() {
        let scored = Scored::compute(*kind, target, graphs, params, &phase(weight_idx + 1))?;
        rankings.push(scored.scores().ranking());
    }
    let quotas: Vec<ScoreQuota<'_>> = rankings
        .iter()
        .zip(weights)
        .map(|(ranking, (_, weight))| ScoreQuota {
            ranking,
            weight: *weight,
        })
        .collect();
    let own = graphs.target_self(self_k, execution)?;
    let duplicates = near_duplicates(
        target,
        own,
        DuplicateThreshold::Automatic {
            ratio: AUTOMATIC_RATIO,
        },
    )?;
    let options = SelectOptions {
        n: params.select.n,
        quotas: &quotas,
        random_weight,
        eligible,
        duplicates: &duplicates,
        spread: diversity.then_some(KCenter {
            graph: own,
            pool_factor: SPREAD_POOL_FACTOR,
        }),
        seed: params.select.seed,
    };
    // The scores took the whole progress bar; the picks are its last step.
    Ok(
        select(target.n_rows(), &options, &execution.part(0.99, 1.0))?
            .into_iter()
            .map(|choice| {
                let reason = match choice.reason {
                    SelectionReason::Score(quota) => weights[quota].0.as_str(),
                    SelectionReason::Random => "random",
                };
                (choice.row, reason)
            })
            .collect(),
    )
}

/// Only `n`: weighted coverage of the target's self-kNN graph (which also
/// keeps near-duplicates of a pick out: a pick covers them), then, if
/// everything is covered before `n`, the most uncertain (or most unique)
/// records left.
fn pick_by_coverage<'a>(
    target: &'a DatasetView<'a>,
    graphs: &mut NeighbourGraphs<'a>,
    params: &AnalysisParams,
    uncertainty: bool,
    eligible: Option<&[bool]>,
    execution: &Execution<'_>,
) -> Result<Vec<(u32, &'static str)>> {
    let n_rows = target.n_rows();
    let self_k = params.k_for(AnalysisKind::Uniqueness);
    let own = graphs
        .target_self(self_k, &execution.part(0.0, 0.5))?
        .clone();
    let mut covered = vec![false; n_rows];
    let mut weights = vec![1.0f32; n_rows];
    let (reason, fallback_order) = match graphs.require_reference() {
        Ok(reference) if uncertainty => {
            let k = params
                .k
                .unwrap_or_else(|| UNCERTAINTY_K.min(smallest_class(reference)).max(1));
            let across = graphs.target_in_reference(reference, k, &execution.part(0.5, 0.9))?;
            // A record whose nearest labeled record is closer than its own
            // k-th neighbour is covered already.
            for (row, is_covered) in covered.iter_mut().enumerate() {
                let nearest_labeled = across.distances(row).first().copied();
                let own_reach = own.distances(row).last().copied().unwrap_or(0.0);
                *is_covered = nearest_labeled.is_some_and(|distance| distance <= own_reach);
            }
            let scores = boundary_uncertainty(target, reference, across)?.scores;
            for (weight, share) in weights.iter_mut().zip(&scores.refinement) {
                *weight = CERTAIN_WORTH + share;
            }
            ("boundary_uncertainty", scores.ranking())
        }
        _ => ("coverage", uniqueness(target, &own)?.scores.ranking()),
    };
    let coverage = Coverage {
        graph: &own,
        weights: &weights,
        covered: &covered,
    };
    let n = params.select.n;
    let mut picked = cover(n, &coverage, eligible, &execution.part(0.9, 1.0))?;
    let mut is_picked = vec![false; n_rows];
    for &row in &picked {
        is_picked[row as usize] = true;
    }
    for row in fallback_order {
        if picked.len() >= n {
            break;
        }
        let allowed = eligible.is_none_or(|eligible| eligible[row as usize]);
        if allowed && !is_picked[row as usize] {
            is_picked[row as usize] = true;
            picked.push(row);
        }
    }
    Ok(picked.into_iter().map(|row| (row, reason)).collect())
}

/// The size of the smallest labeled class of `dataset` (0 with no labels).
fn smallest_class(dataset: &DatasetView<'_>) -> usize {
    let mut counts: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for row in 0..dataset.n_rows() {
        if let Some(label) = dataset.label(row) {
            *counts.entry(label).or_default() += 1;
        }
    }
    counts.values().copied().min().unwrap_or(0)
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
        assert_eq!(
            Recipe::of(&only_n, true, true),
            Recipe::Coverage { uncertainty: true }
        );
        assert_eq!(Recipe::of(&only_n, false, true).strategy(), "coverage");
        assert_eq!(Recipe::of(&only_n, true, false).strategy(), "coverage");
        let random = Recipe::of(&params(Vec::new(), Some(1.0)), true, true);
        assert_eq!(random.strategy(), "random");
        let explicit = Recipe::of(
            &params(vec![(AnalysisKind::Novelty, 2.0)], None),
            true,
            true,
        );
        assert_eq!(
            explicit,
            Recipe::Quotas {
                weights: vec![(AnalysisKind::Novelty, 2.0)],
                random_weight: 0.0,
                diversity: false
            }
        );
    }
}
