//! `near_duplicates`: pairs of records that are (nearly) the same, within one
//! dataset or across two (train/test leakage).

use super::neighbours::NeighbourLists;
use super::view::DatasetView;
use crate::{Error, Result};

/// When two records count as near duplicates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DuplicateThreshold {
    /// Pairs at most this distance apart (in the graph's metric).
    Absolute(f32),
    /// Pairs much closer to each other than either is to anything else: the
    /// gap test (see [`AUTOMATIC_RATIO`]). A relative test, because one global
    /// distance cannot serve dense and sparse regions at once.
    Automatic {
        /// How much closer the pair must be than the next record, in
        /// `(0, 1]`; [`AUTOMATIC_RATIO`] by default.
        ratio: f32,
    },
}

/// The default gap of the automatic test: a pair `(a, b)` at distance `d`
/// is a duplicate when, seen from each side, `b` (with at most a few other
/// copies of `a`) is at least twice as close to `a` as the next record.
///
/// Exactly: for a record `x` whose listed neighbours other than its partner
/// lie at `e_1 <= e_2 <= ...` (and `e_0 = 0`), its side ratio is
/// `min_j max(d, e_j) / e_(j+1)`, so a record with several copies is judged
/// by the gap after the group of copies instead of being blinded by them;
/// the pair's ratio is the larger of its two sides, and it is a duplicate
/// when that is at most the gap. Measured on scikit-learn's digits with 300
/// planted noisy copies (noise up to half the source's nearest-neighbour
/// distance) and 20 exact ones: precision 1.0 and recall 1.0, in dense and
/// sparse regions alike, and no pair at all on the clean data; the best
/// single distance threshold reached precision 0.97 and recall 0.72 once
/// half the classes were spread three times wider (BENCHMARKS.md).
pub const AUTOMATIC_RATIO: f32 = 0.5;

/// One pair of (near) duplicates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DuplicatePair {
    /// A record of the (target) dataset.
    pub row: u32,
    /// The other record: of the same dataset (`row < other_row`), or of the
    /// reference dataset for cross-dataset pairs.
    pub other_row: u32,
    /// Their distance.
    pub distance: f32,
    /// In `[0, 1]`: 1 for identical vectors, falling to 0 at the threshold.
    pub score: f32,
    /// Whether the two vectors are bit-for-bit identical.
    pub exact: bool,
}

/// Near-duplicate pairs within one dataset, highest score first.
///
/// Candidates are the pairs of the self-kNN `graph` (so a record has at most
/// k partners; raise k to see more), plus every exact duplicate: each record
/// is paired with the first (lowest-row) record identical to it, whatever k.
/// Needs the l2 or cosine metric.
///
/// ```
/// use mutant_core::kernels::{knn_graph, near_duplicates, DatasetView, DuplicateThreshold, Execution, KnnOptions, Metric};
/// let dataset = DatasetView::new(&[0.0f32, 5.0, 5.001, 9.0, 0.0], 1)?;
/// let graph = knn_graph(&dataset, Metric::L2, &KnnOptions::new(2), &Execution::new())?;
/// let pairs = near_duplicates(&dataset, &graph, DuplicateThreshold::Absolute(0.01))?;
/// assert_eq!((pairs[0].row, pairs[0].other_row, pairs[0].exact), (0, 4, true));
/// assert_eq!((pairs[1].row, pairs[1].other_row), (1, 2));
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn near_duplicates(
    dataset: &DatasetView<'_>,
    graph: &NeighbourLists,
    threshold: DuplicateThreshold,
) -> Result<Vec<DuplicatePair>> {
    graph.require_shape("the self-kNN graph", dataset.n_rows(), dataset.n_rows())?;
    check_threshold(graph, threshold)?;
    let mut pairs = Vec::new();
    for row in 0..dataset.n_rows() {
        for (&other_row, &distance) in graph.rows(row).iter().zip(graph.distances(row)) {
            if other_row as usize == row {
                continue;
            }
            let gap = || {
                let own = gap_ratio(graph, row, other_row, distance);
                let other = gap_ratio(graph, other_row as usize, row as u32, distance);
                own.max(other)
            };
            if let Some(score) = pair_score(threshold, distance, gap) {
                let (low, high) = if (row as u32) < other_row {
                    (row as u32, other_row)
                } else {
                    (other_row, row as u32)
                };
                pairs.push(DuplicatePair {
                    row: low,
                    other_row: high,
                    distance,
                    score,
                    exact: false,
                });
            }
        }
    }
    let hashes = row_hashes(dataset);
    let mut order: Vec<u32> = (0..dataset.n_rows() as u32).collect();
    order.sort_by_key(|&row| (hashes[row as usize], row));
    for run in order.chunk_by(|&left, &right| hashes[left as usize] == hashes[right as usize]) {
        for (position, &row) in run.iter().enumerate() {
            // The first identical row before this one in the run (rows ascend).
            if let Some(&first) = run[..position]
                .iter()
                .find(|&&earlier| dataset.row(earlier as usize) == dataset.row(row as usize))
            {
                pairs.push(DuplicatePair {
                    row: first,
                    other_row: row,
                    distance: 0.0,
                    score: 1.0,
                    exact: true,
                });
            }
        }
    }
    Ok(finish(pairs, |pair| {
        dataset.row(pair.row as usize) == dataset.row(pair.other_row as usize)
    }))
}

