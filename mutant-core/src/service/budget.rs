//! The memory budget of analyses: each kind's peak working memory,
//! estimated from its inputs (record counts, dimension, `k`, sample sizes,
//! parameters) before anything is allocated, and the refusal of an analysis
//! whose estimate is over [`ServiceConfig::analysis_bytes`] with
//! [`Error::AnalysisTooLarge`], naming what to lower.
//!
//! What is counted: what the kernels allocate (neighbour graphs, the
//! subspace iteration's matrices, drift's tiles), the scores and evidence,
//! the result rows as JSON objects with their record snapshots, and the
//! records' fields read beside them. What is not: the cached datasets the
//! analysis reads in place, which the cache bounds (`MUTANT_CACHE_BYTES`).
//! Every estimate is an upper bound of the plan the kernels follow; the
//! `memory` benchmark compares it with measured peaks (BENCHMARKS.md).
//!
//! [`ServiceConfig::analysis_bytes`]: super::ServiceConfig::analysis_bytes

use serde_json::{Map, Value};

use super::params::AnalysisParams;
use super::projection_run::{ProjectionMethod, ProjectionRequest};
use super::rows::{RECORD_FIELDS_BYTES, row_bytes, rows_in_flight_bytes};
use crate::api::kinds::AnalysisKind;
use crate::kernels::{
    LAYOUT_NEIGHBOURS, class_outlier_peak_bytes, drift_peak_bytes, knn_peak_bytes,
    layout_peak_bytes, projection_peak_bytes,
};
use crate::{Error, Result};

/// Bytes per record of a kernel's scores, refinements, verdicts and the
/// ranking's order.
const SCORE_BYTES: u64 = 32;

/// Bytes per neighbour of the evidence a kernel keeps (row, label,
/// distance).
const EVIDENCE_BYTES: u64 = 16;

/// Bytes of one near-duplicate pair as the kernel keeps it.
const PAIR_BYTES: u64 = 20;

/// Bytes every analysis costs whatever its size: the blocking thread's
/// stack, the allocator's slack, the job's bookkeeping. Measured peaks of
/// small analyses (the `memory` benchmark) run a few MiB over the kernels'
/// own figures without it.
const BASE_BYTES: u64 = 8 << 20;

/// The sizes an analysis works on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AnalysisSize {
    /// Records of the target.
    pub(crate) n_target: usize,
    /// Records of the reference (0 without one).
    pub(crate) n_reference: usize,
    /// The datasets' dimension.
    pub(crate) dimension: usize,
    /// Threads the kernels run on.
    pub(crate) threads: usize,
}

/// An analysis's estimated peak working memory and what its user can lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Estimate {
    pub(crate) bytes: u64,
    pub(crate) advice: &'static str,
}

impl Estimate {
    /// `Ok` within `budget_bytes`, else the refusal that names the estimate,
    /// the budget and what to lower.
    pub(crate) fn within(self, kind: AnalysisKind, budget_bytes: usize) -> Result<()> {
        if self.bytes <= budget_bytes as u64 {
            return Ok(());
        }
        Err(Error::AnalysisTooLarge {
            kind: kind.as_str(),
            needed_mib: self.bytes.div_ceil(1 << 20),
            budget_mib: budget_bytes as u64 >> 20,
            advice: self.advice,
        })
    }
}

/// What a kNN-based kind's user can lower.
const LOWER_K: &str =
    "lower k, or run it on a smaller dataset (a filtered copy), or raise MUTANT_ANALYSIS_BYTES";

