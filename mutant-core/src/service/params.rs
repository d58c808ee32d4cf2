//! The parameters of an analysis: read from the request's `params` object,
//! checked before the job is queued, with the defaults PROTOCOL.md lists.
//! Unknown keys are refused, never ignored.

use serde_json::{Map, Value};

use super::projection_run::ProjectionMethod;
use crate::api::kinds::AnalysisKind;
use crate::kernels::{
    AUTOMATIC_RATIO, DriftOptions, DuplicateThreshold, MISLABEL_K, MislabelMethod,
};
use crate::{Error, Result};

/// Neighbours per record when the request names no `k`.
pub(super) const DEFAULT_K: usize = 10;

/// The largest `k` an analysis takes.
const MAX_K: usize = 1_000;

/// The p-value below which `drift` calls a difference real, by default.
const DEFAULT_DRIFT_SIGNIFICANCE: f32 = 0.05;

/// Parameters of an analysis, checked before it is queued.
#[derive(Debug, Clone)]
pub(super) struct AnalysisParams {
    /// Neighbours per record, when the request names them.
    pub(super) k: Option<usize>,
    /// How `mislabel` scores.
    pub(super) method: MislabelMethod,
    /// When `near_duplicates` calls a pair a duplicate.
    pub(super) duplicates: DuplicateThreshold,
    /// The score at and above which a per-record kind flags a row, instead
    /// of the kind's automatic rule; for `drift`, the p-value below which it
    /// reports drift.
    pub(super) threshold: Option<f32>,
    /// Coordinates per record of a projection.
    pub(super) dimensions: usize,
    /// How a projection places records; absent: by the dataset's size.
    pub(super) projection_method: Option<ProjectionMethod>,
    /// Sampling and permutations of `drift`.
    pub(super) drift: DriftOptions,
    /// What `select` picks.
    pub(super) select: SelectParams,
}

/// The parameters of `select`.
#[derive(Debug, Clone)]
pub(super) struct SelectParams {
    /// How many records to pick.
    pub(super) n: usize,
    /// Scores and their shares; empty: the automatic recipe.
    pub(super) weights: Vec<(AnalysisKind, f32)>,
    /// The share of random picks; absent: none, unless neither weights are
    /// given (then the automatic recipe) nor anything else.
    pub(super) random_weight: Option<f32>,
    /// Spread the picks by greedy k-center; absent: on for the automatic
    /// recipe, off for explicit weights.
    pub(super) diversity: Option<bool>,
    /// Only records without a label.
    pub(super) unlabeled_only: bool,
    /// Seed of every random choice.
    pub(super) seed: u64,
}

impl AnalysisParams {
    /// Reads and checks `params` for `kind`.
    pub(super) fn parse(kind: AnalysisKind, raw: &Map<String, Value>) -> Result<Self> {
        let allowed = allowed_keys(kind);
        if let Some(unknown) = raw.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(bad(format!(
                "{} takes no parameter {unknown:?}; it takes {allowed:?}",
                kind.as_str()
            )));
        }
        // `method` is the projection's method for a projection, the
        // score's otherwise.
        let projection_method = match kind {
            AnalysisKind::Projection => ProjectionMethod::parse(raw.get("method"))?,
            _ => None,
        };
        let mislabel_method = raw
            .get("method")
            .filter(|_| kind != AnalysisKind::Projection);
        let method = match mislabel_method.map(Value::as_str) {
            None | Some(Some("self_confidence")) => MislabelMethod::SelfConfidence,
            Some(Some("normalized_margin")) => MislabelMethod::NormalizedMargin,
            Some(_) => {
                return Err(bad(
                    "method must be \"self_confidence\" or \"normalized_margin\"".into(),
                ));
            }
        };
        let threshold = raw
            .get("threshold")
            .map(|value| {
                value
                    .as_f64()
                    .filter(|number| number.is_finite() && *number >= 0.0)
                    .map(|number| number as f32)
                    .ok_or_else(|| bad(format!("threshold must be a number >= 0, got {value}")))
            })
            .transpose()?;
        let ratio = get_fraction(raw, "ratio", AUTOMATIC_RATIO)?;
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(bad(format!(
                "ratio must be in (0, 1], such as {AUTOMATIC_RATIO}, got {ratio}"
            )));
        }
        let duplicates = match (kind, threshold) {
            (AnalysisKind::NearDuplicates, Some(distance)) => {
                DuplicateThreshold::Absolute(distance)
            }
            _ => DuplicateThreshold::Automatic { ratio },
        };
        let threshold = match kind {
            AnalysisKind::Drift => Some(threshold.unwrap_or(DEFAULT_DRIFT_SIGNIFICANCE)),
            _ => threshold,
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
        if kind == AnalysisKind::Select && !raw.contains_key("n") {
            return Err(bad("select needs n, the number of records to pick".into()));
        }
        let random_weight = raw
            .contains_key("random_weight")
            .then(|| get_fraction(raw, "random_weight", 0.0))
            .transpose()?;
        let diversity = raw
            .contains_key("diversity")
            .then(|| get_flag(raw, "diversity"))
            .transpose()?;
        Ok(AnalysisParams {
            k: raw
                .contains_key("k")
                .then(|| get_count(raw, "k", DEFAULT_K, MAX_K))
                .transpose()?,
            method,
            duplicates,
            threshold,
            dimensions,
            projection_method,
            drift,
            select: SelectParams {
                n: get_count(raw, "n", 1, 1_000_000)?,
                weights: weights(raw)?,
                random_weight,
                diversity,
                unlabeled_only: get_flag(raw, "unlabeled_only")?,
                seed,
            },
        })
    }
}