/// Near-duplicate pairs across two datasets (leakage of reference records,
/// e.g. training data, into the target, e.g. a test set), highest score first.
///
/// Candidates are each target record's neighbours in `target_graph` (from
/// [`knn`](super::knn) with the target as queries), plus every exact copy: a
/// target record identical to reference records is paired with the first of
/// them. For [`DuplicateThreshold::Automatic`] a reference record's
/// neighbourhood comes from `reference_graph` (its self-kNN graph, or only
/// the lists of [`partners_to_check`]'s rows, from
/// [`knn_graph_of_rows`](super::knn_graph_of_rows)); the absolute test reads
/// none.
///
/// ```
/// use mutant_core::kernels::{knn, knn_graph, near_duplicates_across, DatasetView, DuplicateThreshold, Execution, KnnOptions, Metric};
/// let reference = DatasetView::new(&[0.0f32, 10.0, 20.0, 30.0], 1)?;
/// let target = DatasetView::new(&[10.0f32, 20.05, 5.0], 1)?;
/// let options = KnnOptions::new(2);
/// let target_graph = knn(&reference, &target, Metric::L2, &options, &Execution::new())?;
/// let reference_graph = knn_graph(&reference, Metric::L2, &options, &Execution::new())?;
/// let pairs = near_duplicates_across(&target, &reference, &target_graph, &reference_graph, DuplicateThreshold::Automatic { ratio: 0.1 })?;
/// assert_eq!(pairs.iter().map(|pair| (pair.row, pair.other_row)).collect::<Vec<_>>(), vec![(0, 1), (1, 2)]);
/// # Ok::<(), mutant_core::Error>(())
/// ```
pub fn near_duplicates_across(
    target: &DatasetView<'_>,
    reference: &DatasetView<'_>,
    target_graph: &NeighbourLists,
    reference_graph: &NeighbourLists,
    threshold: DuplicateThreshold,
) -> Result<Vec<DuplicatePair>> {
    target.require_same_dimension(reference, "the target")?;
    target_graph.require_shape(
        "the target's neighbour graph",
        target.n_rows(),
        reference.n_rows(),
    )?;
    reference_graph.require_shape(
        "the reference's self-kNN graph",
        reference.n_rows(),
        reference.n_rows(),
    )?;
    check_threshold(target_graph, threshold)?;
    let mut pairs = Vec::new();
    for row in 0..target.n_rows() {
        for (&other_row, &distance) in target_graph
            .rows(row)
            .iter()
            .zip(target_graph.distances(row))
        {
            let gap = || {
                let own = gap_ratio(target_graph, row, other_row, distance);
                if !passes(threshold, own) {
                    return own;
                }
                // The reference record's own list never holds the target
                // record, so nothing is left out but itself.
                let other = gap_ratio(reference_graph, other_row as usize, other_row, distance);
                own.max(other)
            };
            if let Some(score) = pair_score(threshold, distance, gap) {
                pairs.push(DuplicatePair {
                    row: row as u32,
                    other_row,
                    distance,
                    score,
                    exact: false,
                });
            }
        }
    }
    let reference_hashes = row_hashes(reference);
    let mut reference_order: Vec<(u64, u32)> = reference_hashes
        .iter()
        .enumerate()
        .map(|(row, &hash)| (hash, row as u32))
        .collect();
    reference_order.sort_unstable();
    for (row, hash) in row_hashes(target).into_iter().enumerate() {
        let start = reference_order.partition_point(|&(other_hash, _)| other_hash < hash);
        let first_identical = reference_order[start..]
            .iter()
            .take_while(|&&(other_hash, _)| other_hash == hash)
            .find(|&&(_, other_row)| reference.row(other_row as usize) == target.row(row));
        if let Some(&(_, other_row)) = first_identical {
            pairs.push(DuplicatePair {
                row: row as u32,
                other_row,
                distance: 0.0,
                score: 1.0,
                exact: true,
            });
        }
    }
    Ok(finish(pairs, |pair| {
        target.row(pair.row as usize) == reference.row(pair.other_row as usize)
    }))
}