/// The peak working memory of `kind` with `params` on datasets of `size`.
pub(crate) fn estimate(
    kind: AnalysisKind,
    params: &AnalysisParams,
    size: AnalysisSize,
) -> Estimate {
    let AnalysisSize {
        n_target,
        n_reference,
        dimension,
        threads,
    } = size;
    let (target, reference) = (n_target as u64, n_reference as u64);
    let k = params.k_for(kind) as u64;
    // Each neighbour graph, capped as `NeighbourGraphs` caps its `k`.
    let self_graph = |n_rows: usize, k: u64| {
        let k = (k as usize).min(n_rows.saturating_sub(1)).max(1);
        knn_peak_bytes(n_rows, n_rows, dimension, k, threads, true)
    };
    let cross_graph = |k: u64| {
        let k = (k as usize).min(n_reference).max(1);
        knn_peak_bytes(n_target, n_reference, dimension, k, threads, false)
    };
    // The rows of a per-record kind in flight, with the records' fields
    // read beside.
    let per_record_rows = |neighbours: u64| {
        rows_in_flight_bytes(target, neighbours, threads as u64) + target * RECORD_FIELDS_BYTES
    };
    let scored = |neighbours: u64| target * (SCORE_BYTES + EVIDENCE_BYTES * neighbours);
    let (bytes, advice) = match kind {
        AnalysisKind::BoundaryUncertainty => {
            (cross_graph(k) + scored(k) + per_record_rows(k), LOWER_K)
        }
        AnalysisKind::Mislabel | AnalysisKind::Uniqueness => (
            self_graph(n_target, k) + scored(k) + per_record_rows(k),
            LOWER_K,
        ),
        AnalysisKind::Novelty => (
            cross_graph(k)
                + self_graph(n_reference, k)
                + scored(k)
                + reference * (SCORE_BYTES + EVIDENCE_BYTES * k)
                + per_record_rows(k),
            LOWER_K,
        ),
        AnalysisKind::ActivationUncertainty => (
            8 * reference + scored(0) + per_record_rows(0),
            "score a smaller target or compare with a smaller reference (filtered copies), or raise MUTANT_ANALYSIS_BYTES",
        ),
        AnalysisKind::ClassOutlier => (
            class_outlier_peak_bytes(n_target, n_reference, dimension)
                + scored(0)
                + per_record_rows(0),
            "score a smaller target or compare with a smaller reference (filtered copies), or raise MUTANT_ANALYSIS_BYTES",
        ),
        AnalysisKind::NearDuplicates => {
            let graphs = if n_reference > 0 {
                cross_graph(k) + self_graph(n_reference, k)
            } else {
                self_graph(n_target, k)
            };
            // Candidates are each record's k neighbours and its exact
            // copies; the rows are counted for one pair per record, and
            // checked again once the pairs are known (`pairs_within`).
            let pairs = target * (k + 1) * PAIR_BYTES + 16 * (target + reference);
            (
                graphs
                    + pairs
                    + rows_in_flight_bytes(target, 0, threads as u64)
                    + 2 * target * RECORD_FIELDS_BYTES,
                "lower k, set a smaller threshold, or compare smaller datasets (filtered copies), or raise MUTANT_ANALYSIS_BYTES",
            )
        }
        AnalysisKind::Drift => (
            drift_peak_bytes(n_reference, n_target, dimension, &params.drift),
            "lower sample_size (or n_permutations), or raise MUTANT_ANALYSIS_BYTES",
        ),
        AnalysisKind::Select => {
            let select = &params.select;
            // Every graph `select` may build: the target's own, its
            // neighbours in the reference and the reference's own.
            let mut bytes = self_graph(n_target, k) + scored(k);
            if n_reference > 0 {
                bytes += cross_graph(k) + self_graph(n_reference, k);
            }
            if select
                .weights
                .iter()
                .any(|(weight_kind, _)| *weight_kind == AnalysisKind::ClassOutlier)
            {
                bytes += class_outlier_peak_bytes(n_target, n_reference, dimension);
            }
            let n_weights = select.weights.len().max(1) as u64;
            let picks = (select.n as u64).min(target);
            bytes += n_weights * target * SCORE_BYTES
                + 64 * target
                + picks * (row_bytes(0) + RECORD_FIELDS_BYTES);
            (
                bytes,
                "lower n or k, weigh fewer scores, or pick from a smaller dataset (a filtered copy), or raise MUTANT_ANALYSIS_BYTES",
            )
        }
        AnalysisKind::Projection => {
            let request = ProjectionRequest {
                dimensions: params.dimensions,
                method: params.projection_method,
                seed: params.select.seed,
            };
            let rows = per_record_rows(0) + 4 * target * params.dimensions as u64;
            match request
                .method
                .unwrap_or_else(|| ProjectionMethod::default_for(n_target))
            {
                ProjectionMethod::Pca => (
                    projection_peak_bytes(n_target, dimension, params.dimensions) + rows,
                    "project a smaller dataset (a filtered copy), or raise MUTANT_ANALYSIS_BYTES",
                ),
                ProjectionMethod::Layout => (
                    self_graph(n_target, LAYOUT_NEIGHBOURS as u64)
                        + layout_peak_bytes(
                            n_target,
                            dimension,
                            LAYOUT_NEIGHBOURS,
                            params.dimensions,
                        )
                        + rows,
                    "use method \"pca\" (the layout keeps a neighbour graph), or project a smaller dataset (a filtered copy), or raise MUTANT_ANALYSIS_BYTES",
                ),
            }
        }
    };
    Estimate {
        bytes: BASE_BYTES + bytes,
        advice,
    }
}

/// The estimated peak working memory, in bytes, of an analysis of `kind`
/// with the wire `params` on a target of `n_target` records and a reference
/// of `n_reference` (0: none), both of `dimension`, its kernels on
/// `threads` threads: what `POST /v1/analyses` compares with the budget.
/// Bad parameters are refused as the POST refuses them.
///
/// ```
/// use mutant_core::service::{AnalysisKind, estimate_analysis_bytes};
/// let params = serde_json::json!({"sample_size": 40_000});
/// let bytes = estimate_analysis_bytes(AnalysisKind::Drift, params.as_object().unwrap(), 40_000, 40_000, 1, 2)?;
/// assert!(bytes < 64 << 20); // issue 13's drift once asked for 51 GB
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn estimate_analysis_bytes(
    kind: AnalysisKind,
    params: &Map<String, Value>,
    n_target: usize,
    n_reference: usize,
    dimension: usize,
    threads: usize,
) -> Result<u64> {
    let params = AnalysisParams::parse(kind, params)?;
    let size = AnalysisSize {
        n_target,
        n_reference,
        dimension,
        threads,
    };
    Ok(estimate(kind, &params, size).bytes)
}