impl AnalysisParams {
    /// Neighbours per record for `kind`: as requested, else the kind's
    /// default ([`MISLABEL_K`] for `mislabel`, [`DEFAULT_K`] otherwise).
    pub(super) fn k_for(&self, kind: AnalysisKind) -> usize {
        self.k.unwrap_or(match kind {
            AnalysisKind::Mislabel => MISLABEL_K,
            _ => DEFAULT_K,
        })
    }
}

/// The parameter names each kind takes.
fn allowed_keys(kind: AnalysisKind) -> &'static [&'static str] {
    match kind {
        AnalysisKind::BoundaryUncertainty | AnalysisKind::Novelty | AnalysisKind::Uniqueness => {
            &["k", "threshold"]
        }
        AnalysisKind::ActivationUncertainty | AnalysisKind::ClassOutlier => &["threshold"],
        AnalysisKind::Mislabel => &["k", "method", "threshold"],
        AnalysisKind::NearDuplicates => &["k", "threshold", "ratio"],
        AnalysisKind::Drift => &["sample_size", "n_permutations", "seed", "threshold"],
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
    }
}

/// `select`'s `weights`: score name to share.
fn weights(raw: &Map<String, Value>) -> Result<Vec<(AnalysisKind, f32)>> {
    match raw.get("weights") {
        None => Ok(Vec::new()),
        Some(Value::Object(weights)) => weights
            .iter()
            .map(|(name, weight)| {
                let kind: AnalysisKind = name.parse()?;
                if !kind.is_record_score() {
                    return Err(bad(format!(
                        "select cannot weigh {name:?}; weigh a per-record score"
                    )));
                }
                let weight = weight
                    .as_f64()
                    .filter(|weight| weight.is_finite() && *weight >= 0.0)
                    .ok_or_else(|| {
                        bad(format!(
                            "the weight of {name} must be a non-negative number"
                        ))
                    })?;
                Ok((kind, weight as f32))
            })
            .collect(),
        Some(other) => Err(bad(format!(
            "weights must be an object of score name to weight, got {other}"
        ))),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(kind: AnalysisKind, params: Value) -> Result<AnalysisParams> {
        AnalysisParams::parse(kind, params.as_object().unwrap())
    }

    #[test]
    fn threshold_is_a_distance_for_pairs_and_a_score_cut_elsewhere() {
        let pairs = parse(AnalysisKind::NearDuplicates, json!({"threshold": 0.5})).unwrap();
        assert_eq!(pairs.duplicates, DuplicateThreshold::Absolute(0.5));
        let automatic = parse(AnalysisKind::NearDuplicates, json!({})).unwrap();
        assert_eq!(
            automatic.duplicates,
            DuplicateThreshold::Automatic {
                ratio: AUTOMATIC_RATIO
            }
        );
        let novelty = parse(AnalysisKind::Novelty, json!({"threshold": 2})).unwrap();
        assert_eq!(novelty.threshold, Some(2.0));
        let drift = parse(AnalysisKind::Drift, json!({})).unwrap();
        assert_eq!(drift.threshold, Some(DEFAULT_DRIFT_SIGNIFICANCE));
    }

    #[test]
    fn select_leaves_unset_choices_to_the_recipe() {
        let select = parse(AnalysisKind::Select, json!({"n": 5})).unwrap().select;
        assert_eq!(select.n, 5);
        assert!(select.weights.is_empty());
        assert_eq!(select.random_weight, None);
        assert_eq!(select.diversity, None);
        let random = parse(AnalysisKind::Select, json!({"n": 5, "random_weight": 1}))
            .unwrap()
            .select;
        assert_eq!(random.random_weight, Some(1.0));
    }

    #[test]
    fn bad_parameters_say_what_to_change() {
        for (kind, params, expected) in [
            (AnalysisKind::Select, json!({}), "select needs n"),
            (
                AnalysisKind::Projection,
                json!({"k": 3}),
                "no parameter \"k\"",
            ),
            (
                AnalysisKind::Novelty,
                json!({"threshold": -1}),
                "threshold must be",
            ),
            (
                AnalysisKind::Mislabel,
                json!({"method": "vote"}),
                "self_confidence",
            ),
            (
                AnalysisKind::Select,
                json!({"n": 1, "weights": {"drift": 1}}),
                "cannot weigh",
            ),
            (AnalysisKind::Uniqueness, json!({"k": 0}), "from 1 to 1000"),
            (
                AnalysisKind::NearDuplicates,
                json!({"ratio": 1.5}),
                "(0, 1]",
            ),
            (AnalysisKind::NearDuplicates, json!({"ratio": 0}), "(0, 1]"),
        ] {
            let message = parse(kind, params).unwrap_err().to_string();
            assert!(message.contains(expected), "{message}");
        }
    }
}