fn check_threshold(graph: &NeighbourLists, threshold: DuplicateThreshold) -> Result<()> {
    if !graph.metric().is_distance() {
        return Err(Error::InvalidParameter {
            name: "metric",
            reason: "near duplicates need non-negative distances; build the graph with the l2 or cosine metric, not dot".to_owned(),
        });
    }
    match threshold {
        DuplicateThreshold::Absolute(distance) if !(distance.is_finite() && distance >= 0.0) => {
            Err(Error::InvalidParameter {
                name: "threshold",
                reason: format!("the distance threshold is {distance}; use a finite distance >= 0"),
            })
        }
        DuplicateThreshold::Automatic { ratio } if !(ratio > 0.0 && ratio <= 1.0) => {
            Err(Error::InvalidParameter {
                name: "ratio",
                reason: format!(
                    "the automatic ratio is {ratio}; use a value in (0, 1], such as {AUTOMATIC_RATIO}"
                ),
            })
        }
        DuplicateThreshold::Absolute(_) | DuplicateThreshold::Automatic { .. } => Ok(()),
    }
}

/// The reference rows whose own neighbourhood [`near_duplicates_across`]
/// reads for `target_graph`, ascending: under the automatic test, the
/// partners of pairs whose target side passes it. The reference's lists of
/// only these rows serve as its `reference_graph`.
pub fn partners_to_check(target_graph: &NeighbourLists, threshold: DuplicateThreshold) -> Vec<u32> {
    let mut partners = Vec::new();
    if let DuplicateThreshold::Automatic { .. } = threshold {
        for row in 0..target_graph.n_queries() {
            for (&other_row, &distance) in target_graph
                .rows(row)
                .iter()
                .zip(target_graph.distances(row))
            {
                if distance > 0.0
                    && passes(threshold, gap_ratio(target_graph, row, other_row, distance))
                {
                    partners.push(other_row);
                }
            }
        }
    }
    partners.sort_unstable();
    partners.dedup();
    partners
}

/// Whether one side's gap ratio passes the automatic test; the absolute
/// test reads no gap.
fn passes(threshold: DuplicateThreshold, gap: f32) -> bool {
    match threshold {
        DuplicateThreshold::Automatic { ratio } => gap <= ratio,
        DuplicateThreshold::Absolute(_) => true,
    }
}

/// One side of the gap test (see [`AUTOMATIC_RATIO`]): how much closer the
/// partner, at `distance`, is to `row` than the next record outside the
/// group of its closest listed neighbours, minimised over the group's size.
/// Infinite when `row` lists no other record.
fn gap_ratio(graph: &NeighbourLists, row: usize, partner: u32, distance: f32) -> f32 {
    let mut best = f32::INFINITY;
    let mut previous = 0.0f32;
    for (&other, &next) in graph.rows(row).iter().zip(graph.distances(row)) {
        if other == partner || other as usize == row {
            continue;
        }
        let group = distance.max(previous);
        let ratio = if next > 0.0 {
            group / next
        } else if group == 0.0 {
            0.0
        } else {
            f32::INFINITY
        };
        best = best.min(ratio);
        previous = next;
    }
    best
}