/// `Ok` when `n_pairs` pair rows fit `budget_bytes`: checked once
/// `near_duplicates` knows its pairs, before shaping them, since how many
/// there are cannot be known beforehand.
pub(crate) fn pairs_within(n_pairs: usize, threads: usize, budget_bytes: usize) -> Result<()> {
    Estimate {
        bytes: n_pairs as u64 * PAIR_BYTES + rows_in_flight_bytes(n_pairs as u64, 0, threads as u64),
        advice: "set a smaller threshold (or ratio), or compare smaller datasets (filtered copies), or raise MUTANT_ANALYSIS_BYTES",
    }
    .within(AnalysisKind::NearDuplicates, budget_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(kind: AnalysisKind, raw: serde_json::Value) -> AnalysisParams {
        AnalysisParams::parse(kind, raw.as_object().unwrap()).unwrap()
    }

    fn size(n_target: usize, n_reference: usize, dimension: usize) -> AnalysisSize {
        AnalysisSize {
            n_target,
            n_reference,
            dimension,
            threads: 2,
        }
    }

    /// Every kind, with parameters it takes.
    fn every_kind() -> Vec<(AnalysisKind, serde_json::Value)> {
        vec![
            (AnalysisKind::BoundaryUncertainty, json!({})),
            (AnalysisKind::ActivationUncertainty, json!({})),
            (AnalysisKind::ClassOutlier, json!({})),
            (AnalysisKind::Mislabel, json!({})),
            (AnalysisKind::Novelty, json!({})),
            (AnalysisKind::Uniqueness, json!({})),
            (AnalysisKind::NearDuplicates, json!({})),
            (AnalysisKind::Drift, json!({})),
            (AnalysisKind::Select, json!({"n": 100})),
            (AnalysisKind::Projection, json!({})),
            (AnalysisKind::Projection, json!({"method": "layout"})),
        ]
    }

    #[test]
    fn every_kind_is_refused_over_a_small_budget_and_accepted_under_it() {
        for (kind, raw) in every_kind() {
            let params = params(kind, raw);
            let estimate = estimate(kind, &params, size(20_000, 20_000, 64));
            assert!(estimate.bytes > 1 << 20, "{kind:?}: {estimate:?}");
            let refused = estimate
                .within(kind, (estimate.bytes - 1) as usize)
                .unwrap_err();
            assert!(
                matches!(refused, Error::AnalysisTooLarge { .. }),
                "{refused}"
            );
            let message = refused.to_string();
            assert!(
                message.contains(kind.as_str()) && message.contains("MUTANT_ANALYSIS_BYTES"),
                "{message}"
            );
            estimate.within(kind, estimate.bytes as usize).unwrap();
        }
    }

    #[test]
    fn estimates_grow_with_what_the_message_says_to_lower() {
        let at = |kind, raw, n_records| {
            estimate(kind, &params(kind, raw), size(n_records, n_records, 64)).bytes
        };
        let drift = AnalysisKind::Drift;
        assert!(at(drift, json!({"sample_size": 40_000}), 100_000) > at(drift, json!({}), 100_000));
        let mislabel = AnalysisKind::Mislabel;
        let (k_200, k_20) = (
            at(mislabel, json!({"k": 200}), 10_000),
            at(mislabel, json!({"k": 20}), 10_000),
        );
        assert!(k_200 > 2 * k_20, "k 200: {k_200}, k 20: {k_20}");
        let (large, small) = (
            at(mislabel, json!({}), 100_000),
            at(mislabel, json!({}), 10_000),
        );
        assert!(
            large > 3 * small,
            "100,000 records: {large}, 10,000: {small}"
        );
        let select = AnalysisKind::Select;
        assert!(at(select, json!({"n": 50_000}), 100_000) > at(select, json!({"n": 10}), 100_000));
    }

    #[test]
    fn no_kind_grows_with_the_dimension_squared() {
        for (kind, raw) in every_kind() {
            let params = params(kind, raw);
            let narrow = estimate(kind, &params, size(2_000, 2_000, 1_024)).bytes;
            let wide = estimate(kind, &params, size(2_000, 2_000, 16_384)).bytes;
            // Sixteen times the dimension: at most about sixteen times the
            // memory (a d x d matrix would be 256 times, 2 GiB here).
            assert!(
                wide < 17 * narrow.max(1 << 20),
                "{kind:?}: {narrow} -> {wide}"
            );
        }
    }

    #[test]
    fn the_issue_13_drift_fits_a_small_budget() {
        // Issue 13: sample_size 40,000 on two 1-d datasets allocated 51 GB.
        let drift = params(AnalysisKind::Drift, json!({"sample_size": 40_000}));
        let bytes = estimate(AnalysisKind::Drift, &drift, size(40_000, 40_000, 1)).bytes;
        assert!(bytes < 64 << 20, "{bytes}");
    }
}
