//! In-memory analysis kernels (kNN, scores, projections) on faer; they never do IO.
//!
//! Every kernel reads a [`DatasetView`] (a borrowed row-major `f32` matrix with
//! optional interned labels and predictions), refers to records by row index
//! (the caller maps rows to ids) and, where it is long, runs under an
//! [`Execution`]: thread count, progress callback, cancellation flag.
//!
//! - Exact kNN: [`knn`], [`knn_graph`] and [`ExactIndex`] (its [`SearchTerms`],
//!   the norms, computed once per dataset and updated row by row) compute distances by blocked GEMM with a bounded top-k per
//!   query; results are [`NeighbourLists`], deterministic for any thread count.
//! - Scores over a kNN graph, which the caller builds once and passes to every
//!   score that needs it: [`boundary_uncertainty`], [`mislabel`], [`novelty`],
//!   [`uniqueness`], [`near_duplicates`] / [`near_duplicates_across`]. Each
//!   keeps its evidence ([`NeighbourEvidence`]: neighbour rows, labels,
//!   distances).
//! - Other scores: [`activation_uncertainty`], [`class_outlier`]; the dataset
//!   comparison [`drift`]; the labeling sampler [`select`]; the plot
//!   coordinates: [`projection`] (PCA) and [`neighbour_layout`] (UMAP-style,
//!   on the self-kNN graph).
//!
//! Per-record scores come as [`RecordScores`]: higher = more worth a human's
//! attention, with a continuous refinement ranking records whose scores tie.
//! Degenerate input (empty datasets, k beyond the dataset, one-member classes,
//! singular covariances, identical vectors, mismatched dimensions) gets an
//! error or a documented answer, never a panic or a NaN.
//!
//! ```
//! use mutant_core::kernels::{knn_graph, mislabel, uniqueness, DatasetView, Execution, KnnOptions, Metric, MislabelMethod};
//! let vectors = [0.0f32, 0.1, 0.2, 5.0, 5.1, 5.2];
//! let labels = [Some(0), Some(0), Some(1), Some(1), Some(1), Some(1)];
//! let dataset = DatasetView::new(&vectors, 1)?.with_labels(&labels)?;
//! // One graph, shared by both scores.
//! let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(2), &Execution::new())?;
//! let suspicious = mislabel(&dataset, &graph, MislabelMethod::SelfConfidence)?;
//! let isolated = uniqueness(&dataset, &graph)?;
//! assert_eq!(suspicious.scores.ranking()[0], 2);
//! assert_eq!(isolated.evidence.record(2).rows, &[1, 0]);
//! # Ok::<(), mutant_core::Error>(())
//! ```

mod activation;
mod bf16;
mod boundary;
mod coverage;
mod density;
mod drift;
mod duplicates;
mod knn;
mod layout;
mod mislabel;
mod mmd;
mod neighbours;
mod outlier;
mod progress;
mod projection;
mod random;
mod scores;
mod search;
mod select;
mod subspace;
mod symmetric;
mod topk;
mod verdict;
mod view;

#[cfg(test)]
mod invariant_tests;

pub use activation::{ActivationScores, activation_uncertainty};
pub use boundary::{BoundaryScores, boundary_uncertainty};
pub use coverage::{Coverage, cover};
pub use density::{DensityScores, novelty, uniqueness};
pub use drift::{ClassShare, DriftOptions, DriftReport, drift, drift_peak_bytes};
pub use duplicates::{
    AUTOMATIC_RATIO, DuplicatePair, DuplicateThreshold, near_duplicates, near_duplicates_across,
    partners_to_check,
};
pub use knn::{
    ExactIndex, KnnOptions, SearchTerms, knn, knn_graph, knn_graph_of_rows, knn_peak_bytes,
};
pub use layout::{LAYOUT_NEIGHBOURS, Layout, LayoutOptions, layout_peak_bytes, neighbour_layout};
pub use mislabel::{MISLABEL_K, MISLABEL_MARGIN, MislabelMethod, MislabelScores, mislabel};
pub use neighbours::NeighbourLists;
pub use outlier::{OutlierScores, class_outlier, class_outlier_peak_bytes};
pub use progress::Execution;
pub(crate) use progress::parallel_map;
pub use projection::{Projection, projection, projection_peak_bytes};
pub use random::SplitMix64;
pub use scores::{NeighbourEvidence, RecordEvidence, RecordScores};
pub use select::{KCenter, ScoreQuota, SelectOptions, Selected, SelectionReason, select};
pub use verdict::{FAR_OUT_FENCE, OUTER_FENCE, SHARE_CUT, Verdict, outlier_verdict, share_verdict};
pub use view::{DatasetView, Metric};