/// The score of a candidate pair, or `None` if it is not a duplicate: from 1
/// for identical vectors down to 0 at the threshold. `gap` gives the pair's
/// gap ratio, computed only for the automatic test.
fn pair_score(
    threshold: DuplicateThreshold,
    distance: f32,
    gap: impl FnOnce() -> f32,
) -> Option<f32> {
    if distance <= 0.0 {
        return Some(1.0);
    }
    let (value, limit) = match threshold {
        DuplicateThreshold::Absolute(limit) => (distance, limit),
        DuplicateThreshold::Automatic { ratio } => (gap(), ratio),
    };
    (value <= limit && limit > 0.0).then(|| (1.0 - value / limit).clamp(0.0, 1.0))
}

/// A 64-bit hash of each row's bits (with -0.0 taken as 0.0), to find exact
/// duplicates without comparing every pair.
fn row_hashes(dataset: &DatasetView<'_>) -> Vec<u64> {
    (0..dataset.n_rows())
        .map(|row| {
            dataset
                .row(row)
                .iter()
                .fold(0xCBF2_9CE4_8422_2325u64, |hash, &value| {
                    let bits = if value == 0.0 { 0 } else { value.to_bits() };
                    (hash ^ u64::from(bits))
                        .wrapping_mul(0x0000_0100_0000_01B3)
                        .rotate_left(5)
                })
        })
        .collect()
}

/// Deduplicates pairs found twice (keeping the exact flag), marks identical
/// vectors as exact, and orders by score, then distance, then rows.
fn finish(
    mut pairs: Vec<DuplicatePair>,
    identical: impl Fn(&DuplicatePair) -> bool,
) -> Vec<DuplicatePair> {
    pairs.sort_by(|left, right| {
        (left.row, left.other_row)
            .cmp(&(right.row, right.other_row))
            .then(right.exact.cmp(&left.exact))
    });
    pairs.dedup_by_key(|pair| (pair.row, pair.other_row));
    for pair in pairs.iter_mut() {
        pair.exact = pair.exact || (pair.distance == 0.0 && identical(pair));
    }
    pairs.sort_by(|left, right| {
        right
            .score
            .total_cmp(&left.score)
            .then(left.distance.total_cmp(&right.distance))
            .then((left.row, left.other_row).cmp(&(right.row, right.other_row)))
    });
    pairs
}

#[cfg(test)]
mod tests {
    use super::super::{Execution, KnnOptions, Metric, knn, knn_graph, knn_graph_of_rows};
    use super::*;

    #[test]
    fn exact_duplicates_are_found_beyond_k() {
        let dataset = DatasetView::new(&[1.0f32, 1.0, 1.0, 1.0, 7.0], 1).unwrap();
        let graph =
            knn_graph(&dataset, Metric::L2, &KnnOptions::new(1), &Execution::new()).unwrap();
        let pairs = near_duplicates(&dataset, &graph, DuplicateThreshold::Absolute(0.0)).unwrap();
        let mut rows: Vec<(u32, u32)> = pairs
            .iter()
            .map(|pair| (pair.row, pair.other_row))
            .collect();
        rows.sort();
        // Star pairs to row 0, plus whatever the graph linked.
        for other in 1..4 {
            assert!(rows.contains(&(0, other)));
        }
        assert!(
            pairs
                .iter()
                .all(|pair| pair.exact && pair.score == 1.0 && pair.other_row != 4)
        );
    }

    #[test]
    fn automatic_threshold_adapts_to_density() {
        // A pair 0.01 apart in a region spaced by 0.1 is a duplicate; a pair
        // 1 apart in a region spaced by 100 is one too; a pair 0.05 apart in
        // the dense region is not.
        let values = [
            0.0f32, 0.1, 0.2, 0.3, 0.31, 0.5, 1000.0, 1100.0, 1200.0, 1201.0, 1400.0,
        ];
        let dataset = DatasetView::new(&values, 1).unwrap();
        let graph =
            knn_graph(&dataset, Metric::L2, &KnnOptions::new(3), &Execution::new()).unwrap();
        let pairs = near_duplicates(
            &dataset,
            &graph,
            DuplicateThreshold::Automatic { ratio: 0.2 },
        )
        .unwrap();
        let rows: Vec<(u32, u32)> = pairs
            .iter()
            .map(|pair| (pair.row, pair.other_row))
            .collect();
        assert!(rows.contains(&(3, 4)));
        assert!(rows.contains(&(8, 9)));
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(pairs.iter().all(|pair| (0.0..=1.0).contains(&pair.score)));
    }

    /// The reference's lists of only the partners the target side passes
    /// give the same pairs as its whole self graph.
    #[test]
    fn the_partners_lists_give_the_pairs_of_the_whole_graph() {
        let mut reference_values: Vec<f32> = (0..=10).map(|step| step as f32 * 0.1).collect();
        reference_values.extend((0..6).map(|step| 1000.0 + step as f32 * 100.0));
        let reference = DatasetView::new(&reference_values, 1).unwrap();
        let target = DatasetView::new(&[0.51f32, 1200.5, 0.25, 3000.0], 1).unwrap();
        let options = KnnOptions::new(3);
        let execution = Execution::new();
        let across = knn(&reference, &target, Metric::L2, &options, &execution).unwrap();
        let threshold = DuplicateThreshold::Automatic { ratio: 0.2 };
        let partners = partners_to_check(&across, threshold);
        assert!(!partners.is_empty() && 2 * partners.len() < reference.n_rows());
        let some =
            knn_graph_of_rows(&reference, &partners, Metric::L2, &options, &execution).unwrap();
        let whole = knn_graph(&reference, Metric::L2, &options, &execution).unwrap();
        let pairs_of = |graph: &NeighbourLists| -> Vec<(u32, u32)> {
            near_duplicates_across(&target, &reference, &across, graph, threshold)
                .unwrap()
                .iter()
                .map(|pair| (pair.row, pair.other_row))
                .collect()
        };
        assert_eq!(pairs_of(&some), pairs_of(&whole));
        assert_eq!(pairs_of(&whole), [(1, 13), (0, 5)]);
    }

    #[test]
    fn leakage_across_datasets_includes_exact_copies() {
        let reference = DatasetView::new(&[0.0f32, 0.0, 1.0, 1.0, 1.0, 1.0], 2).unwrap();
        let target = DatasetView::new(&[1.0f32, 1.0, 5.0, 5.0], 2).unwrap();
        let target_graph = knn(
            &reference,
            &target,
            Metric::L2,
            &KnnOptions::new(1),
            &Execution::new(),
        )
        .unwrap();
        let reference_graph = knn_graph(
            &reference,
            Metric::L2,
            &KnnOptions::new(1),
            &Execution::new(),
        )
        .unwrap();
        let pairs = near_duplicates_across(
            &target,
            &reference,
            &target_graph,
            &reference_graph,
            DuplicateThreshold::Absolute(0.0),
        )
        .unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!(
            (pairs[0].row, pairs[0].other_row, pairs[0].exact),
            (0, 1, true)
        );
    }

    #[test]
    fn bad_thresholds_and_dot_metric_are_errors() {
        let dataset = DatasetView::new(&[0.0f32, 1.0], 1).unwrap();
        let graph =
            knn_graph(&dataset, Metric::L2, &KnnOptions::new(1), &Execution::new()).unwrap();
        assert!(near_duplicates(&dataset, &graph, DuplicateThreshold::Absolute(f32::NAN)).is_err());
        assert!(
            near_duplicates(
                &dataset,
                &graph,
                DuplicateThreshold::Automatic { ratio: 0.0 }
            )
            .is_err()
        );
        let dot_graph = knn_graph(
            &dataset,
            Metric::Dot,
            &KnnOptions::new(1),
            &Execution::new(),
        )
        .unwrap();
        assert!(near_duplicates(&dataset, &dot_graph, DuplicateThreshold::Absolute(1.0)).is_err());
    }
}
